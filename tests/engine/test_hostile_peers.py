"""A hostile peer costs its own connection and nothing else: a real seeding session on loopback."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.peer import MAX_UNROUTED
from bitswarm.net.session import Session, TorrentRuntime
from bitswarm.wire.messages import FAST_EXTENSION, Handshake, HaveNone, Interested, Request, encode, reserved_bits

PIECE = 32 * 1024
THEIRS = b"-XX0000-hostilepeer!"


def make_torrent(tmp_path: Path) -> tuple[Torrent, Path]:
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(5).randbytes(10 * PIECE))
    return Torrent.decode(create(source, CreateOptions(version=TorrentVersion.V1, piece_length=PIECE))), source


async def closed_by_seed(port: int, payload: bytes) -> bool:
    """Send ``payload``; True when the seed hangs up (EOF) rather than waiting for more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        writer.close()


def handshake(torrent: Torrent, *, peer_id: bytes = THEIRS, info_hash: bytes | None = None) -> bytes:
    digest = info_hash if info_hash is not None else torrent.info_hash_v1 or b""
    return Handshake(digest, peer_id, reserved_bits(FAST_EXTENSION)).encode()


HOSTILE: dict[str, Callable[[Torrent, bytes], bytes]] = {
    # Anything that does not open with 19 "BitTorrent protocol" may be an MSE handshake: long
    # enough to overrun MSE's padding window, it is refused at once (shorter, at the deadline).
    "garbage": lambda torrent, ours: b"GET / HTTP/1.1\r\n\r\n" + bytes(700),
    "unknown-torrent": lambda torrent, ours: handshake(torrent, info_hash=b"z" * 20),
    "our-own-peer-id": lambda torrent, ours: handshake(torrent, peer_id=ours),
    "huge-frame": lambda torrent, ours: handshake(torrent) + encode(HaveNone()) + b"\x7f\xff\xff\xff",
    "request-beyond-the-last-piece": lambda torrent, ours: (
        handshake(torrent) + encode(HaveNone()) + encode(Request(10, 0, 100))
    ),
    "oversized-request": lambda torrent, ours: handshake(torrent) + encode(HaveNone()) + encode(Request(0, 0, 1 << 20)),
    "bitfield-of-the-wrong-length": lambda torrent, ours: handshake(torrent) + struct.pack(">IB", 4, 5) + b"\xff" * 3,
    "request-flood": lambda torrent, ours: (
        handshake(torrent)
        + encode(HaveNone())
        + encode(Interested())
        + b"".join(encode(Request(index % 10, (index // 10) * 16, 16)) for index in range(1000))
    ),
}


@pytest.mark.parametrize("attack", list(HOSTILE))
def test_a_hostile_peer_is_cut_off_and_an_honest_one_still_downloads(tmp_path: Path, attack: str) -> None:
    torrent, source = make_torrent(tmp_path)

    async def scenario() -> None:
        seeder, leecher = Session(port=0, host="127.0.0.1"), Session(port=0, host="127.0.0.1")
        await seeder.start()
        await leecher.start()
        try:
            seeding: TorrentRuntime = await seeder.add(torrent, source.parent)
            assert await closed_by_seed(seeder.port, HOSTILE[attack](torrent, seeder.peer_id))
            assert len(seeding.peers) == 0
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), 30)
            assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


def test_a_peer_that_never_finishes_its_handshake_does_not_block_others(tmp_path: Path) -> None:
    torrent, source = make_torrent(tmp_path)
    handshake_timeout_s = 0.5

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", handshake_timeout_s=handshake_timeout_s)
        leecher = Session(port=0, host="127.0.0.1")
        await seeder.start()
        await leecher.start()
        try:
            await seeder.add(torrent, source.parent)
            stalled_reader, stalled = await asyncio.open_connection("127.0.0.1", seeder.port)
            stalled.write(handshake(torrent)[:30])  # and then nothing
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), 30)
            # The seed hangs up on the silent one once its handshake time is over.
            assert await asyncio.wait_for(stalled_reader.read(), handshake_timeout_s + 10) == b""
            stalled.close()
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


def test_a_flood_of_silent_connections_is_capped(tmp_path: Path) -> None:
    torrent, source = make_torrent(tmp_path)

    async def scenario() -> None:
        seeder, leecher = Session(port=0, host="127.0.0.1"), Session(port=0, host="127.0.0.1")
        await seeder.start()
        await leecher.start()
        flood = []
        try:
            await seeder.add(torrent, source.parent)
            for _ in range(MAX_UNROUTED):
                flood.append(await asyncio.open_connection("127.0.0.1", seeder.port))
            async with asyncio.timeout(10):
                while len(seeder.unrouted) < MAX_UNROUTED:
                    await asyncio.sleep(0.01)  # the listener accepting them, observed
            one_too_many, writer = await asyncio.open_connection("127.0.0.1", seeder.port)
            assert await asyncio.wait_for(one_too_many.read(), 5) == b""  # refused at once
            writer.close()
            for _, silent in flood:
                silent.close()
            async with asyncio.timeout(10):
                while seeder.unrouted:
                    await asyncio.sleep(0.01)
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), 30)
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())
