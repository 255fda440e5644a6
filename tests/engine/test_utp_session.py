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
from bitswarm.wire.messages import Handshake
from bitswarm.wire.mse import CryptoMethod, EncryptionPolicy, MseHandshake
from bitswarm.wire.utp import UTPState
from bitswarm.wire.utp_socket import UTPSocket

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
        leecher = Session(
            port=0, host="127.0.0.1", encryption=encryption, utp=True, dht=dht, strict=True, loopback_tcp_first=False
        )
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


@pytest.mark.parametrize(
    ("seeder_utp", "loopback_tcp_first"),
    [(False, False), (True, True)],
    ids=["a-peer-without-utp-after-the-utp-dial", "a-peer-on-this-machine-first"],
)
def test_these_peers_are_dialled_over_tcp(tmp_path: Path, seeder_utp: bool, loopback_tcp_first: bool) -> None:
    """A peer that does not answer uTP gets TCP (and is remembered as TCP-only); a peer on
    this machine gets TCP first, uTP untried: uTP has no link to share there."""
    torrent, source = make_torrent(tmp_path, 200_000)

    async def scenario() -> None:
        seeder = Session(port=0, host="127.0.0.1", utp=seeder_utp, strict=True)
        leecher = Session(port=0, host="127.0.0.1", utp=True, strict=True, loopback_tcp_first=loopback_tcp_first)
        await seeder.start()
        await leecher.start()
        try:
            await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), TRANSFER_TIMEOUT_S)
            [ours] = download.peers
            assert not isinstance(ours.transport, UTPTransport)
            tried_utp = not loopback_tcp_first
            assert list(leecher.tcp_only_peers) == ([("127.0.0.1", seeder.port)] if tried_utp else [])
            assert leecher.utp is not None
            assert leecher.utp.opened == {}
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, (addr[0], addr[1])))


@pytest.mark.parametrize("encryption", ["disable", "require"], ids=["plaintext", "rc4"])
def test_an_accepted_peer_gets_our_handshake_at_the_end_of_a_packet(tmp_path: Path, encryption: str) -> None:
    """Transmission 3.00 (libutp) reads nothing from the packet that completes the
    handshake past the handshake until another packet comes: the seed must not put its
    first messages (extension handshake, bitfield) in that packet, or Transmission never
    learns that it has pieces. A raw uTP peer dials a seeding session and looks at where
    the packets it receives end, in the BitTorrent stream after any MSE."""
    torrent, source = make_torrent(tmp_path, 200_000)
    info_hash = torrent.info_hash_v1
    assert info_hash is not None
    handshake = Handshake(info_hash, b"-TR3000-abcdefghijkl", bytes(5) + b"\x10" + bytes(2)).encode()

    async def scenario() -> None:
        session = Session(port=0, host="127.0.0.1", encryption=encryption, utp=True, strict=True)
        await session.start()
        loop = asyncio.get_running_loop()
        transport, datagrams = await loop.create_datagram_endpoint(_Datagrams, local_addr=("127.0.0.1", 0))
        try:
            await session.add(torrent, source.parent)
            peer = UTPSocket(random.Random(15))
            connection = peer.connect(("127.0.0.1", session.port), loop.time())
            mse = None
            if encryption == "require":
                mse = MseHandshake.initiate(
                    info_hash=info_hash,
                    policy=EncryptionPolicy.REQUIRE,
                    rng=random.Random(16),
                    initial_payload=handshake,
                )
            decryptor = None
            # The BitTorrent bytes each received packet carried, in order.
            packets: list[bytes] = []
            wrote = False
            async with asyncio.timeout(10.0):
                while sum(map(len, packets)) <= len(handshake):
                    for datagram in peer.datagrams_to_send(loop.time()):
                        transport.sendto(datagram.payload, datagram.address)
                    data, address = await datagrams.queue.get()
                    peer.receive(address, data, loop.time())
                    if connection.state is UTPState.CONNECTED and not wrote:
                        connection.write(mse.data_to_send() if mse is not None else handshake)
                        wrote = True
                    received = connection.read()
                    if not received:
                        continue
                    if mse is not None and decryptor is None:
                        outcome = mse.receive(received)
                        connection.write(mse.data_to_send())
                        if outcome is None:
                            continue
                        assert outcome.decryptor is not None
                        decryptor = outcome.decryptor
                        received = outcome.payload
                    elif decryptor is not None:
                        received = decryptor.apply(received)
                    if received:
                        packets.append(received)
                    peer.touch(connection)
            assert Handshake.decode(packets[0][: len(handshake)]).info_hash == info_hash
            # The handshake ends a packet; what follows (the extension handshake) starts one.
            ends = [sum(map(len, packets[: count + 1])) for count in range(len(packets))]
            assert len(handshake) in ends, [len(packet) for packet in packets]
        finally:
            transport.close()
            await session.close()
        assert not session.failures

    asyncio.run(scenario())
