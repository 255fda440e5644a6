"""HTTP byte ranges (RFC 9110, section 14): one ``Range`` header against a file's size. Sans-IO.

Only a single range of the ``bytes`` unit is served as a 206: ``bytes=a-b``, ``bytes=a-``
and ``bytes=-n``. A header that is not of that grammar (another unit, a reversed range,
numbers of more than ``MAX_DIGITS`` digits, several ranges, anything over
``MAX_RANGE_HEADER_BYTES``) is ignored, as RFC 9110 allows, and the whole file is served
(200): a player that asked oddly still plays, and nothing a client writes costs more than
one pass over its header. A well-formed range that starts at or past the end is
unsatisfiable (416, ``Content-Range: bytes */size``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RANGE_HEADER_BYTES = 200
# 18 digits reach an exabyte; more is no file we hold, only a number to overflow with.
MAX_DIGITS = 18
_SINGLE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})", re.ASCII)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``first`` to ``last`` inclusive of a file of ``size`` bytes."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    size: int

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | Unsatisfiable | None:
    """What to serve of a file of ``size`` bytes: a range (206), ``Unsatisfiable`` (416),
    or None: the whole file (200; no header, or one to ignore)."""
    if header is None or len(header) > MAX_RANGE_HEADER_BYTES:
        return None
    match = _SINGLE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None  # "bytes=-": no range at all
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return Unsatisfiable(size)  # RFC 9110 14.1.3: a zero-length suffix is unsatisfiable
        return ByteRange(max(0, size - suffix), size - 1, size)
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None  # reversed: not a valid range-spec, so the header is ignored
    if first >= size:
        return Unsatisfiable(size)
    return ByteRange(first, min(last, size - 1), size)
