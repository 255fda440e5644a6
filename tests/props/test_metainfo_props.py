"""Property tests for reading .torrent files (BEP 3, BEP 52, BEP 47).

Small real torrents made by ``create`` are damaged at every byte, in several ways, and
cut at every length; hypothesis builds info dictionaries both coherent and not. Reading
must succeed or raise ``DecodeError``/``MetainfoError``, and what it accepts must keep
the invariants storage and the peer engine rely on: safe paths, consistent piece counts,
and info-hashes taken over the info dictionary exactly as received.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from bitswarm import bencode, merkle
from bitswarm.create import CreateOptions, create
from bitswarm.errors import DecodeError, MetainfoError
from bitswarm.metainfo import MAX_PIECE_LENGTH, Torrent, TorrentVersion, read_torrent_file

PIECE = 16 * 1024
# Each byte of each torrent is replaced by each of these, then deleted; see _mutations.
_REPLACEMENTS: tuple[Callable[[int], int], ...] = (
    lambda b: b ^ 0x01,
    lambda b: b ^ 0x80,
    lambda b: b ^ 0xFF,
    lambda _: ord("0"),
    lambda _: ord("9"),
    lambda _: ord("e"),
    lambda _: ord(":"),
    lambda _: ord("i"),
    lambda _: ord("l"),
    lambda _: ord("d"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Reader = Callable[[bytes], Torrent]
READERS: dict[str, Reader] = {"strict": Torrent.decode, "from_file": read_torrent_file}


# --- what every accepted torrent must satisfy ----------------------------------------


def _check_path(path: tuple[str, ...]) -> None:
    assert path, "empty path"
    for element in path:
        assert element not in ("", ".", ".."), path
        assert "/" not in element, path
        assert "\\" not in element, path
        assert "\x00" not in element, path
        assert _CONTROL.search(element) is None, path
        assert len(element.encode()) <= 255, path


def check_invariants(torrent: Torrent, data: bytes) -> None:
    """Assert what storage and the engine trust about a ``Torrent`` read from ``data``."""
    document = bencode.decode_document(data, allow_unsorted_keys=True)
    start, end = document.spans[b"info"]
    raw_info = data[start:end]
    assert torrent.info == raw_info
    if torrent.has_v1:
        assert torrent.info_hash_v1 == hashlib.sha1(raw_info).digest()
    else:
        assert torrent.info_hash_v1 is None
    if torrent.has_v2:
        assert torrent.info_hash_v2 == hashlib.sha256(raw_info).digest()
        assert torrent.piece_length >= merkle.BLOCK_SIZE
        assert torrent.piece_length & (torrent.piece_length - 1) == 0
    else:
        assert torrent.info_hash_v2 is None

    assert 0 < torrent.piece_length <= MAX_PIECE_LENGTH
    _check_path((torrent.name,))
    assert torrent.files
    assert torrent.total_size > 0
    for entry in torrent.files:
        _check_path(entry.path)
        assert entry.path[0] == torrent.name
        if entry.symlink_target is not None:
            _check_path(entry.symlink_target)
        assert entry.length >= 0
        assert entry.offset >= 0
        if entry.length:  # an empty file takes no room, wherever it sorts
            assert entry.offset + entry.length <= torrent.stream_size
        for index in entry.piece_range(torrent.piece_length):
            assert 0 <= index < torrent.num_pieces
        if torrent.has_v2 and not entry.is_pad and entry.length:
            assert entry.pieces_root is not None
            assert len(entry.pieces_root) == merkle.HASH_SIZE

    pl = torrent.piece_length
    if torrent.has_v1:
        # The v1 piece stream is the files (pads included) back to back.
        offset = 0
        for entry in torrent.files:
            assert entry.offset == offset
            offset += entry.length
        assert torrent.stream_size == max(entry.offset + entry.length for entry in torrent.files if entry.length)
        assert len(torrent.piece_hashes_v1) == torrent.num_pieces * 20
    else:
        # v2: each file starts on a piece boundary and has its own pieces.
        assert torrent.num_pieces == sum(-(-entry.length // pl) for entry in torrent.files)
        for entry in torrent.files:
            assert entry.offset % pl == 0
    assert torrent.num_pieces >= 1
    assert sum(torrent.piece_size(i) for i in range(torrent.num_pieces)) == torrent.stream_size

    # No two files on one path, even differing only in case, and no file that is a folder.
    real = [tuple(e.casefold() for e in entry.path) for entry in torrent.files if not entry.is_pad]
    assert len(set(real)) == len(real)
    folders = {path[:depth] for path in real for depth in range(1, len(path))}
    assert not folders & set(real)
    if not torrent.is_multi_file:
        assert [entry.path for entry in torrent.files] == [(torrent.name,)]
    for tier in torrent.trackers:
        assert tier
        assert all(url and url == url.strip() for url in tier)
    assert all(url and url == url.strip() for url in torrent.web_seeds)
    if torrent.info_hash_v1 is not None or torrent.info_hash_v2 is not None:
        link = torrent.magnet()
        assert (link.info_hash_v1, link.info_hash_v2) == (torrent.info_hash_v1, torrent.info_hash_v2)


def _read(reader: Reader, data: bytes) -> str | None:
    """Read ``data``; return None if all is well, else what went wrong."""
    try:
        torrent = reader(data)
    except (DecodeError, MetainfoError) as error:
        if isinstance(error, DecodeError) and not 0 <= error.offset <= len(data):
            return f"DecodeError offset {error.offset} outside 0..{len(data)}"
        return None
    except Exception as error:  # the property under test: nothing else may escape
        return f"{type(error).__name__}: {error}"
    try:
        check_invariants(torrent, data)
    except AssertionError as error:
        return f"accepted, but an invariant fails: {error!r}"
    return None


# --- small real torrents ---------------------------------------------------------------


@pytest.fixture(scope="module")
def torrents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Torrents of a folder (an empty file, one bigger than a piece) and of one file."""
    rng = random.Random(2024)
    base = tmp_path_factory.mktemp("props-metainfo")
    folder = base / "content"
    for relative, size in {"big.bin": 40_000, "empty": 0, "small.txt": 5, "sub/x.bin": 100}.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(size))
    single = base / "one.bin"
    single.write_bytes(rng.randbytes(20_000))
    made: dict[str, bytes] = {}
    for source in (folder, single):
        for version in TorrentVersion:
            options = CreateOptions(
                version=version,
                piece_length=PIECE,
                trackers=("http://t.example/a", "udp://u.example:80"),
                web_seeds=("http://w.example/",),
                private=True,
                comment="c",
                source="s",
                creation_date=1,
            )
            made[f"{source.name}-{version.value}"] = create(Path(source), options, workers=1)
    return made


TORRENT_IDS = [f"{source}-{version.value}" for source in ("content", "one.bin") for version in TorrentVersion]


def _mutations(data: bytes) -> Iterator[tuple[str, bytes]]:
    for position, byte in enumerate(data):
        for number, replace in enumerate(_REPLACEMENTS):
            new = replace(byte)
            if new != byte:
                yield (
                    f"byte {position} -> {new:#04x} (#{number})",
                    data[:position] + bytes([new]) + data[position + 1 :],
                )
        yield f"byte {position} deleted", data[:position] + data[position + 1 :]


@pytest.mark.parametrize("name", TORRENT_IDS)
def test_made_torrents_are_small_and_valid(torrents: dict[str, bytes], name: str) -> None:
    data = torrents[name]
    assert len(data) < 2048
    for reader in READERS.values():
        torrent = reader(data)
        check_invariants(torrent, data)
        assert torrent.warnings == ()
    torrent = Torrent.decode(data)
    assert torrent.version.value == name.rsplit("-", 1)[1]
    assert torrent.is_multi_file == name.startswith("content")
    assert torrent.total_size == (40_105 if torrent.is_multi_file else 20_000)


@pytest.mark.parametrize("name", TORRENT_IDS)
def test_every_single_byte_mutation_reads_or_raises_our_errors(torrents: dict[str, bytes], name: str) -> None:
    data = torrents[name]
    failures = []
    accepted = 0
    total = 0
    for label, mutated in _mutations(data):
        for reader_name, reader in READERS.items():
            total += 1
            problem = _read(reader, mutated)
            if problem is not None:
                failures.append(f"{label}, {reader_name}: {problem}")
        accepted += _accepts(mutated)
    assert not failures, f"{len(failures)} of {total} reads went wrong: " + "; ".join(failures[:5])
    # Some mutations (inside piece hashes, names, the comment) leave a valid torrent:
    # the success branch and its invariant checks really ran.
    assert accepted > 0


def _accepts(data: bytes) -> int:
    try:
        Torrent.decode(data)
    except (DecodeError, MetainfoError):
        return 0
    return 1


@pytest.mark.parametrize("name", TORRENT_IDS)
def test_every_truncation_is_a_decode_error(torrents: dict[str, bytes], name: str) -> None:
    data = torrents[name]
    for length in range(len(data)):
        for reader in READERS.values():
            with pytest.raises(DecodeError) as caught:
                reader(data[:length])
            assert 0 <= caught.value.offset <= length


@pytest.mark.parametrize("name", TORRENT_IDS)
def test_trailing_data_is_refused(torrents: dict[str, bytes], name: str) -> None:
    data = torrents[name]
    for trailer in (b"\n", b"\x00", b"de", b"i0e", data):
        for reader in READERS.values():
            with pytest.raises(DecodeError, match="trailing"):
                reader(data + trailer)


# --- hypothesis-built info dictionaries --------------------------------------------------

SAFE_ELEMENTS = st.sampled_from([b"a", b"b", b"c.txt", b"D", b"sub", b"\xc3\xa9t\xc3\xa9", b"x y"])
HOSTILE_ELEMENTS = st.one_of(
    st.sampled_from(
        [
            b"",
            b".",
            b"..",
            b"a/b",
            b"a\\b",
            b"a\x00b",
            b"\x1b[31m",
            b"C:x",
            b"CON",
            b"nul.txt",
            b"trail. ",
            b"A",
            b"x" * 300,
            b"\xff\xfe",
            b"_____padding_file_0",
            b"/etc",
        ]
    ),
    st.binary(max_size=12),
)
# Mostly safe names, so that many generated torrents get past the path checks.
ELEMENTS = st.integers(min_value=0, max_value=9).flatmap(lambda n: HOSTILE_ELEMENTS if n == 0 else SAFE_ELEMENTS)
GARBAGE: st.SearchStrategy[bencode.Value] = st.recursive(
    st.one_of(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1), st.binary(max_size=40)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from([b"", b"length", b"path", b"pieces root", b"a"]), children, max_size=3),
    ),
    max_leaves=8,
)
INFO_KEYS = [
    b"name",
    b"name.utf-8",
    b"piece length",
    b"pieces",
    b"length",
    b"files",
    b"file tree",
    b"meta version",
    b"private",
    b"source",
    b"attr",
    b"symlink path",
]
TOP_KEYS = [b"piece layers", b"announce", b"announce-list", b"url-list", b"comment", b"created by", b"creation date"]
FILE_KEYS = [b"length", b"path", b"path.utf-8", b"attr", b"symlink path"]


def _v2_leaf(
    draw: st.DrawFn, length: int, piece_length: int, layers: dict[bytes, bencode.Value]
) -> dict[bytes, bencode.Value]:
    leaf: dict[bytes, bencode.Value] = {b"length": length}
    if length == 0:
        return leaf
    num_pieces = -(-length // piece_length)
    if num_pieces == 1:
        leaf[b"pieces root"] = draw(st.binary(min_size=32, max_size=32))
        return leaf
    hashes = [draw(st.binary(min_size=32, max_size=32)) for _ in range(num_pieces)]
    root = merkle.root(hashes, merkle.next_power_of_two(num_pieces), piece_length // merkle.BLOCK_SIZE)
    leaf[b"pieces root"] = root
    layers[root] = b"".join(hashes)
    return leaf


def _perturb(draw: st.DrawFn, target: dict[bytes, bencode.Value], keys: list[bytes]) -> None:
    key = draw(st.sampled_from(keys))
    action = draw(st.sampled_from(["delete", "garbage", "int", "bytes"]))
    if action == "delete":
        target.pop(key, None)
    elif action == "garbage":
        target[key] = draw(GARBAGE)
    elif action == "int":
        target[key] = draw(st.sampled_from([0, 1, 2, -1, 3, 16383, PIECE, 1 << 40, (1 << 63) - 1, -(1 << 63)]))
    else:
        target[key] = draw(st.one_of(ELEMENTS, st.binary(min_size=20, max_size=20), st.just(b"p"), st.just(b"l")))


@st.composite
def torrent_documents(draw: st.DrawFn) -> dict[bytes, bencode.Value]:
    """A top-level torrent dictionary: mostly coherent, sometimes perturbed."""
    version = draw(st.sampled_from(list(TorrentVersion)))
    piece_length = draw(st.sampled_from([PIECE, 2 * PIECE, PIECE]))
    name = draw(ELEMENTS)
    is_multi = draw(st.booleans())
    if is_multi:
        raw_paths = draw(st.lists(st.lists(ELEMENTS, min_size=1, max_size=3).map(tuple), min_size=1, max_size=4))
        ordered = sorted(set(raw_paths))
    else:
        ordered = [(name,)]
    lengths = [draw(st.sampled_from([0, 1, 5, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 7])) for _ in ordered]

    info: dict[bytes, bencode.Value] = {b"name": name, b"piece length": piece_length}
    top: dict[bytes, bencode.Value] = {b"info": info}
    if version is not TorrentVersion.V1:
        layers: dict[bytes, bencode.Value] = {}
        tree: dict[bytes, bencode.Value] = {}
        for path, length in zip(ordered, lengths, strict=True):
            node = tree
            for element in path:
                child = node.setdefault(element, {})
                if not isinstance(child, dict):  # pragma: no cover - only dicts are put in
                    break
                node = child
            node[b""] = _v2_leaf(draw, length, piece_length, layers)
        info[b"meta version"] = 2
        info[b"file tree"] = tree
        if layers:
            top[b"piece layers"] = layers
    if version is not TorrentVersion.V2:
        files: list[bencode.Value] = []
        stream = 0
        for position, (path, length) in enumerate(zip(ordered, lengths, strict=True)):
            files.append({b"length": length, b"path": list(path)})
            stream += length
            gap = -stream % piece_length
            if version is TorrentVersion.HYBRID and gap and position < len(ordered) - 1:
                files.append({b"attr": b"p", b"length": gap, b"path": [b".pad", str(gap).encode()]})
                stream += gap
        if is_multi:
            info[b"files"] = files
        else:
            info[b"length"] = lengths[0]
        info[b"pieces"] = draw(st.binary(min_size=20, max_size=20)) * -(-stream // piece_length)
    if draw(st.booleans()):
        top[b"announce-list"] = [[b"http://t.example/a", b" "], [], [b"udp://u.example:1"]]
        top[b"url-list"] = b"http://w.example/"
        top[b"comment"] = draw(st.binary(max_size=10))

    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        where = draw(st.sampled_from(["info", "top", "file"]))
        if where == "info":
            _perturb(draw, info, INFO_KEYS)
        elif where == "top":
            _perturb(draw, top, TOP_KEYS)
        elif isinstance(info.get(b"files"), list) and info[b"files"]:
            entries = info[b"files"]
            assert isinstance(entries, list)
            entry = draw(st.sampled_from(entries))
            if isinstance(entry, dict):
                _perturb(draw, entry, FILE_KEYS)
    return top


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(torrent_documents())
def test_generated_torrents_read_or_raise_our_errors(document: dict[bytes, bencode.Value]) -> None:
    data = bencode.encode(document)
    for reader_name, reader in READERS.items():
        problem = _read(reader, data)
        assert problem is None, f"{reader_name}: {problem}"
    info = document[b"info"]
    info_bytes = bencode.encode(info)
    try:
        torrent = Torrent.from_info(info_bytes)
    except (DecodeError, MetainfoError):
        return
    except Exception as error:  # the property under test
        pytest.fail(f"from_info raised {type(error).__name__}: {error}")
    assert torrent.info == info_bytes
    assert torrent.files


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(torrent_documents().filter(lambda document: len(document) > 1))
def test_generated_torrents_with_unsorted_top_keys_warn_but_hash_the_same(document: dict[bytes, bencode.Value]) -> None:
    canonical = bencode.encode(document)
    # The same content with the top-level keys in reverse order; the info bytes are unchanged.
    data = (
        b"d"
        + b"".join(bencode.encode(key) + bencode.encode(document[key]) for key in sorted(document, reverse=True))
        + b"e"
    )
    with pytest.raises(DecodeError, match="out of order"):
        Torrent.decode(data)
    try:
        expected = Torrent.decode(canonical)
    except MetainfoError:
        with pytest.raises(MetainfoError):
            read_torrent_file(data)
        return
    torrent = read_torrent_file(data)
    check_invariants(torrent, data)
    assert torrent.warnings
    assert torrent.info == expected.info
    assert (torrent.info_hash_v1, torrent.info_hash_v2) == (expected.info_hash_v1, expected.info_hash_v2)
    assert torrent.files == expected.files


def _accepted_as(version: TorrentVersion, is_multi: bool) -> Callable[[dict[bytes, bencode.Value]], bool]:
    def predicate(document: dict[bytes, bencode.Value]) -> bool:
        try:
            torrent = Torrent.decode(bencode.encode(document))
        except MetainfoError:
            return False
        return torrent.version is version and torrent.is_multi_file is is_multi

    return predicate


@pytest.mark.parametrize("is_multi", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("version", list(TorrentVersion), ids=[v.value for v in TorrentVersion])
def test_generator_reaches_accepted_torrents(version: TorrentVersion, is_multi: bool) -> None:
    # Guards the generator: if it drifted so far that nothing is accepted, the properties
    # above would only ever check the error branch.
    document = find(
        torrent_documents(),
        _accepted_as(version, is_multi),
        settings=settings(
            max_examples=500, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
        ),
    )
    check_invariants(Torrent.decode(bencode.encode(document)), bencode.encode(document))
