from __future__ import annotations

import os
from pathlib import Path

import pytest

from bitswarm.errors import StorageError, UnsafePathError
from bitswarm.metainfo import FileEntry
from bitswarm.storage import backend, resume
from bitswarm.storage.backend import PARTS_FOLDER, FileStorage
from bitswarm.storage.layout import Layout

PIECE = 1000
# Three files across pieces, with a pad file: a (1500) | pad (500) | b (700) | c (300)
FILES = [
    FileEntry(("t", "a"), 1500, 0),
    FileEntry(("t", ".pad", "500"), 500, 1500, is_pad=True),
    FileEntry(("t", "b"), 700, 2000),
    FileEntry(("t", "c"), 300, 2700),
]
CONTENT = {"a": bytes(range(256)) * 5 + bytes(220), "b": b"B" * 700, "c": b"C" * 300}


def stream() -> bytes:
    return CONTENT["a"] + bytes(500) + CONTENT["b"] + CONTENT["c"]


def test_layout_cuts_pieces_at_file_boundaries() -> None:
    layout = Layout(FILES, PIECE)
    assert layout.num_pieces == 3
    assert [(s.entry.path[-1], s.file_offset, s.length) for s in layout.segments(1)] == [
        ("a", 1000, 500), ("500", 0, 500)
    ]  # fmt: skip
    assert [(s.entry.path[-1], s.file_offset, s.length) for s in layout.segments(2, 600, 300)] == [
        ("b", 600, 100), ("c", 0, 200)
    ]  # fmt: skip


def test_blocks_written_across_files_read_back_and_land_in_sparse_files(tmp_path: Path) -> None:
    storage = FileStorage(FILES, PIECE, tmp_path)
    data = stream()
    for index in (2, 0, 1):  # out of order, as blocks arrive
        storage.write_block(index, 0, data[index * PIECE : (index + 1) * PIECE])
    storage.close()
    assert (tmp_path / "t" / "a").read_bytes() == CONTENT["a"]
    assert (tmp_path / "t" / "b").read_bytes() == CONTENT["b"]
    assert (tmp_path / "t" / "c").read_bytes() == CONTENT["c"]
    assert not (tmp_path / "t" / ".pad").exists()
    reader = FileStorage(FILES, PIECE, tmp_path)
    assert reader.read_block(1, 200, 600) == data[1200:1800]
    reader.close()


def test_files_are_created_at_full_size_when_first_written(tmp_path: Path) -> None:
    storage = FileStorage(FILES, PIECE, tmp_path)
    storage.write_block(2, 500, stream()[2500:2600])
    storage.close()
    assert (tmp_path / "t" / "b").stat().st_size == 700
    assert not (tmp_path / "t" / "a").exists()


def test_unwanted_files_are_never_created_their_bytes_go_to_a_part_file(tmp_path: Path) -> None:
    storage = FileStorage(FILES, PIECE, tmp_path, is_wanted=lambda entry: entry.path[-1] != "c")
    data = stream()
    storage.write_block(2, 0, data[2000:2700])
    storage.write_block(2, 700, data[2700:3000])
    assert not (tmp_path / "t" / "c").exists()
    assert storage.read_block(2, 0, 1000) == data[2000:3000]
    assert (tmp_path / PARTS_FOLDER / "parts" / "2").is_file()
    storage.close()


def test_reading_what_is_not_there_is_a_storage_error(tmp_path: Path) -> None:
    storage = FileStorage(FILES, PIECE, tmp_path)
    with pytest.raises(StorageError, match="missing"):
        storage.read_block(0, 0, 100)


def test_a_link_planted_in_the_download_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "downloads"
    root.mkdir()
    os.symlink(outside, root / "t")
    with pytest.raises(UnsafePathError):
        FileStorage(FILES, PIECE, root)


def test_resume_data_round_trips_and_rejects_what_does_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "t.resume"
    info_hash = b"h" * 20
    assert resume.load(path, info_hash=info_hash, num_pieces=10) is None
    bits = resume.bitfield([1, 0, 1, 1, 0, 0, 0, 0, 0, 1], 10)
    resume.save(path, resume.ResumeData(info_hash, bits))
    loaded = resume.load(path, info_hash=info_hash, num_pieces=10)
    assert loaded is not None
    assert [loaded.has(index) for index in range(10)] == [
        True,
        False,
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        True,
    ]
    assert resume.load(path, info_hash=b"x" * 20, num_pieces=10) is None
    assert resume.load(path, info_hash=info_hash, num_pieces=99) is None
    path.write_bytes(b"d6:format")  # torn or damaged: every piece gets checked instead
    assert resume.load(path, info_hash=info_hash, num_pieces=10) is None
    assert not list(tmp_path.glob(".*.tmp"))


def test_wanted_zero_byte_files_are_created_on_request(tmp_path: Path) -> None:
    # A downloaded torrent holds its empty files too (issue 4, point 9: libtorrent seeds them).
    files = [*FILES, FileEntry(("t", "sub", "empty"), 0, 3000), FileEntry(("t", "skipped"), 0, 3000)]
    storage = FileStorage(files, PIECE, tmp_path, is_wanted=lambda entry: entry.path[-1] != "skipped")
    storage.create_empty_files()
    storage.create_empty_files()  # already there: left as it is
    storage.close()
    assert (tmp_path / "t" / "sub" / "empty").read_bytes() == b""
    assert not (tmp_path / "t" / "skipped").exists()
    assert not (tmp_path / "t" / "a").exists()


def test_a_twin_shares_the_layout_but_not_the_handles(tmp_path: Path) -> None:
    """The session's reader thread reads through a twin: what the writer flushed, through
    handles of its own (one closing must not close the other's)."""
    writer = FileStorage(FILES, PIECE, tmp_path)
    reader = writer.twin()
    assert reader.layout is writer.layout
    data = stream()
    for index in range(3):
        writer.write_block(index, 0, data[index * PIECE : (index + 1) * PIECE])
    writer.flush()
    assert reader.read_block(0, 0, PIECE) == data[:PIECE]
    writer.close()
    assert reader.read_block(2, 0, 700) == data[2 * PIECE : 2 * PIECE + 700]
    reader.close()


def test_writeback_started_early_keeps_the_bytes_and_asks_for_each_file_s_own_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advised: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def recording(handle: int, offset: int, length: int, advice: int) -> None:
        advised.append((offset, length, advice))
        real(handle, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)
    storage = FileStorage(FILES, PIECE, tmp_path)
    data = stream()
    storage.start_writeback(0, 2 * PIECE)  # nothing opened yet: nothing to start
    assert advised == []
    for index in range(3):
        storage.write_block(index, 0, data[index * PIECE : (index + 1) * PIECE])
    storage.start_writeback(1, 2 * PIECE)  # a's tail, the pad (never written), b and c
    assert advised == [
        (1000, 500, os.POSIX_FADV_DONTNEED),
        (0, 700, os.POSIX_FADV_DONTNEED),
        (0, 300, os.POSIX_FADV_DONTNEED),
    ]
    assert storage.read_block(0, 0, 3 * PIECE) == data  # the bytes stay as written
    storage.close()
    monkeypatch.delattr(os, "posix_fadvise")  # where the call is missing, nothing happens
    other = FileStorage(FILES, PIECE, tmp_path)
    other.write_block(2, 0, data[2 * PIECE :])
    other.start_writeback(2, PIECE)
    other.close()
    assert (tmp_path / "t" / "c").read_bytes() == CONTENT["c"]


class CpuClock:
    """A thread-CPU clock whose every reading is ``step_ns`` after the last: what a write
    measured between two readings seems to have cost."""

    def __init__(self, step_ns: int) -> None:
        self.step_ns = step_ns
        self.now_ns = 0

    def __call__(self) -> int:
        self.now_ns += self.step_ns
        return self.now_ns


def test_whole_piece_writes_turn_block_sized_while_they_cost_what_cold_memory_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a virtual machine whose freed memory goes back to the host a whole-piece write
    costs 10 times a warm one; block-sized calls get warm pages. The storage measures its
    whole writes and switches for a while; the bytes are the same either way."""
    piece = 4 * backend.WRITE_CALL_BYTES
    files = [FileEntry(("big",), 40 * piece, 0)]
    data = os.urandom(40 * piece)
    sizes: list[int] = []
    real = os.pwrite

    def recording(handle: int, chunk: memoryview, offset: int) -> int:
        sizes.append(len(chunk))
        return real(handle, chunk, offset)

    monkeypatch.setattr(os, "pwrite", recording)
    monkeypatch.setattr(backend, "BLOCK_WRITES_BEFORE_PROBE", 3)
    cold = int(2 * backend.COLD_WRITE_NS_PER_BYTE * piece)  # each whole write seems to cost this
    clock = CpuClock(cold)
    storage = FileStorage(files, piece, tmp_path, cpu_clock=clock)
    for index in range(9):
        storage.write_block(index, 0, data[index * piece : (index + 1) * piece])
    whole, block = piece, backend.WRITE_CALL_BYTES
    assert sizes == ([whole] + [block] * 12) * 2 + [whole]
    sizes.clear()
    clock.step_ns = int(0.5 * backend.COLD_WRITE_NS_PER_BYTE * piece)  # warm: whole pieces from the next probe on
    for index in range(9, 40):
        storage.write_block(index, 0, data[index * piece : (index + 1) * piece])
    storage.close()
    assert sizes == [block] * 12 + [whole] * 28
    assert (tmp_path / "big").read_bytes() == data
    sizes.clear()
    unmeasured = FileStorage(files, piece, tmp_path)  # no clock: whole pieces always
    unmeasured.write_block(0, 0, data[:piece])
    unmeasured.close()
    assert sizes == [whole]


def test_a_short_write_in_block_sized_calls_stops_there_and_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwrite
    calls: list[int] = []

    def disk_full_after_one_call(handle: int, chunk: memoryview, offset: int) -> int:
        calls.append(len(chunk))
        return real(handle, chunk, offset) if len(calls) == 1 else real(handle, chunk[:100], offset)

    monkeypatch.setattr(os, "pwrite", disk_full_after_one_call)
    piece = 4 * backend.WRITE_CALL_BYTES
    clock = CpuClock(int(2 * backend.COLD_WRITE_NS_PER_BYTE * piece))
    storage = FileStorage([FileEntry(("big",), 2 * piece, 0)], piece, tmp_path, cpu_clock=clock)
    storage.write_block(0, 0, bytes(piece))  # whole, measured "cold"
    with pytest.raises(StorageError, match="short write"):
        storage.write_block(1, 0, bytes(piece))  # in blocks: the second call is short
    assert calls == [piece, backend.WRITE_CALL_BYTES]
    storage.close()
