"""The asyncio side of BEP 19 web seeding: a few connections per web seed of a torrent.

Each connection's task asks the picker for a run of consecutive pieces nobody is
downloading (going on after its last run where it can), as long as the seed's pace
warrants (``WebSeedState.span_bytes``, up to ``MAX_SPAN_BYTES``), fetches
their ranges (planned by ``bitswarm.engine.webseed``: a run of a file's pieces in one
request) and reads each reply's body straight into the pieces' buffers. Each piece's hash
is checked once, on the session's hashing thread (beside the disk thread's writes), and
the run's pieces go to the swarm, which writes them in one trip to the disk thread and
counts them verified without hashing them again; no run is fetched while the disk thread
is too far behind. The seed starts with one connection and gains one after each run it
served, up to ``MAX_CONNECTIONS`` (``WebSeedState``); a failure on the first makes the
seed wait (backoff), one on another lowers the cap (a server that limits connections per
client); a seed whose pieces keep failing their hash is dropped.

HTTP: httptools parses every status line and header block; a body is framed by its
Content-Length, which must be the length asked for, and read into the pieces by the
transport (``asyncio.BufferedProtocol``) rather than through the parser, which would hand
it over in fresh ``bytes`` to be copied again. Chunked replies are refused: a range's
reply has a length (nginx, Apache, S3 and every CDN send it), and one without can't be
checked against the ask before its body is read.
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
from typing import TYPE_CHECKING, cast
from urllib.parse import urljoin, urlsplit

import httptools

from bitswarm.engine import webseed as plan
from bitswarm.engine.webseed import RangeRequest, WebSeedState, plan_run, response_body_is_acceptable
from bitswarm.errors import WebSeedError
from bitswarm.net.http_client import USER_AGENT
from bitswarm.storage.layout import Layout

if TYPE_CHECKING:
    from bitswarm.engine.swarm import Action
    from bitswarm.net.session import TorrentRuntime

log = logging.getLogger(__name__)

# A status line and headers longer than this are not a web seed's answer.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
# Reads while a reply's headers are awaited: the bytes after the headers in the same read
# are copied into the pieces; the rest of a body is read into them directly.
HEAD_READ_BYTES = 16 * 1024
# Longest digits of a Content-Length we parse (a petabyte has 16).
MAX_CONTENT_LENGTH_DIGITS = 19
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Hops from a file's URL to where it is served (mirrors redirect once or twice); more is a loop.
MAX_REDIRECTS = 5
# Redirects remembered per connection: one per file in practice.
MAX_LOCATIONS = 10_000
# While the picker has no piece for a seed (peers hold them all), look again this often.
IDLE_POLL_S = 0.5
# Tests shorten it; a connection reads it when it fetches.
REQUEST_TIMEOUT_S = plan.REQUEST_TIMEOUT_S


class WebSeedKey:
    """A web seed where the picker expects a peer key (never equal to a connection)."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"WebSeedKey({self.url!r})"


class _Reply:
    """One reply still to come or just come: where its body goes, and its head once read."""

    __slots__ = ("keep_alive", "location", "request", "status", "views")

    def __init__(self, request: RangeRequest, views: Sequence[memoryview]) -> None:
        self.request = request
        self.views = views  # their lengths add up to request.length
        self.status = 0
        self.keep_alive = False
        self.location: bytes | None = None


class _Head:
    """httptools callbacks for one status line and header block."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.count = 0
        self.is_complete = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count += 1
        if self.count > MAX_HEADERS:
            raise WebSeedError(f"more than {MAX_HEADERS} headers")
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.is_complete = True
        # Asked here: llhttp forgets the answer once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()


class _ReplyReader(asyncio.BufferedProtocol):
    """One connection's replies, in request order (pipelined requests, RFC 9112 9.3.2).

    Between replies, reads go to a small buffer and collect the next head; once the head
    is parsed and accepted, reads go straight into the reply's views until its
    Content-Length bytes are in. Anything wrong (a bad head, a refused reply, bytes nobody
    asked for, a close in the middle of a reply) ends the connection: ``error`` is set and
    the transport aborted, so a hostile server is not read any further."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Reply] = deque()  # asked for, not complete, in order
        self.done: deque[_Reply] = deque()
        self.error: WebSeedError | None = None
        self.is_closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._scratch = memoryview(bytearray(HEAD_READ_BYTES))
        self._head = bytearray()
        self._body: _Reply | None = None  # the reply whose body is being read
        self._view = 0  # which of its views is being filled
        self._view_at = 0  # bytes of that view filled

    # -- asyncio.BufferedProtocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but has its methods).
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._body is not None:
            return self._body.views[self._view][self._view_at :]
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        if self.error is not None:
            return
        if self._body is not None:
            self._filled(nbytes)
        else:
            self._take(self._scratch[:nbytes])

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_closed = True
        # Between replies, a close (or a reset) ends a keep-alive connection: an idle one
        # the server dropped, or one it closed with our later requests unread.
        if self.error is None and (self._body is not None or self._head):
            self.error = WebSeedError("connection closed in the middle of a reply")
        self._wake()

    # -- for WebSeedConnection ---------------------------------------------------------

    def expect(self, requests: Sequence[RangeRequest], targets: Sequence[Sequence[memoryview]]) -> None:
        for request, views in zip(requests, targets, strict=True):
            if sum(len(view) for view in views) != request.length:
                raise ValueError(f"views for {sum(len(view) for view in views)} bytes, asked {request.length}")
            self.pending.append(_Reply(request, [view for view in views if len(view)]))

    async def wait_reply(self) -> _Reply | None:
        """The next reply whose head (and body, unless a redirect) came; None when the
        server closed the connection cleanly before it. Raises ``WebSeedError``."""
        while True:
            if self.done:
                return self.done.popleft()
            if self.error is not None:
                raise self.error
            if self.is_closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    # -- reading -----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, message: str) -> None:
        self.error = WebSeedError(message)
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _filled(self, nbytes: int) -> None:
        """``nbytes`` more of the current body are in its current view."""
        reply = self._body
        assert reply is not None
        self._view_at += nbytes
        if self._view_at == len(reply.views[self._view]):
            self._view += 1
            self._view_at = 0
            if self._view == len(reply.views):
                self._body = None
                self.pending.popleft()
                self.done.append(reply)
                self._wake()

    def _take(self, data: memoryview) -> None:
        """Bytes read between replies or at a body's start: a head, body bytes, the next head."""
        while data:
            if self._body is not None:
                view = self._body.views[self._view]
                count = min(len(data), len(view) - self._view_at)
                view[self._view_at : self._view_at + count] = data[:count]
                data = data[count:]
                self._filled(count)
                continue
            if not self.pending:
                self._fail("more replies than requests")
                return
            searched = max(0, len(self._head) - 3)
            self._head += data
            end = self._head.find(b"\r\n\r\n", searched)
            if end < 0 or end + 4 > MAX_HEADER_BYTES:
                if len(self._head) > MAX_HEADER_BYTES:
                    self._fail(f"headers longer than {MAX_HEADER_BYTES} bytes")
                return
            block = bytes(self._head[: end + 4])
            data = memoryview(bytes(self._head[end + 4 :]))
            self._head.clear()
            if not self._start_reply(self.pending[0], block):
                return

    def _start_reply(self, reply: _Reply, block: bytes) -> bool:
        """Parse a reply's head and decide: read its body into the pieces (True), or the
        reply is a redirect or refused and the connection ends (False)."""
        head = _Head()
        try:
            head.parser.feed_data(block)
        except httptools.HttpParserError as error:
            self._fail(f"a malformed reply: {error}")
            return False
        except WebSeedError as error:
            self._fail(str(error))
            return False
        if not head.is_complete:
            self._fail("a malformed reply head")
            return False
        reply.status = head.parser.get_status_code()
        reply.keep_alive = head.keep_alive
        request = reply.request
        if reply.status in REDIRECT_STATUSES:
            # The connection ends here (its body is not read); the caller asks again.
            reply.location = head.headers.get(b"location")
            self.pending.popleft()
            self.done.append(reply)
            if self.transport is not None:
                self.transport.pause_reading()
            self._wake()
            return False
        if b"transfer-encoding" in head.headers:
            self._fail(f"HTTP {reply.status}: a reply without Content-Length for {request.header}")
            return False
        length = _content_length(head.headers.get(b"content-length"))
        content_range = head.headers.get(b"content-range")
        text = content_range.decode("latin-1") if content_range is not None else None
        if length is None or not response_body_is_acceptable(request, reply.status, text, length):
            self._fail(f"HTTP {reply.status}: not the {request.length} bytes of {request.header}")
            return False
        self._body, self._view, self._view_at = reply, 0, 0
        return True


def _content_length(value: bytes | None) -> int | None:
    if value is None or not 0 < len(value.strip()) <= MAX_CONTENT_LENGTH_DIGITS or not value.strip().isdigit():
        return None
    return int(value)


class WebSeedConnection:
    """One keep-alive HTTP/1.1 connection to a web seed's server. Requests are pipelined:
    all of a run's are sent at once, and the replies come back in order.

    Opened when first needed and again after the server closed it, asked for a close, or a
    request failed (the stream's state is then unknown). Requests whose replies did not
    come because the server closed the connection cleanly (an idle keep-alive connection
    dropped, a limit of requests per connection) are sent again on a new one, as long as
    each connection answers at least one."""

    def __init__(self) -> None:
        self._origin: tuple[str, str, int] | None = None
        self._transport: asyncio.Transport | None = None
        self._reader: _ReplyReader | None = None
        # A file's URL -> the URL it was redirected to, for this connection's lifetime.
        self._locations: dict[str, str] = {}

    @property
    def is_open(self) -> bool:
        reader = self._reader
        return reader is not None and not reader.is_closed and reader.error is None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # nothing of ours is left to send; a hostile server is not waited for
        self._origin = self._transport = self._reader = None

    async def fetch(self, requests: Sequence[RangeRequest]) -> list[bytes]:
        """The bytes of each of ``requests`` (``fetch_into`` new buffers)."""
        buffers = [bytearray(request.length) for request in requests]
        await self.fetch_into(requests, [[memoryview(buffer)] for buffer in buffers])
        return [bytes(buffer) for buffer in buffers]

    async def fetch_into(self, requests: Sequence[RangeRequest], targets: Sequence[Sequence[memoryview]]) -> None:
        """Read each of ``requests``' bytes into its ``targets`` views, in order (their
        lengths add up to the request's); raises ``WebSeedError`` unless the server sent
        exactly them within ``REQUEST_TIMEOUT_S``. Redirects are followed (and remembered)
        up to ``MAX_REDIRECTS`` hops from a file's URL."""
        timeout_s = REQUEST_TIMEOUT_S
        done = 0
        try:
            async with asyncio.timeout(timeout_s):
                while done < len(requests):
                    rest = [replace(request, url=self._located(request.url)) for request in requests[done:]]
                    origin = _origin(rest[0].url)
                    count = next((i for i, request in enumerate(rest) if _origin(request.url) != origin), len(rest))
                    reused = self.is_open and self._origin == origin
                    got, moved = await self._exchange(origin, rest[:count], targets[done : done + count])
                    done += got
                    # A reused connection may have been dropped while idle: then once more on a new one.
                    if not (got or moved or reused):
                        raise WebSeedError("connection closed before the reply was complete")
        except TimeoutError:
            self.close()
            raise WebSeedError(f"no reply within {timeout_s:.0f} s") from None
        except (OSError, WebSeedError) as error:
            self.close()
            raise WebSeedError(str(error) or type(error).__name__) from None
        except BaseException:
            self.close()  # cancelled mid-reply: the stream's state is unknown
            raise

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
        self, origin: tuple[str, str, int], requests: Sequence[RangeRequest], targets: Sequence[Sequence[memoryview]]
    ) -> tuple[int, bool]:
        """Send ``requests`` (all to ``origin``) on the connection, a new one unless an open
        one goes there, and read their bodies into ``targets`` until all came, one was
        redirected, or the connection ended; returns how many came and whether one was
        redirected. Raises ``WebSeedError`` for a wrong reply."""
        if self._origin != origin or not self.is_open:
            self.close()
            context = ssl.create_default_context() if origin[0] == "https" else None
            loop = asyncio.get_running_loop()
            self._transport, self._reader = await loop.create_connection(
                _ReplyReader, origin[1], origin[2], ssl=context
            )
            self._origin = origin
        transport, reader = self._transport, self._reader
        assert transport is not None
        assert reader is not None
        reader.expect(requests, targets)
        transport.write(b"".join(_encode(request) for request in requests))
        got = 0
        while got < len(requests):
            reply = await reader.wait_reply()
            if reply is None:
                self.close()
                return got, False
            if reply.status in REDIRECT_STATUSES:
                self._moved(reply.request.url, reply.location)
                self.close()  # the replies still to come are asked for again, where they moved
                return got, True
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


async def run_webseed(runtime: TorrentRuntime, state: WebSeedState) -> None:
    """Download pieces from the web seed ``state`` stands for until the torrent is complete,
    paused or the seed is banned: runs of pieces over up to ``state.max_connections``
    connections, as many as ``state.connections_wanted`` says."""
    seed = _WebSeed(runtime, state)
    async with asyncio.TaskGroup() as group:
        seed.group = group
        await seed.serve(is_first=True)
        # The first connection's task ends the seed (finished, paused, banned): the others
        # end with it rather than after their run's timeout.
        for task in seed.extra:
            task.cancel()


class _WebSeed:
    """One web seed of a torrent: its connections' tasks, and the runs they fetch."""

    def __init__(self, runtime: TorrentRuntime, state: WebSeedState) -> None:
        self.runtime = runtime
        self.state = state
        self.key = WebSeedKey(state.url)
        torrent = runtime.torrent
        self.layout = Layout(torrent.files, torrent.piece_length)
        self.piece_length = torrent.piece_length
        self.group: asyncio.TaskGroup | None = None
        self.connections = 1
        self.extra: set[asyncio.Task[None]] = set()

    def _add_connection(self) -> None:
        """One more connection's task, when the seed wants one more."""
        if self.group is None or self.connections >= min(self.state.connections_wanted, self.state.max_connections):
            return
        self.connections += 1
        task = self.group.create_task(self.serve(is_first=False))
        self.extra.add(task)
        task.add_done_callback(self.extra.discard)

    async def serve(self, *, is_first: bool) -> None:
        """Fetch runs on one connection. The first connection's task waits out backoffs and
        idle spells; another ends then, and when the seed wants fewer connections."""
        runtime, state = self.runtime, self.state
        swarm = runtime.swarm
        assert swarm is not None
        connection = WebSeedConnection()
        after: int | None = None
        try:
            while not runtime.paused and not runtime.finished.is_set():
                now = time.monotonic()
                if state.is_banned:
                    if is_first:
                        log.info("web seed dropped after %d pieces that failed their hash", state.bad_pieces)
                    return
                if not is_first and self.connections > state.connections_wanted:
                    return
                if not state.may_request(now):
                    if not is_first:
                        return
                    await asyncio.sleep(state.retry_at - now)
                    continue
                span = state.next_span_bytes(reader_waits=bool(swarm.picker.deadline_pieces()))
                indexes = swarm.picker.start_run_for_webseed(self.key, max(1, span // self.piece_length), after)
                if not indexes:
                    if not is_first:
                        return
                    # A reader's new deadline (a seek past what peers hold) wakes the seed at once.
                    runtime.deadlines_changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(runtime.deadlines_changed.wait(), IDLE_POLL_S)
                    after = None
                    continue
                after = indexes[-1] + 1
                if await self._fetch_run(connection, indexes, is_first=is_first):
                    self._add_connection()
                else:
                    after = None
        finally:
            connection.close()
            if not is_first:
                self.connections -= 1

    async def _fetch_run(self, connection: WebSeedConnection, indexes: list[int], *, is_first: bool) -> bool:
        """Fetch, check and hand over pieces ``indexes``; False when the seed failed to send
        them (on the first connection the seed then waits; on another, fewer are kept)."""
        runtime, state, key = self.runtime, self.state, self.key
        torrent = runtime.torrent
        swarm = runtime.swarm
        assert swarm is not None
        # Each piece as the swarm takes it from peers (``request_size`` bytes): a v2-only
        # torrent's files start at piece boundaries with no pad files between them (BEP 52),
        # so a file's last piece as fetched is its bytes alone, and peers send the blocks
        # holding them whole, the tail past the file's end zeros. Pad files' bytes are zeros
        # too: no slice covers them.
        pieces = [bytearray(runtime.request_size(index)) for index in indexes]
        run = plan_run(state.url, torrent.name, self.layout, indexes, is_multi_file=torrent.is_multi_file)
        views = [memoryview(piece) for piece in pieces]
        targets = [[views[part.piece][part.begin : part.begin + part.length] for part in parts] for parts in run.slices]
        try:
            # The pieces go to the disk thread: not faster than it writes them.
            await runtime.disk_caught_up.wait()
            now = time.monotonic()
            delay = runtime.download_delay(sum(torrent.piece_size(index) for index in indexes), now)
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.monotonic()
            if run.requests:
                await connection.fetch_into(run.requests, targets)
            state.run_served(sum(request.length for request in run.requests), time.monotonic() - started)
            # The run's pieces in a part per hashing thread.
            parts = -(-len(indexes) // runtime.hash_threads)
            matched = await asyncio.gather(
                *(
                    runtime.hash_off_loop(_pieces_match, runtime, indexes[at : at + parts], pieces[at : at + parts])
                    for at in range(0, len(indexes), parts)
                )
            )
            matches = [ok for part in matched for ok in part]
        except WebSeedError as error:
            for index in indexes:
                swarm.picker.piece_abandoned(index, key)
            if is_first:
                state.request_failed(time.monotonic())
            else:
                state.extra_connection_failed()
            log.debug("web seed failed on pieces %s: %s", indexes[:4], error)
            return False
        except BaseException:
            for index in indexes:
                swarm.picker.piece_abandoned(index, key)
            raise
        now = time.monotonic()
        actions: list[Action] = []
        for index, size, data, ok in zip(indexes, run.sizes, pieces, matches, strict=True):
            if not ok:
                swarm.picker.piece_abandoned(index, key)
                state.piece_failed_hash()
                continue
            state.piece_served()
            runtime.webseed_bytes += size
            actions += swarm.webseed_piece(key, index, data, now)
        runtime.run_actions(actions)  # the run's pieces written in one trip to the disk thread
        return True


def _pieces_match(runtime: TorrentRuntime, indexes: list[int], pieces: list[bytearray]) -> list[bool]:
    # The torrent's own check (a hybrid's pieces against both hashes), so that a seed is
    # blamed for exactly the pieces the swarm would refuse; the swarm trusts this check
    # (``Swarm.webseed_piece``) rather than hashing the piece again.
    return [runtime.piece_matches(index, data) for index, data in zip(indexes, pieces, strict=True)]
