"""Checking a torrent's content on disk piece by piece, as a client's recheck does.

A piece is good when every byte of it could be read and it matches the torrent's
hashes: SHA-1 for v1, the merkle piece hash for v2, both for a hybrid (as libtorrent
does). A file is reported missing, of the wrong size, or with the count of its bad
pieces.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bitswarm import paths
from bitswarm.metainfo import FileEntry, Torrent
from bitswarm.storage.hashing import PieceDigest, PieceHasher


class FileStatus(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    TRUNCATED = "truncated"
    TOO_LONG = "too long"
    BAD_PIECES = "bad pieces"


@dataclass(frozen=True, slots=True)
class FileReport:
    path: tuple[str, ...]
    length: int
    size_on_disk: int | None
    bad_pieces: int
    status: FileStatus


@dataclass(frozen=True, slots=True)
class VerifyReport:
    pieces: tuple[bool, ...]
    files: tuple[FileReport, ...]

    @property
    def good_pieces(self) -> int:
        return sum(self.pieces)

    @property
    def bad_pieces(self) -> int:
        return len(self.pieces) - self.good_pieces

    @property
    def is_complete(self) -> bool:
        return all(report.status is FileStatus.OK for report in self.files) and all(self.pieces)


def verify(
    torrent: Torrent,
    folder: Path,
    *,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check ``torrent``'s content saved under ``folder`` (which holds the torrent's name).

    Returns a ``VerifyReport``. Raises ``UnsafePathError`` if a file would resolve
    outside ``folder`` and ``StorageError`` for a read error other than a missing file.
    """
    hasher = PieceHasher(torrent.files, torrent.piece_length, folder, v1=torrent.has_v1, v2=torrent.has_v2)
    owners = piece_owners(torrent) if torrent.has_v2 else {}
    pieces = tuple(
        piece_is_good(torrent, digest, owners.get(digest.index))
        for digest in hasher.hash_all(workers=workers, on_progress=on_progress)
    )
    return VerifyReport(pieces, tuple(_file_report(torrent, entry, folder, pieces) for entry in torrent.data_files()))


def piece_owners(torrent: Torrent) -> dict[int, FileEntry]:
    """The file each piece belongs to (in v2 a piece never holds two files' bytes)."""
    return {index: entry for entry in torrent.data_files() for index in entry.piece_range(torrent.piece_length)}


def piece_is_good(torrent: Torrent, digest: PieceDigest, owner: FileEntry | None) -> bool:
    """Whether a piece read from disk matches every hash the torrent has for it."""
    if not digest.is_complete:
        return False
    if torrent.has_v1 and digest.sha1 != torrent.v1_piece_hash(digest.index):
        return False
    if torrent.has_v2 and owner is not None:
        expected = torrent.v2_piece_hash(owner, digest.index)
        # Without piece layers (a torrent known only from its info dictionary) a v2 piece
        # cannot be checked on its own; a hybrid still has its SHA-1.
        if expected is None:
            return torrent.has_v1
        return digest.merkle == expected
    return True


def _file_report(torrent: Torrent, entry: FileEntry, folder: Path, pieces: tuple[bool, ...]) -> FileReport:
    location = paths.resolve_inside(folder, entry.path)
    try:
        size: int | None = os.stat(location).st_size if location.is_file() else None
    except OSError:
        size = None
    bad = sum(not pieces[index] for index in entry.piece_range(torrent.piece_length))
    if size is None:
        status = FileStatus.MISSING
    elif size < entry.length:
        status = FileStatus.TRUNCATED
    elif size > entry.length:
        status = FileStatus.TOO_LONG
    elif bad:
        status = FileStatus.BAD_PIECES
    else:
        status = FileStatus.OK
    return FileReport(entry.path, entry.length, size, bad, status)
