from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bitswarm import bencode
from bitswarm.create import CreateOptions, create
from bitswarm.errors import DecodeError, MetainfoError, UnsafePathError
from bitswarm.metainfo import Torrent, TorrentVersion, read_torrent_file
from helpers import PIECE, torrent_bytes, v1_info


def test_single_file_v1_torrent_reads_every_field() -> None:
    info = v1_info()
    info[b"private"] = 1
    info[b"source"] = b"bitswarm-tests"
    data = torrent_bytes(
        info,
        announce=b"http://tracker.example/announce",
        comment=b"hello",
        created_by=b"tests",
        creation_date=1_700_000_000,
        url_list=b"http://seed.example/file",
    )
    torrent = Torrent.decode(data)
    assert torrent.version is TorrentVersion.V1
    assert torrent.name == "sample"
    assert [(entry.path, entry.length) for entry in torrent.files] == [(("sample",), 40000)]
    assert not torrent.is_multi_file
    assert torrent.num_pieces == 3
    assert torrent.piece_size(2) == 40000 - 2 * PIECE
    assert torrent.trackers == (("http://tracker.example/announce",),)
    assert torrent.web_seeds == ("http://seed.example/file",)
    assert torrent.private
    assert torrent.source == "bitswarm-tests"
    assert (torrent.comment, torrent.created_by, torrent.creation_date) == ("hello", "tests", 1_700_000_000)
    assert torrent.info_hash_v1 == hashlib.sha1(bencode.encode(info)).digest()
    assert torrent.info_hash_v2 is None


def test_announce_list_tiers_win_over_announce() -> None:
    data = torrent_bytes(
        v1_info(),
        announce=b"http://a/announce",
        announce_list=[[b"http://b/announce", b"udp://c:80"], [], [b"http://d/announce"]],
    )
    assert Torrent.decode(data).trackers == (("http://b/announce", "udp://c:80"), ("http://d/announce",))


def test_multi_file_paths_start_with_the_torrent_name_and_offsets_follow_the_stream() -> None:
    torrent = Torrent.decode(torrent_bytes(v1_info({"a/x.bin": b"1" * 20000, "b.bin": b"2" * 30000})))
    assert [(entry.path, entry.offset) for entry in torrent.files] == [
        (("sample", "a", "x.bin"), 0),
        (("sample", "b.bin"), 20000),
    ]
    assert torrent.is_multi_file
    assert torrent.num_pieces == 4


def test_info_hash_is_taken_over_the_bytes_as_received_even_with_unsorted_keys() -> None:
    info = v1_info()
    canonical = bencode.encode(info)
    # Move "name" after "pieces": same content, different bytes.
    name_entry = b"4:name6:sample"
    unsorted = canonical.replace(name_entry, b"")[:-1] + name_entry + b"e"
    data = b"d4:info" + unsorted + b"e"
    with pytest.raises(DecodeError, match="out of order"):
        Torrent.decode(data)
    torrent = read_torrent_file(data)
    assert torrent.info == unsorted
    assert torrent.info_hash_v1 == hashlib.sha1(unsorted).digest()
    assert torrent.info_hash_v1 != hashlib.sha1(canonical).digest()
    assert torrent.warnings
    assert "out of order" in torrent.warnings[0]


def test_trailing_garbage_after_the_torrent_is_rejected() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        read_torrent_file(torrent_bytes(v1_info()) + b"\n")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({b"piece length": 0}, "info.piece length"),
        ({b"piece length": -16384}, "info.piece length"),
        ({b"piece length": 1 << 40}, "info.piece length"),
        ({b"pieces": b"x" * 19}, "info.pieces"),
        ({b"pieces": b"x" * 40}, "info.pieces"),
        ({b"length": -1}, "info.length"),
        ({b"length": b"40000"}, "info.length"),
        ({b"name": 5}, "info.name"),
        ({b"files": []}, "info"),
    ],
)
def test_broken_v1_fields_are_named_in_the_error(change: dict[bytes, bencode.Encodable], field: str) -> None:
    info = v1_info()
    info.update(change)
    with pytest.raises(MetainfoError) as caught:
        Torrent.decode(torrent_bytes(info))
    assert caught.value.field == field


def test_a_torrent_without_info_or_with_no_data_is_rejected() -> None:
    with pytest.raises(MetainfoError, match="info"):
        Torrent.decode(bencode.encode({b"announce": b"x"}))
    with pytest.raises(MetainfoError, match="no data"):
        Torrent.decode(torrent_bytes(v1_info({"empty": b""})))


@pytest.mark.parametrize(
    "path",
    [
        [b".."],
        [b"a", b"..", b"b"],
        [b"."],
        [b""],
        [b"/etc/passwd"],
        [b"a/b"],
        [b"a\\b"],
        [b"..\\..\\evil"],
        [b"C:"],
        [b"c:evil"],
        [b"nul\x00byte"],
        [b"line\nbreak"],
        [],
    ],
)
def test_hostile_paths_are_refused(path: list[bytes]) -> None:
    info = v1_info({"ok": b"data"})
    info[b"files"] = [{b"length": 4, b"path": path}]
    with pytest.raises(MetainfoError):
        Torrent.decode(torrent_bytes(info))


@pytest.mark.parametrize("name", [b"..", b".", b"", b"a/b", b"/abs"])
def test_hostile_names_are_refused(name: bytes) -> None:
    with pytest.raises(UnsafePathError):
        Torrent.decode(torrent_bytes(v1_info(name=name.decode())))


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        (b"CON", "CON_"),
        (b"con.txt", "con_.txt"),
        (b"LPT1", "LPT1_"),
        (b"name. ", "name__"),
        (b"trailing...", "trailing___"),
        (b"caf\xc3\xa9", "caf\u00e9"),
        (b"bad\xffutf8", "bad\ufffdutf8"),
    ],
)
def test_awkward_names_are_made_portable(element: bytes, expected: str) -> None:
    info = v1_info({"x": b"data"})
    info[b"files"] = [{b"length": 4, b"path": [element]}]
    assert Torrent.decode(torrent_bytes(info)).files[0].path == ("sample", expected)


def test_over_long_names_are_shortened_keeping_the_extension() -> None:
    info = v1_info({"x": b"data"})
    long_name = ("\u00e9" * 300 + ".mkv").encode()
    info[b"files"] = [{b"length": 4, b"path": [long_name]}]
    element = Torrent.decode(torrent_bytes(info)).files[0].path[1]
    assert element.endswith(".mkv")
    assert len(element.encode()) <= 255


def test_path_utf8_is_preferred_to_path() -> None:
    info = v1_info({"x": b"data"})
    info[b"files"] = [{b"length": 4, b"path": [b"legacy"], b"path.utf-8": [b"unicode"]}]
    assert Torrent.decode(torrent_bytes(info)).files[0].path == ("sample", "unicode")


@pytest.mark.parametrize(
    "paths",
    [
        ["a", "a"],
        ["Readme", "README"],
        ["a", "a/b"],
        ["a/b", "a"],
        ["CON", "CON_"],
    ],
)
def test_files_that_would_land_on_one_path_are_refused(paths: list[str]) -> None:
    info = v1_info({"x": b"12345678"})
    info[b"files"] = [{b"length": 4, b"path": [part.encode() for part in path.split("/")]} for path in paths]
    with pytest.raises(UnsafePathError, match=r"collides|both a file and a folder"):
        Torrent.decode(torrent_bytes(info))


def test_pad_files_are_kept_in_the_stream_but_are_not_data() -> None:
    info = v1_info({"a": b"1" * 100, "b": b"2" * 100})
    info[b"files"] = [
        {b"length": 100, b"path": [b"a"]},
        {b"attr": b"p", b"length": PIECE - 100, b"path": [b".pad", b"16284"]},
        {b"length": 100, b"path": [b"b"]},
    ]
    info[b"pieces"] = b"x" * 40
    torrent = Torrent.decode(torrent_bytes(info))
    assert [entry.path for entry in torrent.data_files()] == [("sample", "a"), ("sample", "b")]
    assert torrent.files[2].offset == PIECE
    assert torrent.total_size == 200


def test_symlink_targets_are_checked_like_paths() -> None:
    info = v1_info({"a": b"data"})
    info[b"files"] = [
        {b"length": 4, b"path": [b"a"]},
        {b"attr": b"l", b"length": 0, b"path": [b"link"], b"symlink path": [b"..", b"etc"]},
    ]
    with pytest.raises(UnsafePathError):
        Torrent.decode(torrent_bytes(info))


@pytest.fixture
def v2_data(sample_folder: Path) -> bytes:
    return create(sample_folder, CreateOptions(version=TorrentVersion.V2, piece_length=PIECE))


def test_v2_torrent_has_sha256_info_hash_and_aligned_files(v2_data: bytes) -> None:
    torrent = Torrent.decode(v2_data)
    assert torrent.version is TorrentVersion.V2
    assert torrent.info_hash_v1 is None
    assert torrent.info_hash_v2 == hashlib.sha256(torrent.info).digest()
    for entry in torrent.data_files():
        assert entry.offset % PIECE == 0
        assert (entry.pieces_root is None) == (entry.length == 0)


def _edit_top(data: bytes, edit: dict[bytes, bencode.Encodable]) -> bytes:
    top = bencode.decode(data)
    assert isinstance(top, dict)
    top.update(edit)  # type: ignore[arg-type]
    return bencode.encode(top)


def test_v2_piece_layer_that_does_not_hash_to_its_root_is_refused(v2_data: bytes) -> None:
    top = bencode.decode(v2_data)
    assert isinstance(top, dict)
    layers = top[b"piece layers"]
    assert isinstance(layers, dict)
    root, layer = next(iter(layers.items()))
    assert isinstance(layer, bytes)
    tampered = _edit_top(v2_data, {b"piece layers": {**layers, root: bytes([layer[0] ^ 1]) + layer[1:]}})
    with pytest.raises(MetainfoError, match="does not hash to the root"):
        Torrent.decode(tampered)


def test_v2_torrent_without_piece_layers_is_refused_from_a_file_but_not_from_bare_info(v2_data: bytes) -> None:
    top = bencode.decode(v2_data)
    assert isinstance(top, dict)
    del top[b"piece layers"]
    with pytest.raises(MetainfoError, match="piece layers"):
        Torrent.decode(bencode.encode(top))
    bare = Torrent.from_info(Torrent.decode(v2_data).info)
    assert bare.piece_layers == {}


def test_unknown_meta_version_is_refused(v2_data: bytes) -> None:
    torrent = Torrent.decode(v2_data)
    info = bencode.decode(torrent.info)
    assert isinstance(info, dict)
    info[b"meta version"] = 3
    with pytest.raises(MetainfoError, match="meta version"):
        Torrent.from_info(bencode.encode(info))


def test_hybrid_whose_two_halves_disagree_is_refused(sample_folder: Path) -> None:
    data = create(sample_folder, CreateOptions(version=TorrentVersion.HYBRID, piece_length=PIECE))
    torrent = Torrent.decode(data)
    assert torrent.version is TorrentVersion.HYBRID
    info = bencode.decode(torrent.info)
    assert isinstance(info, dict)
    files = info[b"files"]
    assert isinstance(files, list)
    first = files[0]
    assert isinstance(first, dict)
    first[b"length"] = 99_999  # the v1 list now disagrees with the v2 tree
    with pytest.raises(MetainfoError, match="differ"):
        Torrent.from_info(bencode.encode(info))


def test_hybrid_keeps_v1_pads_and_v2_roots_on_the_same_files(sample_folder: Path) -> None:
    torrent = Torrent.decode(create(sample_folder, CreateOptions(version=TorrentVersion.HYBRID, piece_length=PIECE)))
    assert any(entry.is_pad for entry in torrent.files)
    for entry in torrent.data_files():
        assert entry.offset % PIECE == 0
        assert (entry.pieces_root is None) == (entry.length == 0)
    assert len(torrent.piece_hashes_v1) == 20 * torrent.num_pieces


def test_magnet_of_a_hybrid_carries_both_hashes(sample_folder: Path) -> None:
    options = CreateOptions(trackers=("http://t/announce",), web_seeds=("http://w/",))
    torrent = Torrent.decode(create(sample_folder, options))
    link = torrent.magnet()
    assert (link.info_hash_v1, link.info_hash_v2) == (torrent.info_hash_v1, torrent.info_hash_v2)
    assert link.display_name == "content"
    assert link.trackers == ("http://t/announce",)
    assert link.web_seeds == ("http://w/",)


@pytest.mark.parametrize(("value", "private"), [(0, False), (1, True), (2, True), (-1, True)])
def test_any_private_integer_but_0_makes_the_torrent_private(value: int, private: bool) -> None:
    """Issue 16: as libtorrent reads it, so a private=2 torrent never reaches the DHT."""
    info = v1_info()
    info[b"private"] = value
    assert Torrent.decode(torrent_bytes(info)).private is private


def test_a_private_value_that_is_not_an_integer_is_refused() -> None:
    info = v1_info()
    info[b"private"] = b"1"
    with pytest.raises(MetainfoError, match=r"info\.private: missing or not an integer"):
        Torrent.decode(torrent_bytes(info))


def multi_file_info(raw_paths: list[list[bytes]], **extra: object) -> dict[bytes, object]:
    info = v1_info({f"f{index}": b"x" * 100 for index in range(len(raw_paths))})
    files = info[b"files"]
    assert isinstance(files, list)
    for item, raw in zip(files, raw_paths, strict=True):
        assert isinstance(item, dict)
        item[b"path"] = raw
    info.update(extra)  # type: ignore[arg-type]
    return info


def test_a_name_that_is_not_utf8_shows_each_invalid_byte_as_a_stand_in_and_says_so() -> None:
    """Issue 16: invalid bytes and overlong encodings (C0 AE, an overlong '.') become U+FFFD."""
    torrent = Torrent.decode(torrent_bytes(multi_file_info([[b"caf\xe9.txt"], [b"\xc0\xae"], [b"ok.txt"]])))
    paths = [entry.path[1:] for entry in torrent.data_files()]
    assert paths == [("caf\ufffd.txt",), ("\ufffd\ufffd",), ("ok.txt",)]
    assert torrent.warnings == ("2 names not valid UTF-8: each invalid byte is shown as U+FFFD",)


def test_path_utf8_wins_when_it_is_valid_and_is_ignored_when_it_is_not() -> None:
    info = multi_file_info([[b"caf\xe9.txt"], [b"b.txt"]])
    files = info[b"files"]
    assert isinstance(files, list)
    files[0][b"path.utf-8"] = ["café.txt".encode()]
    files[1][b"path.utf-8"] = [b"\xff.txt"]
    info[b"name.utf-8"] = b"\xfe"
    torrent = Torrent.decode(torrent_bytes(info))
    assert [entry.path for entry in torrent.data_files()] == [("sample", "café.txt"), ("sample", "b.txt")]
    assert torrent.warnings == ()


def test_two_names_that_meet_after_the_stand_in_are_a_collision() -> None:
    with pytest.raises(UnsafePathError, match="collides"):
        Torrent.decode(torrent_bytes(multi_file_info([[b"a\xff"], [b"a\xfe"]])))
