"""Hashing a torrent's pieces from files on disk, spread over every core.

Used to create a torrent and to verify one. A piece is read with positional reads from
the files it spans (v1 pad files and BEP 52 alignment read as zeros or not at all) and
hashed with SHA-1 (v1) and/or as a BEP 52 merkle subtree (v2). hashlib and os.pread
release the GIL, so plain threads keep every core busy.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Container, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bitswarm import merkle, paths
from bitswarm.errors import StorageError
from bitswarm.metainfo import FileEntry
from bitswarm.storage.layout import Layout, Segment

# Pieces handed to a thread at once: large enough that scheduling costs nothing, small
# enough that progress moves smoothly and memory stays at a few pieces per thread.
_BATCH_BYTES = 32 << 20


@dataclass(frozen=True, slots=True)
class PieceDigest:
    """What was read for one piece. Hashes are None when the piece could not be read whole."""

    index: int
    sha1: bytes | None
    merkle: bytes | None

    @property
    def is_complete(self) -> bool:
        return self.sha1 is not None or self.merkle is not None


# Makes the bytes of one segment instead of reading them from disk (an encrypted bundle
# seals its plaintext there, so the ciphertext is hashed as it is made, never read back);
# None: the bytes are not all there.
SegmentSource = Callable[[Segment], "bytes | memoryview | None"]


class PieceHasher:
    """Reads and hashes pieces of ``files`` saved under ``root``."""

    def __init__(
        self,
        files: Sequence[FileEntry],
        piece_length: int,
        root: Path,
        *,
        v1: bool,
        v2: bool,
        source: SegmentSource | None = None,
    ) -> None:
        self.layout = Layout(files, piece_length)
        self.source = source
        self.piece_length = piece_length
        self.num_pieces = self.layout.num_pieces
        self.root = root
        self.v1 = v1
        self.v2 = v2
        self._locations = {
            id(entry): paths.resolve_inside(root, entry.path) for entry in self.layout.files if not entry.is_pad
        }
        self._zeros = bytes(piece_length)

    def hash_all(
        self,
        *,
        workers: int | None = None,
        on_progress: Callable[[int], None] | None = None,
        skip: Container[int] = (),
    ) -> Iterator[PieceDigest]:
        """Digests of every piece in order but those in ``skip`` (already known good: a
        restart must not re-read them); ``on_progress`` gets the count of pieces just hashed."""
        per_batch = max(1, _BATCH_BYTES // self.piece_length)
        wanted = [index for index in range(self.num_pieces) if index not in skip]
        batches = [wanted[at : at + per_batch] for at in range(0, len(wanted), per_batch)]
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for digests in pool.map(self._hash_batch, batches):
                if on_progress is not None:
                    on_progress(len(digests))
                yield from digests

    def _hash_batch(self, indices: Sequence[int]) -> list[PieceDigest]:
        handles: dict[int, int | None] = {}
        try:
            return [self._hash_piece(index, handles) for index in indices]
        finally:
            for handle in handles.values():
                if handle is not None:
                    os.close(handle)

    def _hash_piece(self, index: int, handles: dict[int, int | None]) -> PieceDigest:
        sha1 = hashlib.sha1() if self.v1 else None  # noqa: S324 - BEP 3 mandates SHA-1
        leaves: list[bytes] = []
        owner: FileEntry | None = None
        for segment in self.layout.segments(index):
            if segment.entry.is_pad:
                if sha1 is not None:
                    sha1.update(memoryview(self._zeros)[: segment.length])
                continue
            data = self._read(segment, handles)
            if data is None:
                return PieceDigest(index, None, None)
            if sha1 is not None:
                sha1.update(data)
            if self.v2:
                owner = segment.entry
                leaves += merkle.block_hashes(data)
        root = None
        if self.v2 and owner is not None:
            # A file of one piece is its own tree; longer files are cut into piece subtrees.
            root = merkle.root(leaves, merkle.piece_width(owner.length, self.piece_length))
        return PieceDigest(index, sha1.digest() if sha1 is not None else None, root)

    def _read(self, segment: Segment, handles: dict[int, int | None]) -> bytes | memoryview | None:
        if self.source is not None:
            return self.source(segment)
        key = id(segment.entry)
        if key not in handles:
            location = self._locations[key]
            try:
                handles[key] = os.open(location, os.O_RDONLY)
            except (FileNotFoundError, NotADirectoryError):
                handles[key] = None
            except OSError as error:
                raise StorageError(f"{location}: {error.strerror}") from None
        handle = handles[key]
        if handle is None:
            return None
        try:
            data = os.pread(handle, segment.length, segment.file_offset)
        except IsADirectoryError:
            return None
        except OSError as error:
            raise StorageError(f"{self._locations[key]}: {error.strerror}") from None
        return data if len(data) == segment.length else None
