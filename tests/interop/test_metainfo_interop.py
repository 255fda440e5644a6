"""bitswarm's torrents against the real tools, and theirs against bitswarm.

libtorrent (Debian's python3-libtorrent, through lt_driver.py), mktorrent and
Transmission 3.00's transmission-create and transmission-show. A missing tool fails.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bitswarm.metainfo import Torrent, read_torrent_file
from bitswarm.storage.verify import verify

from .payload import FILE_SIZES, NAME, PIECE_LENGTH, TRACKERS, write_payload
from .tools import lt, mktorrent_create, require, transmission_create, transmission_show

pytestmark = pytest.mark.interop

WEB_SEED = "http://127.0.0.1:3/files/"


@pytest.fixture
def content(tmp_path: Path) -> Path:
    return write_payload(tmp_path / "data", seed=20261121)


def bitswarm_create(content: Path, out: Path, version: str, *extra: str) -> None:
    argv = [sys.executable, "-m", "bitswarm", "create", str(content), "-o", str(out), f"--{version}"]
    argv += ["--piece-length", str(PIECE_LENGTH), *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def data_files(torrent: Torrent) -> list[tuple[str, int]]:
    return [("/".join(entry.path), entry.length) for entry in torrent.data_files()]


def lt_data_files(facts: dict[str, object]) -> list[tuple[str, int]]:
    files = facts["files"]
    assert isinstance(files, list)
    return [(file["path"], file["size"]) for file in files if not file["pad"]]


def hex_or_none(digest: bytes | None) -> str | None:
    return digest.hex() if digest is not None else None


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_libtorrent_reads_bitswarm_torrents_with_the_same_hashes(content: Path, tmp_path: Path, version: str) -> None:
    out = tmp_path / f"{version}.torrent"
    trackers = [argument for url in TRACKERS for argument in ("-t", url)]
    bitswarm_create(content, out, version, *trackers, "-w", WEB_SEED, "--private")
    ours = Torrent.decode(out.read_bytes())
    theirs = lt("info", out)
    assert theirs["info_hash_v1"] == hex_or_none(ours.info_hash_v1)
    assert theirs["info_hash_v2"] == hex_or_none(ours.info_hash_v2)
    assert (theirs["info_hash_v1"] is None, theirs["info_hash_v2"] is None) == (version == "v2", version == "v1")
    assert theirs["name"] == NAME
    assert theirs["num_pieces"] == ours.num_pieces
    assert theirs["piece_length"] == PIECE_LENGTH
    assert theirs["content_size"] == sum(FILE_SIZES.values())
    assert lt_data_files(theirs) == data_files(ours)
    assert theirs["trackers"] == [[url] for url in TRACKERS]
    assert theirs["web_seeds"] == [WEB_SEED]
    assert theirs["private"] is True


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_a_folder_of_one_file_reads_as_libtorrent_reads_it(tmp_path: Path, version: str) -> None:
    # BEP 52's file tree cannot put one file under a folder name: libtorrent reads a v2
    # torrent of a folder of one file as that file alone, and a hybrid by its v1 list.
    folder = tmp_path / "album"
    folder.mkdir()
    (folder / "only.bin").write_bytes(random.Random(5).randbytes(100_000))
    out = tmp_path / f"{version}.torrent"
    bitswarm_create(folder, out, version)
    ours = Torrent.decode(out.read_bytes())
    theirs = lt("info", out)
    assert theirs["info_hash_v1"] == hex_or_none(ours.info_hash_v1)
    assert theirs["info_hash_v2"] == hex_or_none(ours.info_hash_v2)
    assert theirs["name"] == ours.name == ("only.bin" if version == "v2" else "album")
    assert lt_data_files(theirs) == data_files(ours)
    assert verify(ours, tmp_path if version != "v2" else folder).is_complete


def test_transmission_reads_bitswarm_v1_torrents_with_the_same_hash(content: Path, tmp_path: Path) -> None:
    out = tmp_path / "v1.torrent"
    bitswarm_create(content, out, "v1", "-t", TRACKERS[0])
    ours = Torrent.decode(out.read_bytes())
    shown = transmission_show(out)
    assert shown["info_hash"] == hex_or_none(ours.info_hash_v1)
    assert shown["name"] == NAME
    assert shown["num_pieces"] == ours.num_pieces
    assert shown["piece_length"] == PIECE_LENGTH
    assert [path for path, _ in shown["files"]] == [path for path, _ in data_files(ours)]
    for (_, shown_size), (_, size) in zip(shown["files"], data_files(ours), strict=True):
        assert size in shown_size
    assert shown["trackers"] == [[TRACKERS[0]]]


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_transmission_3_refuses_bep52_torrents_as_the_readme_says(content: Path, tmp_path: Path, version: str) -> None:
    out = tmp_path / f"{version}.torrent"
    bitswarm_create(content, out, version)
    done = subprocess.run(
        [require("transmission-show"), str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "Error parsing" in done.stderr


def _made_by_mktorrent(content: Path, out: Path) -> None:
    mktorrent_create(content, out, piece_length_exp=15, trackers=TRACKERS)


def _made_by_transmission(content: Path, out: Path) -> None:
    transmission_create(content, out, piece_size_kib=PIECE_LENGTH // 1024, trackers=TRACKERS)


def _made_by_libtorrent(version: str) -> Callable[[Path, Path], None]:
    def make(content: Path, out: Path) -> None:
        lt("create", content, out, "--format", version, "--piece-length", str(PIECE_LENGTH), "--tracker", TRACKERS[0])

    return make


MAKERS = {
    "mktorrent": _made_by_mktorrent,
    "transmission-create": _made_by_transmission,
    "libtorrent-v1": _made_by_libtorrent("v1"),
    "libtorrent-v2": _made_by_libtorrent("v2"),
    "libtorrent-hybrid": _made_by_libtorrent("hybrid"),
}


@pytest.mark.parametrize("maker", list(MAKERS))
def test_bitswarm_reads_real_tools_torrents_with_the_same_hashes(content: Path, tmp_path: Path, maker: str) -> None:
    out = tmp_path / f"{maker}.torrent"
    MAKERS[maker](content, out)
    ours = read_torrent_file(out.read_bytes())
    theirs = lt("info", out)
    assert hex_or_none(ours.info_hash_v1) == theirs["info_hash_v1"]
    assert hex_or_none(ours.info_hash_v2) == theirs["info_hash_v2"]
    assert ours.num_pieces == theirs["num_pieces"]
    assert ours.piece_length == theirs["piece_length"]
    assert data_files(ours) == lt_data_files(theirs)
    assert ours.total_size == theirs["content_size"]
    if maker in ("mktorrent", "transmission-create"):
        shown = transmission_show(out)
        assert hex_or_none(ours.info_hash_v1) == shown["info_hash"]
    # The info-hash is over the bytes as written, whichever tool wrote them.
    assert verify(ours, content.parent).is_complete


def _flip_bytes(content: Path) -> None:
    for relative, position in (("a.bin", 0), ("c.bin", PIECE_LENGTH), ("sub/b.bin", 39_999)):
        with (content / relative).open("r+b") as stream:
            stream.seek(position)
            byte = stream.read(1)
            stream.seek(position)
            stream.write(bytes([byte[0] ^ 0x80]))


def _delete_file(content: Path) -> None:
    (content / "d.bin").unlink()


def _truncate_files(content: Path) -> None:
    os.truncate(content / "c.bin", PIECE_LENGTH + 5)
    os.truncate(content / "sub/e.bin", 0)


def _remove_everything(content: Path) -> None:
    shutil.rmtree(content)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "intact": lambda content: None,
    "flipped-bytes": _flip_bytes,
    "deleted-file": _delete_file,
    "truncated-files": _truncate_files,
    "nothing-on-disk": _remove_everything,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("maker", ["bitswarm-v1", "bitswarm-v2", "bitswarm-hybrid", "libtorrent-hybrid", "mktorrent"])
def test_verify_agrees_with_libtorrent_piece_for_piece(content: Path, tmp_path: Path, maker: str, damage: str) -> None:
    out = tmp_path / "t.torrent"
    if maker.startswith("bitswarm-"):
        bitswarm_create(content, out, maker.removeprefix("bitswarm-"))
    else:
        MAKERS[maker](content, out)
    DAMAGE[damage](content)
    ours = verify(read_torrent_file(out.read_bytes()), content.parent)
    theirs = lt("check", out, content.parent)
    assert list(ours.pieces) == theirs["pieces"]
    assert ours.is_complete == (damage == "intact")


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_single_file_torrents_agree_with_libtorrent_both_ways(tmp_path: Path, version: str) -> None:
    movie = tmp_path / "movie.bin"
    movie.write_bytes(random.Random(5).randbytes(3 * PIECE_LENGTH + 99))
    ours_path, theirs_path = tmp_path / "ours.torrent", tmp_path / "theirs.torrent"
    bitswarm_create(movie, ours_path, version)
    lt("create", movie, theirs_path, "--format", version, "--piece-length", str(PIECE_LENGTH))
    for path in (ours_path, theirs_path):
        ours, theirs = read_torrent_file(path.read_bytes()), lt("info", path)
        assert (hex_or_none(ours.info_hash_v1), hex_or_none(ours.info_hash_v2)) == (
            theirs["info_hash_v1"],
            theirs["info_hash_v2"],
        )
        assert data_files(ours) == lt_data_files(theirs) == [("movie.bin", movie.stat().st_size)]
        assert ours.num_pieces == theirs["num_pieces"]
        assert list(verify(ours, tmp_path).pieces) == lt("check", path, tmp_path)["pieces"]
