"""The asyncio Python API the CLI is built on: add, pause, resume, remove, status."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.errors import UsageError
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentRuntime

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
