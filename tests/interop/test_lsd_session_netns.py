"""Local service discovery (BEP 14) in the client: two ``bitswarm`` commands in two network
namespaces, with no tracker and no DHT, find each other by multicast and trade.

The namespaces have no default route, so the commands name their interface
(``lsd_interface = "eth0"`` in their config; see bitswarm/net/lsd.py for why).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session

from .netns import open_test_network

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
DEADLINE_S = 60.0


def test_two_sessions_in_two_namespaces_find_each_other_by_lsd_and_complete(tmp_path: Path) -> None:
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(31).randbytes(1_200_000))
    torrent_path = tmp_path / "data.torrent"
    torrent_path.write_bytes(create(source, CreateOptions(version=TorrentVersion.HYBRID, piece_length=64 * 1024)))
    torrent = Torrent.decode(torrent_path.read_bytes())
    assert not torrent.trackers
    assert not torrent.private
    # Our own config: the one every test gets (tests/conftest.py) turns LSD off.
    config = tmp_path / "client.toml"
    config.write_text('lsd = true\nlsd_interface = "eth0"\nport_mapping = false\n')
    discovery = ["--no-dht", "--config", str(config), "--json"]
    with open_test_network(["seed", "get"]) as network:
        seed = subprocess.Popen(
            network.argv("seed", [*BITSWARM, "seed", str(torrent_path), str(source.parent), "--port", "6881",
                                  *discovery]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert seed.stdout is not None
            # The seed has joined the group once it reports "started"; the download's
            # announce (two seconds after it starts) reaches it, and one of them dials.
            started = json.loads(seed.stdout.readline())
            assert started["event"] == "started", started
            got = subprocess.run(
                network.argv("get", [*BITSWARM, "get", str(torrent_path), "-o", str(tmp_path / "get"),
                                     "--port", "6881", "--no-seed", *discovery]),
                capture_output=True, text=True, timeout=DEADLINE_S, check=False,
            )  # fmt: skip
            assert got.returncode == 0, got.stderr
            events = [json.loads(line)["event"] for line in got.stdout.splitlines()]
            assert "finished" in events
        finally:
            seed.terminate()
            _, stderr = seed.communicate(timeout=30)
        assert seed.returncode == 0, stderr
    assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
    assert "local service discovery off" not in got.stderr + stderr


def test_a_private_torrent_is_never_announced_by_lsd(tmp_path: Path) -> None:
    """BEP 27: a session with LSD on announces its public torrents, not its private ones,
    and takes no LSD peer for a private one."""
    public = Torrent.decode(create(_content(tmp_path / "public.bin", 32), CreateOptions(version=TorrentVersion.V1)))
    private_options = CreateOptions(version=TorrentVersion.V1, private=True)
    private = Torrent.decode(create(_content(tmp_path / "private.bin", 33), private_options))

    offered: dict[str, list[tuple[str, int]]] = {"public": [], "private": []}

    async def scenario() -> tuple[bytes, ...]:
        session = Session(port=0, lsd=True, lsd_interface="eth0")
        await session.start()
        try:
            assert session.lsd is not None
            for name, torrent in (("public", public), ("private", private)):
                runtime = await session.add(torrent, tmp_path)
                runtime.add_peers = offered[name].extend  # type: ignore[method-assign,assignment]
            announced = session.lsd.core.info_hashes
            # What the LSD endpoint hands the session when it hears each torrent announced.
            session.lsd.on_peer(private.info_hash_v1 or b"", "10.251.0.9", 7000)
            session.lsd.on_peer(public.info_hash_v1 or b"", "10.251.0.9", 7000)
            return announced
        finally:
            await session.close()

    with open_test_network(["a"]) as network:
        announced = network.call("a", lambda: asyncio.run(scenario()))
    assert announced == (public.info_hash_v1,)
    assert offered == {"public": [("10.251.0.9", 7000)], "private": []}


def _content(path: Path, seed: int) -> Path:
    path.write_bytes(random.Random(seed).randbytes(50_000))
    return path
