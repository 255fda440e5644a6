"""Renaming a torrent's files and folders (the core of torrent-rename-path)."""

from __future__ import annotations

import pytest

from bitswarm import renames
from bitswarm.errors import UsageError
from bitswarm.metainfo import Torrent
from helpers import PIECE, torrent_bytes, v1_info


def padded() -> Torrent:
    info = v1_info({"a": b"1" * 100, "b": b"2" * 100})
    info[b"files"] = [
        {b"length": 100, b"path": [b"dir", b"a"]},
        {b"attr": b"p", b"length": PIECE - 100, b"path": [b".pad", b"16284"]},
        {b"length": 100, b"path": [b"dir", b"b"]},
    ]
    info[b"pieces"] = b"x" * 40
    return Torrent.decode(torrent_bytes(info))


def test_a_file_a_folder_and_the_top_are_renamed_and_the_info_hash_stays() -> None:
    torrent = padded()
    renamed, old, new = renames.rename(torrent, "sample/dir/a", "first")
    assert (old, new) == (("sample", "dir", "a"), ("sample", "dir", "first"))
    assert [entry.path for entry in renamed.data_files()] == [("sample", "dir", "first"), ("sample", "dir", "b")]
    renamed = renames.replay(torrent, [["sample/dir", "disc"], ["sample", "Sample (2026)"]])
    assert renamed.name == "Sample (2026)"
    assert [entry.path for entry in renamed.files] == [
        ("Sample (2026)", "disc", "a"), ("Sample (2026)", ".pad", "16284"), ("Sample (2026)", "disc", "b"),
    ]  # fmt: skip
    assert renamed.info_hash_v1 == torrent.info_hash_v1
    assert [entry.offset for entry in renamed.files] == [entry.offset for entry in torrent.files]


def test_the_same_name_changes_nothing() -> None:
    torrent = padded()
    assert renames.rename(torrent, "sample/dir/a", "a")[0] is torrent


@pytest.mark.parametrize(
    ("path", "name", "why"),
    [
        ("sample/dir/a", "..", "not allowed"),
        ("sample/dir/a", ".", "not allowed"),
        ("sample/dir/a", "", "not allowed"),
        ("sample/dir/a", "x/y", "separator"),
        ("sample/dir/a", "x\\y", "separator"),
        ("sample/dir/a", "a\x00", "control"),
        ("sample/dir/a", "b", "collides"),
        ("sample/dir/a", "B", "collides"),
        ("sample/dir/a", "nul.txt", "portable"),
        ("sample/dir/a", "trailing. ", "portable"),
        ("sample/dir/a", "x" * 300, "portable"),
        ("sample/dir/missing", "x", "not in this torrent"),
        ("sample/.pad/16284", "x", "not in this torrent"),
        ("sample//dir", "x", "not a path"),
        ("", "x", "not a path"),
        ("/".join(["d"] * 100), "x", "not a path"),
    ],
)
def test_bad_renames_are_refused_with_the_reason(path: str, name: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        renames.rename(padded(), path, name)


def test_a_folder_may_not_become_a_file_of_the_same_name() -> None:
    info = v1_info({"a": b"1" * 10, "d/b": b"2" * 10})
    torrent = Torrent.decode(torrent_bytes(info))
    with pytest.raises(UsageError, match=r"collides|both a file and a folder"):
        renames.rename(torrent, "sample/a", "d")
