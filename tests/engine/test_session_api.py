"""The asyncio Python API the CLI is built on: add, pause, resume, remove, status."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.engine.swarm import DownloadFinished, PieceVerified
from bitswarm.errors import UsageError
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.events import TorrentEvent
from bitswarm.net.session import Session, TorrentOptions, TorrentRuntime

from .conftest import scrape_counts


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)  # polling an observable state


def test_add_pause_resume_remove(tmp_path: Path) -> None:
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(9).randbytes(800_000))
    torrent = Torrent.decode(create(source, CreateOptions(version=TorrentVersion.V1, piece_length=32 * 1024)))

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", max_up=400_000)
        leecher = Session(port=0, host="127.0.0.1")
        await seeder.start()
        await leecher.start()
        try:
            seeding = await seeder.add(torrent, source.parent)
            assert seeding.status()["pieces"] == torrent.num_pieces
            download: TorrentRuntime = await leecher.add(torrent, tmp_path / "get")
            with pytest.raises(UsageError, match="already"):
                await leecher.add(torrent, tmp_path / "elsewhere")
            await download.connect(("127.0.0.1", seeder.port))
            await wait_until(lambda: download.status()["pieces"] >= torrent.num_pieces // 4, "a quarter")

            await download.pause()
            assert download.paused
            assert download.status()["peers"] == 0
            paused_at = download.status()["pieces"]
            assert not download.finished.is_set()
            await download.connect(("127.0.0.1", seeder.port))  # refused while paused
            assert download.status()["peers"] == 0

            download.resume()
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), 60)
            assert download.status()["pieces"] == torrent.num_pieces > paused_at
            assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()

            await leecher.remove(torrent.info_hash_v1 or b"")
            assert leecher.torrents == {}
            with pytest.raises(UsageError, match="no torrent"):
                await leecher.remove(b"x" * 20)
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


def test_a_download_closed_as_soon_as_it_finishes_still_announces_completed(tmp_path: Path, tracker: str) -> None:
    """`bitswarm get --no-seed` closes its session the moment the last piece verifies; the
    "completed" announce started then must reach the tracker before "stopped" (BEP 3: the
    tracker counts finished downloads from that event alone), not be cancelled by the close.
    Found by the mixed-swarm interop test (issue 4, point 9)."""
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(10).randbytes(200_000))
    options = CreateOptions(version=TorrentVersion.V1, piece_length=32 * 1024, trackers=[f"{tracker}/announce"])
    torrent = Torrent.decode(create(source, options))
    info_hash = torrent.info_hash_v1 or b""

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1")
        leecher = Session(port=0, host="127.0.0.1")
        await seeder.start()
        await leecher.start()
        try:
            await seeder.add(torrent, source.parent)
            await wait_until(lambda: scrape_counts(tracker, info_hash)[b"complete"] == 1, "the seed's announce")
            download = await leecher.add(torrent, tmp_path / "get")
            await asyncio.wait_for(download.finished.wait(), 30)
            await leecher.close()
            counts = scrape_counts(tracker, info_hash)
            assert (counts[b"complete"], counts[b"incomplete"], counts[b"downloaded"]) == (1, 0, 1)
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


def _inversions(order: list[int]) -> int:
    return sum(1 for position, index in enumerate(order) for later in order[position + 1 :] if later < index)


def _shared_torrent(tmp_path: Path, size: int, piece_length: int, seed: int) -> tuple[Path, Torrent]:
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(seed).randbytes(size))
    return source, Torrent.decode(create(source, CreateOptions(version=TorrentVersion.V1, piece_length=piece_length)))


def test_events_tell_pieces_pause_resume_finish_and_removal(tmp_path: Path) -> None:
    source, torrent = _shared_torrent(tmp_path, 600_000, 32 * 1024, 11)

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", max_up=300_000)
        leecher = Session(port=0, host="127.0.0.1")
        await seeder.start()
        await leecher.start()
        try:
            await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            events = download.events()
            seen: list[TorrentEvent] = []
            await download.connect(("127.0.0.1", seeder.port))
            async with asyncio.timeout(60):
                async for event in events:
                    seen.append(event)
                    if isinstance(event, PieceVerified) and len(seen) == 3:
                        await download.pause()
                        download.resume()
                        await download.connect(("127.0.0.1", seeder.port))
                    if isinstance(event, DownloadFinished):
                        break
            await leecher.remove(torrent.info_hash_v1 or b"")
            async with asyncio.timeout(10):
                rest = [event async for event in events]  # ends with the removal
            kinds = [type(event).__name__ for event in seen + rest]
            # Pieces being checked when the pause came may still verify during it.
            assert kinds.count("TorrentPaused") == kinds.count("TorrentResumed") == 1
            assert 3 <= kinds.index("TorrentPaused") < kinds.index("TorrentResumed")
            assert kinds[-2:] == ["DownloadFinished", "TorrentRemoved"]
            verified = sorted(event.index for event in seen if isinstance(event, PieceVerified))
            assert verified == list(range(torrent.num_pieces))
            assert events.dropped == 0
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("sequential", [True, False])
def test_sequential_mode_verifies_pieces_in_order(tmp_path: Path, sequential: bool) -> None:
    """Sequential mode (`get --sequential`) takes pieces from the start: the order in which
    they verify is nearly sorted, where rarest-first's random picks are not."""
    source, torrent = _shared_torrent(tmp_path, 96 * 16 * 1024, 16 * 1024, 12)

    async def scenario() -> list[int]:
        seeder = Session(port=0, host="127.0.0.1")
        leecher = Session(port=0, host="127.0.0.1")
        await seeder.start()
        await leecher.start()
        try:
            await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get", TorrentOptions(sequential=sequential))
            events = download.events()
            await download.connect(("127.0.0.1", seeder.port))
            order: list[int] = []
            async with asyncio.timeout(60):
                async for event in events:
                    if isinstance(event, PieceVerified):
                        order.append(event.index)
                    elif isinstance(event, DownloadFinished):
                        break
            assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
            return order
        finally:
            await leecher.close()
            await seeder.close()

    order = asyncio.run(scenario())
    assert sorted(order) == list(range(torrent.num_pieces))
    worst = len(order) * (len(order) - 1) // 2
    if sequential:
        assert _inversions(order) <= worst // 50
    else:
        assert _inversions(order) > worst // 10


def test_upload_slots_are_an_option_and_checked(tmp_path: Path) -> None:
    source, torrent = _shared_torrent(tmp_path, 100_000, 32 * 1024, 13)

    async def scenario() -> None:
        session = Session(port=0, host="127.0.0.1")
        await session.start()
        try:
            with pytest.raises(UsageError, match="upload slots"):
                await session.add(torrent, source.parent, TorrentOptions(upload_slots=0))
            runtime = await session.add(torrent, source.parent, TorrentOptions(upload_slots=3))
            assert runtime.swarm is not None
            assert runtime.swarm.choker.slots == 3
        finally:
            await session.close()

    asyncio.run(scenario())


def test_a_seed_at_rest_is_not_ticked_until_a_peer_wakes_it(tmp_path: Path) -> None:
    """A daemon holds a thousand seeds with no peers: the session's tick must not visit them
    (their cost at idle), yet one that a peer reaches must be ticked again, or it never
    unchokes the peer and the download stalls."""
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(11).randbytes(300_000))
    torrent = Torrent.decode(create(source, CreateOptions(version=TorrentVersion.V1, piece_length=32 * 1024)))

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1")
        leecher = Session(port=0, host="127.0.0.1")
        await seeder.start()
        await leecher.start()
        woken: list[TorrentRuntime] = []
        seeder.on_wake = woken.append
        try:
            seeding = await seeder.add(torrent, source.parent)
            assert woken == [seeding]  # started: looked at by the next tick
            assert not seeding.needs_tick  # no peers, no offers, no deadlines
            woken.clear()
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await wait_until(lambda: bool(seeding.peers), "the seed has its peer")
            assert woken == [seeding]
            assert seeding.needs_tick
            await asyncio.wait_for(download.finished.wait(), 60)
            assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
            await download.pause()
            await wait_until(lambda: not seeding.peers, "the peer gone")
            assert not seeding.needs_tick
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


def test_a_seed_reads_a_run_of_blocks_at_once_and_an_unreadable_block_on_its_own(tmp_path: Path) -> None:
    """Blocks asked one after another in a piece are read in one go (views of that read);
    when the run cannot be read, each of its blocks is read alone, so a missing file costs
    only the blocks it holds."""
    block = 16 * 1024
    folder = tmp_path / "set"
    folder.mkdir()
    first, second = random.Random(3).randbytes(block + block // 2), random.Random(4).randbytes(3 * block)
    (folder / "a.bin").write_bytes(first)
    (folder / "b.bin").write_bytes(second)
    torrent = Torrent.decode(create(folder, CreateOptions(version=TorrentVersion.V1, piece_length=4 * block)))
    stream = first + second
    spans = [(0, n * block, block) for n in range(4)] + [(1, 0, block // 2), (0, block, block)]
    expected = [stream[n * block : (n + 1) * block] for n in range(4)]
    expected += [stream[4 * block :], stream[block : 2 * block]]

    async def scenario() -> None:
        session = Session(port=0, host="127.0.0.1", strict=True)
        whole = TorrentRuntime(session, torrent, tmp_path, TorrentOptions())
        read = whole._read_blocks(spans)
        assert [bytes(part) if part is not None else None for part in read] == expected
        assert all(isinstance(part, memoryview) for part in read[:4])  # the run: one read
        whole.read_storage.close()
        (folder / "b.bin").unlink()
        partial = TorrentRuntime(session, torrent, tmp_path, TorrentOptions())
        read = partial._read_blocks(spans)
        # Block 0 is all in a.bin; block 1 ends in b.bin; the rest are b.bin's.
        assert [bytes(part) if part is not None else None for part in read] == [
            expected[0], None, None, None, None, None
        ]  # fmt: skip
        partial.read_storage.close()

    asyncio.run(scenario())
