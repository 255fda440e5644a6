"""bitswarm seeds to bitswarm through bitswarm's tracker, as separate processes on loopback."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest

from bitswarm import bencode
from bitswarm.metainfo import Torrent

BITSWARM = [sys.executable, "-m", "bitswarm"]


def wait_for(predicate: object, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)  # polling an observable condition, not a stand-in for one
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def tracker() -> Iterator[str]:
    process = subprocess.Popen(
        [*BITSWARM, "tracker", "--http", "127.0.0.1:0", "--udp", "off"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    port = int(line.split("http 127.0.0.1:")[1].split(";")[0])
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    assert process.wait(timeout=30) == 0


def seeders(tracker: str, info_hash: bytes) -> int:
    with urllib.request.urlopen(f"{tracker}/scrape?info_hash={quote_from_bytes(info_hash)}", timeout=10) as reply:  # noqa: S310
        files = bencode.decode(reply.read())
    assert isinstance(files, dict)
    counts = files[b"files"]
    assert isinstance(counts, dict)
    entry = counts.get(info_hash, {b"complete": 0})
    assert isinstance(entry, dict)
    return int(entry[b"complete"])  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["v1", "hybrid"])
def test_bitswarm_downloads_from_bitswarm(tmp_path: Path, tracker: str, version: str) -> None:
    source = tmp_path / "seed" / "content"
    source.mkdir(parents=True)
    rng = random.Random(11)
    (source / "big.bin").write_bytes(rng.randbytes(3_000_000))
    (source / "small.txt").write_bytes(rng.randbytes(777))
    torrent_path = tmp_path / "content.torrent"
    arguments = ["-o", str(torrent_path), f"--{version}", "-t", f"{tracker}/announce", "--piece-length", "32K"]
    created = subprocess.run(
        [*BITSWARM, "create", str(source), *arguments], capture_output=True, text=True, check=False
    )
    assert created.returncode == 0, created.stderr
    torrent = Torrent.decode(torrent_path.read_bytes())
    assert torrent.info_hash_v1 is not None
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(tmp_path / "seed"), "--port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert seed.stdout is not None
        started = json.loads(seed.stdout.readline())
        assert started["event"] == "started"
        assert started["pieces"] == started["num_pieces"] == torrent.num_pieces
        wait_for(lambda: seeders(tracker, torrent.info_hash_v1 or b"") == 1, "the seed's announce")
        got = subprocess.run(
            [*BITSWARM, "get", str(torrent_path), "-o", str(tmp_path / "get"), "--port", "0", "--no-seed", "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        events = [json.loads(line)["event"] for line in got.stdout.splitlines()]
        assert "finished" in events
        assert events[-1] == "stopped"
        for name in ("big.bin", "small.txt"):
            assert (tmp_path / "get" / "content" / name).read_bytes() == (source / name).read_bytes()
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0
