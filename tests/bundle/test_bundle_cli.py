"""`bitswarm bundle` as a user runs it: create, info, open; a libtorrent seed that never had the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bitswarm.bundle import files, links
from bitswarm.bundle import format as fmt
from bitswarm.metainfo import Torrent, TorrentVersion
from interop.test_peer_interop import libtorrent_seed, tracker
from interop.trackers import TrackerUrls

BITSWARM = [sys.executable, "-m", "bitswarm"]
__all__ = ["tracker"]  # a fixture, used by name


def run(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BITSWARM, *args], capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "Album"
    (root / "disc 1").mkdir(parents=True)
    (root / "disc 1" / "01 Secret Song Title.flac").write_bytes(bytes(range(256)) * 1000)
    (root / "disc 1" / "02 Other.flac").write_bytes(b"\x07" * (fmt.PLAIN_SEGMENT * 2))
    (root / "liner notes.txt").write_text("thanks to everyone\n")
    (root / "empty").write_bytes(b"")
    return root


def same_tree(left: Path, right: Path) -> None:
    found = sorted(path.relative_to(left) for path in left.rglob("*") if path.is_file())
    assert found == sorted(path.relative_to(right) for path in right.rglob("*") if path.is_file())
    for relative in found:
        assert (left / relative).read_bytes() == (right / relative).read_bytes(), relative


def test_create_info_open_round_trip_and_no_plaintext_name_in_the_torrent(tmp_path: Path, album: Path) -> None:
    out = tmp_path / "album.torrent"
    made = run("bundle", "create", str(album), "-o", str(out), "--title", "Live, 2026", "--v2")
    assert made.returncode == 0, made.stderr
    link = made.stdout.strip()
    assert link.startswith("magnet:?")
    assert "#k=" in link
    data = out.read_bytes()
    torrent = Torrent.decode(data)
    assert torrent.version is TorrentVersion.V2
    assert torrent.piece_length % fmt.SEGMENT == 0
    for secret in (b"Secret", b"liner", b"Album", b"Live", b"flac", b"disc"):
        assert secret not in data
    assert (tmp_path / "album" / torrent.name / "0000.bin").is_file()

    shown = run("bundle", "info", str(out))
    assert shown.returncode == 0
    assert "4 sealed files" in shown.stdout
    assert "Secret" not in shown.stdout
    shown = run("bundle", "info", str(out), "--key", link)
    assert shown.returncode == 0, shown.stderr
    assert "title: Live, 2026" in shown.stdout
    assert "disc 1/01 Secret Song Title.flac" in shown.stdout

    opened = run(
        "bundle", "open", str(out), "--key", link, "--data", str(tmp_path / "album"), "-o", str(tmp_path / "o")
    )
    assert opened.returncode == 0, opened.stderr
    same_tree(album, tmp_path / "o")


def test_a_wrong_key_or_a_tampered_file_exits_2_with_one_line_and_no_plaintext(tmp_path: Path, album: Path) -> None:
    out = tmp_path / "b.torrent"
    made = run("bundle", "create", str(album), "-o", str(out), "--gate", "price=9.95")
    assert made.returncode == 0, made.stderr
    assert "#k=" not in made.stdout
    key_file = tmp_path / "b.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    wrong = links.key_text(bytes(32))
    refused = run("bundle", "open", str(out), "--key", wrong, "--data", str(tmp_path / "b"), "-o", str(tmp_path / "o"))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "does not open" in refused.stderr
    assert not (tmp_path / "o").exists()
    # The torrent's own hashes would catch a damaged download; a tampered sealed file given
    # to the decryption alone fails on its tag, and leaves nothing under a final name.
    torrent = Torrent.decode(out.read_bytes())
    target = tmp_path / "b" / torrent.name / "0001.bin"
    damaged = bytearray(target.read_bytes())
    damaged[fmt.SEGMENT + 5] ^= 0x40
    target.write_bytes(bytes(damaged))
    key = links.parse_key(key_file.read_text())
    with pytest.raises(fmt.BundleError, match="segment 1 does not authenticate"):
        files.open_bundle(torrent, tmp_path / "b", key, tmp_path / "plain")
    assert not (tmp_path / "plain" / "disc 1" / "02 Other.flac").exists()
    assert not list((tmp_path / "plain").rglob("*.bitswarm-partial"))
    for bad_gate in ("price=0", "price=abc", "crowdfund=10x1.5", "crowdfund=0x1,2027-01-01", "gold"):
        assert (
            run("bundle", "create", str(album), "-o", str(tmp_path / "x.torrent"), "--gate", bad_gate).returncode == 2
        )


@pytest.mark.interop
def test_a_libtorrent_seed_without_the_key_serves_a_bundle_that_bitswarm_opens_from_its_link(
    tmp_path: Path, album: Path, tracker: TrackerUrls
) -> None:
    announce = tracker.announce
    out = tmp_path / "c.torrent"
    made = run("bundle", "create", str(album), "-o", str(out), "--data", str(tmp_path / "seed"), "-t", announce)
    assert made.returncode == 0, made.stderr
    link = made.stdout.strip()
    with libtorrent_seed(out, tmp_path / "seed"):
        opened = run(
            "bundle", "open", link, "-o", str(tmp_path / "plain"), "--no-dht", "--no-lsd", timeout_s=90.0,
        )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    same_tree(album, tmp_path / "plain")
