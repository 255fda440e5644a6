"""The interop drivers checked against each other, without bitswarm.

mktorrent, transmission-create and libtorrent (through lt_driver.py) make torrents of the
same small directory; libtorrent and transmission-show read them back; libtorrent checks
intact, corrupted, shortened and missing data. If these fail, no interop result means
anything.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .payload import FILE_SIZES, NAME, PIECE_LENGTH, TRACKERS, write_payload
from .tools import (
    ToolFailed,
    lt,
    mktorrent_create,
    require,
    transmission_create,
    transmission_show,
)

pytestmark = pytest.mark.interop


@dataclass(frozen=True, slots=True)
class Made:
    """The payload directory and the torrents made of it."""

    payload: Path
    torrents: dict[str, Path]  # "mktorrent", "transmission", "lt-v1", "lt-v2", "lt-hybrid"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("made")
    payload = write_payload(root, seed=20240601)
    out = root / "torrents"
    out.mkdir()
    torrents = {"mktorrent": out / "mk.torrent", "transmission": out / "tr.torrent"}
    mktorrent_create(payload, torrents["mktorrent"], piece_length_exp=15, trackers=TRACKERS, private=True)
    transmission_create(payload, torrents["transmission"], piece_size_kib=32, trackers=TRACKERS)
    for fmt in ("v1", "v2", "hybrid"):
        torrents[f"lt-{fmt}"] = out / f"lt-{fmt}.torrent"
        args = ["--format", fmt, "--piece-length", str(PIECE_LENGTH)]
        for url in TRACKERS:
            args += ["--tracker", url]
        lt("create", payload, torrents[f"lt-{fmt}"], *args)
    return Made(payload, torrents)


@pytest.fixture
def save_path(made: Made, tmp_path: Path) -> Path:
    """A fresh copy of the payload for one test to damage; returns the save path."""
    save = tmp_path / "save"
    shutil.copytree(made.payload, save / NAME)
    return save


def layout(info: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Map each non-pad file's path (without the torrent name) to (offset, size)."""
    offsets: dict[str, tuple[int, int]] = {}
    offset = 0
    for entry in info["files"]:
        if not entry["pad"]:
            offsets[entry["path"].removeprefix(f"{NAME}/")] = (offset, entry["size"])
        offset += entry["size"]
    assert offset == info["total_size"]
    return offsets


def pieces_missing(info: dict[str, Any], rel: str, start: int, end: int) -> list[bool]:
    """The expected check result when bytes [start, end) of file rel are bad."""
    offset, _size = layout(info)[rel]
    first, last = (offset + start) // info["piece_length"], (offset + end - 1) // info["piece_length"]
    return [not first <= index <= last for index in range(info["num_pieces"])]


def check(torrent: Path, save: Path) -> list[bool]:
    result = lt("check", torrent, save)
    assert result["num_pieces"] == len(result["pieces"])
    pieces: list[bool] = result["pieces"]
    return pieces


def test_a_missing_tool_fails_the_test_instead_of_skipping_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        require("bitswarm-no-such-tool")


def test_libtorrent_runs_under_the_system_python() -> None:
    version = lt("version")
    assert version["libtorrent_version"].startswith("2.0.")


@pytest.mark.parametrize("maker", ["mktorrent", "transmission"])
def test_libtorrent_and_transmission_read_v1_torrents_alike(made: Made, maker: str) -> None:
    info = lt("info", made.torrents[maker])
    show = transmission_show(made.torrents[maker])

    assert info["info_hash_v2"] is None
    assert info["info_hash_v1"] == show["info_hash"]
    assert info["name"] == show["name"] == NAME
    assert info["num_pieces"] == show["num_pieces"]
    assert info["piece_length"] == show["piece_length"] == PIECE_LENGTH
    assert info["total_size"] in show["total_size"]
    assert [f["path"] for f in info["files"]] == [path for path, _size in show["files"]]
    for entry, (_path, size) in zip(info["files"], show["files"], strict=True):
        assert entry["size"] in size
    assert info["trackers"] == show["trackers"] == [[url] for url in TRACKERS]
    assert info["private"] is show["private"] is (maker == "mktorrent")
    # transmission-create 3.00 leaves the 0-byte file out.
    expected = {rel: size for rel, size in FILE_SIZES.items() if size or maker == "mktorrent"}
    assert {f["path"]: f["size"] for f in info["files"]} == {f"{NAME}/{rel}": s for rel, s in expected.items()}
    assert info["total_size"] == info["content_size"] == sum(FILE_SIZES.values())


def test_mktorrent_and_libtorrent_make_the_same_v1_torrent(made: Made, tmp_path: Path) -> None:
    # The fixture's mktorrent torrent is private, and the private flag is in the info dict.
    public = tmp_path / "public.torrent"
    mktorrent_create(made.payload, public, piece_length_exp=15, trackers=TRACKERS)
    ours = lt("info", made.torrents["lt-v1"])
    assert not any(f["pad"] for f in ours["files"])
    assert lt("info", public) == ours


@pytest.mark.parametrize("fmt", ["v2", "hybrid"])
def test_libtorrent_v2_torrents_align_every_file_to_a_piece(made: Made, fmt: str) -> None:
    info = lt("info", made.torrents[f"lt-{fmt}"])
    assert (info["info_hash_v1"] is not None) is (fmt == "hybrid")
    assert len(info["info_hash_v2"]) == 64
    assert info["content_size"] == sum(FILE_SIZES.values())
    assert info["total_size"] == info["num_pieces"] * PIECE_LENGTH
    for rel, (offset, size) in layout(info).items():
        assert size == 0 or offset % PIECE_LENGTH == 0, rel
    pads = [f for f in info["files"] if f["pad"]]
    assert pads
    assert all(f["path"] == f"{NAME}/.pad/{f['size']}" for f in pads)


@pytest.mark.parametrize("fmt", ["v2", "hybrid"])
def test_transmission_show_rejects_torrents_with_a_file_tree(made: Made, fmt: str) -> None:
    with pytest.raises(ToolFailed, match=r"Error parsing \.torrent file"):
        transmission_show(made.torrents[f"lt-{fmt}"])


KINDS = ["mktorrent", "lt-v2", "lt-hybrid"]


@pytest.mark.parametrize("kind", KINDS)
def test_check_passes_intact_data_without_touching_it(made: Made, save_path: Path, kind: str) -> None:
    # lt_driver itself fails the check if anything in the save path changed.
    info = lt("info", made.torrents[kind])
    assert check(made.torrents[kind], save_path) == [True] * info["num_pieces"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("rel", "position"), [("c.bin", 50_000), ("sub/b.bin", 0), ("sub/e.bin", 776)])
def test_check_fails_exactly_the_piece_with_a_flipped_byte(
    made: Made, save_path: Path, kind: str, rel: str, position: int
) -> None:
    path = save_path / NAME / rel
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))
    info = lt("info", made.torrents[kind])
    expected = pieces_missing(info, rel, position, position + 1)
    assert expected.count(False) == 1
    assert check(made.torrents[kind], save_path) == expected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rel", ["a.bin", "c.bin", "sub/e.bin"])
def test_check_fails_the_pieces_of_a_deleted_file(made: Made, save_path: Path, kind: str, rel: str) -> None:
    (save_path / NAME / rel).unlink()
    info = lt("info", made.torrents[kind])
    assert check(made.torrents[kind], save_path) == pieces_missing(info, rel, 0, FILE_SIZES[rel])
    assert not (save_path / NAME / rel).exists()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("rel", "new_size"), [("c.bin", 40_000), ("d.bin", PIECE_LENGTH), ("a.bin", 0)])
def test_check_fails_the_pieces_past_the_end_of_a_truncated_file(
    made: Made, save_path: Path, kind: str, rel: str, new_size: int
) -> None:
    path = save_path / NAME / rel
    path.write_bytes(path.read_bytes()[:new_size])
    info = lt("info", made.torrents[kind])
    expected = pieces_missing(info, rel, new_size, FILE_SIZES[rel])
    assert check(made.torrents[kind], save_path) == expected
    assert path.stat().st_size == new_size


@pytest.mark.parametrize("kind", KINDS)
def test_check_neither_needs_nor_creates_a_missing_empty_file(made: Made, save_path: Path, kind: str) -> None:
    (save_path / NAME / "empty").unlink()
    info = lt("info", made.torrents[kind])
    assert check(made.torrents[kind], save_path) == [True] * info["num_pieces"]
    assert not (save_path / NAME / "empty").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_check_of_an_empty_save_path_has_no_pieces(made: Made, tmp_path: Path, kind: str) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    info = lt("info", made.torrents[kind])
    assert check(made.torrents[kind], empty) == [False] * info["num_pieces"]
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_check_reads_an_oversized_file_only_up_to_its_length(made: Made, save_path: Path, kind: str) -> None:
    path = save_path / NAME / "a.bin"
    with path.open("ab") as extra:
        extra.write(b"\0" * 5000)
    info = lt("info", made.torrents[kind])
    assert check(made.torrents[kind], save_path) == [True] * info["num_pieces"]
    assert path.stat().st_size == FILE_SIZES["a.bin"] + 5000


def test_lt_driver_failure_raises_tool_failed_with_its_message(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.torrent"
    bogus.write_bytes(b"d4:infoi1ee")
    with pytest.raises(ToolFailed, match="libtorrent rejected the torrent"):
        lt("info", bogus)
