"""Torrent metainfo: v1 (BEP 3), v2 and hybrid (BEP 52), as a frozen model.

Reading checks everything a later stage relies on, so that storage and the peer engine
can trust a ``Torrent``: every path is safe (``paths``), piece counts match the sizes,
v2 piece layers hash to their roots, and the two halves of a hybrid describe the same
files. Also read: announce-list tiers (BEP 12), web seeds (BEP 19), the private flag
(BEP 27) and pad files and attributes (BEP 47).

The info-hashes are taken over the bytes of the info dictionary exactly as received.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from bitswarm import bencode, merkle, paths
from bitswarm.errors import DecodeError, MetainfoError
from bitswarm.magnet import Magnet

# Bigger than any real torrent (a 1 TB v1 torrent with 256 KiB pieces is 80 MB of hashes
# would be the extreme, and nobody makes those); a bound on memory for hostile input.
MAX_TORRENT_BYTES = 64 << 20
# A piece is held in memory to be hashed; libtorrent refuses larger ones too.
MAX_PIECE_LENGTH = 512 << 20
# BEP 52: v2 pieces are powers of two of at least one block.
MIN_V2_PIECE_LENGTH = merkle.BLOCK_SIZE
MAX_FILES = 300_000
MAX_TRACKERS = 200
MAX_WEB_SEEDS = 200

V1_HASH_SIZE = 20


class TorrentVersion(enum.Enum):
    V1 = "v1"
    V2 = "v2"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a torrent.

    ``path`` is relative to the folder the torrent is saved into and starts with the
    torrent's name, so it is ``(name,)`` for a single-file torrent. ``offset`` is where
    the file starts in the piece stream (v1 pad files and v2 alignment included).
    """

    path: tuple[str, ...]
    length: int
    offset: int
    is_pad: bool = False
    attr: str = ""
    pieces_root: bytes | None = None
    symlink_target: tuple[str, ...] | None = None

    def piece_range(self, piece_length: int) -> range:
        """Indices of the pieces holding any byte of this file."""
        if self.length == 0:
            return range(0)
        return range(self.offset // piece_length, (self.offset + self.length - 1) // piece_length + 1)


@dataclass(frozen=True, slots=True)
class Torrent:
    """A validated torrent. ``info`` is the raw info dictionary the hashes cover."""

    info: bytes
    version: TorrentVersion
    name: str
    piece_length: int
    files: tuple[FileEntry, ...]
    is_multi_file: bool
    # Where the piece stream ends: pads and v2 alignment included.
    stream_size: int
    piece_hashes_v1: bytes = b""
    piece_layers: Mapping[bytes, bytes] = field(default_factory=dict)
    trackers: tuple[tuple[str, ...], ...] = ()
    web_seeds: tuple[str, ...] = ()
    private: bool = False
    source: str | None = None
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def info_hash_v1(self) -> bytes | None:
        """SHA-1 of the info dictionary, for torrents with a v1 part."""
        return None if self.version is TorrentVersion.V2 else hashlib.sha1(self.info).digest()  # noqa: S324

    @property
    def info_hash_v2(self) -> bytes | None:
        """SHA-256 of the info dictionary, for torrents with a v2 part."""
        return None if self.version is TorrentVersion.V1 else hashlib.sha256(self.info).digest()

    @property
    def has_v1(self) -> bool:
        return self.version is not TorrentVersion.V2

    @property
    def has_v2(self) -> bool:
        return self.version is not TorrentVersion.V1

    @property
    def total_size(self) -> int:
        """Bytes of content, pad files excluded."""
        return sum(entry.length for entry in self.files if not entry.is_pad)

    @property
    def num_pieces(self) -> int:
        return -(-self.stream_size // self.piece_length)

    def piece_size(self, index: int) -> int:
        """Bytes of piece ``index`` in the piece stream (pads included; the last may be short)."""
        return min(self.piece_length, self.stream_size - index * self.piece_length)

    def magnet(self) -> Magnet:
        """The magnet link for this torrent: its hashes, name, trackers and web seeds."""
        return Magnet(
            info_hash_v1=self.info_hash_v1,
            info_hash_v2=self.info_hash_v2,
            display_name=self.name,
            trackers=tuple(url for tier in self.trackers for url in tier),
            web_seeds=self.web_seeds,
        )

    def data_files(self) -> Iterator[FileEntry]:
        """The files that hold content: no pad files, no symlinks."""
        return (entry for entry in self.files if not entry.is_pad and entry.symlink_target is None)

    def data_file_index(self, spec: str) -> int | None:
        """Which of ``data_files()`` ``spec`` names: its index in digits, its path below the
        torrent's name (its whole path too), or its file name; None when none does."""
        files = list(self.data_files())
        if spec.isdigit():
            return int(spec) if int(spec) < len(files) else None
        for index, entry in enumerate(files):
            if spec in ("/".join(entry.path[1:] or entry.path), "/".join(entry.path), entry.path[-1]):
                return index
        return None

    def v1_piece_hash(self, index: int) -> bytes:
        return self.piece_hashes_v1[index * V1_HASH_SIZE : (index + 1) * V1_HASH_SIZE]

    def v2_piece_hash(self, entry: FileEntry, index: int) -> bytes | None:
        """Expected merkle hash of piece ``index`` of ``entry``, or None if unknown.

        A file of at most one piece has its root as the piece hash; a longer one takes it
        from the piece layer.
        """
        if entry.pieces_root is None:
            return None
        if entry.length <= self.piece_length:
            return entry.pieces_root
        layer = self.piece_layers.get(entry.pieces_root)
        if layer is None:
            return None
        at = (index - entry.offset // self.piece_length) * merkle.HASH_SIZE
        return layer[at : at + merkle.HASH_SIZE]

    @staticmethod
    def decode(data: bytes, *, allow_unsorted_keys: bool = False) -> Torrent:
        """Read a .torrent file's bytes.

        Returns the validated ``Torrent``. Raises ``DecodeError`` for broken bencode and
        ``MetainfoError`` (``UnsafePathError`` for paths) for an invalid torrent.
        Unsorted keys, allowed for files on disk, are reported in ``warnings``.
        """
        if len(data) > MAX_TORRENT_BYTES:
            raise MetainfoError(f"{len(data)} bytes is more than the {MAX_TORRENT_BYTES} allowed", "torrent")
        document = bencode.decode_document(data, allow_unsorted_keys=allow_unsorted_keys)
        top = _as_dict(document.value, "torrent")
        if b"info" not in top:
            raise MetainfoError("missing", "info")
        start, end = document.spans[b"info"]
        warnings = []
        if document.unsorted_at is not None:
            warnings.append(f"dictionary keys out of order at byte {document.unsorted_at}; hashing the bytes as given")
        return _build(data[start:end], top, tuple(warnings))

    @staticmethod
    def from_info(info: bytes, *, trackers: Sequence[Sequence[str]] = (), web_seeds: Sequence[str] = ()) -> Torrent:
        """Build a torrent from a bare info dictionary (as fetched from peers for a magnet link).

        v2 piece layers are not part of the info dictionary, so they are left empty.
        """
        value = bencode.decode(info)
        _as_dict(value, "info")
        top: dict[bytes, bencode.Value] = {b"info": value}
        if trackers:
            top[b"announce-list"] = [[url.encode() for url in tier] for tier in trackers]
        if web_seeds:
            top[b"url-list"] = [url.encode() for url in web_seeds]
        return _build(info, top, (), require_piece_layers=False)


def _build(
    info_bytes: bytes,
    top: dict[bytes, bencode.Value],
    warnings: tuple[str, ...],
    *,
    require_piece_layers: bool = True,
) -> Torrent:
    info = _as_dict(top[b"info"], "info")
    piece_length = _int(info, b"piece length", "info.piece length")
    if not 0 < piece_length <= MAX_PIECE_LENGTH:
        raise MetainfoError(f"{piece_length} is outside 1..{MAX_PIECE_LENGTH}", "info.piece length")
    name = paths.safe_name(_text_bytes(info, b"name", "info.name", prefer_utf8=True), "info.name")

    meta_version = _optional_int(info, b"meta version", "info.meta version")
    has_v2 = meta_version is not None
    if has_v2 and meta_version != 2:
        raise MetainfoError(f"unsupported meta version {meta_version}", "info.meta version")
    has_v1 = b"pieces" in info
    if not has_v1 and not has_v2:
        raise MetainfoError("neither v1 'pieces' nor v2 'meta version'", "info")

    v2_files: list[FileEntry] = []
    layers: dict[bytes, bytes] = {}
    if has_v2:
        if piece_length < MIN_V2_PIECE_LENGTH or piece_length & (piece_length - 1):
            raise MetainfoError(f"{piece_length} is not a power of two of at least 16 KiB", "info.piece length")
        v2_files, v2_multi = _v2_files(info, name, piece_length)
        layers = _piece_layers(top, v2_files, piece_length, require_piece_layers)
    v1_files: list[FileEntry] = []
    pieces = b""
    if has_v1:
        v1_files, v1_multi = _v1_files(info, name)
        pieces = _bytes(info, b"pieces", "info.pieces")
        if len(pieces) % V1_HASH_SIZE:
            raise MetainfoError(f"length {len(pieces)} is not a multiple of 20", "info.pieces")
        stream_end = sum(entry.length for entry in v1_files)
        expected = -(-stream_end // piece_length)
        if len(pieces) // V1_HASH_SIZE != expected:
            raise MetainfoError(
                f"{len(pieces) // V1_HASH_SIZE} hashes for {stream_end} bytes in {expected} pieces",
                "info.pieces",
            )

    if has_v1 and has_v2:
        if v1_multi and not v2_multi:
            # A folder of one file: v1 lists it under the name, v2's tree alone cannot.
            v2_files = [replace(entry, path=(name, *entry.path)) for entry in v2_files]
        _check_hybrid(v1_files, v2_files)
        version, files, multi = TorrentVersion.HYBRID, v1_files, v1_multi
        # The v1 list holds the pad files; the v2 tree the roots: keep both facts.
        roots = {entry.path: entry.pieces_root for entry in v2_files}
        files = [_replace_root(entry, roots.get(entry.path)) for entry in v1_files]
    elif has_v2:
        version, files, multi = TorrentVersion.V2, v2_files, v2_multi
        if not multi:
            name = files[0].path[0]
    else:
        version, files, multi = TorrentVersion.V1, v1_files, v1_multi

    if not any(entry.length for entry in files if not entry.is_pad):
        raise MetainfoError("the torrent holds no data", "info")
    # After U+FFFD stands in for invalid bytes, two names may meet: a collision, refused.
    paths.check_collisions((entry.path for entry in files if not entry.is_pad), "info.files")
    not_utf8 = _names_not_utf8(info, version)
    if not_utf8:
        warnings = (*warnings, f"{not_utf8} name{'s' if not_utf8 > 1 else ''} not valid UTF-8: each invalid "
                    "byte is shown as U+FFFD")  # fmt: skip

    # Any integer but 0 makes the torrent private, as libtorrent reads it: a torrent that
    # says private=2 must not leak to the DHT. A value that is no integer is refused (_int).
    private = (_optional_int(info, b"private", "info.private") or 0) != 0
    source = _optional_text(info, b"source", "info.source")
    return Torrent(
        info=info_bytes,
        version=version,
        name=name,
        piece_length=piece_length,
        files=tuple(files),
        is_multi_file=multi,
        # Empty files take no room: one sorted last in a v2 tree must not lengthen the stream.
        stream_size=max(entry.offset + entry.length for entry in files if entry.length),
        piece_hashes_v1=pieces,
        piece_layers=layers,
        trackers=_trackers(top),
        web_seeds=_web_seeds(top),
        private=private,
        source=source,
        comment=_optional_text(top, b"comment", "comment", prefer_utf8=True),
        created_by=_optional_text(top, b"created by", "created by"),
        creation_date=_optional_int(top, b"creation date", "creation date"),
        warnings=warnings,
    )


def _replace_root(entry: FileEntry, pieces_root: bytes | None) -> FileEntry:
    return FileEntry(
        entry.path, entry.length, entry.offset, entry.is_pad, entry.attr, pieces_root, entry.symlink_target
    )


def _v1_files(info: dict[bytes, bencode.Value], name: str) -> tuple[list[FileEntry], bool]:
    if b"files" in info and b"length" in info:
        raise MetainfoError("both 'length' and 'files'", "info")
    if b"length" in info:
        length = _length(info, "info.length")
        return [FileEntry((name,), length, 0, attr=_attr(info, "info"))], False
    raw_files = info.get(b"files")
    if not isinstance(raw_files, list) or not raw_files:
        raise MetainfoError("missing or not a non-empty list", "info.files")
    if len(raw_files) > MAX_FILES:
        raise MetainfoError(f"more than {MAX_FILES} files", "info.files")
    files = []
    offset = 0
    for index, raw in enumerate(raw_files):
        where = f"info.files[{index}]"
        item = _as_dict(raw, where)
        length = _length(item, f"{where}.length")
        elements = item.get(_path_key(item))
        if not isinstance(elements, list) or not all(isinstance(e, bytes) for e in elements):
            raise MetainfoError("missing or not a list of strings", f"{where}.path")
        attr = _attr(item, where)
        raw_elements = cast(list[bytes], elements)
        # BEP 47 pad files, and the older BitComet convention, are never written: their
        # names need no checking beyond being present.
        is_pad = "p" in attr or (bool(raw_elements) and raw_elements[-1].startswith(b"_____padding_file_"))
        path = (name, ".pad", str(length)) if is_pad else (name, *paths.safe_path(raw_elements, f"{where}.path"))
        target = _symlink_target(item, attr, where)
        files.append(FileEntry(path, length, offset, is_pad, attr, None, target))
        offset += length
    return files, True


def _attr(item: dict[bytes, bencode.Value], where: str) -> str:
    raw = item.get(b"attr", b"")
    if not isinstance(raw, bytes):
        raise MetainfoError("not a string", f"{where}.attr")
    return "".join(sorted(set(raw.decode("ascii", "replace")) & set("pxhl")))


def _symlink_target(item: dict[bytes, bencode.Value], attr: str, where: str) -> tuple[str, ...] | None:
    if "l" not in attr:
        return None
    target = item.get(b"symlink path")
    if not isinstance(target, list) or not all(isinstance(e, bytes) for e in target):
        raise MetainfoError("missing or not a list of strings", f"{where}.symlink path")
    return paths.safe_path(cast(list[bytes], target), f"{where}.symlink path")


def _v2_files(info: dict[bytes, bencode.Value], name: str, piece_length: int) -> tuple[list[FileEntry], bool]:
    tree = _as_dict(info.get(b"file tree"), "info.file tree")
    if not tree:
        raise MetainfoError("empty", "info.file tree")
    leaves: list[tuple[tuple[bytes, ...], dict[bytes, bencode.Value]]] = []
    _walk_tree(tree, (), leaves)
    if len(leaves) > MAX_FILES:
        raise MetainfoError(f"more than {MAX_FILES} files", "info.file tree")
    single = len(leaves) == 1 and len(leaves[0][0]) == 1
    files = []
    offset = 0
    for raw_path, leaf in leaves:
        where = "info.file tree/" + "/".join(p.decode("utf-8", "replace") for p in raw_path)
        length = _length(leaf, f"{where}.length")
        root = leaf.get(b"pieces root")
        if length > 0:
            if not isinstance(root, bytes) or len(root) != merkle.HASH_SIZE:
                raise MetainfoError("missing or not 32 bytes", f"{where}.pieces root")
        elif root is not None:
            raise MetainfoError("present for an empty file", f"{where}.pieces root")
        # A tree of one file is a single-file torrent named by its key (``name`` is only
        # advisory in v2): libtorrent reads it so, and makes it from a folder of one file.
        path = paths.safe_path(raw_path, where) if single else (name, *paths.safe_path(raw_path, where))
        attr = _attr(leaf, where)
        files.append(FileEntry(path, length, offset, False, attr, root, _symlink_target(leaf, attr, where)))
        # BEP 52: every file starts on a piece boundary.
        offset += -(-length // piece_length) * piece_length
    return files, not single


def _walk_tree(
    node: dict[bytes, bencode.Value],
    prefix: tuple[bytes, ...],
    leaves: list[tuple[tuple[bytes, ...], dict[bytes, bencode.Value]]],
) -> None:
    # Sorted explicitly: a tolerant read of a file with unsorted keys must still give the
    # canonical file order that v2 peers agree on.
    for key in sorted(node):
        if key == b"":
            raise MetainfoError("a file entry where a folder was expected", "info.file tree")
        child = _as_dict(node[key], "info.file tree")
        if b"" in child:
            if len(child) != 1:
                raise MetainfoError("a file entry that is also a folder", "info.file tree")
            leaves.append(((*prefix, key), _as_dict(child[b""], "info.file tree")))
        else:
            if not child:
                raise MetainfoError("an empty folder", "info.file tree")
            _walk_tree(child, (*prefix, key), leaves)
        if len(leaves) > MAX_FILES:
            raise MetainfoError(f"more than {MAX_FILES} files", "info.file tree")


def _piece_layers(
    top: dict[bytes, bencode.Value], files: list[FileEntry], piece_length: int, required: bool
) -> dict[bytes, bytes]:
    raw = top.get(b"piece layers", {})
    layers = _as_dict(raw, "piece layers")
    blocks_per_piece = piece_length // merkle.BLOCK_SIZE
    checked: dict[bytes, bytes] = {}
    for entry in files:
        if entry.length <= piece_length or entry.pieces_root is None:
            continue
        layer = layers.get(entry.pieces_root)
        if layer is None:
            if required:
                raise MetainfoError(f"missing for {'/'.join(entry.path)!r}", "piece layers")
            continue
        num_pieces = -(-entry.length // piece_length)
        if not isinstance(layer, bytes) or len(layer) != num_pieces * merkle.HASH_SIZE:
            raise MetainfoError(f"wrong size for {'/'.join(entry.path)!r}", "piece layers")
        width = merkle.next_power_of_two(num_pieces)
        if merkle.root(merkle.split_layer(layer), width, blocks_per_piece) != entry.pieces_root:
            raise MetainfoError(f"does not hash to the root of {'/'.join(entry.path)!r}", "piece layers")
        checked[entry.pieces_root] = layer
    return checked


def _check_hybrid(v1_files: list[FileEntry], v2_files: list[FileEntry]) -> None:
    """BEP 52: a hybrid's v1 file list is its v2 tree in order, padded to piece boundaries."""
    real = [entry for entry in v1_files if not entry.is_pad]
    same = len(real) == len(v2_files) and all(
        a.path == b.path and a.length == b.length for a, b in zip(real, v2_files, strict=False)
    )
    if not same:
        raise MetainfoError("the v1 file list and the v2 file tree differ", "info.files")
    for v1_entry, v2_entry in zip(real, v2_files, strict=True):
        if v1_entry.length and v1_entry.offset != v2_entry.offset:
            raise MetainfoError(f"{'/'.join(v1_entry.path)!r} is not padded to a piece boundary", "info.files")


def _trackers(top: dict[bytes, bencode.Value]) -> tuple[tuple[str, ...], ...]:
    raw_tiers = top.get(b"announce-list")
    tiers: list[tuple[str, ...]] = []
    if isinstance(raw_tiers, list):
        for raw_tier in raw_tiers:
            if isinstance(raw_tier, list):
                tier = tuple(_url(url) for url in raw_tier if isinstance(url, bytes) and url.strip())
                if tier:
                    tiers.append(tier)
    # BEP 12: a client that knows announce-list ignores announce.
    if not tiers and isinstance(top.get(b"announce"), bytes) and cast(bytes, top[b"announce"]).strip():
        tiers.append((_url(cast(bytes, top[b"announce"])),))
    if sum(len(tier) for tier in tiers) > MAX_TRACKERS:
        raise MetainfoError(f"more than {MAX_TRACKERS} trackers", "announce-list")
    return tuple(tiers)


def _web_seeds(top: dict[bytes, bencode.Value]) -> tuple[str, ...]:
    raw = top.get(b"url-list")
    urls = [raw] if isinstance(raw, bytes) else raw if isinstance(raw, list) else []
    seeds = tuple(_url(url) for url in urls if isinstance(url, bytes) and url.strip())
    if len(seeds) > MAX_WEB_SEEDS:
        raise MetainfoError(f"more than {MAX_WEB_SEEDS} web seeds", "url-list")
    return seeds


def _url(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


def _as_dict(value: bencode.Value | None, where: str) -> dict[bytes, bencode.Value]:
    if not isinstance(value, dict):
        raise MetainfoError("missing or not a dictionary", where)
    return value


def _int(item: dict[bytes, bencode.Value], key: bytes, where: str) -> int:
    value = item.get(key)
    if not isinstance(value, int):
        raise MetainfoError("missing or not an integer", where)
    return value


def _optional_int(item: dict[bytes, bencode.Value], key: bytes, where: str) -> int | None:
    return None if key not in item else _int(item, key, where)


def _length(item: dict[bytes, bencode.Value], where: str) -> int:
    length = _int(item, b"length", where)
    if length < 0:
        raise MetainfoError("negative", where)
    return length


def _bytes(item: dict[bytes, bencode.Value], key: bytes, where: str) -> bytes:
    value = item.get(key)
    if not isinstance(value, bytes):
        raise MetainfoError("missing or not a string", where)
    return value


def _text_bytes(item: dict[bytes, bencode.Value], key: bytes, where: str, *, prefer_utf8: bool) -> bytes:
    utf8_key = key + b".utf-8"
    preferred = item.get(utf8_key)
    if prefer_utf8 and isinstance(preferred, bytes) and _is_utf8(preferred):
        return preferred
    return _bytes(item, key, where)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_utf8_list(value: bencode.Value | None) -> bool:
    return isinstance(value, list) and all(isinstance(element, bytes) and _is_utf8(element) for element in value)


def _path_key(item: dict[bytes, bencode.Value]) -> bytes:
    """path.utf-8 wins when it is there and really UTF-8 (some clients write it in the local
    code page all the same), else path."""
    return b"path.utf-8" if _is_utf8_list(item.get(b"path.utf-8")) else b"path"


def _names_not_utf8(info: dict[bytes, bencode.Value], version: TorrentVersion) -> int:
    """How many names (the torrent's, path elements of v1 files, v2 tree keys) are not
    valid UTF-8 as read; ``paths.safe_name`` shows each invalid byte as U+FFFD. Called once
    ``_build`` has checked the parts of ``version`` it walks (the others are not read)."""
    names = [_text_bytes(info, b"name", "info.name", prefer_utf8=True)]
    if version is not TorrentVersion.V2 and isinstance(info.get(b"files"), list):
        for item in cast(list[dict[bytes, bencode.Value]], info[b"files"]):
            names += cast(list[bytes], item[_path_key(item)])
    if version is not TorrentVersion.V1:
        leaves: list[tuple[tuple[bytes, ...], dict[bytes, bencode.Value]]] = []
        _walk_tree(cast(dict[bytes, bencode.Value], info[b"file tree"]), (), leaves)
        names += [element for path, _ in leaves for element in path]
    return sum(not _is_utf8(name) for name in names)


def _optional_text(
    item: dict[bytes, bencode.Value], key: bytes, where: str, *, prefer_utf8: bool = False
) -> str | None:
    if key not in item:
        return None
    return _text_bytes(item, key, where, prefer_utf8=prefer_utf8).decode("utf-8", "replace")


def read_torrent_file(data: bytes) -> Torrent:
    """Read a .torrent file from disk or an upload: unsorted keys are tolerated (with a warning)."""
    return Torrent.decode(data, allow_unsorted_keys=True)


__all__ = [
    "DecodeError",
    "FileEntry",
    "MetainfoError",
    "Torrent",
    "TorrentVersion",
    "read_torrent_file",
]
