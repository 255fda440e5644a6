from __future__ import annotations

import os
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, auto_piece_length, create
from bitswarm.errors import UnsafePathError, UsageError
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.storage.verify import FileStatus, verify
from helpers import PIECE


@pytest.fixture(params=list(TorrentVersion), ids=lambda version: version.value)
def version(request: pytest.FixtureRequest) -> TorrentVersion:
    return request.param  # type: ignore[no-any-return]


def _make(folder: Path, version: TorrentVersion) -> Torrent:
    return Torrent.decode(create(folder, CreateOptions(version=version, piece_length=PIECE)))


def test_created_torrent_verifies_complete(sample_folder: Path, version: TorrentVersion) -> None:
    torrent = _make(sample_folder, version)
    assert torrent.version is version
    assert [entry.path[1:] for entry in torrent.data_files()] == [
        ("a.bin",),
        ("b", "c.bin"),
        ("b", "d.txt"),
        ("e", "f", "g.bin"),
        ("empty",),
    ]
    report = verify(torrent, sample_folder.parent)
    assert report.is_complete
    assert report.good_pieces == torrent.num_pieces


def test_one_flipped_byte_fails_exactly_its_piece(sample_folder: Path, version: TorrentVersion) -> None:
    torrent = _make(sample_folder, version)
    target = next(entry for entry in torrent.files if entry.path[-1] == "g.bin")
    with (sample_folder / "e/f/g.bin").open("r+b") as stream:
        stream.seek(40_000)
        byte = stream.read(1)
        stream.seek(40_000)
        stream.write(bytes([byte[0] ^ 0x55]))
    report = verify(torrent, sample_folder.parent)
    assert [index for index, good in enumerate(report.pieces) if not good] == [(target.offset + 40_000) // PIECE]
    statuses = {file.path[-1]: file.status for file in report.files}
    assert statuses["g.bin"] is FileStatus.BAD_PIECES
    assert not report.is_complete


def test_missing_and_truncated_files_fail_their_pieces(sample_folder: Path, version: TorrentVersion) -> None:
    torrent = _make(sample_folder, version)
    (sample_folder / "b/c.bin").unlink()
    os.truncate(sample_folder / "a.bin", 50_000)
    report = verify(torrent, sample_folder.parent)
    statuses = {file.path[-1]: file for file in report.files}
    assert statuses["c.bin"].status is FileStatus.MISSING
    assert statuses["a.bin"].status is FileStatus.TRUNCATED
    assert statuses["a.bin"].size_on_disk == 50_000
    a_bin = next(entry for entry in torrent.files if entry.path[-1] == "a.bin")
    bad = {index for index, good in enumerate(report.pieces) if not good}
    # The pieces wholly before the cut are still good; every piece from the cut on is bad.
    assert set(range(50_000 // PIECE)).isdisjoint(bad)
    assert set(range(50_000 // PIECE, (a_bin.length - 1) // PIECE + 1)) <= bad
    assert statuses["d.txt"].status is FileStatus.OK or version is TorrentVersion.V1


def test_too_long_file_is_reported_but_its_pieces_are_good(sample_folder: Path) -> None:
    torrent = _make(sample_folder, TorrentVersion.V2)
    with (sample_folder / "b/d.txt").open("ab") as stream:
        stream.write(b"extra")
    report = verify(torrent, sample_folder.parent)
    assert all(report.pieces)
    assert {file.path[-1]: file.status for file in report.files}["d.txt"] is FileStatus.TOO_LONG
    assert not report.is_complete


def test_single_file_torrent_lives_under_its_name(tmp_path: Path) -> None:
    (tmp_path / "movie.bin").write_bytes(os.urandom(70_000))
    torrent = Torrent.decode(create(tmp_path / "movie.bin", CreateOptions(piece_length=PIECE)))
    assert not torrent.is_multi_file
    assert [entry.path for entry in torrent.files] == [("movie.bin",)]
    assert verify(torrent, tmp_path).is_complete


def test_verify_will_not_follow_a_link_out_of_the_folder(sample_folder: Path, tmp_path: Path) -> None:
    torrent = _make(sample_folder, TorrentVersion.V1)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    os.symlink(sample_folder, downloads / "content")
    with pytest.raises(UnsafePathError):
        verify(torrent, downloads)


def test_creation_options_reach_the_torrent(sample_folder: Path) -> None:
    options = CreateOptions(
        version=TorrentVersion.V1,
        trackers=("http://a/announce", "udp://b:6969/announce"),
        web_seeds=("http://seed/",),
        private=True,
        comment="c",
        source="s",
        created_by="bitswarm/test",
        creation_date=1234,
    )
    torrent = Torrent.decode(create(sample_folder, options))
    assert torrent.trackers == (("http://a/announce",), ("udp://b:6969/announce",))
    assert torrent.web_seeds == ("http://seed/",)
    assert torrent.private
    assert (torrent.comment, torrent.source, torrent.created_by, torrent.creation_date) == (
        "c",
        "s",
        "bitswarm/test",
        1234,
    )


def test_create_refuses_empty_content_and_bad_piece_lengths(tmp_path: Path, sample_folder: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no data"):
        create(tmp_path / "empty", CreateOptions())
    with pytest.raises(UsageError, match="power of two"):
        create(sample_folder, CreateOptions(piece_length=20_000))
    with pytest.raises(UsageError, match="power of two"):
        create(sample_folder, CreateOptions(piece_length=8192))


def test_create_refuses_names_it_would_not_accept_from_others(tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "CON").write_bytes(b"data")
    with pytest.raises(UsageError, match="portable"):
        create(folder, CreateOptions())


def test_create_leaves_out_symbolic_links(sample_folder: Path) -> None:
    os.symlink("/etc/hostname", sample_folder / "link")
    torrent = Torrent.decode(create(sample_folder, CreateOptions(piece_length=PIECE)))
    assert all(entry.path[-1] != "link" for entry in torrent.files)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(1, 16 << 10), (100 << 20, 64 << 10), (1 << 30, 512 << 10), (1 << 40, 16 << 20)],
)
def test_automatic_piece_length(size: int, expected: int) -> None:
    assert auto_piece_length(size) == expected
