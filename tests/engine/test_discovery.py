"""Peers found without a tracker: sessions that meet through a local bitswarm DHT node.

(Local service discovery between sessions runs in network namespaces:
tests/interop/test_lsd_session_netns.py.)
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
from pathlib import Path

from bitswarm.create import CreateOptions, create
from bitswarm.dht.node import load_state
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.dht import DHTService, open_dht
from bitswarm.net.session import MAX_PEERS_PER_TORRENT, Session

from .conftest import BITSWARM

LOOPBACK = "127.0.0.1"
WAIT_S = 60.0


def stored_peers(node: DHTService, info_hash: bytes) -> list[tuple[str, int]]:
    return node.node.peer_store.get(info_hash, 4, node.now(), node.node.rng)


def make_torrent(path: Path, seed: int, size: int, *, private: bool = False) -> Torrent:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    options = CreateOptions(version=TorrentVersion.V1, piece_length=32 * 1024, private=private)
    return Torrent.decode(create(path, options))


def test_two_sessions_without_a_tracker_meet_through_a_dht_node_and_complete(tmp_path: Path) -> None:
    source = tmp_path / "seed" / "data.bin"
    torrent = make_torrent(source, 21, 1_500_000)
    secret = make_torrent(tmp_path / "seed" / "secret.bin", 22, 100_000, private=True)
    assert not torrent.trackers
    info_hash = torrent.info_hash_v1 or b""
    states = {"seed": tmp_path / "state" / "seed-dht.dat", "get": tmp_path / "state" / "get-dht.dat"}

    async def scenario() -> None:
        async with open_dht([f"{LOOPBACK}:0"]) as node:
            bootstrap = [f"{LOOPBACK}:{node.addresses[0][1]}"]
            seeder, leecher = (
                Session(port=0, host=LOOPBACK, dht=True, dht_bootstrap=bootstrap, dht_state_path=states[name])
                for name in ("seed", "get")
            )
            await seeder.start()
            await leecher.start()
            try:
                assert seeder.dht is not None
                assert seeder.dht.addresses == [(LOOPBACK, seeder.port)]  # UDP beside TCP, as peers expect
                await seeder.add(secret, source.parent)  # private: never announced (BEP 27)
                await seeder.add(torrent, source.parent)
                # The seed's announce reached the node, so the download finds it in one search.
                await node.wait_for(lambda: (LOOPBACK, seeder.port) in stored_peers(node, info_hash), WAIT_S)
                download = await leecher.add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), WAIT_S)
                assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
                assert download.status()["pieces"] == torrent.num_pieces
                # The download announced itself as well; the private torrent nobody did.
                await node.wait_for(lambda: (LOOPBACK, leecher.port) in stored_peers(node, info_hash), WAIT_S)
                assert leecher.dht is not None
                assert await leecher.dht.get_peers(secret.info_hash_v1 or b"", timeout_s=WAIT_S) == []
                assert stored_peers(node, secret.info_hash_v1 or b"") == []
                assert seeder.failures == leecher.failures == []
            finally:
                await leecher.close()
                await seeder.close()
        # Each session saved its routing table, which names the node it joined through.
        for path in states.values():
            saved = load_state(path.read_bytes())
            assert bootstrap[0] in {f"{host}:{port}" for host, port in (entry.address for entry in saved.nodes)}

    asyncio.run(scenario())


def test_a_session_rejoins_from_its_saved_table_without_bootstrap_options(tmp_path: Path) -> None:
    state = tmp_path / "dht.dat"

    async def scenario() -> None:
        async with open_dht([f"{LOOPBACK}:0"]) as node:
            port = node.addresses[0][1]
            first = Session(port=0, host=LOOPBACK, dht=True, dht_bootstrap=[f"{LOOPBACK}:{port}"], dht_state_path=state)
            await first.start()
            assert (await first.wait_for_dht()) is not None
            await first.close()
            again = Session(port=0, host=LOOPBACK, dht=True, dht_bootstrap=[], dht_state_path=state)
            await again.start()
            try:
                dht = await again.wait_for_dht()
                assert dht is not None
                assert (LOOPBACK, port) in {entry.address for entry in dht.node.tables[4].nodes()}
            finally:
                await again.close()

    asyncio.run(scenario())


def test_a_session_with_dht_off_has_no_node(tmp_path: Path) -> None:
    async def scenario() -> None:
        session = Session(port=0, host=LOOPBACK, dht=False, dht_state_path=tmp_path / "dht.dat")
        await session.start()
        try:
            assert await session.wait_for_dht() is None
        finally:
            await session.close()
        assert not (tmp_path / "dht.dat").exists()

    asyncio.run(scenario())


def test_bitswarm_get_finds_bitswarm_seed_through_bitswarm_dht(tmp_path: Path) -> None:
    """The commands alone: `bitswarm dht`, then `seed --dht-bootstrap` and `get --no-seed`
    with the node named in its config file."""
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(23).randbytes(700_000))
    torrent_path = tmp_path / "data.torrent"
    torrent_path.write_bytes(create(source, CreateOptions(version=TorrentVersion.HYBRID)))
    started: list[subprocess.Popen[str]] = []

    def run(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([*BITSWARM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    try:
        node = run("dht", "--bind", f"{LOOPBACK}:0", "--state", str(tmp_path / "node.dat"))
        assert node.stdout is not None
        ready = node.stdout.readline()
        bootstrap = ready.split("listening on ")[1].split(";")[0]
        common = ["--port", "0", "--no-lsd", "--dht-bootstrap", bootstrap, "--json"]
        seed = run("seed", str(torrent_path), str(tmp_path / "seed"), *common, "--dht-state", str(tmp_path / "s.dat"))
        assert seed.stdout is not None
        assert json.loads(seed.stdout.readline())["event"] == "started"
        # The download takes its settings from a config file instead of options.
        config = tmp_path / "client.toml"
        config.write_text(
            f'lsd = false\nport_mapping = false\ndht_bootstrap = ["{bootstrap}"]\ndht_state = "{tmp_path / "g.dat"}"\n'
        )
        got = subprocess.run(
            [*BITSWARM, "get", str(torrent_path), "-o", str(tmp_path / "get"), "--no-seed", "--port", "0",
             "--config", str(config), "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
        assert load_state((tmp_path / "g.dat").read_bytes()).nodes  # the table was kept
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == 0, stderr


def test_the_download_may_join_the_dht_before_the_seed(tmp_path: Path) -> None:
    """The download's first search finds nobody; either its next one (after a short backoff)
    finds the seed, or the seed's announce names the download and the seed dials it."""
    source = tmp_path / "seed" / "data.bin"
    torrent = make_torrent(source, 24, 300_000)

    async def scenario() -> None:
        async with open_dht([f"{LOOPBACK}:0"]) as node:
            bootstrap = [f"{LOOPBACK}:{node.addresses[0][1]}"]
            leecher, seeder = (
                Session(port=0, host=LOOPBACK, dht=True, dht_bootstrap=bootstrap, dht_state_path=tmp_path / name)
                for name in ("get.dat", "seed.dat")
            )
            await leecher.start()
            await seeder.start()
            try:
                download = await leecher.add(torrent, tmp_path / "get")
                await node.wait_for(lambda: bool(stored_peers(node, torrent.info_hash_v1 or b"")), WAIT_S)
                await seeder.add(torrent, source.parent)
                await asyncio.wait_for(download.finished.wait(), WAIT_S)
                assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
            finally:
                await leecher.close()
                await seeder.close()

    asyncio.run(scenario())


def test_add_peers_dials_only_new_addresses_within_the_peer_limit(tmp_path: Path) -> None:
    torrent = make_torrent(tmp_path / "seed" / "data.bin", 25, 100_000)

    async def scenario() -> None:
        session = Session(port=0, host=LOOPBACK)
        await session.start()
        try:
            runtime = await session.add(torrent, tmp_path / "get")
            runtime.banned.add("127.0.0.9")
            ours = (LOOPBACK, session.port)
            assert runtime.add_peers([ours, ("127.0.0.9", 7000), ("127.0.0.2", 0)]) == 0
            # Closed ports on loopback: each dial is refused at once and forgotten.
            many = [(LOOPBACK, port) for port in range(1, 1 + 2 * MAX_PEERS_PER_TORRENT)]
            assert runtime.add_peers(many) == MAX_PEERS_PER_TORRENT
            await runtime.pause()
            assert runtime.add_peers([("127.0.0.3", 7000)]) == 0
        finally:
            await session.close()

    asyncio.run(scenario())


def test_two_sessions_meet_through_a_dht_node_over_ipv6(tmp_path: Path) -> None:
    """BEP 32: the session's node binds the IPv6 address it listens on, announces and
    searches over IPv6, and the peer it finds is dialled over IPv6."""
    source = tmp_path / "seed" / "data.bin"
    torrent = make_torrent(source, 26, 400_000)
    info_hash = torrent.info_hash_v1 or b""

    async def scenario() -> None:
        async with open_dht(["[::1]:0"]) as node:
            bootstrap = [f"[::1]:{node.addresses[0][1]}"]
            seeder, leecher = (Session(port=0, host="::1", dht=True, dht_bootstrap=bootstrap) for _ in range(2))
            await seeder.start()
            await leecher.start()
            try:
                assert seeder.dht is not None
                assert seeder.dht.addresses == [("::1", seeder.port)]
                await seeder.add(torrent, source.parent)
                store = node.node.peer_store
                await node.wait_for(
                    lambda: ("::1", seeder.port) in store.get(info_hash, 6, node.now(), node.node.rng), WAIT_S
                )
                download = await leecher.add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), WAIT_S)
                assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
            finally:
                await leecher.close()
                await seeder.close()

    asyncio.run(scenario())


def test_peers_tell_each_other_their_dht_port_and_each_node_enters_the_others_table(tmp_path: Path) -> None:
    """BEP 5: both set the DHT bit in their handshake, send a PORT message, and ping the
    node the other names; with no bootstrap node at all, each table then holds the other."""
    source = tmp_path / "seed" / "data.bin"
    torrent = make_torrent(source, 27, 100_000)

    def table(session: Session) -> set[tuple[str, int]]:
        assert session.dht is not None
        return {entry.address for entry in session.dht.node.tables[4].nodes()}

    async def scenario() -> None:
        seeder, leecher = (Session(port=0, host=LOOPBACK, dht=True, dht_bootstrap=[]) for _ in range(2))
        await seeder.start()
        await leecher.start()
        try:
            assert seeder.dht is not None
            assert leecher.dht is not None
            assert table(seeder) == table(leecher) == set()
            await seeder.add(torrent, source.parent)
            download = await leecher.add(torrent, tmp_path / "get")
            await download.connect((LOOPBACK, seeder.port))
            await leecher.dht.wait_for(lambda: (LOOPBACK, seeder.port) in table(leecher), WAIT_S)
            await seeder.dht.wait_for(lambda: (LOOPBACK, leecher.port) in table(seeder), WAIT_S)
            await asyncio.wait_for(download.finished.wait(), WAIT_S)
        finally:
            await leecher.close()
            await seeder.close()

    asyncio.run(scenario())
