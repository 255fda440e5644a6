"""Magnet links through the session API: metadata from peers (BEP 9), then the download; PEX (BEP 11)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from bitswarm import bencode
from bitswarm.create import CreateOptions, create
from bitswarm.errors import UsageError
from bitswarm.magnet import Magnet
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net import magnet as magnet_runtime
from bitswarm.net.session import Session, TorrentOptions
from bitswarm.wire.extension import (
    UT_METADATA,
    UT_PEX,
    MetadataData,
    MetadataRequest,
    decode_handshake,
    decode_metadata,
    encode_handshake,
    encode_metadata,
)
from bitswarm.wire.messages import (
    EXTENSION_PROTOCOL,
    HANDSHAKE_BYTES,
    Extended,
    FrameDecoder,
    Handshake,
    encode,
    reserved_bits,
)

PIECE = 32 * 1024


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)  # polling an observable state


def make_content(tmp_path: Path, version: TorrentVersion = TorrentVersion.V1) -> tuple[Torrent, Path]:
    folder = tmp_path / "seed" / "album"
    folder.mkdir(parents=True)
    rng = random.Random(21)
    for name, size in {"a.bin": 300_000, "b.bin": 200_001, "c.txt": 999}.items():
        (folder / name).write_bytes(rng.randbytes(size))
    torrent = Torrent.decode(create(folder, CreateOptions(version=version, piece_length=PIECE)))
    return torrent, folder


def session() -> Session:
    return Session(port=0, host="127.0.0.1", strict=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_magnet_with_only_a_peer_fetches_metadata_saves_the_torrent_and_downloads(tmp_path: Path, host: str) -> None:
    torrent, folder = make_content(tmp_path, TorrentVersion.HYBRID)

    async def scenario() -> None:
        seeder, getter = session(), session()
        await seeder.start()
        await getter.start()
        try:
            await seeder.add(torrent, folder.parent)
            link = Magnet(torrent.info_hash_v1, torrent.info_hash_v2, peers=((host, seeder.port),))
            fetching = await getter.add_magnet(link, tmp_path / "get")
            runtime = await asyncio.wait_for(fetching.wait_for_torrent(), 30)
            assert runtime.torrent.info == torrent.info
            # The info dictionary's bytes exactly; v2 piece layers are not in it, so they
            # come once the files are in and hash to each file's root.
            saved = bencode.decode_document((tmp_path / "get" / "album.torrent").read_bytes())
            start, end = saved.spans[b"info"]
            assert (tmp_path / "get" / "album.torrent").read_bytes()[start:end] == torrent.info
            assert b"piece layers" not in saved.value  # type: ignore[operator]
            await asyncio.wait_for(runtime.finished.wait(), 30)
            await asyncio.wait_for(fetching.wait_for_torrent_file(), 30)
            complete = Torrent.decode((tmp_path / "get" / "album.torrent").read_bytes())
            assert complete.info == torrent.info
            assert dict(complete.piece_layers) == dict(torrent.piece_layers)
            assert complete.piece_layers
            for name in ("a.bin", "b.bin", "c.txt"):
                assert (tmp_path / "get" / "album" / name).read_bytes() == (folder / name).read_bytes()
            assert not getter.magnets
        finally:
            await getter.close()
            await seeder.close()
        assert not seeder.failures
        assert not getter.failures

    asyncio.run(scenario())


def test_a_seed_that_dials_a_magnet_link_gives_it_the_metadata_and_is_dialled_back(tmp_path: Path) -> None:
    """As when a seed hears of us by LSD or the DHT: the fetch runs on its incoming connection."""
    torrent, folder = make_content(tmp_path)

    async def scenario() -> None:
        seeder, getter = session(), session()
        await seeder.start()
        await getter.start()
        try:
            seeding = await seeder.add(torrent, folder.parent)
            assert torrent.info_hash_v1 is not None
            fetching = await getter.add_magnet(Magnet(torrent.info_hash_v1), tmp_path / "get")
            await seeding.connect(("127.0.0.1", getter.port))
            runtime = await asyncio.wait_for(fetching.wait_for_torrent(), 30)
            # Dialled back at the port the seed's extended handshake gave.
            await asyncio.wait_for(runtime.finished.wait(), 30)
            assert any(peer.address == ("127.0.0.1", seeder.port) for peer in runtime.peers)
        finally:
            await getter.close()
            await seeder.close()

    asyncio.run(scenario())


def test_select_only_downloads_the_chosen_file_and_web_seeds_are_kept(tmp_path: Path) -> None:
    torrent, folder = make_content(tmp_path)

    async def scenario() -> None:
        seeder, getter = session(), session()
        await seeder.start()
        await getter.start()
        try:
            await seeder.add(torrent, folder.parent)
            link = Magnet(
                torrent.info_hash_v1,
                peers=(("127.0.0.1", seeder.port),),
                web_seeds=("http://127.0.0.1:9/files/",),
                select_only=(1,),
            )
            fetching = await getter.add_magnet(link, tmp_path / "get")
            runtime = await asyncio.wait_for(fetching.wait_for_torrent(), 30)
            assert runtime.torrent.web_seeds == ("http://127.0.0.1:9/files/",)
            assert Torrent.decode((tmp_path / "get" / "album.torrent").read_bytes()).web_seeds == link.web_seeds
            await asyncio.wait_for(runtime.finished.wait(), 30)
            assert (tmp_path / "get" / "album" / "b.bin").read_bytes() == (folder / "b.bin").read_bytes()
            assert not (tmp_path / "get" / "album" / "c.txt").exists()
        finally:
            await getter.close()
            await seeder.close()

    asyncio.run(scenario())


def test_pex_introduces_a_peer_known_to_nobody_else(tmp_path: Path) -> None:
    """C is told only of B; B is connected to A; C dials A because B's ut_pex named it.

    A runs without PEX, so it cannot hear of C and dial it first: the connection between A
    and C can only be C's, from what B told it.
    """
    torrent, folder = make_content(tmp_path)

    async def scenario() -> None:
        a, b, c = session(), session(), session()
        for each in (a, b, c):
            await each.start()
        try:
            seeding = await a.add(torrent, folder.parent, TorrentOptions(pex=False))
            middle = await b.add(torrent, tmp_path / "b")
            await middle.connect(("127.0.0.1", a.port))
            await asyncio.wait_for(middle.finished.wait(), 30)
            await wait_until(lambda: len(seeding.peers) == 1, "A sees B")
            last = await c.add(torrent, tmp_path / "c")
            await last.connect(("127.0.0.1", b.port))
            await wait_until(
                lambda: any(peer.address == ("127.0.0.1", a.port) and peer.outgoing for peer in last.peers),
                "C dials A",
            )
            await asyncio.wait_for(last.finished.wait(), 30)
            await wait_until(lambda: len(seeding.peers) == 2, "A sees C")
            remote_ids = [peer.core.remote_peer_id or b"" for peer in seeding.peers if peer.core is not None]
            assert sorted(remote_ids) == sorted([b.peer_id, c.peer_id])
        finally:
            for each in (c, b, a):
                await each.close()

    asyncio.run(scenario())


def test_two_peers_dialling_each_other_keep_one_connection(tmp_path: Path) -> None:
    torrent, folder = make_content(tmp_path)

    async def scenario() -> None:
        a, b = session(), session()
        for each in (a, b):
            await each.start()
        try:
            seeding = await a.add(torrent, folder.parent)
            getting = await b.add(torrent, tmp_path / "b")
            await asyncio.gather(seeding.connect(("127.0.0.1", b.port)), getting.connect(("127.0.0.1", a.port)))
            await asyncio.wait_for(getting.finished.wait(), 30)
            await wait_until(lambda: len(seeding.peers) == len(getting.peers) == 1, "one connection")
            (kept,) = seeding.peers
            # The side with the lower peer id keeps its own dial.
            assert kept.outgoing == (a.peer_id < b.peer_id)
        finally:
            for each in (b, a):
                await each.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("why", ["--no-pex", "private torrent"])
def test_without_pex_no_ut_pex_is_offered_and_nothing_is_learned(tmp_path: Path, why: str) -> None:
    torrent, folder = make_content(tmp_path)
    options = TorrentOptions()
    if why == "--no-pex":
        options = TorrentOptions(pex=False)
    else:
        private = CreateOptions(version=TorrentVersion.V1, piece_length=PIECE, private=True)
        torrent = Torrent.decode(create(folder, private))

    async def scenario() -> None:
        a, b, c = session(), session(), session()
        for each in (a, b, c):
            await each.start()
        try:
            await a.add(torrent, folder.parent)
            middle = await b.add(torrent, tmp_path / "b")
            await middle.connect(("127.0.0.1", a.port))
            await asyncio.wait_for(middle.finished.wait(), 30)
            last = await c.add(torrent, tmp_path / "c", options)
            assert UT_PEX not in last.extension_ids
            await last.connect(("127.0.0.1", b.port))
            await asyncio.wait_for(last.finished.wait(), 30)
            assert last.swarm is not None
            assert all(peer.link.pex is None for peer in last.swarm.peers.values())
            assert [peer.address for peer in last.peers] == [("127.0.0.1", b.port)]
        finally:
            for each in (c, b, a):
                await each.close()

    asyncio.run(scenario())


class HostileMetadataPeer:
    """A peer on 127.0.0.2 that offers the metadata and sends it wrong: pieces of the wrong
    size, or the right size with a byte changed (so the whole fails its hash)."""

    def __init__(self, info: bytes, mode: str) -> None:
        self.info, self.mode = info, mode
        self.answered = asyncio.Event()
        self.hung_up_on = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.2", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ours = Handshake.decode(await reader.readexactly(HANDSHAKE_BYTES))
        writer.write(Handshake(ours.info_hash, b"-XX0000-hostile00000", reserved_bits(EXTENSION_PROTOCOL)).encode())
        payload = encode_handshake(extensions={UT_METADATA: 3}, metadata_size=len(self.info))
        writer.write(encode(Extended(0, payload)))
        decoder = FrameDecoder(1 << 20)
        their_id = 0
        while chunk := await reader.read(65536):
            for message in decoder.feed(chunk):
                if not isinstance(message, Extended):
                    continue
                if message.extension_id == 0:
                    their_id = decode_handshake(message.payload).extensions[UT_METADATA]
                    continue
                request = decode_metadata(message.payload)
                assert isinstance(request, MetadataRequest)
                data = bytearray(self.info[request.piece * 16384 : (request.piece + 1) * 16384])
                if self.mode == "wrong size":
                    data = data[:-1]
                else:
                    data[0] ^= 0xFF
                answer = MetadataData(request.piece, len(self.info), bytes(data))
                writer.write(encode(Extended(their_id, encode_metadata(answer))))
                self.answered.set()
        self.hung_up_on.set()
        writer.close()


@pytest.mark.parametrize("mode", ["wrong size", "bad hash"])
def test_a_peer_sending_bad_metadata_is_dropped_and_an_honest_peer_completes(tmp_path: Path, mode: str) -> None:
    torrent, folder = make_content(tmp_path)

    async def scenario() -> None:
        hostile = HostileMetadataPeer(torrent.info, mode)
        await hostile.start()
        seeder = session()
        # Plain BitTorrent: the hostile peer speaks no MSE.
        getter = Session(port=0, host="127.0.0.1", strict=True, encryption="disable")
        await seeder.start()
        await getter.start()
        try:
            await seeder.add(torrent, folder.parent)
            assert torrent.info_hash_v1 is not None
            link = Magnet(torrent.info_hash_v1, peers=(("127.0.0.2", hostile.port),))
            fetching = await getter.add_magnet(link, tmp_path / "get")
            await asyncio.wait_for(hostile.answered.wait(), 30)
            await asyncio.wait_for(hostile.hung_up_on.wait(), 30)
            assert not fetching.ready.is_set()
            if mode == "bad hash":
                assert "127.0.0.2" in fetching.banned
            fetching.add_peers([("127.0.0.1", seeder.port)])
            runtime = await asyncio.wait_for(fetching.wait_for_torrent(), 30)
            assert runtime.torrent.info == torrent.info
            await asyncio.wait_for(runtime.finished.wait(), 30)
            assert all(peer.address is None or peer.address[0] != "127.0.0.2" for peer in runtime.peers)
        finally:
            await getter.close()
            await seeder.close()
            await hostile.close()

    asyncio.run(scenario())


def test_an_x_pe_peer_that_was_not_up_yet_is_dialled_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(magnet_runtime, "REDIAL_S", 1.0)
    torrent, folder = make_content(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        getter = session()
        await getter.start()
        seeder = Session(port=port, host="127.0.0.1", strict=True)
        try:
            assert torrent.info_hash_v1 is not None
            link = Magnet(torrent.info_hash_v1, peers=(("127.0.0.1", port),))
            fetching = await getter.add_magnet(link, tmp_path / "g")
            await wait_until(lambda: not fetching.known_addresses, "the first dial refused")
            await seeder.start()
            await seeder.add(torrent, folder.parent)
            runtime = await asyncio.wait_for(fetching.wait_for_torrent(), 30)
            await asyncio.wait_for(runtime.finished.wait(), 30)
        finally:
            await getter.close()
            await seeder.close()

    asyncio.run(scenario())


def test_a_magnet_link_still_fetching_can_be_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        getter = session()
        await getter.start()
        try:
            fetching = await getter.add_magnet(Magnet(b"\x01" * 20), tmp_path / "get")
            with pytest.raises(UsageError, match="already"):
                await getter.add_magnet(Magnet(b"\x01" * 20), tmp_path / "get")
            await getter.remove(b"\x01" * 20)
            assert not getter.magnets
            with pytest.raises(UsageError, match="removed before its metadata"):
                await fetching.wait_for_torrent()
        finally:
            await getter.close()

    asyncio.run(scenario())
