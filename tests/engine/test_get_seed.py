"""bitswarm seeds to bitswarm through bitswarm's tracker, as separate processes on loopback."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import pytest

from bitswarm.metainfo import Torrent

from .conftest import BITSWARM, seeders, wait_for


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


def test_get_only_the_chosen_files(tmp_path: Path, tracker: str) -> None:
    source = tmp_path / "seed" / "album"
    source.mkdir(parents=True)
    rng = random.Random(12)
    sizes = {"a.bin": 70_000, "b.bin": 90_001, "c.bin": 50_000}
    for name, size in sizes.items():
        (source / name).write_bytes(rng.randbytes(size))
    torrent_path = tmp_path / "album.torrent"
    arguments = ["-o", str(torrent_path), "--v1", "-t", f"{tracker}/announce", "--piece-length", "16K"]
    created = subprocess.run([*BITSWARM, "create", str(source), *arguments], capture_output=True, check=False)
    assert created.returncode == 0
    torrent = Torrent.decode(torrent_path.read_bytes())
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(tmp_path / "seed"), "--port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert seed.stdout is not None
        assert json.loads(seed.stdout.readline())["event"] == "started"
        wait_for(lambda: seeders(tracker, torrent.info_hash_v1 or b"") == 1, "the seed's announce")
        got = subprocess.run(
            [*BITSWARM, "get", str(torrent_path), "-o", str(tmp_path / "get"), "--port", "0", "--no-seed",
             "--files", "1", "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        fetched = tmp_path / "get" / "album"
        assert (fetched / "b.bin").read_bytes() == (source / "b.bin").read_bytes()
        assert not (fetched / "a.bin").exists()
        assert not (fetched / "c.bin").exists()
        bad = subprocess.run(
            [*BITSWARM, "get", str(torrent_path), "--files", "7", "--no-seed"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert bad.returncode == 2
        assert "files 0 to 2" in bad.stderr
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0


def test_ctrl_c_stops_a_seed_cleanly(tmp_path: Path, tracker: str) -> None:
    source = tmp_path / "seed" / "one.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(2).randbytes(40_000))
    torrent_path = tmp_path / "one.torrent"
    arguments = ["-o", str(torrent_path), "--v1", "-t", f"{tracker}/announce"]
    assert (
        subprocess.run([*BITSWARM, "create", str(source), *arguments], capture_output=True, check=False).returncode == 0
    )
    torrent = Torrent.decode(torrent_path.read_bytes())
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(source.parent), "--port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert seed.stdout is not None
    assert json.loads(seed.stdout.readline())["event"] == "started"
    wait_for(lambda: seeders(tracker, torrent.info_hash_v1 or b"") == 1, "the seed's announce")
    seed.send_signal(signal.SIGINT)
    out, err = seed.communicate(timeout=30)
    assert seed.returncode == 0, err
    assert "Traceback" not in err
    assert json.loads(out.splitlines()[-1])["event"] == "stopped"
    # The stopped announce reached the tracker before the process ended.
    assert seeders(tracker, torrent.info_hash_v1 or b"") == 0


@pytest.mark.parametrize("private", [False, True])
def test_state_goes_where_it_is_told_and_get_no_seed_leaves_no_resume_data(
    tmp_path: Path, tracker: str, private: bool
) -> None:
    """Issue 16: `--state-dir` holds the DHT table and the resume data; a finished
    `get --no-seed` removes its resume data; a private torrent writes no DHT table."""
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(16).randbytes(400_000))
    torrent_path = tmp_path / "data.torrent"
    private_flag = ["--private"] if private else []
    created = subprocess.run(
        [*BITSWARM, "create", str(source), "-o", str(torrent_path), "--v1", "-t", f"{tracker}/announce",
         *private_flag],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    torrent = Torrent.decode(torrent_path.read_bytes())
    assert torrent.private is private
    seed_state = tmp_path / "seed-state"
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(tmp_path / "seed"), "--port", "0", "--json",
         "--state-dir", str(seed_state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert seed.stdout is not None
        assert json.loads(seed.stdout.readline())["event"] == "started"
        wait_for(lambda: seeders(tracker, torrent.info_hash_v1 or b"") == 1, "the seed's announce")
        got_state = tmp_path / "get-state"
        got = subprocess.run(
            [*BITSWARM, "get", str(torrent_path), "-o", str(tmp_path / "get"), "--port", "0", "--no-seed",
             "--json", "--state-dir", str(got_state)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0
    assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
    hex_hash = (torrent.info_hash_v1 or b"").hex()
    # The seed kept its resume data in its state folder, not beside the content.
    assert (seed_state / "resume" / f"{hex_hash}.resume").is_file()
    assert not (tmp_path / "seed" / ".bitswarm-resume").exists()
    # The finished download left nothing behind, in the download folder or the state folder.
    assert not (tmp_path / "get" / ".bitswarm-resume").exists()
    assert not (got_state / "resume").exists()
    # A public torrent's DHT table is kept in the state folder; a private one runs no DHT.
    assert (seed_state / "dht.dat").is_file() is not private
    assert (got_state / "dht.dat").is_file() is not private
