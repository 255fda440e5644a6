"""Tiny HTTP servers for BEP 19 web seed tests (127.0.0.1, port 0): a file server with Range
support, and hostile ones (``serve_hostile``)."""

from __future__ import annotations

import contextlib
import re
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

RANGE = re.compile(r"bytes=(\d+)-(\d+)$")
# A hostile server stops on its own after this long, whatever the client does.
HOSTILE_LIMIT_S = 20.0


@contextmanager
def _serving(server: socketserver.TCPServer) -> Iterator[str]:
    """Run ``server`` in a thread; yields its base URL, and stops it at the end."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve_folder(
    root: Path,
    *,
    corrupt: Callable[[str], bool] = lambda _path: False,
    requests: list[str] | None = None,
    keep_alive_requests: int = 0,
    clients: list[tuple[str, int]] | None = None,
    max_connections: int = 0,
    refused: list[tuple[str, int]] | None = None,
) -> Iterator[str]:
    """Serve ``root`` at the yielded base URL; files whose URL path ``corrupt`` picks are served inverted.

    HTTP/1.0 (a connection per request) unless ``keep_alive_requests``: then HTTP/1.1, and
    each connection is closed after that many requests without a word to the client, as a
    server drops an idle keep-alive connection. ``clients`` gets each request's client address.
    With ``max_connections``, a request on a connection beyond that many open at once is
    answered 503 and its connection closed (as a server limiting connections per client);
    ``refused`` gets its client address."""
    open_connections: set[tuple[str, int]] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive_requests else "HTTP/1.0"
        answered = 0

        def log_message(self, format: str, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with lock:
                self.is_over_limit = bool(max_connections) and len(open_connections) >= max_connections
                if not self.is_over_limit:
                    open_connections.add(self.client_address)

        def finish(self) -> None:
            with lock:
                open_connections.discard(self.client_address)
            super().finish()

        def do_GET(self) -> None:
            if self.is_over_limit:
                if refused is not None:
                    refused.append(self.client_address)
                self.close_connection = True
                self.send_error(503)
                return
            path = unquote(urlsplit(self.path).path)
            if requests is not None:
                requests.append(path)
            if clients is not None:
                clients.append(self.client_address)
            self.answered += 1
            if keep_alive_requests and self.answered >= keep_alive_requests:
                self.close_connection = True
            target = (root / path.lstrip("/")).resolve()
            if not target.is_relative_to(root.resolve()) or not target.is_file():
                self.send_error(404)
                return
            data = target.read_bytes()
            if corrupt(path):
                data = bytes(255 - byte for byte in data)
            match = RANGE.match(self.headers.get("Range", ""))
            if match is None:
                self.send_response(200)
                body = data
            else:
                first, last = int(match.group(1)), min(int(match.group(2)), len(data) - 1)
                body = data[first : last + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as base:
        yield base


class Hostile:
    """What a hostile web seed does with every request (``serve_hostile``)."""

    HUGE_BODY = "huge body"  # 200 with a 1 TiB Content-Length, bytes until the client leaves
    WRONG_RANGE = "wrong range"  # 206, the asked length, a Content-Range for other bytes
    REDIRECT_LOOP = "redirect loop"  # 302 to the URL asked for
    SLOW_DRIP = "slow drip"  # 206 headers, then one byte every 50 ms
    HUGE_HEADERS = "huge headers"  # header lines until the client leaves
    SHORT_BODY = "short body"  # 206 and the asked range's headers, half its bytes, then a close
    CHUNKED = "chunked"  # 206, the asked range, its bytes in chunks with no Content-Length
    ALL = (HUGE_BODY, WRONG_RANGE, REDIRECT_LOOP, SLOW_DRIP, HUGE_HEADERS, SHORT_BODY, CHUNKED)


@dataclass
class HostileLog:
    """What a hostile server saw: requests answered and bytes it managed to send."""

    requests: int = 0
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, count: int) -> None:
        with self.lock:
            self.bytes_sent += count


@contextmanager
def serve_hostile(behaviour: str) -> Iterator[tuple[str, HostileLog]]:
    """A server on 127.0.0.1 answering every request the ``behaviour`` way; yields its
    base URL and its log. Each stream of bytes ends when the client closes or after
    ``HOSTILE_LIMIT_S``, so a client that never gives up cannot keep a test alive."""
    log = HostileLog()
    stop = threading.Event()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            with contextlib.suppress(OSError):
                self.asked = (0, 0)
                self.target = self.rfile.readline(65536).split(b" ")[1]
                while line := self.rfile.readline(65536).strip():  # the request line and headers
                    match = RANGE.match(line.decode("latin-1").partition(":")[2].strip())
                    if line.lower().startswith(b"range:") and match is not None:
                        self.asked = (int(match.group(1)), int(match.group(2)))
                with log.lock:
                    log.requests += 1
                self.answer()

        def send(self, data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()
            log.sent(len(data))

        def answer(self) -> None:
            deadline = time.monotonic() + HOSTILE_LIMIT_S
            if behaviour == Hostile.HUGE_BODY:
                self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n")
                block = bytes(64 * 1024)
                while not stop.is_set() and time.monotonic() < deadline:
                    self.send(block)
            elif behaviour == Hostile.WRONG_RANGE:
                # The asked length, but said to be the bytes one further on.
                first, last = self.asked
                self.send(
                    b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/999999999\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (first + 1, last + 1, last - first + 1, bytes(last - first + 1))
                )
            elif behaviour == Hostile.REDIRECT_LOOP:
                self.send(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % self.target)
            elif behaviour == Hostile.SLOW_DRIP:
                self.send(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 16384\r\n\r\n")
                while not stop.wait(0.05) and time.monotonic() < deadline:  # the drip's pace
                    self.send(b"x")
            elif behaviour in (Hostile.SHORT_BODY, Hostile.CHUNKED):
                first, last = self.asked
                length = last - first + 1
                head = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/1073741824\r\n" % (first, last)
                if behaviour == Hostile.SHORT_BODY:
                    self.send(head + b"Content-Length: %d\r\n\r\n%s" % (length, bytes(length // 2)))
                else:
                    body = b"%x\r\n%s\r\n0\r\n\r\n" % (length, bytes(length))
                    self.send(head + b"Transfer-Encoding: chunked\r\n\r\n" + body)
            elif behaviour == Hostile.HUGE_HEADERS:
                self.send(b"HTTP/1.1 206 Partial Content\r\n")
                line = b"X-Filler: " + b"y" * 1000 + b"\r\n"
                while not stop.is_set() and time.monotonic() < deadline:
                    self.send(line * 64)
            else:
                raise ValueError(f"no such behaviour: {behaviour}")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    try:
        with _serving(Server(("127.0.0.1", 0), Handler)) as base:
            yield base, log
    finally:
        stop.set()


@contextmanager
def serve_redirect(target_base: str, requests: list[str]) -> Iterator[str]:
    """A server (HTTP/1.1, keep-alive) answering every GET with a 302 to the same path under
    ``target_base``, as a mirror director does; ``requests`` gets each path asked for."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(unquote(urlsplit(self.path).path))
            self.send_response(302)
            self.send_header("Location", target_base.rstrip("/") + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as base:
        yield base
