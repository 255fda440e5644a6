"""Bounded HTTP GETs for subscriptions: a feed (conditional on its ``ETag`` and
``Last-Modified``) and a .torrent an item links to.

Every request is bounded: one deadline for the whole exchange, headers and body included
(an endless body ends there); a byte limit (a ``Content-Length`` over it is refused before
reading, and a body is cut off as soon as it passes it); a redirect limit (a loop ends).
Redirects are followed here rather than by aiohttp, so that cookies given for a private
tracker are sent to its host only and never to a host a redirect points to.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from bitswarm.errors import FeedError

# Real feeds are a few hundred KiB (100 items with descriptions); 4 MiB is far past them
# and still parses in well under a second.
MAX_FEED_BYTES = 4 << 20
# A .torrent of a large season pack is a few MiB; 16 MiB covers v2 trees of big folders.
MAX_TORRENT_BYTES = 16 << 20
# One feed's whole exchange; a slow tracker answers within seconds.
FETCH_TIMEOUT_S = 30.0
# Trackers redirect once or twice (http -> https, a CDN); more is a loop.
MAX_REDIRECTS = 5
_READ_BYTES = 64 << 10
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}


@dataclass(frozen=True, slots=True)
class FetchLimits:
    feed_bytes: int = MAX_FEED_BYTES
    torrent_bytes: int = MAX_TORRENT_BYTES
    timeout_s: float = FETCH_TIMEOUT_S
    redirects: int = MAX_REDIRECTS


DEFAULT_LIMITS = FetchLimits()


@dataclass(frozen=True, slots=True)
class FeedResponse:
    """A feed's body, or None when the server said it has not changed (304)."""

    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None


def display_url(url: str) -> str:
    """The address as logs show it: no query or user info, which may hold a passkey."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown_host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{shown_host}{port}{parts.path}"


async def fetch_feed(
    http: aiohttp.ClientSession,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    cookies: tuple[str, ...] = (),
    limits: FetchLimits = DEFAULT_LIMITS,
) -> FeedResponse:
    """GET a feed; raises ``FeedError`` for anything but a 200 within the limits or a 304."""
    headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    status, body, response_headers = await _get(http, url, headers, cookies, limits.feed_bytes, limits)
    if status == 304:
        return FeedResponse(None, etag, last_modified)
    return FeedResponse(body, response_headers.get("ETag"), response_headers.get("Last-Modified"))


async def fetch_torrent(
    http: aiohttp.ClientSession, url: str, *, cookies: tuple[str, ...] = (), limits: FetchLimits = DEFAULT_LIMITS
) -> bytes:
    """GET a .torrent's bytes (not yet checked); raises ``FeedError``."""
    headers = {"Accept": "application/x-bittorrent, */*;q=0.5"}
    status, body, _headers = await _get(http, url, headers, cookies, limits.torrent_bytes, limits)
    if status != 200:
        raise FeedError(f"HTTP {status}", display_url(url))
    return body


async def _get(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    cookies: tuple[str, ...],
    max_bytes: int,
    limits: FetchLimits,
) -> tuple[int, bytes, dict[str, str]]:
    shown = display_url(url)
    cookie_host = urlsplit(url).hostname
    try:
        async with asyncio.timeout(limits.timeout_s):
            target = URL(url)
            for _hop in range(limits.redirects + 1):
                sent = dict(headers)
                if cookies and target.host == cookie_host:
                    sent["Cookie"] = "; ".join(cookies)
                async with http.get(target, headers=sent, allow_redirects=False) as response:
                    if response.status in _REDIRECT_STATUSES and "Location" in response.headers:
                        target = target.join(URL(response.headers["Location"]))
                        if target.scheme not in {"http", "https"}:
                            raise FeedError(f"redirected to a {target.scheme}: address", shown)
                        continue
                    if response.status == 304:
                        return 304, b"", {}
                    if response.status != 200:
                        raise FeedError(f"HTTP {response.status} {response.reason or ''}".rstrip(), shown)
                    if response.content_length is not None and response.content_length > max_bytes:
                        raise FeedError(f"body of {response.content_length} bytes, over {max_bytes}", shown)
                    body = bytearray()
                    async for block in response.content.iter_chunked(_READ_BYTES):
                        body += block
                        if len(body) > max_bytes:
                            raise FeedError(f"body over {max_bytes} bytes (cut off)", shown)
                    return 200, bytes(body), {key: value for key, value in response.headers.items()}
            raise FeedError(f"more than {limits.redirects} redirects", shown)
    except TimeoutError:
        raise FeedError(f"no complete answer within {limits.timeout_s:g} s", shown) from None
    except aiohttp.ClientError as error:
        raise FeedError(f"{type(error).__name__}: {error}".rstrip(": "), shown) from None
