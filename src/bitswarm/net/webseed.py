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
    from bitswarm.net.session import TorrentRuntime

log = logging.getLogger(__name__)

USER_AGENT = "bitswarm/0.1"
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
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.body = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) < 100:
            self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > self.max_bytes:
            raise WebSeedError(f"reply larger than the {self.max_bytes} bytes asked for")

    def on_message_complete(self) -> None:
        self.complete = True


async def fetch_range(request: RangeRequest, *, timeout_s: float = REQUEST_TIMEOUT_S) -> bytes:
    """The bytes of ``request``; raises ``WebSeedError`` unless the server sent exactly them."""
    parts = urlsplit(request.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebSeedError(f"not an http(s) URL: {request.url[:100]}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    data = (
        f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Range: {request.header}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode()
    context = ssl.create_default_context() if parts.scheme == "https" else None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
            try:
                writer.write(data)
                # Refused past the asked length: a server sending the whole file costs us nothing more.
                response = _Response(request.length)
                parser = httptools.HttpResponseParser(response)
                while not response.complete:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    parser.feed_data(chunk)
                if not response.complete:
                    raise WebSeedError("connection closed before the reply was complete")
                status = parser.get_status_code()
            finally:
                writer.close()
    except TimeoutError:
        raise WebSeedError(f"no reply within {timeout_s:.0f} s") from None
    except (OSError, httptools.HttpParserError) as error:
        raise WebSeedError(str(error) or type(error).__name__) from None
    content_range = response.headers.get(b"content-range")
    text = content_range.decode("latin-1") if content_range is not None else None
    if not response_body_is_acceptable(request, status, text, len(response.body)):
        raise WebSeedError(f"HTTP {status}: not the {request.length} bytes of {request.header}")
    return bytes(response.body)


async def fetch_piece(base_url: str, runtime: TorrentRuntime, layout: Layout, index: int) -> bytes:
    torrent = runtime.torrent
    plan = plan_piece(base_url, torrent.name, layout, index, is_multi_file=torrent.is_multi_file)
    parts: list[bytes] = []
    for item in plan:
        if isinstance(item, PadBytes):
            parts.append(bytes(item.length))
        else:
            parts.append(await fetch_range(item))
    return b"".join(parts)


async def run_webseed(runtime: TorrentRuntime, state: WebSeedState) -> None:
    """Download pieces from the web seed ``state`` stands for until the torrent is complete,
    paused or the seed is banned. One request in flight at a time."""
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
            data = await fetch_piece(url, runtime, layout, index)
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
