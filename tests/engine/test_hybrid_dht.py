"""Hybrid torrents in the DHT (BEP 52): announced and looked up under both info-hashes,
the SHA-1 and the SHA-256 truncated to 20 bytes, and a peer that names the v2 hash in its
handshake gets the torrent under that hash."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from bitswarm.create import CreateOptions, create
from bitswarm.magnet import Magnet
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.dht import DHTService, open_dht
from bitswarm.net.session import Session
from bitswarm.wire.messages import HANDSHAKE_BYTES, Handshake

LOOPBACK = "127.0.0.1"
WAIT_S = 60.0


def make_hybrid(folder: Path) -> Torrent:
    folder.mkdir(parents=True)
    rng = random.Random(77)
    (folder / "a.bin").write_bytes(rng.randbytes(200_000))
    (folder / "b.bin").write_bytes(rng.randbytes(70_000))
    torrent = Torrent.decode(create(folder, CreateOptions(version=TorrentVersion.HYBRID, piece_length=32 * 1024)))
    assert torrent.version is TorrentVersion.HYBRID
    return torrent


def hashes(torrent: Torrent) -> tuple[bytes, bytes]:
    assert torrent.info_hash_v1 is not None
    assert torrent.info_hash_v2 is not None
    return torrent.info_hash_v1, torrent.info_hash_v2[:20]


def stored_peers(node: DHTService, info_hash: bytes) -> list[tuple[str, int]]:
    return node.node.peer_store.get(info_hash, 4, node.now(), node.node.rng)  # IPv4 peers


def announced(node: DHTService, info_hash: bytes, port: int) -> Callable[[], bool]:
    return lambda: (LOOPBACK, port) in stored_peers(node, info_hash)


def test_a_hybrid_seed_is_announced_under_both_hashes(tmp_path: Path) -> None:
    torrent = make_hybrid(tmp_path / "seed" / "set")
    v1, v2 = hashes(torrent)

    async def scenario() -> None:
        async with open_dht([f"{LOOPBACK}:0"]) as node:
            bootstrap = [f"{LOOPBACK}:{node.addresses[0][1]}"]
            seeder = Session(port=0, host=LOOPBACK, strict=True, dht=True, dht_bootstrap=bootstrap)
            await seeder.start()
            try:
                runtime = await seeder.add(torrent, tmp_path / "seed")
                assert runtime.dht_info_hashes == [v1, v2]
                for info_hash in (v1, v2):
                    await node.wait_for(announced(node, info_hash, seeder.port), WAIT_S)
            finally:
                await seeder.close()
            assert not seeder.failures

    asyncio.run(scenario())


def test_a_hybrid_download_and_a_hybrid_magnet_find_a_seed_known_only_under_the_v2_hash(tmp_path: Path) -> None:
    """The seed runs no DHT; a node announces it under the truncated v2 hash alone, so only
    the v2 lookup can find it. The torrent and the magnet link (btih and btmh) both do."""
    source = tmp_path / "seed" / "set"
    torrent = make_hybrid(source)
    v1, v2 = hashes(torrent)

    async def scenario() -> None:
        async with open_dht([f"{LOOPBACK}:0"]) as node, open_dht([f"{LOOPBACK}:0"]) as announcer:
            bootstrap = [f"{LOOPBACK}:{node.addresses[0][1]}"]
            seeder = Session(port=0, host=LOOPBACK, strict=True)
            getters = [Session(port=0, host=LOOPBACK, strict=True, dht=True, dht_bootstrap=bootstrap) for _ in "ab"]
            for session in (seeder, *getters):
                await session.start()
            try:
                await seeder.add(torrent, source.parent)
                await announcer.bootstrap([(LOOPBACK, node.addresses[0][1])])
                await announcer.announce(v2, seeder.port, timeout_s=WAIT_S)
                assert stored_peers(node, v2) == [(LOOPBACK, seeder.port)]
                assert stored_peers(node, v1) == []
                download = await getters[0].add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), WAIT_S)
                # Gone before the magnet link starts: the one live peer is the v2-only seed.
                await getters[0].close()
                magnet = await getters[1].add_magnet(Magnet(v1, torrent.info_hash_v2), tmp_path / "magnet")
                fetched = await asyncio.wait_for(magnet.wait_for_torrent(), WAIT_S)
                await asyncio.wait_for(fetched.finished.wait(), WAIT_S)
            finally:
                for session in (*getters, seeder):
                    await session.close()
            assert not seeder.failures
            assert not any(session.failures for session in getters)

    asyncio.run(scenario())
    for folder in ("get", "magnet"):
        for name in ("a.bin", "b.bin"):
            assert (tmp_path / folder / "set" / name).read_bytes() == (source / name).read_bytes()


def test_a_peer_naming_the_v2_hash_of_a_hybrid_gets_the_torrent_under_that_hash(tmp_path: Path) -> None:
    torrent = make_hybrid(tmp_path / "seed" / "set")
    _, v2 = hashes(torrent)

    async def scenario() -> None:
        seeder = Session(port=0, host=LOOPBACK, strict=True)
        await seeder.start()
        try:
            await seeder.add(torrent, tmp_path / "seed")
            assert seeder.route(v2) is seeder.torrents[torrent.info_hash_v1 or b""]
            reader, writer = await asyncio.open_connection(LOOPBACK, seeder.port)
            writer.write(Handshake(v2, b"-XX0000-" + bytes(12)).encode())
            answer = Handshake.decode(await asyncio.wait_for(reader.readexactly(HANDSHAKE_BYTES), WAIT_S))
            assert answer.info_hash == v2
            assert answer.peer_id == seeder.peer_id
            writer.close()
            await seeder.remove(torrent.info_hash_v1 or b"")
            assert seeder.route(v2) is None
            assert seeder.aliases == {}
        finally:
            await seeder.close()

    asyncio.run(scenario())
