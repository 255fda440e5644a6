"""How long an MP4 plays: the movie header of an ISO base media file (ISO/IEC 14496-12). Sans-IO.

A stream reader models its player from the media's rate (bytes over seconds), and the
seconds of an MP4 are in its ``moov`` box's ``mvhd``: ``timescale`` units a second and a
``duration`` in them. ``moov`` sits before or after the media data (``mdat``), and the
file's first and last pieces come first, so walking the top-level boxes from the start
reads a few headers, each where a piece is fetched early. Only what is needed is parsed:
box headers (32-bit sizes, 64-bit ``largesize``, size 0 for "to the end") and ``mvhd``
versions 0 and 1. Anything else, or anything malformed, is "unknown" (None), never an
error: the reader then goes by its read rate.
"""

from __future__ import annotations

from dataclasses import dataclass

MP4_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".m4a", ".3gp"})
# Boxes walked at most, top level and in moov: real files have a handful.
MAX_BOXES = 64
HEADER_BYTES = 16  # enough for a header with a 64-bit size
MVHD_BYTES = 32  # the version, flags, times, timescale and duration of either version


@dataclass(frozen=True, slots=True)
class Box:
    kind: bytes
    start: int  # where the box (its header) starts
    header: int  # header bytes
    size: int  # header included

    @property
    def payload(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def read_box(data: bytes, start: int, limit: int) -> Box | None:
    """The box whose header ``data`` holds (the bytes at ``start``), inside ``limit`` bytes
    of file or parent box; None when it is malformed or overruns the limit."""
    if len(data) < 8 or start + 8 > limit:
        return None
    size = int.from_bytes(data[:4], "big")
    kind = bytes(data[4:8])
    header = 8
    if size == 1:
        if len(data) < 16:
            return None
        size, header = int.from_bytes(data[8:16], "big"), 16
    elif size == 0:
        size = limit - start  # to the end of the file (or parent)
    if size < header or start + size > limit or not kind.isascii():
        return None
    return Box(kind, start, header, size)


def mvhd_seconds(data: bytes) -> float | None:
    """The duration in an ``mvhd`` payload (its first ``MVHD_BYTES``), or None."""
    if len(data) < MVHD_BYTES:
        return None
    version = data[0]
    if version == 0:
        timescale = int.from_bytes(data[12:16], "big")
        duration = int.from_bytes(data[16:20], "big")
        unknown = 0xFFFFFFFF
    elif version == 1:
        timescale = int.from_bytes(data[20:24], "big")
        duration = int.from_bytes(data[24:32], "big")
        unknown = 0xFFFFFFFFFFFFFFFF
    else:
        return None
    if timescale == 0 or duration in (0, unknown):
        return None
    return duration / timescale
