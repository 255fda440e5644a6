"""BEP 19 web seeding (GetRight-style ``url-list``): which HTTP ranges hold a piece.

Sans-IO. ``plan_piece`` maps one piece to byte ranges of files on a web seed, per BEP 19:
for a single-file torrent the URL names the file itself (a URL ending in ``/`` gets the
torrent's name appended); for a multi-file torrent the file is at URL + ``/`` + name +
``/`` + path elements, each percent-encoded. Pad files (BEP 47) are never fetched: their
bytes are zeros. ``merge_ranges`` joins the ranges of a run of consecutive pieces into one
request per stretch of a file (as libtorrent asks), and ``split_bodies`` cuts the replies
back into pieces. ``WebSeedState`` keeps one web seed's failures (backoff, doubling from
``BACKOFF_FIRST_S`` to ``BACKOFF_MAX_S``) and bans it after ``MAX_BAD_PIECES`` pieces
that failed their hash check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote

from bitswarm.storage.layout import Layout

BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 300.0
# A seed that served this many pieces with wrong bytes is not asked again.
MAX_BAD_PIECES = 3
# One request covers at most one batch of pieces (the caller caps a batch's bytes), so a
# reply is never larger than what was asked for in one go.
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """``length`` bytes of the file at ``url`` from ``first`` (an HTTP ``Range: bytes=first-last``)."""

    url: str
    first: int
    length: int
    file_size: int

    @property
    def header(self) -> str:
        return f"bytes={self.first}-{self.first + self.length - 1}"


@dataclass(frozen=True, slots=True)
class PadBytes:
    """Zeros of a pad file: nothing to fetch."""

    length: int


def file_url(base_url: str, name: str, path: tuple[str, ...], *, is_multi_file: bool) -> str:
    """The URL of a file on a web seed (BEP 19). ``path`` starts with the torrent's name."""
    if not is_multi_file:
        return base_url + quote(name) if base_url.endswith("/") else base_url
    return base_url.rstrip("/") + "/" + "/".join(quote(part, safe="") for part in path)


def plan_piece(
    base_url: str, name: str, layout: Layout, index: int, *, is_multi_file: bool
) -> list[RangeRequest | PadBytes]:
    """The requests (in piece order) whose bodies, joined, are piece ``index``."""
    if not 0 <= index < layout.num_pieces:
        raise ValueError(f"piece {index} outside 0..{layout.num_pieces - 1}")
    plan: list[RangeRequest | PadBytes] = []
    for segment in layout.segments(index):
        entry = segment.entry
        if entry.is_pad:
            plan.append(PadBytes(segment.length))
        else:
            url = file_url(base_url, name, entry.path, is_multi_file=is_multi_file)
            plan.append(RangeRequest(url, segment.file_offset, segment.length, entry.length))
    return plan


def merge_ranges(plans: Iterable[Sequence[RangeRequest | PadBytes]]) -> list[RangeRequest]:
    """The ranges of ``plans`` (pieces in order), a range that continues the one before it
    in the same file joined to it: a run of consecutive pieces of one file is one request.
    Pad bytes are skipped, so a pad file between two files ends a request. Their bodies,
    joined, are the plans' ranges' bodies joined."""
    merged: list[RangeRequest] = []
    for plan in plans:
        for item in plan:
            if isinstance(item, PadBytes):
                continue
            last = merged[-1] if merged else None
            if last is not None and last.url == item.url and last.first + last.length == item.first:
                merged[-1] = replace(last, length=last.length + item.length)
            else:
                merged.append(item)
    return merged


def split_bodies(plans: Sequence[Sequence[RangeRequest | PadBytes]], bodies: Sequence[bytes]) -> list[bytes]:
    """Each plan's piece, cut from ``bodies`` (the replies to ``merge_ranges(plans)``, in
    order), its pad bytes zeros. Raises ``ValueError`` when the bodies' length is not the
    plans' ranges' length (the caller checked each reply's length, so our bug)."""
    stream = memoryview(bodies[0] if len(bodies) == 1 else b"".join(bodies))
    needed = sum(item.length for plan in plans for item in plan if isinstance(item, RangeRequest))
    if needed != len(stream):
        raise ValueError(f"{len(stream)} bytes of replies for {needed} bytes of ranges")
    pieces = []
    at = 0
    for plan in plans:
        parts: list[bytes | memoryview] = []
        for item in plan:
            if isinstance(item, PadBytes):
                parts.append(bytes(item.length))
            else:
                parts.append(stream[at : at + item.length])
                at += item.length
        pieces.append(bytes(parts[0]) if len(parts) == 1 else b"".join(parts))
    return pieces


def response_body_is_acceptable(
    request: RangeRequest, status: int, content_range: str | None, body_length: int
) -> bool:
    """Whether a response answers ``request`` exactly: 206 with the asked range, or 200 when
    the range is the whole file. Anything else (a whole file for a part, a short body) is refused."""
    if body_length != request.length:
        return False
    if status == 206:
        expected = f"bytes {request.first}-{request.first + request.length - 1}/"
        return content_range is None or content_range.strip().startswith(expected)
    return status == 200 and request.first == 0 and request.length == request.file_size


class WebSeedState:
    """One web seed's standing: when it may be asked next, and whether it is banned."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures = 0
        self.bad_pieces = 0
        self.retry_at = 0.0
        self.pieces_served = 0

    @property
    def is_banned(self) -> bool:
        return self.bad_pieces >= MAX_BAD_PIECES

    def may_request(self, now: float) -> bool:
        return not self.is_banned and now >= self.retry_at

    def backoff_s(self) -> float:
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(16, max(0, self.failures - 1)))

    def request_failed(self, now: float) -> None:
        """The server did not answer properly (error, timeout, wrong range): wait before the next try."""
        self.failures += 1
        self.retry_at = now + self.backoff_s()

    def piece_failed_hash(self) -> None:
        """The seed answered, with wrong bytes. No backoff: only some of its files may be
        wrong, and the ban ends it soon enough if all are."""
        self.bad_pieces += 1

    def piece_served(self) -> None:
        self.failures = 0
        self.pieces_served += 1
        self.retry_at = 0.0
