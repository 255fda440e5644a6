"""Blocks to files and back, with plain positional reads and writes (no memory mapping).

Files are created when a block of theirs is first written, sparse, at their full size,
and only for wanted files; zero-byte files, which no block touches, on request. A piece
that straddles a wanted and an unwanted file still needs the unwanted bytes to be
verified: those go to a part file per piece in a hidden folder beside the content (as
libtorrent does), never into the unwanted file.

Every path is resolved inside the download folder before it is opened. Calls block:
the asyncio layer runs them in a thread.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from bitswarm import paths
from bitswarm.errors import StorageError
from bitswarm.metainfo import FileEntry
from bitswarm.storage.layout import Layout, Segment

# Open file descriptors kept per torrent; more files than this are reopened as needed.
MAX_OPEN_FILES = 128
# Writing a piece in one call is the cheapest way to the page cache, unless the memory it
# takes has to be faulted in again: Linux sizes the page cache's folios by the write, a whole
# piece takes large ones, and a virtual machine whose free memory goes back to its host
# (free page reporting) hands out large blocks that cost 1.5-2 CPU s per GiB to touch again,
# where block-sized calls are given small pages, recycled warm, for about 0.3 s
# (bench/RESULTS.md). Block-sized calls cost 0.3 s per GiB more where memory is warm (each
# call gives up the GIL), so a storage writes whole chunks and measures them, switching to
# block-sized calls for a while when one costs as much as cold memory does.
WRITE_CALL_BYTES = 16 * 1024
# Thread CPU per byte of a whole-chunk write above which memory counts as cold: measured
# here 0.18 ns warm, 1.5-2.3 ns cold.
COLD_WRITE_NS_PER_BYTE = 0.8
# Chunks written in block-sized calls before a whole-chunk write measures again.
BLOCK_WRITES_BEFORE_PROBE = 64
PARTS_FOLDER = ".bitswarm-parts"


class Storage(Protocol):
    def write_block(self, index: int, begin: int, data: bytes | bytearray | memoryview) -> None: ...

    def read_block(self, index: int, begin: int, length: int) -> bytes: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _pwrite_in_blocks(handle: int, data: memoryview, offset: int) -> int:
    """Bytes written of ``data`` at ``offset``, in calls of WRITE_CALL_BYTES; stops at a short write."""
    written = 0
    for at in range(0, len(data), WRITE_CALL_BYTES):
        chunk = data[at : at + WRITE_CALL_BYTES]
        done = os.pwrite(handle, chunk, offset + at)
        written += done
        if done != len(chunk):
            break
    return written


class ChunkWriter:
    """``pwrite`` for one thread: whole chunks, measured with ``cpu_clock`` (the calling
    thread's CPU time in ns: the I/O layer passes ``time.thread_time_ns``), or block-sized
    calls while whole ones cost what cold memory does (see WRITE_CALL_BYTES). With no clock,
    whole chunks always."""

    def __init__(self, cpu_clock: Callable[[], int] | None = None) -> None:
        self._cpu_clock = cpu_clock
        self._block_writes_left = 0

    def pwrite(self, handle: int, chunk: memoryview, offset: int) -> int:
        """Bytes written (fewer only when the disk is full); raises OSError as ``os.pwrite``."""
        clock = self._cpu_clock
        if clock is None or len(chunk) <= WRITE_CALL_BYTES:
            return os.pwrite(handle, chunk, offset)
        if self._block_writes_left:
            self._block_writes_left -= 1
            return _pwrite_in_blocks(handle, chunk, offset)
        began_ns = clock()
        written = os.pwrite(handle, chunk, offset)
        if clock() - began_ns > COLD_WRITE_NS_PER_BYTE * written:
            self._block_writes_left = BLOCK_WRITES_BEFORE_PROBE
        return written


class FileStorage:
    """A torrent's content under ``root`` (the folder that holds the torrent's name)."""

    def __init__(
        self,
        files: Sequence[FileEntry],
        piece_length: int,
        root: Path,
        *,
        is_wanted: Callable[[FileEntry], bool] = lambda entry: True,
        parts_name: str = "parts",
        cpu_clock: Callable[[], int] | None = None,
    ) -> None:
        self.layout = Layout(files, piece_length)
        self.root = root
        self.is_wanted = is_wanted
        self._parts = root / PARTS_FOLDER / parts_name
        self._locations = {
            id(entry): paths.resolve_inside(root, entry.path) for entry in self.layout.files if not entry.is_pad
        }
        self._handles: OrderedDict[int, int] = OrderedDict()
        self._dirty: set[int] = set()
        self._writer = ChunkWriter(cpu_clock)  # used by the one thread that writes
        # Zero-byte files hold no piece data, so no block write ever creates them.
        self._empty_files = [
            entry for entry in files if not entry.length and not entry.is_pad and entry.symlink_target is None
        ]

    def twin(self) -> FileStorage:
        """The same files with handles of its own (for another thread): the layout and the
        resolved locations are shared, as a daemon holds two storages for each of a thousand
        torrents."""
        twin = copy.copy(self)
        twin._handles = OrderedDict()
        twin._dirty = set()
        twin._writer = ChunkWriter(cpu_clock=None)  # a reader's
        return twin

    def _handle(self, entry: FileEntry, *, create: bool) -> int | None:
        key = id(entry)
        handle = self._handles.get(key)
        if handle is not None:
            self._handles.move_to_end(key)
            return handle
        location = self._locations[key]
        try:
            if create:
                location.parent.mkdir(parents=True, exist_ok=True)
                # The folders just made must not have become a way out (a link raced in).
                paths.resolve_inside(self.root, entry.path)
                handle = os.open(location, os.O_RDWR | os.O_CREAT, 0o644)
                if os.fstat(handle).st_size < entry.length:
                    os.ftruncate(handle, entry.length)  # sparse: no blocks are allocated
            else:
                handle = os.open(location, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StorageError(f"{location}: {error.strerror}") from None
        self._handles[key] = handle
        if len(self._handles) > MAX_OPEN_FILES:
            old_key, old_handle = self._handles.popitem(last=False)
            if old_key in self._dirty:
                os.fsync(old_handle)
                self._dirty.discard(old_key)
            os.close(old_handle)
        return handle

    def create_empty_files(self) -> None:
        """Create the wanted zero-byte files that are missing; raises StorageError if one cannot be."""
        for entry in self._empty_files:
            if not self.is_wanted(entry):
                continue
            location = paths.resolve_inside(self.root, entry.path)
            try:
                location.parent.mkdir(parents=True, exist_ok=True)
                paths.resolve_inside(self.root, entry.path)  # as in _handle: no link raced in
                os.close(os.open(location, os.O_WRONLY | os.O_CREAT, 0o644))
            except OSError as error:
                raise StorageError(f"{location}: {error.strerror}") from None

    def write_block(self, index: int, begin: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        at = 0
        for segment in self.layout.segments(index, begin, len(data)):
            chunk = view[at : at + segment.length]
            at += segment.length
            if segment.entry.is_pad:
                continue
            if self.is_wanted(segment.entry):
                self._write(segment, chunk)
            else:
                self._write_part(index, begin + at - segment.length, chunk)

    def _write(self, segment: Segment, chunk: memoryview) -> None:
        handle = self._handle(segment.entry, create=True)
        assert handle is not None  # create=True opens or raises
        try:
            written = self._writer.pwrite(handle, chunk, segment.file_offset)
        except OSError as error:
            raise StorageError(f"{self._locations[id(segment.entry)]}: {error.strerror}") from None
        if written != len(chunk):
            raise StorageError(f"{self._locations[id(segment.entry)]}: short write (disk full?)")
        self._dirty.add(id(segment.entry))

    def start_writeback(self, index: int, length: int) -> None:
        """Start writing ``length`` bytes of the pieces from ``index`` on (written just now)
        to the disk without waiting, so that a later ``flush`` finds little left to wait for:
        at the end of a fast download the fsync of a GiB took longer than its last quarter.
        POSIX_FADV_DONTNEED starts the writeback of dirty pages (Linux) and keeps them
        cached; it drops only pages already clean, which these are not. Best effort: where
        the call is missing or refused, the data reach the disk at the flush as before."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None:
            return
        for segment in self.layout.segments(index, 0, length):
            handle = self._handles.get(id(segment.entry))
            if handle is not None and not segment.entry.is_pad:
                with contextlib.suppress(OSError):
                    advise(handle, segment.file_offset, segment.length, os.POSIX_FADV_DONTNEED)

    def _part_path(self, index: int) -> Path:
        return self._parts / str(index)

    def _write_part(self, index: int, offset_in_piece: int, chunk: memoryview) -> None:
        path = self._part_path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.pwrite(handle, chunk, offset_in_piece)
            os.fsync(handle)
        except OSError as error:
            raise StorageError(f"{path}: {error.strerror}") from None
        finally:
            os.close(handle)

    def read_block(self, index: int, begin: int, length: int) -> bytes:
        """The bytes of a block; raises StorageError if any of it is not on disk."""
        parts = []
        offset_in_piece = begin
        for segment in self.layout.segments(index, begin, length):
            if segment.entry.is_pad:
                parts.append(bytes(segment.length))
            elif self.is_wanted(segment.entry):
                parts.append(self._read(segment))
            else:
                parts.append(self._read_part(index, offset_in_piece, segment.length))
            offset_in_piece += segment.length
        data = b"".join(parts)
        if len(data) != offset_in_piece - begin:
            raise StorageError(f"piece {index}: {length} bytes at {begin} are not all on disk")
        # BEP 52: a v2 file's last piece ends in an alignment gap before the next file's
        # first piece (libtorrent pads the torrent's last file too); peers request the
        # blocks there whole, and the gap reads as zeros.
        gap = length - len(data)
        if gap > 0 and begin + length <= self.layout.piece_length:
            data += bytes(gap)
        elif gap:
            raise StorageError(f"piece {index}: {length} bytes at {begin} run past the end of the piece")
        return data

    def _read(self, segment: Segment) -> bytes:
        handle = self._handle(segment.entry, create=False)
        if handle is None:
            raise StorageError(f"{self._locations[id(segment.entry)]}: missing")
        try:
            return os.pread(handle, segment.length, segment.file_offset)
        except OSError as error:
            raise StorageError(f"{self._locations[id(segment.entry)]}: {error.strerror}") from None

    def _read_part(self, index: int, offset_in_piece: int, length: int) -> bytes:
        try:
            with self._part_path(index).open("rb") as stream:
                stream.seek(offset_in_piece)
                return stream.read(length)
        except FileNotFoundError:
            raise StorageError(f"piece {index}: part file missing") from None

    def flush(self) -> None:
        """Make every write so far durable (before the resume file may record it)."""
        for key in list(self._dirty):
            handle = self._handles.get(key)
            if handle is not None:
                try:
                    os.fsync(handle)
                except OSError as error:
                    raise StorageError(f"{self._locations[key]}: {error.strerror}") from None
        self._dirty.clear()

    def close(self) -> None:
        self.flush()
        for handle in self._handles.values():
            os.close(handle)
        self._handles.clear()
