"""A bounded HTTP/1.1 GET for tracker announces, on asyncio streams and httptools.

Trackers answer small bodies; the reply is cut off at ``max_bytes`` and the whole
exchange at ``timeout_s``, so a hostile tracker costs one request and nothing more.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools

from bitswarm.errors import TrackerError

USER_AGENT = "bitswarm/0.1"


class _Response:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.body = bytearray()
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > self.max_bytes:
            raise TrackerError(f"reply larger than {self.max_bytes} bytes")

    def on_message_complete(self) -> None:
        self.complete = True


async def http_get(url: str, *, timeout_s: float = 30.0, max_bytes: int = 256 * 1024) -> tuple[int, bytes]:
    """(status, body) of a GET; raises ``TrackerError`` for any failure to get them."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TrackerError(f"not an http(s) URL: {url[:100]}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode()
    context = ssl.create_default_context() if parts.scheme == "https" else None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
            try:
                writer.write(request)
                response = _Response(max_bytes)
                parser = httptools.HttpResponseParser(response)
                while not response.complete:
                    data = await reader.read(65536)
                    if not data:
                        break
                    parser.feed_data(data)
                if not response.complete:
                    raise TrackerError("connection closed before the reply was complete")
                return parser.get_status_code(), bytes(response.body)
            finally:
                writer.close()
    except TimeoutError:
        raise TrackerError(f"no reply within {timeout_s:.0f} s") from None
    except (OSError, httptools.HttpParserError) as error:
        raise TrackerError(str(error) or type(error).__name__) from None
