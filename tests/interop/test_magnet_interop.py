"""Magnet links between bitswarm and libtorrent on loopback, peers named by x.pe only.

libtorrent, given only a magnet link naming a `bitswarm seed`, fetches the info dictionary
over ut_metadata and then the content (lt_driver `magnet`); and `bitswarm get MAGNET`
does the same from a libtorrent seed that has no tracker (lt_driver `seed-here`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bitswarm import bencode
from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion

from .tools import lt_process

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
NO_DISCOVERY = ["--no-dht", "--no-lsd"]
DEADLINE_S = 60


def make_content(tmp_path: Path, version: TorrentVersion) -> tuple[Path, Path, Torrent]:
    folder = tmp_path / "seed" / "set"
    folder.mkdir(parents=True)
    rng = random.Random(41)
    (folder / "big.bin").write_bytes(rng.randbytes(1_500_000))
    (folder / "note.txt").write_bytes(rng.randbytes(4321))
    data = create(folder, CreateOptions(version=version, piece_length=64 * 1024))
    torrent_path = tmp_path / "set-original.torrent"
    torrent_path.write_bytes(data)
    return torrent_path, folder, Torrent.decode(data)


def same_content(folder: Path, source: Path) -> bool:
    return all((folder / name).read_bytes() == (source / name).read_bytes() for name in ("big.bin", "note.txt"))


@pytest.mark.parametrize("version", [TorrentVersion.V1, TorrentVersion.HYBRID], ids=["v1", "hybrid"])
def test_libtorrent_fetches_metadata_and_content_from_a_bitswarm_seed(tmp_path: Path, version: TorrentVersion) -> None:
    torrent_path, source, torrent = make_content(tmp_path, version)
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(source.parent), "--port", "0", "--json", *NO_DISCOVERY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert seed.stdout is not None
        started = json.loads(seed.stdout.readline())
        assert started["event"] == "started"
        link = dataclasses.replace(torrent.magnet(), peers=(("127.0.0.1", int(started["port"])),)).format()
        (tmp_path / "lt").mkdir()
        libtorrent = lt_process("magnet", link, tmp_path / "lt", "--timeout", str(DEADLINE_S))
        try:
            assert libtorrent.stdout is not None
            metadata = json.loads(libtorrent.stdout.readline() or "{}")
            assert metadata.get("stage") == "metadata", libtorrent.stderr.read() if libtorrent.stderr else ""
            assert metadata["sha1"] == hashlib.sha1(torrent.info).hexdigest()
            assert metadata["metadata_size"] == len(torrent.info)
            assert metadata["num_pieces"] == torrent.num_pieces
            finished = json.loads(libtorrent.stdout.readline() or "{}")
            assert finished.get("stage") == "finished"
            assert same_content(tmp_path / "lt" / "set", source)
            assert any(peer["port"] == int(started["port"]) for peer in finished["peers"])
        finally:
            assert libtorrent.stdin is not None
            libtorrent.stdin.write("\n")
            libtorrent.stdin.flush()
            assert libtorrent.wait(timeout=30) == 0
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0


def test_bitswarm_fetches_metadata_and_content_from_a_libtorrent_seed(tmp_path: Path) -> None:
    torrent_path, source, torrent = make_content(tmp_path, TorrentVersion.V1)
    assert torrent.info_hash_v1 is not None
    libtorrent = lt_process("seed-here", torrent_path, source.parent, "--timeout", str(DEADLINE_S))
    try:
        assert libtorrent.stdout is not None
        seeding = json.loads(libtorrent.stdout.readline() or "{}")
        assert seeding.get("stage") == "seeding", libtorrent.stderr.read() if libtorrent.stderr else ""
        link = f"magnet:?xt=urn:btih:{torrent.info_hash_v1.hex()}&x.pe=127.0.0.1:{seeding['listen_port']}"
        got = subprocess.run(
            [*BITSWARM, "get", link, "-o", str(tmp_path / "get"), "--port", "0", "--no-seed", "--json", *NO_DISCOVERY],
            capture_output=True, text=True, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        events = [json.loads(line)["event"] for line in got.stdout.splitlines()]
        assert events[:3] == ["fetching", "metadata", "started"]
        assert "finished" in events
        assert same_content(tmp_path / "get" / "set", source)
        saved = (tmp_path / "get" / "set.torrent").read_bytes()
        start, end = bencode.decode_document(saved).spans[b"info"]
        assert saved[start:end] == torrent.info
    finally:
        assert libtorrent.stdin is not None
        libtorrent.stdin.write("\n")
        libtorrent.stdin.flush()
        assert libtorrent.wait(timeout=30) == 0
