"""v2-only torrents (BEP 52) between two bitswarm sessions on loopback.

The content has files that end mid-piece (an alignment gap before the next file), a file
of less than one block, an empty file, and a file of exactly two pieces.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

from bitswarm import merkle
from bitswarm.create import CreateOptions, create
from bitswarm.magnet import Magnet
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentOptions, TorrentRuntime
from bitswarm.wire.messages import Hashes, HashReject, HashRequest, HaveNone, Message
from bitswarm.wire.peer import PeerProtocol, PeerState

from .conftest import running_sessions

PIECE_LENGTH = 64 * 1024
SIZES = {"a.bin": 150_000, "b.bin": 2 * PIECE_LENGTH, "c.bin": 5_000, "d.bin": 0, "e.bin": 40_000}


def make_v2(tmp_path: Path, seed: int = 52) -> tuple[Path, Torrent]:
    folder = tmp_path / "seed" / "set"
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    for name, size in SIZES.items():
        (folder / name).write_bytes(rng.randbytes(size))
    torrent = Torrent.decode(create(folder, CreateOptions(version=TorrentVersion.V2, piece_length=PIECE_LENGTH)))
    assert torrent.version is TorrentVersion.V2
    return folder, torrent


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)  # polling an observable state


def same_files(folder: Path, source: Path) -> bool:
    return all(
        (folder / name).is_file() and (folder / name).read_bytes() == (source / name).read_bytes() for name in SIZES
    )


def test_v2_only_torrent_downloads_between_two_sessions(tmp_path: Path) -> None:
    source, torrent = make_v2(tmp_path)
    info_hash = (torrent.info_hash_v2 or b"")[:20]

    async def scenario() -> None:
        async with running_sessions(2) as (seeder, leecher):
            seeding = await seeder.add(torrent, source.parent)
            assert seeding.info_hash == info_hash
            assert seeding.status()["pieces"] == torrent.num_pieces  # found by merkle hashes on disk
            download: TorrentRuntime = await leecher.add(torrent, tmp_path / "get")
            assert download.status()["pieces"] == 0
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), 30)
            assert download.status()["pieces"] == torrent.num_pieces
            assert seeding.status()["uploaded"] >= torrent.total_size

    asyncio.run(scenario())
    assert same_files(tmp_path / "get" / "set", source)


def test_v2_only_recheck_finds_a_corrupt_piece_and_fetches_it_again(tmp_path: Path) -> None:
    source, torrent = make_v2(tmp_path, seed=53)
    copy = tmp_path / "get" / "set"
    copy.mkdir(parents=True)
    for name in SIZES:
        (copy / name).write_bytes((source / name).read_bytes())
    # One byte wrong in the second piece of a.bin: only that piece is fetched again.
    data = bytearray((copy / "a.bin").read_bytes())
    data[PIECE_LENGTH + 7] ^= 0xFF
    (copy / "a.bin").write_bytes(bytes(data))

    async def scenario() -> None:
        async with running_sessions(2) as (seeder, leecher):
            seeding = await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            assert download.swarm is not None
            assert not download.swarm.has_piece(1)
            assert download.status()["pieces"] == torrent.num_pieces - 1
            await download.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(download.finished.wait(), 30)
            await wait_until(lambda: seeding.status()["uploaded"] > 0, "the upload counted")
            assert seeding.status()["uploaded"] == PIECE_LENGTH

    asyncio.run(scenario())
    assert same_files(copy, source)


def test_a_btmh_only_magnet_fetches_the_piece_layers_then_the_content(tmp_path: Path) -> None:
    """The info dictionary has no piece layers: the downloader asks the seed for them
    (BEP 52 hash requests), proves each against its file's root, downloads, and saves a
    .torrent that holds them."""
    source, torrent = make_v2(tmp_path, seed=54)
    assert torrent.piece_layers  # a.bin and b.bin are longer than a piece

    async def scenario() -> None:
        async with running_sessions(2) as (seeder, getter):
            await seeder.add(torrent, source.parent)
            link = Magnet(info_hash_v2=torrent.info_hash_v2, peers=(("127.0.0.1", seeder.port),))
            fetching = await getter.add_magnet(link, tmp_path / "get")
            runtime = await asyncio.wait_for(fetching.wait_for_torrent(), 30)
            assert runtime.info_hash == (torrent.info_hash_v2 or b"")[:20]
            await asyncio.wait_for(runtime.finished.wait(), 30)
            assert runtime.status()["pieces"] == torrent.num_pieces
            assert runtime.torrent.piece_layers == torrent.piece_layers
            await asyncio.wait_for(fetching.wait_for_torrent_file(), 30)

    asyncio.run(scenario())
    assert same_files(tmp_path / "get" / "set", source)
    saved = Torrent.decode((tmp_path / "get" / "set.torrent").read_bytes())
    assert saved.info == torrent.info
    assert saved.piece_layers == torrent.piece_layers


def test_a_hybrid_piece_must_match_its_v2_hash_as_well_as_its_sha1(tmp_path: Path) -> None:
    """BEP 52: a hybrid's pieces are checked against both hash formats. With a piece layer
    that disagrees with the data (the SHA-1s still agree), the piece fails."""
    folder = tmp_path / "seed" / "set"
    folder.mkdir(parents=True)
    (folder / "a.bin").write_bytes(random.Random(55).randbytes(3 * PIECE_LENGTH))
    (folder / "b.bin").write_bytes(b"b" * 1000)
    torrent = Torrent.decode(create(folder, CreateOptions(version=TorrentVersion.HYBRID, piece_length=PIECE_LENGTH)))
    [(root, layer)] = torrent.piece_layers.items()  # b.bin is one piece: its root is its hash
    data = (folder / "a.bin").read_bytes()[PIECE_LENGTH : 2 * PIECE_LENGTH]
    bad_layer = layer[:32] + bytes(32) + layer[64:]
    mismatched = dataclasses.replace(torrent, piece_layers={root: bad_layer})

    async def scenario() -> None:
        session = Session(port=0, host="127.0.0.1", strict=True)
        good = TorrentRuntime(session, torrent, tmp_path / "a", TorrentOptions())
        bad = TorrentRuntime(session, mismatched, tmp_path / "b", TorrentOptions())
        assert good.piece_matches(1, data)
        assert not bad.piece_matches(1, data)
        assert bad.piece_matches(0, (folder / "a.bin").read_bytes()[:PIECE_LENGTH])
        # Without layers (a hybrid from a magnet link) the SHA-1 alone decides.
        bare = TorrentRuntime(session, dataclasses.replace(torrent, piece_layers={}), tmp_path / "c", TorrentOptions())
        assert bare.piece_matches(1, data)
        assert not bare.piece_matches(1, bytes(PIECE_LENGTH))

    asyncio.run(scenario())


def test_a_seed_answers_a_request_for_block_hashes_with_a_proof_to_the_root(tmp_path: Path) -> None:
    # What libtorrent asks after a piece failed its check: the 16 KiB block hashes of that
    # piece, with the uncles up to the file's root. The seed reads the piece to answer.
    source, torrent = make_v2(tmp_path, seed=54)
    entry = next(entry for entry in torrent.data_files() if entry.path[-1] == "a.bin")
    assert entry.pieces_root is not None
    data = (source / "a.bin").read_bytes()  # 150,000 bytes: 10 blocks, a tree 16 wide
    blocks_per_piece = PIECE_LENGTH // merkle.BLOCK_SIZE
    request = HashRequest(entry.pieces_root, 0, blocks_per_piece, blocks_per_piece, 3)  # piece 1's blocks

    async def scenario() -> list[Message]:
        async with running_sessions(1) as (seeder,):
            await seeder.add(torrent, source.parent)
            core = PeerProtocol(
                info_hash=(torrent.info_hash_v2 or b"")[:20], peer_id=b"-XX0001-" + bytes(12),
                num_pieces=torrent.num_pieces, piece_size=torrent.piece_size, have_piece=lambda index: False,
                now=0.0, extensions=False,
            )  # fmt: skip
            reader, writer = await asyncio.open_connection("127.0.0.1", seeder.port)
            writer.write(core.handshake())
            answers: list[Message] = []
            asked = False
            async with asyncio.timeout(30):
                while not answers:
                    data = await reader.read(65536)
                    assert data, "the seed hung up"
                    for message in core.receive(data, now=1.0):
                        if isinstance(message, Hashes | HashReject):
                            answers.append(message)
                    if not asked and core.state is PeerState.OPEN:
                        core.send(HaveNone())
                        core.send(request)
                        asked = True
                    writer.write(core.data_to_send())
            writer.close()
            return answers

    [answer] = asyncio.run(scenario())
    assert isinstance(answer, Hashes)
    hashes = merkle.split_layer(answer.hashes)
    assert hashes[:4] == merkle.block_hashes(data[PIECE_LENGTH : 2 * PIECE_LENGTH])
    assert merkle.root_from_proof(hashes[:4], request.index, hashes[4:]) == entry.pieces_root
