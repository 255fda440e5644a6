"""BEP 9 and BEP 11 against libtorrent, through our cores, on a test network of namespaces.

libtorrent seeds in one namespace with only LSD on (lt_driver's `lsd` command); a small
client made of our cores (LSD endpoint, peer wire core, extension codecs) runs in another,
finds it by LSD from the info-hash alone and talks extension messages with it. These test
the codecs and the fetch against a real peer; the swarm's own use of them is the
engine's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.errors import PeerProtocolError
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.lsd import open_local_discovery
from bitswarm.wire.extension import (
    UT_METADATA,
    UT_PEX,
    ExtendedHandshake,
    FetchState,
    MetadataCompleted,
    MetadataData,
    MetadataFetch,
    MetadataReject,
    MetadataRequest,
    MetadataServe,
    PeerExtensions,
    PexMessage,
    PexPeer,
    SendMetadataRequest,
    encode_handshake,
    encode_metadata,
    encode_pex,
)
from bitswarm.wire.messages import HANDSHAKE_BYTES, Extended, Handshake
from bitswarm.wire.peer import HandshakeCompleted, PeerProtocol

from .netns import NamespaceNetwork, open_test_network
from .tools import lt_process

pytestmark = pytest.mark.interop

DEADLINE_S = 20.0
OUR_PORT = 7000  # announced over LSD; libtorrent's attempts to dial it are refused, harmlessly


def wire_hash(torrent: Torrent) -> bytes:
    """The 20 bytes a handshake and an LSD announce carry: v1, else the v2 hash cut short (BEP 52)."""
    if torrent.info_hash_v1 is not None:
        return torrent.info_hash_v1
    assert torrent.info_hash_v2 is not None
    return torrent.info_hash_v2[:20]


def make_torrent(tmp_path: Path, pieces: int, version: TorrentVersion) -> tuple[Path, Torrent]:
    content = tmp_path / "content.bin"
    content.write_bytes(random.Random(pieces).randbytes(pieces * 16384))
    torrent_file = tmp_path / "content.torrent"
    torrent_file.write_bytes(create(content, CreateOptions(version=version, piece_length=16384)))
    return torrent_file, Torrent.decode(torrent_file.read_bytes())


def read_stage(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The driver's next JSON line; it bounds its own time (--timeout), so this returns."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"lt_driver ended early: {process.stderr.read() if process.stderr else ''}"
    stage: dict[str, Any] = json.loads(line)
    assert "error" not in stage, stage
    return stage


def next_stage(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()
    return read_stage(process)


def next_stage_ends(process: subprocess.Popen[str]) -> bool:
    """Let the driver go on after its last stage; True once it has exited with status 0."""
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()
    return process.wait(timeout=DEADLINE_S) == 0


@contextlib.contextmanager
def libtorrent_seed(network: NamespaceNetwork, torrent_file: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """lt_driver `lsd` seeding ``torrent_file`` in the "libtorrent" namespace; ended on exit."""
    driver = lt_process(
        "lsd",
        torrent_file,
        torrent_file.parent,
        "--interface",
        network["libtorrent"].address,
        "--timeout",
        str(DEADLINE_S),
        *options,
        wrap=lambda argv: network.argv("libtorrent", argv),
    )
    try:
        assert read_stage(driver)["stage"] == "seeding"
        yield driver
        assert driver.stdin is not None
        driver.stdin.write("\n")
        driver.stdin.flush()
        assert driver.wait(timeout=DEADLINE_S) == 0
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


class WirePeer:
    """One plain connection to a peer, driven by our peer wire core and extension decoder.

    The core needs a piece count, which a magnet link does not give; the torrent's own is
    used here, as the point is the extension exchange.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, torrent: Torrent) -> None:
        self.reader = reader
        self.writer = writer
        self.core = PeerProtocol(
            info_hash=wire_hash(torrent),
            peer_id=b"-BS0000-extension-it",
            num_pieces=torrent.num_pieces,
            piece_size=torrent.piece_size,
            have_piece=lambda _index: False,
            now=time.monotonic(),
        )
        self.extensions = PeerExtensions()
        writer.write(self.core.handshake())

    async def receive(self) -> list[object]:
        """The extension values in what arrives next; answers the handshake with ours."""
        data = await self.reader.read(1 << 16)
        assert data, "the peer closed the connection"
        values: list[object] = []
        for event in self.core.receive(data, time.monotonic()):
            if isinstance(event, HandshakeCompleted):
                assert event.supports_extensions
                self.core.send(Extended(0, encode_handshake(client="bitswarm interop test")))
            elif isinstance(event, Extended):
                values.append(self.extensions.decode(event))
        await self.flush()
        return values

    def send_extension(self, name: str, payload: bytes) -> None:
        extension_id = self.extensions.id_for(name)
        assert extension_id is not None, f"the peer does not offer {name}"
        self.core.send(Extended(extension_id, payload))

    async def flush(self) -> None:
        self.writer.write(self.core.data_to_send())
        await self.writer.drain()


@contextlib.asynccontextmanager
async def found_by_lsd(
    info_hash: bytes, lt_address: str, torrent: Torrent, ready: threading.Event
) -> AsyncIterator[WirePeer]:
    """Our LSD endpoint announcing ``info_hash`` (``ready`` once the group is joined), and a
    connection to the libtorrent it hears announce it; both stay up inside the block."""
    found: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    def on_peer(peer_hash: bytes, host: str, port: int) -> None:
        if (peer_hash, host) == (info_hash, lt_address):
            found.put_nowait((host, port))

    async with open_local_discovery(
        port=OUR_PORT, on_peer=on_peer, interface="eth0", ipv6=False, interval_s=0.3, min_round_gap_s=0.1
    ) as service:
        service.add_torrent(info_hash)
        ready.set()
        host, port = await asyncio.wait_for(found.get(), DEADLINE_S)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            yield WirePeer(reader, writer, torrent)
        finally:
            writer.close()


@pytest.mark.parametrize("version", [TorrentVersion.HYBRID, TorrentVersion.V2])
def test_an_info_hash_alone_finds_a_libtorrent_seed_by_lsd_and_fetches_its_metadata(
    tmp_path: Path, version: TorrentVersion
) -> None:
    # 1,200 pieces: a hybrid's info dictionary is two metadata pieces, the last one short; a
    # v2 one is smaller (its piece hashes are outside it) and checked by SHA-256 alone.
    torrent_file, torrent = make_torrent(tmp_path, 1200, version)
    if version is TorrentVersion.HYBRID:
        assert 16384 < len(torrent.info) < 2 * 16384
    info_hash = wire_hash(torrent)
    libtorrent_heard_us, ready = threading.Event(), threading.Event()

    async def main(lt_address: str) -> bytes:
        fetch = MetadataFetch(info_hash_v1=torrent.info_hash_v1, info_hash_v2=torrent.info_hash_v2)
        async with found_by_lsd(info_hash, lt_address, torrent, ready) as peer:
            async with asyncio.timeout(DEADLINE_S):
                while fetch.state is not FetchState.DONE:
                    for value in await peer.receive():
                        now = time.monotonic()
                        if isinstance(value, ExtendedHandshake):
                            events = fetch.add_peer("libtorrent", value.metadata_size, now)
                        elif isinstance(value, MetadataData | MetadataReject):
                            events = fetch.on_message("libtorrent", value, now)
                        else:
                            continue
                        for event in events:
                            assert isinstance(event, SendMetadataRequest | MetadataCompleted), event
                            if isinstance(event, SendMetadataRequest):
                                peer.send_extension(UT_METADATA, encode_metadata(MetadataRequest(event.piece)))
                    await peer.flush()
            # Keep announcing until libtorrent has taken us as an LSD peer (its second stage).
            await asyncio.to_thread(libtorrent_heard_us.wait, DEADLINE_S)
        assert fetch.info is not None
        return fetch.info

    with open_test_network(["libtorrent", "bitswarm"]) as network, ThreadPoolExecutor(max_workers=1) as pool:
        ours = pool.submit(network.call, "bitswarm", lambda: asyncio.run(main(network["libtorrent"].address)))
        # Ours first: libtorrent announces as its torrent starts, then only every 5 minutes.
        assert ready.wait(DEADLINE_S)
        with libtorrent_seed(network, torrent_file) as driver:
            try:
                assert next_stage(driver)["stage"] == "lsd_peer"
            finally:
                libtorrent_heard_us.set()
            info = ours.result(timeout=2 * DEADLINE_S + 10)
    # Checked against both hashes by the fetch, and the same torrent once read.
    assert info == torrent.info
    assert Torrent.from_info(info).info_hash_v2 == torrent.info_hash_v2


def accept_one_handshake(address: str, port: int, listening: threading.Event) -> Handshake:
    """Listen on ``address``:``port`` and return the handshake of the first peer to connect."""
    with socket.create_server((address, port)) as server:
        server.settimeout(DEADLINE_S)
        listening.set()
        connection, _ = server.accept()
        with connection:
            connection.settimeout(DEADLINE_S)
            return Handshake.decode(connection.recv(HANDSHAKE_BYTES, socket.MSG_WAITALL))


def test_libtorrent_dials_a_peer_that_bitswarm_names_in_a_pex_message(tmp_path: Path) -> None:
    torrent_file, torrent = make_torrent(tmp_path, 8, TorrentVersion.V1)
    assert torrent.info_hash_v1 is not None
    info_hash = torrent.info_hash_v1
    libtorrent_heard_us, ready, listening = threading.Event(), threading.Event(), threading.Event()
    third_port = 6881

    async def main(lt_address: str, third_address: str) -> ExtendedHandshake:
        async with found_by_lsd(info_hash, lt_address, torrent, ready) as peer:
            async with asyncio.timeout(DEADLINE_S):
                while peer.extensions.handshake is None:
                    await peer.receive()
            await asyncio.to_thread(listening.wait, DEADLINE_S)
            peer.send_extension(UT_PEX, encode_pex(PexMessage(added=(PexPeer((third_address, third_port)),))))
            await peer.flush()
            await asyncio.to_thread(libtorrent_heard_us.wait, DEADLINE_S)
            return peer.extensions.handshake

    with open_test_network(["libtorrent", "bitswarm", "third"]) as network, ThreadPoolExecutor(2) as pool:
        third_address = network["third"].address
        named = pool.submit(network.call, "third", lambda: accept_one_handshake(third_address, third_port, listening))
        ours = pool.submit(
            network.call, "bitswarm", lambda: asyncio.run(main(network["libtorrent"].address, third_address))
        )
        assert ready.wait(DEADLINE_S)
        with libtorrent_seed(network, torrent_file, "--pex") as driver:
            try:
                assert next_stage(driver)["stage"] == "lsd_peer"
                # The peer we named hears from libtorrent, for this torrent.
                handshake = named.result(timeout=DEADLINE_S + 10)
            finally:
                libtorrent_heard_us.set()
            their_handshake = ours.result(timeout=2 * DEADLINE_S + 10)
    assert handshake.info_hash == info_hash
    assert their_handshake.extensions.get(UT_PEX)
    assert their_handshake.client is not None
    assert their_handshake.client.startswith("libtorrent")


async def serve_metadata(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], torrent: Torrent, served: list[int]
) -> None:
    """Be a seed that answers only ut_metadata, from ``MetadataServe``; each piece sent is
    appended to ``served`` as it goes.

    Ends when the peer closes or breaks a rule (libtorrent first tries an encrypted
    handshake, which our plain core refuses; it then comes back in the clear).
    """
    reader, writer = connection
    assert torrent.info_hash_v1 is not None
    core = PeerProtocol(
        info_hash=torrent.info_hash_v1,
        peer_id=b"-BS0000-metadata-srv",
        num_pieces=torrent.num_pieces,
        piece_size=torrent.piece_size,
        have_piece=lambda _index: True,
        now=time.monotonic(),
    )
    extensions = PeerExtensions()
    server = MetadataServe(torrent.info)
    try:
        while data := await reader.read(1 << 16):
            for event in core.receive(data, time.monotonic()):
                if isinstance(event, HandshakeCompleted):
                    writer.write(core.handshake())
                    core.send(Extended(0, encode_handshake(metadata_size=server.metadata_size, client="bitswarm")))
                elif isinstance(event, Extended):
                    value = extensions.decode(event)
                    if isinstance(value, MetadataRequest):
                        answer = server.answer("libtorrent", value)
                        if isinstance(answer, MetadataData):
                            served.append(answer.piece)
                        extension_id = extensions.id_for(UT_METADATA)
                        assert extension_id is not None
                        core.send(Extended(extension_id, encode_metadata(answer)))
            writer.write(core.data_to_send())
            await writer.drain()
    except PeerProtocolError:
        pass
    finally:
        writer.close()


def test_libtorrent_gets_the_metadata_from_bitswarm_found_by_lsd(tmp_path: Path) -> None:
    torrent_file, torrent = make_torrent(tmp_path, 1200, TorrentVersion.HYBRID)
    torrent_file.unlink()  # libtorrent must get the info dictionary from us
    assert torrent.info_hash_v1 is not None
    info_hash = torrent.info_hash_v1
    done, ready = threading.Event(), threading.Event()

    async def main(address: str) -> list[int]:
        served: list[int] = []

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await serve_metadata((reader, writer), torrent, served)

        listener = await asyncio.start_server(on_connection, address, OUR_PORT)
        async with (
            listener,
            open_local_discovery(
                port=OUR_PORT,
                on_peer=lambda *_: None,
                interface="eth0",
                ipv6=False,
                interval_s=0.3,
                min_round_gap_s=0.1,
            ) as service,
        ):
            service.add_torrent(info_hash)
            ready.set()
            await asyncio.to_thread(done.wait, DEADLINE_S)
        return served

    save_path = tmp_path / "download"
    save_path.mkdir()
    with open_test_network(["libtorrent", "bitswarm"]) as network, ThreadPoolExecutor(max_workers=1) as pool:
        ours = pool.submit(network.call, "bitswarm", lambda: asyncio.run(main(network["bitswarm"].address)))
        assert ready.wait(DEADLINE_S)
        driver = lt_process(
            "lsd-magnet",
            info_hash.hex(),
            save_path,
            "--interface",
            network["libtorrent"].address,
            "--timeout",
            str(DEADLINE_S),
            wrap=lambda argv: network.argv("libtorrent", argv),
        )
        try:
            metadata = read_stage(driver)
            assert next_stage_ends(driver)
        finally:
            done.set()
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        pieces_served = ours.result(timeout=DEADLINE_S + 10)
    assert set(pieces_served) == {0, 1}  # the info dictionary is two metadata pieces
    assert metadata == {
        "stage": "metadata",
        "sha1": hashlib.sha1(torrent.info).hexdigest(),
        "sha256": hashlib.sha256(torrent.info).hexdigest(),
        "metadata_size": len(torrent.info),
        "name": torrent.name,
        "num_pieces": torrent.num_pieces,
    }
