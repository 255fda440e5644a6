"""`bitswarm get MAGNET` from `bitswarm seed`, as separate processes on loopback."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import signal
import subprocess
from pathlib import Path

import pytest

from bitswarm import bencode
from bitswarm.metainfo import Torrent

from .conftest import BITSWARM, seeders, wait_for

NO_DISCOVERY = ["--no-dht", "--no-lsd"]


def make_torrent(tmp_path: Path, version: str, tracker: str | None = None) -> tuple[Path, Path, Torrent]:
    source = tmp_path / "seed" / "show"
    source.mkdir(parents=True)
    rng = random.Random(31)
    (source / "one.bin").write_bytes(rng.randbytes(700_000))
    (source / "two.txt").write_bytes(rng.randbytes(1234))
    torrent_path = tmp_path / "show-original.torrent"
    arguments = ["-o", str(torrent_path), f"--{version}", "--piece-length", "32K"]
    if tracker is not None:
        arguments += ["-t", f"{tracker}/announce"]
    command = [*BITSWARM, "create", str(source), *arguments]
    created = subprocess.run(command, capture_output=True, text=True, check=False)
    assert created.returncode == 0, created.stderr
    return torrent_path, source, Torrent.decode(torrent_path.read_bytes())


def start_seed(torrent_path: Path, folder: Path) -> tuple[subprocess.Popen[str], int]:
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(folder), "--port", "0", "--json", *NO_DISCOVERY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert seed.stdout is not None
    started = json.loads(seed.stdout.readline())
    assert started["event"] == "started"
    return seed, int(started["port"])


def get(link: str, folder: Path) -> list[dict[str, object]]:
    got = subprocess.run(
        [*BITSWARM, "get", link, "-o", str(folder), "--port", "0", "--no-seed", "--json", *NO_DISCOVERY],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    return [json.loads(line) for line in got.stdout.splitlines()]


def check_download(events: list[dict[str, object]], folder: Path, source: Path, torrent: Torrent) -> None:
    names = [event["event"] for event in events]
    assert names[:3] == ["fetching", "metadata", "started"]
    assert "finished" in names
    assert names[-1] == "stopped"
    for name in ("one.bin", "two.txt"):
        assert (folder / "show" / name).read_bytes() == (source / name).read_bytes()
    saved = (folder / "show.torrent").read_bytes()
    start, end = bencode.decode_document(saved).spans[b"info"]
    assert saved[start:end] == torrent.info


def test_get_a_magnet_link_with_a_tracker(tmp_path: Path, tracker: str) -> None:
    torrent_path, source, torrent = make_torrent(tmp_path, "v1", tracker)
    assert torrent.info_hash_v1 is not None
    seed, _ = start_seed(torrent_path, source.parent)
    try:
        wait_for(lambda: seeders(tracker, torrent.info_hash_v1 or b"") == 1, "the seed's announce")
        link = f"magnet:?xt=urn:btih:{torrent.info_hash_v1.hex()}&dn=show&tr={tracker}/announce"
        events = get(link, tmp_path / "get")
        check_download(events, tmp_path / "get", source, torrent)
        # The saved .torrent is a whole one, with the link's tracker: it can be used as is.
        saved = Torrent.decode((tmp_path / "get" / "show.torrent").read_bytes())
        assert saved.trackers == ((f"{tracker}/announce",),)
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0


@pytest.mark.parametrize("form", ["base32 btih", "hybrid btih and btmh"])
def test_get_a_magnet_link_with_only_a_peer_address(tmp_path: Path, form: str) -> None:
    torrent_path, source, torrent = make_torrent(tmp_path, "v1" if form == "base32 btih" else "hybrid")
    assert torrent.info_hash_v1 is not None
    seed, port = start_seed(torrent_path, source.parent)
    try:
        if form == "base32 btih":
            link = f"magnet:?xt=urn:btih:{base64.b32encode(torrent.info_hash_v1).decode()}&x.pe=127.0.0.1:{port}"
        else:
            link = dataclasses.replace(torrent.magnet(), display_name=None, peers=(("127.0.0.1", port),)).format()
            assert "urn:btmh:" in link
        check_download(get(link, tmp_path / "get"), tmp_path / "get", source, torrent)
        # Whole, v2 piece layers included: bitswarm (and others) can open it as it is.
        saved = Torrent.decode((tmp_path / "get" / "show.torrent").read_bytes())
        assert dict(saved.piece_layers) == dict(torrent.piece_layers)
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0


def test_a_malformed_magnet_link_is_one_line_and_exit_2(tmp_path: Path) -> None:
    got = subprocess.run(
        [*BITSWARM, "get", "magnet:?xt=urn:btih:1234", "-o", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert got.returncode == 2
    assert got.stderr.startswith("bitswarm: magnet: xt:")
    assert len(got.stderr.splitlines()) == 1


def test_ctrl_c_while_fetching_the_metadata_stops_cleanly(tmp_path: Path) -> None:
    link = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=nobody"
    process = subprocess.Popen(
        [*BITSWARM, "get", link, "-o", str(tmp_path), "--port", "0", "--json", *NO_DISCOVERY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    fetching = json.loads(process.stdout.readline())
    assert fetching["event"] == "fetching"
    assert fetching["info_hash"] == "0123456789abcdef0123456789abcdef01234567"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["stopped"]
    assert not list(tmp_path.glob("*.torrent"))


def test_files_overrides_the_links_select_only(tmp_path: Path) -> None:
    torrent_path, source, torrent = make_torrent(tmp_path, "v1")
    assert torrent.info_hash_v1 is not None
    seed, port = start_seed(torrent_path, source.parent)
    try:
        link = f"magnet:?xt=urn:btih:{torrent.info_hash_v1.hex()}&x.pe=127.0.0.1:{port}&so=0"
        got = subprocess.run(
            [*BITSWARM, "get", link, "-o", str(tmp_path / "get"), "--port", "0", "--no-seed", "--no-pex",
             "--files", "1", "--json", *NO_DISCOVERY],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "get" / "show" / "two.txt").read_bytes() == (source / "two.txt").read_bytes()
        assert not (tmp_path / "get" / "show" / "one.bin").exists()
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0
