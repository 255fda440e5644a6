"""Sessions over uTP on loopback: the peer wire protocol and MSE run on it unchanged,
dials prefer uTP and fall back to TCP, and uTP shares the UDP port with the DHT."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session
from bitswarm.net.utp import UTPTransport
from bitswarm.wire.mse import CryptoMethod

PIECE = 32 * 1024
TRANSFER_TIMEOUT_S = 60.0


def make_torrent(tmp_path: Path, size: int) -> tuple[Torrent, Path]:
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(29).randbytes(size))
    return Torrent.decode(create(source, CreateOptions(version=TorrentVersion.V1, piece_length=PIECE))), source


async def wait_until(condition: object, timeout_s: float = 10.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)  # polling an observable state


@pytest.mark.parametrize(
    ("encryption", "dht"),
    [("require", False), ("disable", False), ("prefer", True)],
    ids=["rc4-own-socket", "plaintext-own-socket", "prefer-on-the-dht-port"],
)
def test_two_sessions_transfer_a_torrent_over_utp(tmp_path: Path, encryption: str, dht: bool) -> None:
    torrent, source = make_torrent(tmp_path, 3 * 1024 * 1024 + 17)

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", encryption=encryption, utp=True, dht=dht, strict=True)
        leecher = Session(port=0, host="127.0.0.1", encryption=encryption, utp=True, dht=dht, strict=True)
        await seeder.start()
        await leecher.start()
        try:
            assert seeder.utp is not None
            if dht:
                assert seeder.dht is not None
                assert seeder.dht.foreign_datagram is not None
            seeding = await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await wait_until(lambda: len(download.peers) == 1 and len(seeding.peers) == 1)
            [ours], [theirs] = download.peers, seeding.peers
            assert isinstance(ours.transport, UTPTransport)
            assert isinstance(theirs.transport, UTPTransport)
            await asyncio.wait_for(download.finished.wait(), TRANSFER_TIMEOUT_S)
            assert (ours.crypto is CryptoMethod.RC4) == (encryption == "require")
            assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
            assert not leecher.tcp_only_peers
        finally:
            await leecher.close()
            await seeder.close()
        assert not seeder.failures
        assert not leecher.failures
        assert seeder.utp is None

    asyncio.run(scenario())


def test_a_peer_without_utp_is_dialled_over_tcp(tmp_path: Path) -> None:
    torrent, source = make_torrent(tmp_path, 200_000)

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", strict=True)  # TCP only
        leecher = Session(port=0, host="127.0.0.1", utp=True, strict=True)
        await seeder.start()
        await leecher.start()
        try:
            await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), TRANSFER_TIMEOUT_S)
            [ours] = download.peers
            assert not isinstance(ours.transport, UTPTransport)
            assert list(leecher.tcp_only_peers) == [("127.0.0.1", seeder.port)]
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())
