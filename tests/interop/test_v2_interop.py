"""v2-only torrents (BEP 52) between bitswarm and libtorrent 2.0 on loopback.

The shared payload with 32 KiB pieces: files that end mid-piece (so each is followed by
an alignment gap), an empty file, a file of exactly two pieces. The handshake carries the
SHA-256 info-hash truncated to 20 bytes, which is also what the tracker counts; peers
find each other only through `bitswarm tracker`. Every copy is compared byte for byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from bitswarm import merkle
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentOptions, TorrentRuntime
from bitswarm.wire.hashes import ReadForHashes
from bitswarm.wire.messages import Hashes, HashReject

from .payload import PIECE_LENGTH
from .test_peer_interop import (
    BITSWARM,
    assert_same_tree,
    bitswarm_get,
    bitswarm_seed,
    libtorrent_download,
    libtorrent_seed,
    payload,
    tracker,
)
from .tools import lt, lt_process
from .trackers import TrackerUrls, wait_for

pytestmark = pytest.mark.interop

__all__ = ["payload", "tracker"]  # fixtures, used by name


def create_v2(content: Path, out: Path, tracker_url: str, creator: str) -> bytes:
    """A v2-only torrent of ``content`` made by ``creator``; returns its wire info-hash."""
    if creator == "bitswarm":
        argv = [*BITSWARM, "create", str(content), "-o", str(out), "--v2"]
        argv += ["--piece-length", str(PIECE_LENGTH), "-t", tracker_url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    else:
        lt("create", content, out, "--format", "v2", "--piece-length", str(PIECE_LENGTH), "--tracker", tracker_url)
    torrent = Torrent.decode(out.read_bytes())
    assert torrent.version is TorrentVersion.V2
    assert torrent.info_hash_v2 is not None
    # Files end mid-piece: the next one starts after an alignment gap.
    assert any(entry.length % PIECE_LENGTH for entry in torrent.data_files())
    return torrent.info_hash_v2[:20]


@pytest.mark.parametrize("creator", ["bitswarm", "libtorrent"])
def test_bitswarm_downloads_a_v2_only_torrent_from_libtorrent(
    tmp_path: Path, tracker: TrackerUrls, payload: Path, creator: str
) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = create_v2(payload, torrent, tracker.announce, creator)
    with libtorrent_seed(torrent, payload.parent):
        bitswarm_get(torrent, tmp_path / "get", tracker, info_hash)
    assert_same_tree(payload, tmp_path / "get" / payload.name)


@pytest.mark.parametrize("creator", ["bitswarm", "libtorrent"])
def test_libtorrent_downloads_a_v2_only_torrent_from_bitswarm(
    tmp_path: Path, tracker: TrackerUrls, payload: Path, creator: str
) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = create_v2(payload, torrent, tracker.announce, creator)
    leech = tmp_path / "leech"
    leech.mkdir()
    with bitswarm_seed(torrent, payload.parent, tracker, info_hash) as port:
        report = libtorrent_download(torrent, leech)
    assert [(peer["ip"], peer["port"], peer["outgoing"]) for peer in report["peers"]] == [("127.0.0.1", port, True)]
    assert_same_tree(payload, leech / payload.name)


# -- magnet links (btmh only): the piece layers come over BEP 52 hash requests ----------

NO_DISCOVERY = ["--no-dht", "--no-lsd"]
MAGNET_DEADLINE_S = 60


def v2_magnet(torrent: Torrent, port: int) -> str:
    link = dataclasses.replace(torrent.magnet(), peers=(("127.0.0.1", port),)).format()
    assert "urn:btmh:1220" in link
    assert "btih" not in link
    return link


def test_bitswarm_fetches_a_v2_only_magnet_from_a_libtorrent_seed(tmp_path: Path, payload: Path) -> None:
    torrent_path = tmp_path / "payload.torrent"
    create_v2(payload, torrent_path, "http://127.0.0.1:1/announce", "libtorrent")
    torrent = Torrent.decode(torrent_path.read_bytes())
    # Files of more than one piece: their layers are not in the info dictionary.
    assert len(torrent.piece_layers) >= 3
    libtorrent = lt_process("seed-here", torrent_path, payload.parent, "--timeout", str(MAGNET_DEADLINE_S))
    try:
        assert libtorrent.stdout is not None
        seeding = json.loads(libtorrent.stdout.readline() or "{}")
        assert seeding.get("stage") == "seeding", libtorrent.stderr.read() if libtorrent.stderr else ""
        link = v2_magnet(torrent, seeding["listen_port"])
        argv = [*BITSWARM, "get", link, "-o", str(tmp_path / "get"), "--port", "0", "--no-seed", "--json"]
        got = subprocess.run(
            [*argv, *NO_DISCOVERY], capture_output=True, text=True, timeout=MAGNET_DEADLINE_S, check=False
        )
        assert got.returncode == 0, got.stderr
        events = [json.loads(line)["event"] for line in got.stdout.splitlines()]
        assert events[:3] == ["fetching", "metadata", "started"]
        assert "finished" in events
    finally:
        assert libtorrent.stdin is not None
        libtorrent.stdin.write("\n")
        libtorrent.stdin.flush()
        assert libtorrent.wait(timeout=30) == 0
    assert_same_tree(payload, tmp_path / "get" / payload.name)
    # The saved .torrent got the piece layers fetched from libtorrent (Torrent.decode
    # checks each against its root): the same as the original's.
    saved = Torrent.decode((tmp_path / "get" / f"{payload.name}.torrent").read_bytes())
    assert saved.info == torrent.info
    assert saved.piece_layers == torrent.piece_layers


def test_libtorrent_fetches_a_v2_only_magnet_from_a_bitswarm_seed(tmp_path: Path, payload: Path) -> None:
    torrent_path = tmp_path / "payload.torrent"
    create_v2(payload, torrent_path, "http://127.0.0.1:1/announce", "bitswarm")
    torrent = Torrent.decode(torrent_path.read_bytes())
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(payload.parent), "--port", "0", "--json", *NO_DISCOVERY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert seed.stdout is not None
        started = json.loads(seed.stdout.readline())
        assert started["event"] == "started"
        (tmp_path / "lt").mkdir()
        link = v2_magnet(torrent, int(started["port"]))
        libtorrent = lt_process("magnet", link, tmp_path / "lt", "--timeout", str(MAGNET_DEADLINE_S))
        try:
            assert libtorrent.stdout is not None
            metadata = json.loads(libtorrent.stdout.readline() or "{}")
            assert metadata.get("stage") == "metadata", libtorrent.stderr.read() if libtorrent.stderr else ""
            assert metadata["sha256"] == (torrent.info_hash_v2 or b"").hex()
            finished = json.loads(libtorrent.stdout.readline() or "{}")
            assert finished.get("stage") == "finished", finished
            assert any(peer["port"] == int(started["port"]) for peer in finished["peers"])
        finally:
            assert libtorrent.stdin is not None
            libtorrent.stdin.write("\n")
            libtorrent.stdin.flush()
            assert libtorrent.wait(timeout=30) == 0
        # libtorrent reports seeding once the pieces hash; its disk threads may still be writing.
        wait_for(lambda: same_tree(payload, tmp_path / "lt" / payload.name), "libtorrent's files")
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0
    assert_same_tree(payload, tmp_path / "lt" / payload.name)


def same_tree(expected: Path, actual: Path) -> bool:
    try:
        assert_same_tree(expected, actual)
    except AssertionError:
        return False
    return True


def test_libtorrent_asks_bitswarm_for_block_hashes_after_a_corrupt_block_and_finishes(
    tmp_path: Path, payload: Path
) -> None:
    # Two bitswarm seeds in this process; the fast one sends the first block it serves of a
    # file of more than one block corrupt, once. libtorrent's piece fails its v2 check, and
    # it asks for that piece's 16 KiB block hashes (BEP 52, base layer 0) to find the bad
    # block: the seeds answer them with a proof to the file's root. The other seed is slow,
    # so the fast one serves at once; it is there because libtorrent may ban the only peer
    # behind a failed piece before asking it anything.
    torrent_path = tmp_path / "payload.torrent"
    create_v2(payload, torrent_path, "http://127.0.0.1:1/announce", "bitswarm")
    torrent = Torrent.decode(torrent_path.read_bytes())
    # A file of one block has no block layer to ask for (its root is its block's hash).
    multi_block = {
        index
        for entry in torrent.data_files()
        if entry.length > merkle.BLOCK_SIZE
        for index in entry.piece_range(torrent.piece_length)
    }
    answers: list[Hashes | HashReject] = []
    corrupted: list[tuple[int, int, int]] = []

    def record_answers(runtime: TorrentRuntime) -> None:
        assert runtime.swarm is not None
        assert runtime.swarm.hash_serve is not None
        serve = runtime.swarm.hash_serve
        answer_from_blocks = serve.answer_from_blocks

        def recorded(read: ReadForHashes, hashes: list[list[bytes]]) -> Hashes | HashReject:
            answer = answer_from_blocks(read, hashes)
            answers.append(answer)
            return answer

        serve.answer_from_blocks = recorded  # type: ignore[method-assign,assignment]

    async def scenario() -> None:
        seeders = [Session(port=0, host="127.0.0.1", strict=True) for _ in range(2)]
        for seeder in seeders:
            await seeder.start()
        try:
            bad = await seeders[0].add(torrent, payload.parent)
            slow = TorrentOptions(max_up=64 * 1024, super_seed=False)
            good = await seeders[1].add(torrent, payload.parent, slow)
            read_blocks = bad._read_blocks

            def corrupt_once(spans: list[tuple[int, int, int]]) -> list[bytes | memoryview | None]:
                blocks = read_blocks(spans)
                for position, (span, block) in enumerate(zip(spans, blocks, strict=True)):
                    if not corrupted and span[0] in multi_block and block is not None:
                        corrupted.append(span)
                        blocks[position] = bytes(byte ^ 0xFF for byte in block)
                return blocks

            bad._read_blocks = corrupt_once  # type: ignore[method-assign]
            record_answers(bad)
            record_answers(good)
            (tmp_path / "lt").mkdir()
            link = dataclasses.replace(
                torrent.magnet(), peers=tuple(("127.0.0.1", seeder.port) for seeder in seeders)
            ).format()
            libtorrent = lt_process("magnet", link, tmp_path / "lt", "--timeout", str(MAGNET_DEADLINE_S))
            try:
                assert libtorrent.stdout is not None
                metadata = json.loads(await asyncio.to_thread(libtorrent.stdout.readline) or "{}")
                assert metadata.get("stage") == "metadata"
                finished = json.loads(await asyncio.to_thread(libtorrent.stdout.readline) or "{}")
                assert finished.get("stage") == "finished", finished
            finally:
                assert libtorrent.stdin is not None
                libtorrent.stdin.write("\n")
                libtorrent.stdin.flush()
                assert await asyncio.to_thread(libtorrent.wait, 30) == 0
        finally:
            for seeder in seeders:
                await seeder.close()
        assert not any(seeder.failures for seeder in seeders)

    asyncio.run(scenario())
    assert corrupted, "the bad seed served no block"
    assert any(isinstance(answer, Hashes) and answer.base_layer == 0 for answer in answers), answers
    assert not any(isinstance(answer, HashReject) for answer in answers), answers
    wait_for(lambda: same_tree(payload, tmp_path / "lt" / payload.name), "libtorrent's files")
    assert_same_tree(payload, tmp_path / "lt" / payload.name)
