"""Protocol encryption between real sessions on loopback: policies, fallback, deadlines."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.errors import UsageError
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import MAX_PLAINTEXT_PEERS, Session, TorrentRuntime
from bitswarm.wire.mse import PRIME, CryptoMethod, EncryptionPolicy

PIECE = 32 * 1024
TRANSFER_TIMEOUT_S = 30.0


def make_torrent(tmp_path: Path, size: int = 40 * PIECE + 123) -> tuple[Torrent, Path]:
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(55).randbytes(size))
    return Torrent.decode(create(source, CreateOptions(version=TorrentVersion.V1, piece_length=PIECE))), source


async def wait_until(condition: object, what: str, timeout_s: float = 10.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)  # polling an observable state


async def closed_by_remote(port: int, payload: bytes, timeout_s: float) -> bool:
    """Send ``payload`` and read until the other side hangs up; True if it did within ``timeout_s``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        async with asyncio.timeout(timeout_s):
            while await reader.read(65536):
                pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        writer.close()


def test_require_on_both_sides_downloads_over_rc4(tmp_path: Path) -> None:
    torrent, source = make_torrent(tmp_path)

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", encryption="require")
        leecher = Session(port=0, host="127.0.0.1", encryption=EncryptionPolicy.REQUIRE)
        await seeder.start()
        await leecher.start()
        try:
            seeding = await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await wait_until(lambda: len(download.peers) == 1 and len(seeding.peers) == 1, "both ends connected")
            [ours], [theirs] = download.peers, seeding.peers
            await asyncio.wait_for(download.finished.wait(), TRANSFER_TIMEOUT_S)
            assert ours.crypto is CryptoMethod.RC4
            assert theirs.crypto is CryptoMethod.RC4
            assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


def test_require_refuses_a_plain_peer(tmp_path: Path) -> None:
    torrent, source = make_torrent(tmp_path)

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", encryption="require")
        leecher = Session(port=0, host="127.0.0.1", encryption="disable")
        await seeder.start()
        await leecher.start()
        try:
            await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await wait_until(lambda: seeder.closed_reasons.get("plaintext:") == 1, "the seed refusing plaintext")
            await wait_until(lambda: not download.peers, "the leecher's connection gone")
            assert download.status()["pieces"] == 0
            assert leecher.plaintext_peers == {}  # disable never tried MSE, so it has nothing to fall back from
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


def test_prefer_falls_back_to_plaintext_once_when_mse_is_refused(tmp_path: Path) -> None:
    torrent, source = make_torrent(tmp_path)

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", encryption="disable")
        leecher = Session(port=0, host="127.0.0.1")  # prefer, the default
        await seeder.start()
        await leecher.start()
        try:
            seeding = await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), TRANSFER_TIMEOUT_S)
            assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
            assert seeder.closed_reasons == {"encryption:": 1}  # the one MSE attempt
            assert list(leecher.plaintext_peers) == [("127.0.0.1", seeder.port)]
            [plain] = seeding.peers
            assert plain.crypto is None
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


def test_prefer_to_prefer_obfuscates_the_handshake_and_plain_peers_are_still_welcome(tmp_path: Path) -> None:
    torrent, source = make_torrent(tmp_path)

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1")
        encrypted, plain = Session(port=0, host="127.0.0.1"), Session(port=0, host="127.0.0.1", encryption="disable")
        for session in (seeder, encrypted, plain):
            await session.start()
        try:
            seeding = await seeder.add(torrent, source.parent)
            downloads: list[TorrentRuntime] = []
            for number, session in enumerate((encrypted, plain)):
                download = await session.add(torrent, tmp_path / f"get-{number}")
                await download.connect(("127.0.0.1", seeder.port))
                downloads.append(download)
            for download in downloads:
                await asyncio.wait_for(download.finished.wait(), TRANSFER_TIMEOUT_S)
            for number in range(2):
                assert (tmp_path / f"get-{number}" / "data.bin").read_bytes() == source.read_bytes()
            await wait_until(lambda: len(seeding.peers) == 2, "both downloaders at the seed")
            # An MSE handshake offering both methods gets plaintext after it (libtorrent's choice).
            assert sorted(str(peer.crypto) for peer in seeding.peers) == sorted([str(CryptoMethod.PLAINTEXT), "None"])
            assert seeder.closed_reasons == {}
        finally:
            for session in (plain, encrypted, seeder):
                await session.close()

    asyncio.run(scenario())


def test_an_mse_handshake_that_never_finishes_costs_one_counted_connection(tmp_path: Path) -> None:
    torrent, source = make_torrent(tmp_path)
    handshake_timeout_s = 0.5

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", handshake_timeout_s=handshake_timeout_s)
        await seeder.start()
        try:
            await seeder.add(torrent, source.parent)
            public_key = pow(2, 12345678901234567890, PRIME).to_bytes(96, "big")
            # A valid key and some padding, then silence: the seed answers and then waits, until its deadline.
            assert await closed_by_remote(seeder.port, public_key + bytes(100), handshake_timeout_s + 10)
            assert seeder.closed_reasons == {"encryption:": 1}
            assert not seeder.unrouted
        finally:
            await seeder.close()

    asyncio.run(scenario())


def test_an_outgoing_mse_handshake_to_a_silent_listener_times_out_and_retries_plain(tmp_path: Path) -> None:
    torrent, _ = make_torrent(tmp_path)
    handshake_timeout_s = 0.5

    async def scenario() -> None:
        accepted: list[bytes] = []
        got_two = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(await reader.read(1))  # the first byte tells MSE from plain
            if len(accepted) == 2:
                got_two.set()
            await reader.read()  # until the dialler hangs up
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        leecher = Session(port=0, host="127.0.0.1", handshake_timeout_s=handshake_timeout_s)
        await leecher.start()
        try:
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", port))
            await asyncio.wait_for(got_two.wait(), handshake_timeout_s + 10)
            assert accepted[1] == b"\x13"  # the second attempt is a plain BitTorrent handshake
            assert download.closed_reasons == {"encryption:": 1}
            assert ("127.0.0.1", port) in leecher.plaintext_peers
        finally:
            await leecher.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_the_plaintext_memory_is_bounded_and_a_bad_policy_is_a_usage_error() -> None:
    session = Session(port=0, host="127.0.0.1")
    assert session.encryption is EncryptionPolicy.PREFER
    for number in range(MAX_PLAINTEXT_PEERS + 1):
        assert session.remember_plaintext_peer(("10.0.0.1", number))
    assert not session.remember_plaintext_peer(("10.0.0.1", MAX_PLAINTEXT_PEERS))  # known already
    assert len(session.plaintext_peers) == MAX_PLAINTEXT_PEERS
    assert ("10.0.0.1", 0) not in session.plaintext_peers  # the oldest went first
    with pytest.raises(UsageError, match="prefer, require, disable"):
        Session(port=0, encryption="sometimes")
