"""Where a piece's bytes live: the piece stream cut into file segments.

The stream is the torrent's files in order at their offsets (v1 pad files included as
files that are never written; v2 files start on piece boundaries). A range of a piece
maps to one segment per file it touches.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from bitswarm.metainfo import FileEntry


@dataclass(frozen=True, slots=True)
class Segment:
    entry: FileEntry
    file_offset: int
    length: int


class Layout:
    def __init__(self, files: Sequence[FileEntry], piece_length: int) -> None:
        self.files = sorted((entry for entry in files if entry.length), key=lambda entry: entry.offset)
        self.piece_length = piece_length
        self.stream_size = max((entry.offset + entry.length for entry in self.files), default=0)
        self.num_pieces = -(-self.stream_size // piece_length)
        self._ends = [entry.offset + entry.length for entry in self.files]

    def piece_size(self, index: int) -> int:
        return min(self.piece_length, self.stream_size - index * self.piece_length)

    def segments(self, index: int, begin: int = 0, length: int | None = None) -> list[Segment]:
        """The file segments holding ``length`` bytes of piece ``index`` from ``begin`` (all of it by default)."""
        start = index * self.piece_length + begin
        end = min(start + (self.piece_size(index) - begin if length is None else length), self.stream_size)
        segments = []
        for position in range(bisect.bisect_right(self._ends, start), len(self.files)):
            entry = self.files[position]
            if entry.offset >= end:
                break
            first = max(start, entry.offset)
            stop = min(end, entry.offset + entry.length)
            segments.append(Segment(entry, first - entry.offset, stop - first))
        return segments
