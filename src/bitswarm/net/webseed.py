"""The asyncio side of BEP 19 web seeding: one task per web seed of a torrent.

Each task asks the picker for a batch of whole pieces nobody is downloading, in runs of
consecutive pieces, fetches their ranges (planned by ``bitswarm.engine.webseed``, a run of
a file's pieces in one request) pipelined on one keep-alive connection, checks each
piece's hash, and hands it to the swarm, which writes it and counts it verified without
hashing it again. A seed that fails waits (backoff); one whose pieces keep failing their
hash is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httptools

from bitswarm.engine.webseed import (
    REQUEST_TIMEOUT_S,
    RangeRequest,
    WebSeedState,
    merge_ranges,
    plan_piece,
    response_body_is_acceptable,
    split_bodies,
)
from bitswarm.errors import WebSeedError
from bitswarm.net.http_client import USER_AGENT
from bitswarm.storage.layout import Layout

if TYPE_CHECKING:
    from bitswarm.metainfo import Torrent
    from bitswarm.net.session import TorrentRuntime

log = logging.getLogger(__name__)

# A status line and headers longer than this are not a web seed's answer.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
READ_BYTES = 256 * 1024
# Pieces asked for at once, their requests pipelined: enough to hide the round trip and
# the hashing behind each other, few enough that a failure gives back little.
BATCH_BYTES = 1 << 20
MAX_BATCH_PIECES = 32
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Hops from a file's URL to where it is served (mirrors redirect once or twice); more is a loop.
MAX_REDIRECTS = 5
# Redirects remembered per web seed: one per file in practice.
MAX_LOCATIONS = 10_000
# While the picker has no piece for a seed (peers hold them all), look again this often.
IDLE_POLL_S = 0.5


class WebSeedKey:
    """A web seed where the picker expects a peer key (never equal to a connection)."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"WebSeedKey({self.url!r})"


class _Reply:
    """One response: status, headers and a body capped at the length asked for."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.headers_complete = False
        self.keep_alive = False
        self.too_large = False


class _Replies:
    """httptools callbacks for one connection: the replies read so far, in request order.
    One parser per connection, since a read may end in the middle of the next reply."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.limits: deque[int] = deque()  # the body cap of each reply still to come
        self.done: deque[_Reply] = deque()
        self.current: _Reply | None = None
        self.unexpected = False

    def on_message_begin(self) -> None:
        if self.limits:
            self.current = _Reply(self.limits.popleft())
        else:
            self.unexpected = True  # a reply nobody asked for
            self.current = _Reply(0)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.current is not None and len(self.current.headers) < MAX_HEADERS:
            self.current.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self.current is not None:
            self.current.headers_complete = True
            self.current.status = self.parser.get_status_code()
            # Asked here: llhttp forgets the answer once the message is complete.
            self.current.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        reply = self.current
        if reply is None:
            return
        # Refused past the asked length: a server sending the whole file costs us nothing more.
        if len(reply.body) + len(body) > reply.max_bytes:
            reply.too_large = True
        elif not reply.too_large:
            reply.body += body

    def on_message_complete(self) -> None:
        if self.current is not None:
            self.done.append(self.current)
            self.current = None


class WebSeedConnection:
    """One keep-alive HTTP/1.1 connection to a web seed's server. Requests are pipelined:
    all of a batch are sent at once, and the replies come back in order (RFC 9112, 9.3.2).

    Opened when first needed and again after the server closed it, asked for a close, or a
    request failed (the stream's state is then unknown). Requests whose replies did not
    come because the server closed the connection cleanly (an idle keep-alive connection
    dropped, a limit of requests per connection) are sent again on a new one, as long as
    each connection answers at least one."""

    def __init__(self) -> None:
        self._origin: tuple[str, str, int] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies = _Replies()
        # A file's URL -> the URL it was redirected to, for this web seed's lifetime.
        self._locations: dict[str, str] = {}

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._origin = self._reader = self._writer = None
        self._replies = _Replies()

    async def fetch(self, requests: Sequence[RangeRequest]) -> list[bytes]:
        """The bytes of each of ``requests``; raises ``WebSeedError`` unless the server sent
        exactly them within ``REQUEST_TIMEOUT_S``. Redirects are followed (and remembered)
        up to ``MAX_REDIRECTS`` hops from a file's URL."""
        timeout_s = REQUEST_TIMEOUT_S
        bodies: list[bytes] = []
        try:
            async with asyncio.timeout(timeout_s):
                while len(bodies) < len(requests):
                    rest = [replace(request, url=self._located(request.url)) for request in requests[len(bodies) :]]
                    origin = _origin(rest[0].url)
                    group = rest[: next((i for i, r in enumerate(rest) if _origin(r.url) != origin), len(rest))]
                    reused = self.is_open and self._origin == origin
                    got, moved = await self._exchange(origin, group, bodies)
                    # A reused connection may have been dropped while idle: then once more on a new one.
                    if not (got or moved or reused):
                        raise WebSeedError("connection closed before the reply was complete")
        except TimeoutError:
            self.close()
            raise WebSeedError(f"no reply within {timeout_s:.0f} s") from None
        except (OSError, httptools.HttpParserError, WebSeedError) as error:
            self.close()
            raise WebSeedError(str(error) or type(error).__name__) from None
        return bodies

    def _located(self, url: str) -> str:
        """Where ``url`` is served, after the redirects seen so far."""
        for _hop in range(MAX_REDIRECTS + 1):
            target = self._locations.get(url)
            if target is None:
                return url
            url = target
        raise WebSeedError(f"more than {MAX_REDIRECTS} redirects")

    def _moved(self, url: str, location: bytes | None) -> None:
        target = urljoin(url, location.decode("latin-1").strip()) if location else ""
        if urlsplit(target).scheme not in ("http", "https"):
            raise WebSeedError(f"a redirect to no http(s) URL: {target[:100]!r}")
        if len(self._locations) >= MAX_LOCATIONS:
            raise WebSeedError(f"more than {MAX_LOCATIONS} redirects")
        self._locations[url] = target

    async def _exchange(
        self, origin: tuple[str, str, int], requests: Sequence[RangeRequest], bodies: list[bytes]
    ) -> tuple[int, bool]:
        """Send ``requests`` (all to ``origin``) on the connection, a new one unless an open
        one goes there, and add their bodies to ``bodies`` until all came, one was
        redirected, or the connection ended; returns how many came and whether one was
        redirected. Raises ``WebSeedError`` for a wrong reply."""
        if self._origin != origin or not self.is_open:
            self.close()
            context = ssl.create_default_context() if origin[0] == "https" else None
            self._reader, self._writer = await asyncio.open_connection(origin[1], origin[2], ssl=context)
            self._origin = origin
        reader, writer, replies = self._reader, self._writer, self._replies
        assert reader is not None
        assert writer is not None
        writer.write(b"".join(_encode(request) for request in requests))
        replies.limits.extend(request.length for request in requests)
        got = 0
        unframed = 0  # bytes read while a reply's headers are incomplete
        while got < len(requests):
            if not replies.done:
                try:
                    chunk = await reader.read(READ_BYTES)
                except ConnectionError:
                    if replies.current is not None:
                        raise
                    # Between replies, a reset is a close: an idle connection the server had
                    # dropped, or one it closed with our later requests unread.
                    chunk = b""
                if not chunk:
                    if replies.current is not None:
                        raise WebSeedError("connection closed in the middle of a reply")
                    self.close()
                    return got, False
                replies.parser.feed_data(chunk)
                incomplete = replies.current is not None and not replies.current.headers_complete
                unframed = unframed + len(chunk) if incomplete else 0
                if unframed > MAX_HEADER_BYTES + READ_BYTES:  # the last read may hold one reply's start
                    raise WebSeedError(f"headers longer than {MAX_HEADER_BYTES} bytes")
                if replies.current is not None and replies.current.too_large:
                    raise WebSeedError(f"reply larger than the {replies.current.max_bytes} bytes asked for")
                if replies.unexpected:
                    raise WebSeedError("more replies than requests")
                continue
            reply = replies.done.popleft()
            request = requests[got]
            if reply.status in REDIRECT_STATUSES:
                self._moved(request.url, reply.headers.get(b"location"))
                self.close()  # the replies still to come are asked for again, where they moved
                return got, True
            content_range = reply.headers.get(b"content-range")
            text = content_range.decode("latin-1") if content_range is not None else None
            if reply.too_large or not response_body_is_acceptable(request, reply.status, text, len(reply.body)):
                raise WebSeedError(f"HTTP {reply.status}: not the {request.length} bytes of {request.header}")
            bodies.append(bytes(reply.body))
            got += 1
            if not reply.keep_alive:
                self.close()
                return got, False
        return got, False


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebSeedError(f"not an http(s) URL: {url[:100]}")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _encode(request: RangeRequest) -> bytes:
    parts = urlsplit(request.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Range: {request.header}\r\nAccept-Encoding: identity\r\n\r\n"
    ).encode()


async def fetch_pieces(
    connection: WebSeedConnection, base_url: str, torrent: Torrent, layout: Layout, indexes: Sequence[int]
) -> list[bytes]:
    """Pieces ``indexes`` from the web seed at ``base_url``, their ranges pipelined on
    ``connection`` (a run of consecutive pieces of a file in one request), their pad bytes
    (BEP 47) made here."""
    plans = [
        plan_piece(base_url, torrent.name, layout, index, is_multi_file=torrent.is_multi_file) for index in indexes
    ]
    requests = merge_ranges(plans)
    bodies = await connection.fetch(requests) if requests else []
    return split_bodies(plans, bodies)


async def run_webseed(runtime: TorrentRuntime, state: WebSeedState) -> None:
    """Download pieces from the web seed ``state`` stands for until the torrent is complete,
    paused or the seed is banned: a batch of pieces at a time, pipelined on one connection."""
    connection = WebSeedConnection()
    try:
        await _fetch_batches(runtime, state, connection)
    finally:
        connection.close()


async def _fetch_batches(runtime: TorrentRuntime, state: WebSeedState, connection: WebSeedConnection) -> None:
    url = state.url
    key = WebSeedKey(url)
    torrent = runtime.torrent
    layout = Layout(torrent.files, torrent.piece_length)
    swarm = runtime.swarm
    assert swarm is not None
    batch_pieces = max(1, min(MAX_BATCH_PIECES, BATCH_BYTES // torrent.piece_length))
    while not runtime.paused and not runtime.finished.is_set():
        now = time.monotonic()
        if state.is_banned:
            log.info("web seed dropped after %d pieces that failed their hash", state.bad_pieces)
            return
        if not state.may_request(now):
            await asyncio.sleep(state.retry_at - now)
            continue
        # Runs of consecutive pieces, each run one range per file.
        indexes: list[int] = []
        while len(indexes) < batch_pieces:
            run = swarm.picker.start_run_for_webseed(key, batch_pieces - len(indexes))
            if not run:
                break
            indexes += run
        if not indexes:
            # A reader's new deadline (a seek past what peers hold) wakes the seed at once.
            runtime.deadlines_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.deadlines_changed.wait(), IDLE_POLL_S)
            continue
        try:
            delay = runtime.download_delay(sum(torrent.piece_size(index) for index in indexes), now)
            if delay > 0:
                await asyncio.sleep(delay)
            fetched = await fetch_pieces(connection, url, torrent, layout, indexes)
            pieces = [_as_requested(runtime, index, data) for index, data in zip(indexes, fetched, strict=True)]
            matches = await runtime.run_off_loop(_pieces_match, runtime, indexes, pieces)
        except WebSeedError as error:
            for index in indexes:
                swarm.picker.piece_abandoned(index, key)
            state.request_failed(time.monotonic())
            log.debug("web seed failed on pieces %s: %s", indexes[:4], error)
            continue
        except BaseException:
            for index in indexes:
                swarm.picker.piece_abandoned(index, key)
            raise
        for index, raw, data, ok in zip(indexes, fetched, pieces, matches, strict=True):
            if not ok:
                swarm.picker.piece_abandoned(index, key)
                state.piece_failed_hash()
                continue
            state.piece_served()
            runtime.webseed_bytes += len(raw)
            runtime.run_actions(swarm.webseed_piece(key, index, data, time.monotonic()))


def _as_requested(runtime: TorrentRuntime, index: int, data: bytes) -> bytes:
    """Piece ``index`` as the swarm takes it from peers (``request_size`` bytes). A v2-only
    torrent's files start at piece boundaries with no pad files between them (BEP 52), so
    a file's last piece as fetched is its bytes alone; peers send the blocks holding them
    whole, the tail past the file's end zeros, and so it is made here."""
    size = runtime.request_size(index)
    # Every other piece is fetched whole (pad files included): its length is already right.
    return data + bytes(size - len(data)) if len(data) < size else data


def _pieces_match(runtime: TorrentRuntime, indexes: list[int], pieces: list[bytes]) -> list[bool]:
    # The torrent's own check (a hybrid's pieces against both hashes), so that a seed is
    # blamed for exactly the pieces the swarm would refuse; the swarm trusts this check
    # (``Swarm.webseed_piece``) rather than hashing the piece again.
    return [runtime.piece_matches(index, data) for index, data in zip(indexes, pieces, strict=True)]
