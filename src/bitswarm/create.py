"""Making a torrent of a file or folder: v1 (BEP 3), v2 or hybrid (BEP 52).

Files are taken in the order of the v2 file tree (path elements sorted as UTF-8), which
a hybrid's v1 list must follow too; in a hybrid each file but the last is padded to a
piece boundary with a BEP 47 pad file so both halves cut pieces at the same places.
Only names that bitswarm itself would accept from a torrent are allowed in, so a
torrent we make is one every careful client can save unchanged.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bitswarm import bencode, merkle, paths
from bitswarm.errors import UnsafePathError, UsageError
from bitswarm.metainfo import MAX_PIECE_LENGTH, FileEntry, Torrent, TorrentVersion
from bitswarm.storage.hashing import PieceHasher, SegmentSource

MIN_PIECE_LENGTH = merkle.BLOCK_SIZE
# Automatic sizing keeps the piece list near this many hashes (about 40 KB for v1),
# growing pieces rather than the list for big content, as libtorrent and mktorrent do.
TARGET_PIECES = 2048
MAX_AUTO_PIECE_LENGTH = 16 << 20


@dataclass(frozen=True, slots=True)
class CreateOptions:
    version: TorrentVersion = TorrentVersion.HYBRID
    piece_length: int | None = None
    trackers: Sequence[str] = ()
    web_seeds: Sequence[str] = ()
    private: bool = False
    comment: str | None = None
    source: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    # More keys of the info dictionary (covered by the info-hash), such as an encrypted
    # bundle's header; the standard keys cannot be replaced this way.
    extra_info: Mapping[bytes, bencode.Encodable] = field(default_factory=dict)


def auto_piece_length(total_size: int) -> int:
    """A power of two between 16 KiB and 16 MiB giving about ``TARGET_PIECES`` pieces."""
    wanted = -(-total_size // TARGET_PIECES)
    return min(MAX_AUTO_PIECE_LENGTH, max(MIN_PIECE_LENGTH, merkle.next_power_of_two(wanted)))


def create(
    source: Path,
    options: CreateOptions,
    *,
    workers: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    segment_source: SegmentSource | None = None,
) -> bytes:
    """Hash ``source`` and return the bytes of the .torrent file.

    ``on_start`` receives the number of pieces, ``on_progress`` each count of pieces done.
    Raises ``UsageError`` for bad options or content that cannot make a torrent, and
    ``StorageError`` when a file cannot be read.
    """
    source = Path(os.path.abspath(source))
    found = _collect(source)
    total = sum(size for _, size in found)
    if total == 0:
        raise UsageError(f"{source}: no data to share (empty file or folder)")
    piece_length = options.piece_length or auto_piece_length(total)
    if piece_length < MIN_PIECE_LENGTH or piece_length > MAX_PIECE_LENGTH or piece_length & (piece_length - 1):
        raise UsageError(f"piece length {piece_length} is not a power of two from 16 KiB to 512 MiB")

    version = options.version
    entries = _layout(found, piece_length, version)
    hasher = PieceHasher(
        entries,
        piece_length,
        source.parent,
        v1=version is not TorrentVersion.V2,
        v2=version is not TorrentVersion.V1,
        source=segment_source,
    )
    if on_start is not None:
        on_start(hasher.num_pieces)
    digests = list(hasher.hash_all(workers=workers, on_progress=on_progress))
    if not all(digest.is_complete for digest in digests):
        raise UsageError(f"{source}: files changed while they were being hashed")

    name = source.name
    info: dict[bytes, bencode.Encodable] = {b"name": name, b"piece length": piece_length}
    top: dict[bytes, bencode.Encodable] = {}
    if version is not TorrentVersion.V2:
        info[b"pieces"] = b"".join(digest.sha1 or b"" for digest in digests)
        if source.is_dir():
            info[b"files"] = [_v1_file(entry) for entry in entries]
        else:
            info[b"length"] = total
    if version is not TorrentVersion.V1:
        tree, layers = _v2_tree(entries, [digest.merkle or b"" for digest in digests], piece_length, source.is_dir())
        info[b"meta version"] = 2
        info[b"file tree"] = tree
        if layers:
            top[b"piece layers"] = layers
    if options.private:
        info[b"private"] = 1
    if options.source:
        info[b"source"] = options.source
    clashing = set(options.extra_info) & set(info)
    if clashing:
        raise UsageError(f"info key {sorted(clashing)[0]!r} is the torrent's own")
    info.update(options.extra_info)
    _add_top_fields(top, options)
    top[b"info"] = info
    data = bencode.encode(top)
    Torrent.decode(data)  # what we make must be what we accept
    return data


def _collect(source: Path) -> list[tuple[tuple[str, ...], int]]:
    """(path from the parent of ``source``, size) of every regular file, in v2 tree order."""
    try:
        mode = source.stat().st_mode
    except OSError as error:
        raise UsageError(f"{source}: {error.strerror}") from None
    name = _own_name(source.name)
    if stat.S_ISREG(mode):
        return [((name,), source.stat().st_size)]
    if not stat.S_ISDIR(mode):
        raise UsageError(f"{source}: not a regular file or folder")
    found = []
    for folder, subfolders, filenames in os.walk(source, onerror=_walk_error):
        relative = Path(folder).relative_to(source).parts
        subfolders[:] = [sub for sub in subfolders if not (Path(folder) / sub).is_symlink()]
        for filename in filenames:
            location = Path(folder) / filename
            # Links could point anywhere; libtorrent and mktorrent leave them out by default too.
            if location.is_symlink() or not location.is_file():
                continue
            path = (name, *(_own_name(element) for element in (*relative, filename)))
            found.append((path, location.stat().st_size))
    found.sort(key=lambda item: [element.encode() for element in item[0]])
    paths.check_collisions((path for path, _ in found), str(source))
    return found


def _walk_error(error: OSError) -> None:
    raise UsageError(f"{error.filename}: {error.strerror}")


def _own_name(element: str) -> str:
    try:
        portable = paths.safe_name(element, "create")
    except UnsafePathError as error:
        raise UsageError(f"cannot share {element!r}: {error}") from None
    if portable != element:
        raise UsageError(f"cannot share {element!r}: rename it (for example to {portable!r}) to be portable")
    return element


def _layout(found: list[tuple[tuple[str, ...], int]], piece_length: int, version: TorrentVersion) -> list[FileEntry]:
    entries = []
    offset = 0
    for position, (path, size) in enumerate(found):
        entries.append(FileEntry(path, size, offset))
        offset += size
        gap = -offset % piece_length
        if version is TorrentVersion.V2:
            offset += gap  # v2 files start on piece boundaries without explicit padding
        elif version is TorrentVersion.HYBRID and gap and position < len(found) - 1:
            entries.append(FileEntry((path[0], ".pad", str(gap)), gap, offset, is_pad=True, attr="p"))
            offset += gap
    return entries


def _v1_file(entry: FileEntry) -> dict[bytes, bencode.Encodable]:
    if entry.is_pad:
        return {b"attr": b"p", b"length": entry.length, b"path": [b".pad", str(entry.length)]}
    return {b"length": entry.length, b"path": list(entry.path[1:])}


def _v2_tree(
    entries: list[FileEntry], piece_hashes: list[bytes], piece_length: int, is_folder: bool
) -> tuple[dict[bytes, bencode.Encodable], dict[bytes, bencode.Encodable]]:
    tree: dict[bytes, bencode.Encodable] = {}
    layers: dict[bytes, bencode.Encodable] = {}
    blocks_per_piece = piece_length // merkle.BLOCK_SIZE
    for entry in entries:
        if entry.is_pad:
            continue
        leaf: dict[bytes, bencode.Encodable] = {b"length": entry.length}
        if entry.length:
            hashes = [piece_hashes[index] for index in entry.piece_range(piece_length)]
            if len(hashes) == 1:
                leaf[b"pieces root"] = hashes[0]
            else:
                root = merkle.root(hashes, merkle.next_power_of_two(len(hashes)), blocks_per_piece)
                leaf[b"pieces root"] = root
                layers[root] = b"".join(hashes)
        node = tree
        for element in entry.path[1:] if is_folder else entry.path:
            node = node.setdefault(element.encode(), {})  # type: ignore[assignment]
        node[b""] = leaf
    return tree, layers


def _add_top_fields(top: dict[bytes, bencode.Encodable], options: CreateOptions) -> None:
    if options.trackers:
        top[b"announce"] = options.trackers[0]
        if len(options.trackers) > 1:
            # One tier per tracker, as mktorrent does with repeated -a.
            top[b"announce-list"] = [[url] for url in options.trackers]
    if options.web_seeds:
        top[b"url-list"] = list(options.web_seeds)
    if options.comment:
        top[b"comment"] = options.comment
    if options.created_by:
        top[b"created by"] = options.created_by
    if options.creation_date is not None:
        top[b"creation date"] = options.creation_date
