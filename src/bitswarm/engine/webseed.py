"""BEP 19 web seeding (GetRight-style ``url-list``): which HTTP ranges hold a piece.

Sans-IO. ``plan_piece`` maps one piece to byte ranges of files on a web seed, per BEP 19:
for a single-file torrent the URL names the file itself (a URL ending in ``/`` gets the
torrent's name appended); for a multi-file torrent the file is at URL + ``/`` + name +
``/`` + path elements, each percent-encoded. Pad files (BEP 47) are never fetched: their
bytes are zeros. ``plan_run`` joins the ranges of a run of consecutive pieces into one
request per stretch of a file (as libtorrent asks, up to ``MAX_SPAN_BYTES`` at a time)
and says where each reply's bytes go in the pieces, so the I/O layer reads them straight
into the piece buffers. ``WebSeedState`` keeps one web seed's failures (backoff, doubling
from ``BACKOFF_FIRST_S`` to ``BACKOFF_MAX_S``), bans it after ``MAX_BAD_PIECES`` pieces
that failed their hash check, and says how many connections to keep open to it: one at
first, one more after each run it served, up to ``MAX_CONNECTIONS``, and how long a run
to ask for (``RUN_TARGET_S`` at the pace the last run came at, from ``FIRST_SPAN_BYTES``
up to ``MAX_SPAN_BYTES``, halved by a failure). A failure on the
first connection makes the seed wait and drops a connection; one on another connection
(a server that limits connections per client answers it 503, or resets it) lowers the
cap to the connections that worked, with no wait: the first connection carries on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote

from bitswarm.storage.layout import Layout

BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 300.0
# A seed that served this many pieces with wrong bytes is not asked again.
MAX_BAD_PIECES = 3
# Bytes of pieces asked for in one run (one request per file it touches) at most: long
# enough that a request's round trip and headers are lost in its body (libtorrent asks up
# to 16 MiB), short enough that a few runs in flight over a few connections stay a few
# tens of MiB of memory, and that a failure gives back little.
MAX_SPAN_BYTES = 8 << 20
# A run's size follows the seed's pace: this long a run at the pace its last run came at,
# so a fast seed gets long runs and a slow one runs far inside ``REQUEST_TIMEOUT_S``.
RUN_TARGET_S = 2.0
# The first run, before the pace is known (and the least a run is cut to after failures).
FIRST_SPAN_BYTES = 1 << 20
MIN_SPAN_BYTES = 256 * 1024
# Runs while a reader waits for pieces (a player streaming): a run's pieces are handed over
# once the whole run is in, so a short run brings the piece a player needs sooner.
DEADLINE_SPAN_BYTES = 1 << 20
# Connections to one web seed at most: they hide a connection's round trips between runs
# and a server's per-connection pace; more would be rude to a mirror.
MAX_CONNECTIONS = 3
# A run is sized to come in about ``RUN_TARGET_S``: a server that takes this long for one
# has stalled.
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


@dataclass(frozen=True, slots=True)
class BodySlice:
    """``length`` bytes of a reply that belong at ``begin`` of the run's ``piece``-th piece."""

    piece: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The requests for a run of pieces, and where each reply's body goes: ``slices[i]``,
    in order, cover ``requests[i].length`` bytes. Bytes no slice covers (pad files, and a
    v2 file's tail past its end) stay zeros. ``sizes`` are the bytes of the torrent's
    stream each piece covers, pad bytes included."""

    requests: tuple[RangeRequest, ...]
    slices: tuple[tuple[BodySlice, ...], ...]
    sizes: tuple[int, ...]


def plan_run(base_url: str, name: str, layout: Layout, indexes: Sequence[int], *, is_multi_file: bool) -> RunPlan:
    """The requests whose bodies fill pieces ``indexes`` (in that order), a range that
    continues the one before it in the same file joined to it: a run of consecutive
    pieces of one file is one request. A pad file between two files ends a request."""
    requests: list[RangeRequest] = []
    slices: list[list[BodySlice]] = []
    sizes: list[int] = []
    for position, index in enumerate(indexes):
        begin = 0
        for item in plan_piece(base_url, name, layout, index, is_multi_file=is_multi_file):
            if isinstance(item, RangeRequest):
                last = requests[-1] if requests else None
                if last is not None and last.url == item.url and last.first + last.length == item.first:
                    requests[-1] = replace(last, length=last.length + item.length)
                    slices[-1].append(BodySlice(position, begin, item.length))
                else:
                    requests.append(item)
                    slices.append([BodySlice(position, begin, item.length)])
            begin += item.length
        sizes.append(begin)
    return RunPlan(tuple(requests), tuple(tuple(parts) for parts in slices), tuple(sizes))


def response_body_is_acceptable(
    request: RangeRequest, status: int, content_range: str | None, body_length: int
) -> bool:
    """Whether a response answers ``request`` exactly: 206 with the asked range, or 200 when
    the range is the whole file. Anything else (a whole file for a part, a short body) is
    refused. ``body_length`` is the reply's Content-Length: it is checked before the body
    is read."""
    if body_length != request.length:
        return False
    if status == 206:
        expected = f"bytes {request.first}-{request.first + request.length - 1}/"
        return content_range is None or content_range.strip().startswith(expected)
    return status == 200 and request.first == 0 and request.length == request.file_size


class WebSeedState:
    """One web seed's standing: when it may be asked next, and whether it is banned."""

    def __init__(self, url: str, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.url = url
        self.failures = 0
        self.bad_pieces = 0
        self.retry_at = 0.0
        self.pieces_served = 0
        self.max_connections = max_connections
        # How many connections to keep to the seed now (``run_served``, ``request_failed``).
        self.connections_wanted = 1
        # Bytes to ask for in the next run (``run_served``, ``request_failed``).
        self.span_bytes = min(FIRST_SPAN_BYTES, MAX_SPAN_BYTES)

    @property
    def is_banned(self) -> bool:
        return self.bad_pieces >= MAX_BAD_PIECES

    def may_request(self, now: float) -> bool:
        return not self.is_banned and now >= self.retry_at

    def backoff_s(self) -> float:
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(16, max(0, self.failures - 1)))

    def request_failed(self, now: float) -> None:
        """The server did not answer the first connection properly (error, timeout, wrong
        range): one connection fewer, and wait before the next try."""
        self.failures += 1
        self.retry_at = now + self.backoff_s()
        self.connections_wanted = max(1, self.connections_wanted - 1)
        self.span_bytes = max(min(MIN_SPAN_BYTES, MAX_SPAN_BYTES), self.span_bytes // 2)

    def run_served(self, size: int, elapsed_s: float) -> None:
        """A run of ``size`` bytes came whole over one connection in ``elapsed_s``: one more
        connection is welcome, up to the cap, and the next run is sized to the pace."""
        self.connections_wanted = min(self.max_connections, self.connections_wanted + 1)
        pace = size / max(elapsed_s, 1e-3)
        self.span_bytes = int(min(MAX_SPAN_BYTES, max(min(MIN_SPAN_BYTES, MAX_SPAN_BYTES), pace * RUN_TARGET_S)))

    def next_span_bytes(self, *, reader_waits: bool) -> int:
        """Bytes to ask for in the next run: ``span_bytes``, or at most
        ``DEADLINE_SPAN_BYTES`` while a reader waits for pieces."""
        return min(self.span_bytes, DEADLINE_SPAN_BYTES) if reader_waits else self.span_bytes

    def extra_connection_failed(self) -> None:
        """A connection beside the first failed: the server allows fewer (or that one met
        trouble); the cap falls to one below what was wanted, for the seed's lifetime."""
        self.max_connections = max(1, self.connections_wanted - 1)
        self.connections_wanted = self.max_connections

    def piece_failed_hash(self) -> None:
        """The seed answered, with wrong bytes. No backoff: only some of its files may be
        wrong, and the ban ends it soon enough if all are."""
        self.bad_pieces += 1

    def piece_served(self) -> None:
        self.failures = 0
        self.pieces_served += 1
        self.retry_at = 0.0
