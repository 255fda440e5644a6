"""The client's DHT with libtorrent's, with no tracker at all: a libtorrent seed found by
``bitswarm get --dht-bootstrap``, and ``bitswarm seed`` found by libtorrent, each time
through a standalone ``bitswarm dht`` node on loopback that both sides join through;
each way from the .torrent and from a magnet link holding nothing but the info-hash
(the info dictionary then comes from the peer found, BEP 9).

libtorrent runs as `lt_driver.py dht` (a seed that announces on request) or
`lt_driver.py dht-download` (a download that searches the DHT every two seconds); see
`_dht_settings` there for what lets its DHT work on loopback.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion

from .tools import lt, lt_process

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
LOOPBACK = "127.0.0.1"
DEADLINE_S = 60.0


@pytest.fixture
def dht_node(tmp_path: Path) -> Iterator[str]:
    """A standalone `bitswarm dht` on loopback; its HOST:PORT."""
    process = subprocess.Popen(
        [*BITSWARM, "dht", "--bind", f"{LOOPBACK}:0", "--state", str(tmp_path / "node.dat")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("bitswarm dht: listening on "), ready
        yield ready.removeprefix("bitswarm dht: listening on ").split(";")[0]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def make_content(tmp_path: Path, seed: int) -> tuple[Path, Path]:
    """(the content folder holding data.bin, a hybrid .torrent of it with no tracker)."""
    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / "data.bin").write_bytes(random.Random(seed).randbytes(2_000_000))
    torrent_path = tmp_path / "data.torrent"
    torrent_path.write_bytes(create(folder / "data.bin", CreateOptions(version=TorrentVersion.HYBRID)))
    assert not Torrent.decode(torrent_path.read_bytes()).trackers
    return folder, torrent_path


def read_line(process: subprocess.Popen[str]) -> dict[str, object]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"ended early: {process.stderr.read() if process.stderr else ''}"
    reply: dict[str, object] = json.loads(line)
    assert "error" not in reply, reply
    return reply


@pytest.mark.parametrize("start_from", ["torrent", "magnet"])
def test_bitswarm_get_finds_a_libtorrent_seed_through_the_dht(tmp_path: Path, dht_node: str, start_from: str) -> None:
    folder, torrent_path = make_content(tmp_path, 41)
    # A bare info-hash: no tracker, no peer, no name; the DHT is the only way in.
    info_hash = Torrent.decode(torrent_path.read_bytes()).info_hash_v1 or b""
    source = str(torrent_path) if start_from == "torrent" else f"magnet:?xt=urn:btih:{info_hash.hex()}"
    options = ("--torrent", torrent_path, "--save-path", folder, "--timeout", str(2 * DEADLINE_S))
    seed = lt_process("dht", "--bootstrap", dht_node, *options)
    try:
        started = read_line(seed)
        assert started["stage"] == "started"
        assert seed.stdin is not None
        # Its announce has ended: the node we share holds its address for the info-hash.
        seed.stdin.write("announce\n")
        seed.stdin.flush()
        read_line(seed)
        got = subprocess.run(
            [*BITSWARM, "get", source, "-o", str(tmp_path / "get"), "--port", "0", "--no-seed",
             "--no-lsd", "--dht-bootstrap", dht_node, "--json"],
            capture_output=True, text=True, timeout=2 * DEADLINE_S, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
    finally:
        if seed.poll() is None:
            assert seed.stdin is not None
            seed.stdin.write("quit\n")
            seed.stdin.flush()
        assert seed.wait(timeout=DEADLINE_S) == 0
    assert (tmp_path / "get" / "data.bin").read_bytes() == (folder / "data.bin").read_bytes()


@pytest.mark.parametrize("start_from", ["torrent", "magnet"])
def test_libtorrent_finds_a_bitswarm_seed_through_the_dht(tmp_path: Path, dht_node: str, start_from: str) -> None:
    folder, torrent_path = make_content(tmp_path, 42)
    info_hash = Torrent.decode(torrent_path.read_bytes()).info_hash_v1 or b""
    source = str(torrent_path) if start_from == "torrent" else f"magnet:?xt=urn:btih:{info_hash.hex()}"
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(folder), "--port", "0", "--no-lsd", "--dht-bootstrap", dht_node,
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = read_line(seed)
        assert started["event"] == "started"
        (tmp_path / "get").mkdir()
        report = lt("dht-download", source, tmp_path / "get", "--bootstrap", dht_node, "--timeout", str(DEADLINE_S))
    finally:
        seed.send_signal(signal.SIGTERM)
        _, stderr = seed.communicate(timeout=30)
    assert seed.returncode == 0, stderr
    assert report["is_seeding"]
    assert (tmp_path / "get" / "data.bin").read_bytes() == (folder / "data.bin").read_bytes()
    # libtorrent learned our seed's address from the DHT, the only source it had.
    ours = [peer for peer in report["peers"] if peer["port"] == started["port"]]
    assert ours, report["peers"]
    assert all(peer["sources"] == ["dht"] for peer in ours), ours
