"""The asyncio side of BEP 19 web seeding: one task per web seed of a torrent.

Each task asks the picker for a whole piece nobody is downloading, fetches its ranges
(planned by ``bitswarm.engine.webseed``) one request at a time, checks the piece's hash,
and hands it to the swarm, which writes and verifies it like a piece from peers. A seed
that fails waits (backoff); one whose pieces keep failing their hash is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httptools

from bitswarm.engine.webseed import (
    REQUEST_TIMEOUT_S,
    PadBytes,
    RangeRequest,
    WebSeedState,
    plan_piece,
    response_body_is_acceptable,
)
from bitswarm.errors import WebSeedError
from bitswarm.storage.layout import Layout

if TYPE_CHECKING:
    from bitswarm.metainfo import Torrent
    from bitswarm.net.session import TorrentRuntime

log = logging.getLogger(__name__)

USER_AGENT = "bitswarm/0.1"
# A status line and headers longer than this are not a web seed's answer.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
READ_BYTES = 256 * 1024
# While the picker has no piece for a seed (peers hold them all), look again this often.
IDLE_POLL_S = 0.5


class WebSeedKey:
    """A web seed where the picker expects a peer key (never equal to a connection)."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"WebSeedKey({self.url!r})"


class _Response:
    """One response's headers and body, as httptools hands them over; the body is capped."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.body = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.headers_complete = False
        self.complete = False
        self.too_large = False
        self.messages = 0
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.messages += 1

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) < MAX_HEADERS:
            self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.headers_complete = True
        # Asked here: llhttp forgets the answer once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        # Refused past the asked length: a server sending the whole file costs us nothing more.
        if len(self.body) + len(body) > self.max_bytes:
            self.too_large = True
        elif not self.too_large:
            self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


class WebSeedConnection:
    """One keep-alive HTTP/1.1 connection to a web seed's server, for one request at a time.

    Opened when first needed and again after the server closed it, asked for a close, or a
    request failed (the stream's state is then unknown). A connection that sat idle may
    have been closed by the server meanwhile: a request on a reused connection that gets
    no byte back is sent once more on a new one."""

    def __init__(self) -> None:
        self._origin: tuple[str, str, int] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._origin = self._reader = self._writer = None

    async def fetch(self, request: RangeRequest) -> bytes:
        """The bytes of ``request``; raises ``WebSeedError`` unless the server sent exactly them
        within ``REQUEST_TIMEOUT_S``."""
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebSeedError(f"not an http(s) URL: {request.url[:100]}")
        origin = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        data = (
            f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Range: {request.header}\r\nAccept-Encoding: identity\r\n\r\n"
        ).encode()
        timeout_s = REQUEST_TIMEOUT_S
        try:
            async with asyncio.timeout(timeout_s):
                reused = self._origin == origin
                try:
                    response = await self._exchange(origin, data, request.length)
                except ConnectionError:
                    if not reused:
                        raise
                    response = None
                if response is None and reused:
                    self.close()
                    response = await self._exchange(origin, data, request.length)
                if response is None:
                    raise WebSeedError("connection closed before the reply was complete")
        except TimeoutError:
            self.close()
            raise WebSeedError(f"no reply within {timeout_s:.0f} s") from None
        except (OSError, httptools.HttpParserError, WebSeedError) as error:
            self.close()
            raise WebSeedError(str(error) or type(error).__name__) from None
        status, headers, body = response
        content_range = headers.get(b"content-range")
        text = content_range.decode("latin-1") if content_range is not None else None
        if not response_body_is_acceptable(request, status, text, len(body)):
            self.close()
            raise WebSeedError(f"HTTP {status}: not the {request.length} bytes of {request.header}")
        return body

    async def _exchange(
        self, origin: tuple[str, str, int], data: bytes, max_bytes: int
    ) -> tuple[int, dict[bytes, bytes], bytes] | None:
        """Send ``data`` and read one response: (status, headers, body), or None when the
        connection closed before the response's first byte."""
        if self._origin != origin or self._reader is None or self._writer is None:
            self.close()
            scheme, host, port = origin
            context = ssl.create_default_context() if scheme == "https" else None
            self._reader, self._writer = await asyncio.open_connection(host, port, ssl=context)
            self._origin = origin
        reader, writer = self._reader, self._writer
        writer.write(data)
        response = _Response(max_bytes)
        parser = response.parser
        received = 0
        while not response.complete:
            chunk = await reader.read(READ_BYTES)
            if not chunk:
                if received == 0:
                    return None
                raise WebSeedError("connection closed before the reply was complete")
            received += len(chunk)
            parser.feed_data(chunk)
            if not response.headers_complete and received > MAX_HEADER_BYTES:
                raise WebSeedError(f"headers longer than {MAX_HEADER_BYTES} bytes")
            if response.too_large:
                raise WebSeedError(f"reply larger than the {max_bytes} bytes asked for")
        # Bytes past the response (a second one) would be read as the next request's reply.
        if not response.keep_alive or response.messages > 1:
            self.close()
        return parser.get_status_code(), response.headers, bytes(response.body)


async def fetch_piece(
    connection: WebSeedConnection, base_url: str, torrent: Torrent, layout: Layout, index: int
) -> bytes:
    """Piece ``index`` from the web seed at ``base_url``, its pad bytes (BEP 47) made here."""
    plan = plan_piece(base_url, torrent.name, layout, index, is_multi_file=torrent.is_multi_file)
    parts: list[bytes] = []
    for item in plan:
        if isinstance(item, PadBytes):
            parts.append(bytes(item.length))
        else:
            parts.append(await connection.fetch(item))
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def run_webseed(runtime: TorrentRuntime, state: WebSeedState) -> None:
    """Download pieces from the web seed ``state`` stands for until the torrent is complete,
    paused or the seed is banned. One request in flight at a time, on one connection."""
    connection = WebSeedConnection()
    try:
        await _fetch_pieces(runtime, state, connection)
    finally:
        connection.close()


async def _fetch_pieces(runtime: TorrentRuntime, state: WebSeedState, connection: WebSeedConnection) -> None:
    url = state.url
    key = WebSeedKey(url)
    torrent = runtime.torrent
    layout = Layout(torrent.files, torrent.piece_length)
    swarm = runtime.swarm
    assert swarm is not None
    while not runtime.paused and not runtime.finished.is_set():
        now = time.monotonic()
        if state.is_banned:
            log.info("web seed dropped after %d pieces that failed their hash", state.bad_pieces)
            return
        if not state.may_request(now):
            await asyncio.sleep(state.retry_at - now)
            continue
        index = swarm.picker.start_piece_for_webseed(key)
        if index is None:
            await asyncio.sleep(IDLE_POLL_S)
            continue
        try:
            delay = runtime.download_delay(torrent.piece_size(index), now)
            if delay > 0:
                await asyncio.sleep(delay)
            data = await fetch_piece(connection, url, torrent, layout, index)
            ok = await runtime.run_off_loop(_hash_matches, data, torrent.v1_piece_hash(index))
        except WebSeedError as error:
            swarm.picker.piece_abandoned(index, key)
            state.request_failed(time.monotonic())
            log.debug("web seed failed on piece %d: %s", index, error)
            continue
        except BaseException:
            swarm.picker.piece_abandoned(index, key)
            raise
        if not ok:
            swarm.picker.piece_abandoned(index, key)
            state.piece_failed_hash()
            continue
        state.piece_served()
        runtime.webseed_bytes += len(data)
        runtime.run_actions(swarm.webseed_piece(key, index, data, time.monotonic()))


def _hash_matches(data: bytes, expected: bytes) -> bool:
    return hashlib.sha1(data).digest() == expected  # noqa: S324
