"""How long a Matroska or WebM file plays: its Segment Info (RFC 9559). Sans-IO.

As ``bitswarm.stream.mp4`` for MP4: a stream reader models its player from the media's
rate, and a Matroska file keeps its duration in the ``Info`` element near the start of its
``Segment``, in units of ``TimestampScale`` nanoseconds. EBML elements are an ID and a
size, both variable-length integers (RFC 8794); only those headers, ``Info``'s two numbers
and the "unknown size" a live recording writes are understood. Anything else, or anything
malformed, is "unknown" (None), never an error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MATROSKA_EXTENSIONS = frozenset({".mkv", ".webm", ".mka", ".mk3d"})
EBML_HEADER = 0x1A45DFA3
SEGMENT = 0x18538067
INFO = 0x1549A966
CLUSTER = 0x1F43B675  # media data: Info comes before it
TIMESTAMP_SCALE = 0x2AD7B1
DURATION = 0x4489
DEFAULT_TIMESTAMP_SCALE_NS = 1_000_000
# Elements walked at most among the Segment's first children, and bytes of Info read.
MAX_ELEMENTS = 64
HEADER_BYTES = 12  # a 4-byte ID and an 8-byte size
MAX_INFO_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Element:
    element_id: int
    start: int
    header: int
    size: int  # payload bytes (an unknown size runs to the parent's end)

    @property
    def payload(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.payload + self.size


def _vint(data: bytes, at: int, max_length: int) -> tuple[int, int, bool] | None:
    """(value with the length marker, length, all value bits set) of the variable-length
    integer at ``at``; None when malformed."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 9 - data[at].bit_length()
    if length > max_length or at + length > len(data):
        return None
    raw = int.from_bytes(data[at : at + length], "big")
    value_bits = (1 << (7 * length)) - 1
    return raw, length, raw & value_bits == value_bits


def read_element(data: bytes, start: int, limit: int) -> Element | None:
    """The element whose header ``data`` holds (the bytes at ``start``), inside ``limit``
    bytes of file or parent; None when it is malformed or overruns the limit."""
    element_id = _vint(data, 0, 4)
    if element_id is None:
        return None
    raw_id, id_length, _ = element_id
    size = _vint(data, id_length, 8)
    if size is None:
        return None
    raw_size, size_length, unknown = size
    header = id_length + size_length
    value = limit - start - header if unknown else raw_size & ((1 << (7 * size_length)) - 1)
    if value < 0 or start + header + value > limit:
        return None
    return Element(raw_id, start, header, value)


def info_seconds(payload: bytes) -> float | None:
    """The duration an ``Info`` element's payload gives, or None."""
    scale, duration = DEFAULT_TIMESTAMP_SCALE_NS, None
    at = 0
    for _ in range(MAX_ELEMENTS):
        if at >= len(payload):
            break
        element = read_element(payload[at : at + HEADER_BYTES], at, len(payload))
        if element is None:
            return None
        value = payload[element.payload : element.end]
        if element.element_id == TIMESTAMP_SCALE and 1 <= len(value) <= 8:
            scale = int.from_bytes(value, "big")
        elif element.element_id == DURATION and len(value) in (4, 8):
            duration = struct.unpack(">f" if len(value) == 4 else ">d", value)[0]
        at = element.end
    if duration is None or not duration > 0 or scale <= 0 or duration == float("inf"):
        return None
    seconds = float(duration) * scale / 1e9
    return seconds if seconds > 0 else None
