"""``bitswarm tracker``: the asyncio layer serving the tracker cores over HTTP and UDP.

HTTP/1.1 is parsed by httptools (llhttp, the parser behind uvicorn and Node.js), which
keeps a connection's cost to the bytes it sent. With the memory store a request is
answered inside the callback that received it, with no task per request, and on Linux
UDP datagrams come and go in batches (recvmmsg and sendmmsg, ``net/mmsg.py``), one
callback per batch; elsewhere, and for a store that waits on a server (Redis), UDP uses
plain datagram endpoints, and such a store gets a bounded number of tasks.

No peer address is logged unless the operator asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import random
import re
import secrets
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import httptools

from bitswarm.errors import StorageError, UsageError
from bitswarm.forwarded import TrustedProxies
from bitswarm.net import mmsg
from bitswarm.ratelimit import RateLimiter
from bitswarm.storage.atomic import replace_durably
from bitswarm.tracker.config import TrackerConfig, split_host_port
from bitswarm.tracker.memory import MemoryStore
from bitswarm.tracker.server import (
    MAX_UDP_DATAGRAM_BYTES,
    HttpAnnounce,
    HttpTracker,
    RequestCounters,
    TrackerPolicy,
    TrackerRequestError,
    UdpAnnounce,
    UdpReply,
    UdpScrape,
    UdpTracker,
    encode_failure,
)
from bitswarm.tracker.store import TrackerStore
from bitswarm.tracker.swarm import INFO_HASH_BYTES, SwarmCounts, SwarmView

log = logging.getLogger("bitswarm.tracker")

MAX_URL_BYTES = 8192
MAX_HEADER_BYTES = 16384
MAX_BODY_BYTES = 1 << 20
IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 10_000
# Requests waiting on a remote store at once; more are refused rather than queued.
MAX_PENDING = 10_000
# What a store that waits on a server raises when the server is gone or too slow.
STORE_ERRORS = (StorageError, OSError, TimeoutError)
EXPIRY_PERIOD_S = 5.0
EXPIRY_SWARMS_PER_TICK = 2000
RELOAD_PERIOD_S = 2.0
RATE_WINDOW_S = 10.0
# Batches of datagrams (mmsg.DEFAULT_CAPACITY each) read in one wake-up before the loop
# serves its other sockets: 256 announces, about 2 ms.
MAX_BATCHES_PER_WAKEUP = 4
# Source addresses whose tuples are kept; the table is emptied when full.
MAX_CACHED_UDP_SOURCES = 4096
UDP_RECEIVE_BUFFER_BYTES = 1 << 20
# Batched UDP (recvmmsg/sendmmsg) for the memory store where Linux offers it.
BATCHED_UDP = mmsg.AVAILABLE
# The memory store's HTTP fast path (``_FastHttpListener``): POSIX sockets with MSG_DONTWAIT.
FAST_HTTP = os.name == "posix" and hasattr(socket, "MSG_DONTWAIT")
# Connections accepted in one wake-up of the fast path before the loop serves its other sockets.
MAX_ACCEPTS_PER_WAKEUP = 64
# The first read of an accepted connection; a request that does not fit goes the slow way.
FAST_READ_BYTES = 4096
LISTEN_BACKLOG = 100  # what loop.create_server uses
# Linux wakes the fast path's accept only once a connection's first bytes are in (what
# nginx calls "deferred"), so its first read finds the request; a client that sends
# nothing is passed on after about this long.
DEFER_ACCEPT_S = 1
ACCEPT_RETRY_DELAY_S = 1.0
_ACCEPT_PAUSE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {413: "Payload Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large"}
_REASONS |= {409: "Conflict", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain"


def read_hash_list(path: Path) -> frozenset[bytes]:
    """One hex info-hash per line (40 hex digits, or 64 for v2, truncated as BEP 52 says)."""
    hashes = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            digest = bytes.fromhex(text)
        except ValueError:
            raise UsageError(f"{path}:{number}: {text[:70]!r} is not a hex info-hash") from None
        if len(digest) not in (20, 32):
            raise UsageError(f"{path}:{number}: an info-hash has 40 or 64 hex digits")
        hashes.add(digest[:INFO_HASH_BYTES])
    return frozenset(hashes)


def read_passkeys(path: Path) -> frozenset[str]:
    keys = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        key = line.split("#", 1)[0].strip()
        if key and (not key.isalnum() or len(key) > 64):
            raise UsageError(f"{path}:{number}: a passkey is letters and digits, 64 at most")
        if key:
            keys.add(key)
    return frozenset(keys)


class TrackerService:
    """Everything one tracker process shares between its HTTP and UDP servers."""

    def __init__(self, config: TrackerConfig, store: TrackerStore, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.answers_at_once = isinstance(store, MemoryStore)
        self.counters = RequestCounters()
        self.policy = TrackerPolicy(
            interval_s=config.interval_s,
            min_interval_s=config.min_interval_s,
            default_numwant=config.default_numwant,
            max_numwant=config.max_numwant,
            trust_ip_parameter=config.trust_ip_parameter,
            allow_full_scrape=config.full_scrape,
        )
        secret = config.udp_secret.encode() if config.udp_secret else secrets.token_bytes(32)
        self.http = HttpTracker(self.policy, self.counters)
        self.udp = UdpTracker(self.policy, self.counters, secret)
        self.limiter = RateLimiter(config.rate_limit_per_s, config.rate_limit_burst)
        self.proxies = TrustedProxies(config.trusted_proxies)
        self.started_at = clock()
        self.pending = 0
        self._rates: dict[str, float] = {"http": 0.0, "udp": 0.0}
        self._rate_marks: tuple[float, dict[str, int]] = (self.started_at, dict(self.counters.announces))
        self._file_stamps: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.reload_lists()

    # -- policy files ------------------------------------------------------------------

    def set_policy(self, policy: TrackerPolicy) -> None:
        self.policy = policy
        self.http.policy = policy
        self.udp.policy = policy

    def reload_lists(self) -> None:
        """Read the whitelist and passkey files again if they changed since last time."""
        whitelist = self._changed_file(self.config.whitelist_file)
        if whitelist is not None:
            self.set_policy(replace(self.policy, whitelist=read_hash_list(whitelist)))
            log.info("whitelist: %d info-hashes", len(self.policy.whitelist or ()))
        passkeys = self._changed_file(self.config.passkeys_file)
        if passkeys is not None:
            self.set_policy(replace(self.policy, passkeys=read_passkeys(passkeys)))
            log.info("passkeys: %d users", len(self.policy.passkeys or ()))

    def _changed_file(self, name: str | None) -> Path | None:
        """The file's path if it changed since it was last read, else None."""
        if name is None:
            return None
        path = Path(name)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError as error:
            if name not in self._file_stamps:
                raise UsageError(f"{path}: {error.strerror}") from None
            return None  # keep the last good list while the file is being replaced
        if self._file_stamps.get(name) == stamp:
            return None
        self._file_stamps[name] = stamp
        return path

    # -- requests ----------------------------------------------------------------------

    def allowed(self, host: str) -> bool:
        if self.limiter.allow(host, self.clock()):
            return True
        self.counters.error("rate_limited")
        return False

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> bool:
        """Run a store-bound request as a task; False (and nothing started) when too many wait."""
        if self.pending >= MAX_PENDING:
            coroutine.close()
            self.counters.error("overloaded")
            return False
        self.pending += 1
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return True

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.pending -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("request failed", exc_info=task.exception())

    def http_request(
        self, method: bytes, url: bytes, client: tuple[str, int], authorization: bytes | None = None
    ) -> Response | Coroutine[Any, Any, Response]:
        """A response now, or a coroutine giving it once the store answers."""
        parsed = httptools.parse_url(url)
        path = parsed.path or b"/"
        query = parsed.query or b""
        parts = path.strip(b"/").split(b"/")
        route = parts[0]
        if route == b"admin":
            return self._admin(method, parts[1:], authorization)
        passkey = parts[1].decode("ascii", "replace") if len(parts) == 2 else None
        if len(parts) > 2:
            return Response(404, b"not found\n")
        if route in (b"announce", b"scrape"):
            if method != b"GET":
                return Response(405, b"use GET\n")
            if route == b"announce" and self.announces_now:
                return Response(200, self.announce_now(query, client, passkey))
            if not self.allowed(client[0]):
                return Response(200, encode_failure("rate limit exceeded, slow down"))
            try:
                if route == b"announce":
                    self.counters.announces["http"] += 1
                    announce = self.http.parse_announce(query, client, passkey)
                    if self.answers_at_once:
                        assert isinstance(self.store, MemoryStore)
                        return Response(
                            200,
                            self._http_announce_body(announce, self.store.announce_now(announce.request, self.clock())),
                        )
                    return self._http_announce_later(announce)
                self.counters.scrapes["http"] += 1
                hashes = self.http.parse_scrape(query, passkey)
            except TrackerRequestError as error:
                self.counters.error("http_request")
                return Response(200, encode_failure(str(error)))
            return self._http_scrape_later(hashes)
        if route == b"stats" and len(parts) == 1:
            return Response(200, json.dumps(self.stats()).encode(), "application/json")
        if route == b"metrics" and len(parts) == 1:
            return Response(200, self.metrics().encode(), "text/plain; version=0.0.4")
        return Response(404, b"not found\n")

    @property
    def announces_now(self) -> bool:
        """HTTP announces are answered by ``announce_now``: the memory store, no address logs."""
        return self.answers_at_once and not self.config.log_peer_addresses

    def announce_now(self, query: bytes, client: tuple[str, int], passkey: str | None) -> bytes:
        """The body answering an HTTP announce (a bencoded failure included), at once."""
        if not self.allowed(client[0]):
            return encode_failure("rate limit exceeded, slow down")
        self.counters.announces["http"] += 1
        try:
            store = cast(MemoryStore, self.store)
            return self.http.answer_announce_now(query, client, passkey, self.clock(), store)
        except TrackerRequestError as error:
            self.counters.error("http_request")
            return encode_failure(str(error))

    def _admin(
        self, method: bytes, parts: list[bytes], authorization: bytes | None
    ) -> Response | Coroutine[Any, Any, Response]:
        """The operator's API: bearer token required; without a configured token it is off."""
        token = self.config.admin_token
        if token is None:
            return Response(404, b"admin API is off (no admin_token configured)\n")
        expected = b"Bearer " + token.encode()
        if authorization is None or not secrets.compare_digest(authorization, expected):
            self.counters.error("admin_unauthorized")
            return Response(401, b"unauthorized\n")
        if parts == [b"users"] and method == b"GET":
            return self._admin_users()
        if parts[:1] != [b"whitelist"] or len(parts) > 2:
            return Response(404, b"not found\n")
        if self.config.whitelist_file is None:
            return Response(409, b"no whitelist file configured\n")
        if len(parts) == 1 and method == b"GET":
            listed = sorted(info_hash.hex() for info_hash in self.policy.whitelist or ())
            return Response(200, json.dumps(listed).encode(), "application/json")
        if len(parts) != 2 or method not in (b"PUT", b"DELETE"):
            return Response(405, b"GET /admin/whitelist, PUT or DELETE /admin/whitelist/<info-hash>\n")
        try:
            info_hash = bytes.fromhex(parts[1].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            info_hash = b""
        if len(info_hash) not in (20, 32):
            return Response(400, b"an info-hash has 40 or 64 hex digits\n")
        current = set(self.policy.whitelist or ())
        if method == b"PUT":
            current.add(info_hash[:INFO_HASH_BYTES])
        else:
            current.discard(info_hash[:INFO_HASH_BYTES])
        self._write_whitelist(frozenset(current))
        return Response(200, b"ok\n")

    def _write_whitelist(self, whitelist: frozenset[bytes]) -> None:
        """Replace the whitelist file atomically, so API changes survive a restart."""
        assert self.config.whitelist_file is not None  # checked by the caller
        path = Path(self.config.whitelist_file)
        replace_durably(path, "".join(f"{info_hash.hex()}\n" for info_hash in sorted(whitelist)).encode())
        self._file_stamps[self.config.whitelist_file] = path.stat().st_mtime_ns
        self.set_policy(replace(self.policy, whitelist=whitelist))

    async def _admin_users(self) -> Response:
        totals = await self.store.user_totals()
        body = {key: {"uploaded": up, "downloaded": down} for key, (up, down) in sorted(totals.items())}
        return Response(200, json.dumps(body).encode(), "application/json")

    def _http_announce_body(self, announce: HttpAnnounce, view: SwarmView) -> bytes:
        if self.config.log_peer_addresses:
            log.info("announce %s from %s", announce.request.info_hash.hex(), announce.request.address.hex())
        return self.http.encode_announce(announce, view)

    async def _http_announce_later(self, announce: HttpAnnounce) -> Response:
        view = await self.store.announce(announce.request, self.clock())
        return Response(200, self._http_announce_body(announce, view))

    async def _http_scrape_later(self, hashes: list[bytes] | None) -> Response:
        counts = await (self.store.full_scrape() if hashes is None else self.store.scrape(hashes))
        return Response(200, self.http.encode_scrape(counts))

    def udp_datagram(self, data: bytes, source: tuple[Any, ...], send: Callable[[bytes], None]) -> None:
        # One clock reading per datagram: this runs 40,000 times a second under load.
        now = self.clock()
        if not self.limiter.allow(source[0], now):
            self.counters.error("rate_limited")
            return  # silence: a reply would help a reflection attack
        if self.answers_at_once:
            reply = self.udp.answer_now(data, source, now, cast(MemoryStore, self.store))
            if reply is not None:
                send(reply)
            return
        action = self.udp.receive(data, source, now)
        if action is None:
            return
        if isinstance(action, UdpReply):
            send(action.payload)
            return
        if isinstance(action, UdpAnnounce):
            self.counters.announces["udp"] += 1
            self.spawn(self._udp_announce_later(action, send))
            return
        self.counters.scrapes["udp"] += 1
        self.spawn(self._udp_scrape_later(action, send))

    def udp_answer_now(self, data: bytes, source: tuple[Any, ...]) -> bytes | None:
        """With the memory store: the reply to a datagram, or None for silence."""
        now = self.clock()
        if not self.limiter.allow(source[0], now):
            self.counters.error("rate_limited")
            return None  # silence: a reply would help a reflection attack
        return self.udp.answer_now(data, source, now, cast(MemoryStore, self.store))

    async def _udp_announce_later(self, action: UdpAnnounce, send: Callable[[bytes], None]) -> None:
        try:
            view = await self.store.announce(action.request, self.clock())
        except STORE_ERRORS as error:
            self.store_failed(error)
            return  # silence, as for any request not answered: the client retries (BEP 15)
        send(self.udp.encode_announce(action.transaction_id, view))

    async def _udp_scrape_later(self, action: UdpScrape, send: Callable[[bytes], None]) -> None:
        try:
            counts: dict[bytes, SwarmCounts] = await self.store.scrape(action.info_hashes)
        except STORE_ERRORS as error:
            self.store_failed(error)
            return
        send(self.udp.encode_scrape(action.transaction_id, action.info_hashes, counts))

    def store_failed(self, error: Exception) -> None:
        log.warning("store unavailable: %s", error)
        self.counters.error("store")

    # -- observation -------------------------------------------------------------------

    def tick_rates(self) -> None:
        now = self.clock()
        then, marks = self._rate_marks
        elapsed = max(now - then, 1e-9)
        self._rates = {name: (count - marks[name]) / elapsed for name, count in self.counters.announces.items()}
        self._rate_marks = (now, dict(self.counters.announces))

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "uptime_s": round(self.clock() - self.started_at, 1),
            "announces": dict(self.counters.announces),
            "announces_per_second": {name: round(rate, 1) for name, rate in self._rates.items()},
            "scrapes": dict(self.counters.scrapes),
            "udp_connects": self.counters.connects,
            "errors": dict(self.counters.errors),
            "pending": self.pending,
        }
        if isinstance(self.store, MemoryStore):
            stats["swarms"] = self.store.swarm_count
            stats["peers"] = self.store.peer_count
        return stats

    def metrics(self) -> str:
        stats = self.stats()
        lines = [
            "# TYPE bitswarm_tracker_announces_total counter",
            *(f'bitswarm_tracker_announces_total{{protocol="{p}"}} {n}' for p, n in stats["announces"].items()),
            "# TYPE bitswarm_tracker_announces_per_second gauge",
            *(
                f'bitswarm_tracker_announces_per_second{{protocol="{p}"}} {n}'
                for p, n in stats["announces_per_second"].items()
            ),
            "# TYPE bitswarm_tracker_scrapes_total counter",
            *(f'bitswarm_tracker_scrapes_total{{protocol="{p}"}} {n}' for p, n in stats["scrapes"].items()),
            "# TYPE bitswarm_tracker_errors_total counter",
            *(f'bitswarm_tracker_errors_total{{reason="{r}"}} {n}' for r, n in sorted(stats["errors"].items())),
        ]
        for gauge in ("swarms", "peers"):
            if gauge in stats:
                lines += [f"# TYPE bitswarm_tracker_{gauge} gauge", f"bitswarm_tracker_{gauge} {stats[gauge]}"]
        return "\n".join(lines) + "\n"

    async def run_housekeeping(self) -> None:
        """Expire silent peers, reload policy files and refresh rates, forever."""
        last_reload = last_rates = self.clock()
        while True:
            await asyncio.sleep(EXPIRY_PERIOD_S)
            now = self.clock()
            try:
                await self.store.expire(now, max_swarms=EXPIRY_SWARMS_PER_TICK)
            except STORE_ERRORS as error:
                self.store_failed(error)  # expiry resumes on the next tick
            if now - last_reload >= RELOAD_PERIOD_S:
                last_reload = now
                try:
                    self.reload_lists()
                except (UsageError, OSError) as error:
                    log.warning("keeping the previous lists: %s", error)
            if now - last_rates >= RATE_WINDOW_S:
                last_rates = now
                self.tick_rates()


_HEADS: dict[tuple[int, str, bool], bytes] = {}


def _head(status: int, content_type: str, keep_alive: bool, length: int) -> bytes:
    """A response head; all but the length is formatted once per kind of response."""
    template = _HEADS.get((status, content_type, keep_alive))
    if template is None:
        text = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: %d\r\n"
            f"{'' if keep_alive else 'Connection: close' + chr(13) + chr(10)}\r\n"
        )
        template = _HEADS[status, content_type, keep_alive] = text.encode()
    return template % length


# After an error answer, what a client may still send is read and dropped, within limits.
MAX_DRAIN_BYTES = 4 << 20
DRAIN_S = 2.0


class _HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection: requests answered in order, a bounded amount buffered."""

    def __init__(self, service: TrackerService, connections: set[_HttpConnection]) -> None:
        self.service = service
        self.connections = connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] = ("", 0)
        self.url = bytearray()
        self.header_bytes = 0
        self.body_bytes = 0
        self.last_active = time.monotonic()
        self.error_status = 0
        self.waiting = False
        self.authorization: bytes | None = None
        self.forwarded_for: str | None = None
        self.real_ip: str | None = None
        self.drained: int | None = None  # bytes thrown away after an error answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, so this is a cast, not a check.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if peer else ("", 0)
        if len(self.connections) >= MAX_CONNECTIONS:
            self.transport.abort()
            return
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.drained is not None:
            self.drained += len(data)
            if self.drained > MAX_DRAIN_BYTES and self.transport is not None:
                self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400)
        except httptools.HttpParserError:
            self._fail(self.error_status or 400)

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.url.clear()
        self.header_bytes = 0
        self.body_bytes = 0
        self.error_status = 0
        self.authorization = None
        self.forwarded_for = None
        self.real_ip = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self.error_status = 414
            raise httptools.HttpParserError("url too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            self.error_status = 431
            raise httptools.HttpParserError("headers too large")
        name = name.lower()
        if name == b"authorization":
            self.authorization = value
        elif name == b"x-forwarded-for":
            # Several header lines are one comma-separated list (RFC 9110, 5.3).
            text = value.decode("latin-1")
            self.forwarded_for = text if self.forwarded_for is None else f"{self.forwarded_for},{text}"
        elif name == b"x-real-ip":
            self.real_ip = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > MAX_BODY_BYTES:
            self.error_status = 413
            raise httptools.HttpParserError("body too large")

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method()
        client = self.client
        if self.service.proxies:
            client = (self.service.proxies.client_host(client[0], self.forwarded_for, self.real_ip), client[1])
        try:
            answer = self.service.http_request(method, bytes(self.url), client, self.authorization)
        except (ValueError, httptools.HttpParserInvalidURLError):
            answer = Response(400, b"bad request\n")
        if isinstance(answer, Response):
            self._send(answer, keep_alive)
            return
        # The store must be waited for: stop reading so responses stay in request order.
        assert self.transport is not None
        self.transport.pause_reading()
        self.waiting = True
        if not self.service.spawn(self._respond_later(answer, keep_alive)):
            self._send(Response(503, b"busy\n"), keep_alive=False)

    async def _respond_later(self, answer: Coroutine[Any, Any, Response], keep_alive: bool) -> None:
        try:
            response = await answer
        except STORE_ERRORS as error:
            self.service.store_failed(error)
            response = Response(200, encode_failure("tracker storage unavailable, try again later"))
        self.waiting = False
        self._send(response, keep_alive)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _send(self, response: Response, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            _head(response.status, response.content_type, keep_alive, len(response.body)) + response.body
        )
        if not keep_alive:
            self.transport.close()

    def _fail(self, status: int) -> None:
        """Answer with an error and end the connection without losing the answer.

        The client may still be sending (a body too large, say): closing with its bytes
        unread makes the kernel reset the connection, and a reset can destroy our answer
        before the client reads it. So: answer, half-close, throw away what still comes
        (up to ``MAX_DRAIN_BYTES``, for at most ``DRAIN_S``), then close.
        """
        self.service.counters.error(f"http_{status}")
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = f"{_REASONS.get(status, 'error')}\n".encode()
        transport.write(_head(status, "text/plain", False, len(body)) + body)
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.drained = 0
        asyncio.get_running_loop().call_later(DRAIN_S, transport.close)


class _HandedConnection(_HttpConnection):
    """A connection the fast path read from first: its bytes are fed as soon as it is made."""

    def __init__(self, service: TrackerService, connections: set[_HttpConnection], initial: bytes) -> None:
        super().__init__(service, connections)
        self.initial = initial

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        initial, self.initial = self.initial, b""
        if initial and self.transport is not None and not self.transport.is_closing():
            self.data_received(initial)


# A GET request line whose URL llhttp would take as it is, and header lines of plain tokens
# and printable values; anything else goes to the slow path (and its parser's verdict).
_FAST_REQUEST_LINE = re.compile(rb"GET (/(?:announce|scrape)[\x21-\x7e]*) HTTP/1\.([01])\r\n")
_FAST_HEADERS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)*\r\n")
# Headers that make a request more than a head (or change the connection): slow path.
_SLOW_HEADERS = frozenset((b"content-length", b"transfer-encoding", b"upgrade", b"expect"))


def fast_request(data: bytes) -> tuple[bytes, bytes | None] | None:
    """(url, authorization) of a complete GET head for /announce or /scrape whose client
    asked to close the connection after the answer; None for anything else."""
    if not data.endswith(b"\r\n\r\n"):
        return None
    line = _FAST_REQUEST_LINE.match(data)
    if line is None:
        return None
    start = line.end()
    if data.find(b"\r\n\r\n", start - 2) != len(data) - 4 or _FAST_HEADERS.fullmatch(data, start) is None:
        return None  # a second request behind the first, or a header llhttp might refuse
    keep_alive = line.group(2) == b"1"
    authorization: bytes | None = None
    for header in data[start:-4].split(b"\r\n") if len(data) - 4 > start else ():
        name, _, value = header.partition(b":")
        name = name.lower()
        if name == b"connection":
            tokens = [token.strip() for token in value.lower().split(b",")]
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
            if b"upgrade" in tokens:
                return None
        elif name in _SLOW_HEADERS:
            return None
        elif name == b"authorization":
            authorization = value.strip(b" \t")
    if keep_alive:
        return None
    return line.group(1), authorization


try:
    from bitswarm.tracker._http_fast import request_head as _request_head
except ImportError:  # installed without a C compiler
    _request_head = fast_request


class _ReaderSocket:
    """A socket of our own served by one reader callback on the event loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()

    def _readable(self) -> None:
        raise NotImplementedError


_PLAIN_200 = _head(200, "text/plain", False, 0).replace(b"Content-Length: 0", b"Content-Length: %d")


class _FastHttpListener(_ReaderSocket):
    """The memory store's HTTP path on POSIX: a listening socket of our own.

    One reader callback per wake-up accepts up to ``MAX_ACCEPTS_PER_WAKEUP`` connections
    and reads once from each. A complete request for /announce or /scrape from a client
    that does not keep the connection is answered by ``TrackerService.http_request`` right
    there: one send, one close, and no transport or protocol. Every other connection (no
    bytes yet, part of a request, keep-alive, other paths, anything odd) becomes an
    ordinary ``_HttpConnection`` fed the bytes already read, so it is served as before.
    """

    def __init__(self, service: TrackerService, connections: set[_HttpConnection], sock: socket.socket) -> None:
        super().__init__(sock)
        self.service = service
        self.connections = connections

    def _resume(self) -> None:
        if self._loop is not None:
            self._loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        # The socket's own _accept gives a bare descriptor: making and closing a socket
        # object for a connection that lives for one read and one write cost 3 us of the
        # 45 us an announce took. Only a connection that needs more gets an object.
        accept = self.sock._accept  # type: ignore[attr-defined]
        read, set_blocking = os.read, os.set_blocking
        for _ in range(MAX_ACCEPTS_PER_WAKEUP):
            try:
                fd, address = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                self.service.counters.error("http_accept")
                if error.errno in _ACCEPT_PAUSE_ERRNOS and self._loop is not None:
                    # Out of descriptors or memory: stop accepting for a while, as asyncio does.
                    log.warning("accept failed, pausing for %.0f s: %s", ACCEPT_RETRY_DELAY_S, error)
                    self._loop.remove_reader(self.sock.fileno())
                    self._loop.call_later(ACCEPT_RETRY_DELAY_S, self._resume)
                    return
                continue  # ECONNABORTED and the like: that connection only
            try:
                set_blocking(fd, False)
                data = read(fd, FAST_READ_BYTES)
            except (BlockingIOError, InterruptedError):
                self._hand_over(fd, b"")  # nothing yet: the slow path waits for it
                continue
            except OSError:
                os.close(fd)
                continue
            if not data:  # the client hung up without a request
                os.close(fd)
                continue
            request = _request_head(data) if len(data) < FAST_READ_BYTES else None
            if request is None or (self.service.proxies and self._from_proxy(address)):
                self._hand_over(fd, data)
                continue
            self._answer(fd, address, request[0], request[1])

    def _from_proxy(self, address: Any) -> bool:
        """A proxy's request names its client in headers, which the slow path reads."""
        return isinstance(address, tuple) and self.service.proxies.trusts(address[0])

    def _answer(self, fd: int, address: Any, url: bytes, authorization: bytes | None) -> None:
        client = (address[0], address[1]) if isinstance(address, tuple) else ("", 0)
        if url.startswith(b"/announce?") and b"#" not in url and self.service.announces_now:
            # The usual request, without URL parsing or a Response: 2 us of the 26 an
            # announce costs here.
            body = self.service.announce_now(url[10:], client, None)
            self._write(fd, _PLAIN_200 % len(body) + body)
            return
        try:
            answer = self.service.http_request(b"GET", url, client, authorization)
        except (ValueError, httptools.HttpParserInvalidURLError):
            answer = Response(400, b"bad request\n")
        if not isinstance(answer, Response):
            if not self.service.spawn(self._answer_later(fd, answer)):
                self._send(fd, Response(503, b"busy\n"))
            return
        self._send(fd, answer)

    async def _answer_later(self, fd: int, answer: Coroutine[Any, Any, Response]) -> None:
        try:
            response = await answer
        except STORE_ERRORS as error:
            self.service.store_failed(error)
            response = Response(200, encode_failure("tracker storage unavailable, try again later"))
        self._send(fd, response)

    def _send(self, fd: int, response: Response) -> None:
        self._write(fd, _head(response.status, response.content_type, False, len(response.body)) + response.body)

    def _write(self, fd: int, payload: bytes) -> None:
        try:
            sent = os.write(fd, payload)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            os.close(fd)
            return
        if sent == len(payload):
            os.close(fd)
            return
        if not self.service.spawn(self._send_rest(self._socket_of(fd), payload[sent:])):
            os.close(fd)

    @staticmethod
    def _socket_of(fd: int) -> socket.socket:
        # Family and type are read from the descriptor itself.
        return socket.socket(fileno=fd)

    async def _send_rest(self, conn: socket.socket, rest: bytes) -> None:
        try:
            await asyncio.get_running_loop().sock_sendall(conn, rest)
        except OSError:
            pass
        finally:
            conn.close()

    def _hand_over(self, fd: int, data: bytes) -> None:
        try:
            conn = self._socket_of(fd)
        except OSError:
            os.close(fd)
            return
        if not self.service.spawn(self._connect(conn, data)):
            conn.close()

    async def _connect(self, conn: socket.socket, data: bytes) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _HandedConnection(self.service, self.connections, data), conn
            )
        except OSError:
            conn.close()


class _UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, service: TrackerService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.service.answers_at_once:
            # No closure per datagram on the memory store's path.
            reply = self.service.udp_answer_now(data, addr)
            if reply is not None:
                transport.sendto(reply, addr)
            return
        self.service.udp_datagram(data, addr, lambda payload: transport.sendto(payload, addr))

    def error_received(self, exc: Exception) -> None:
        self.service.counters.error("udp_socket")


class _BatchedUdpServer(_ReaderSocket):
    """The memory store's UDP path on Linux: datagrams in batches (recvmmsg, sendmmsg).

    One reader callback per wake-up drains up to ``MAX_BATCHES_PER_WAKEUP`` batches, each
    one system call in, the answers from the store, and one system call out. It runs on
    the event loop's thread like the HTTP side, so the store is touched by one thread.
    Per datagram this saves the event loop's callback, address tuple and transport
    bookkeeping and the two system calls; the answers are those of ``_UdpEndpoint``.
    """

    def __init__(self, service: TrackerService, sock: socket.socket) -> None:
        super().__init__(sock)
        self.service = service
        # Datagrams arrive while a batch is answered: room for a few batches' worth (the
        # kernel caps this at net.core.rmem_max; 212 KiB, the usual default, holds ~200).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)
        self.batch = mmsg.DatagramBatch(sock, max_datagram_bytes=MAX_UDP_DATAGRAM_BYTES)
        # raw sockaddr -> the address tuple a datagram endpoint would give; emptied when full.
        self._sources: dict[bytes, tuple[Any, ...] | None] = {}

    def _readable(self) -> None:
        service = self.service
        counters = service.counters
        allow = service.limiter.allow
        answer = service.udp.answer_now
        store = cast(MemoryStore, service.store)
        sources = self._sources
        batch = self.batch
        for _ in range(MAX_BATCHES_PER_WAKEUP):
            try:
                received = batch.receive()
            except OSError:
                counters.error("udp_socket")
                return
            # One clock reading per batch: its datagrams were read in one system call.
            now = service.clock()
            names: list[bytes] = []
            replies: list[bytes] = []
            for name, datagram in received:
                source = sources.get(name, _UNKNOWN_SOURCE)
                if source is _UNKNOWN_SOURCE:
                    source = self._source(name)
                if source is None:
                    counters.error("udp_source")
                    continue
                if not allow(source[0], now):
                    counters.error("rate_limited")
                    continue  # silence: a reply would help a reflection attack
                reply = answer(datagram, source, now, store)
                if reply is not None:
                    names.append(name)
                    replies.append(reply)
            dropped = batch.send(names, replies)
            if dropped:
                counters.errors["udp_send_dropped"] = counters.errors.get("udp_send_dropped", 0) + dropped
            if len(received) < batch.capacity:
                return

    def _source(self, name: bytes) -> tuple[Any, ...] | None:
        source = mmsg.decode_sockaddr(name)
        if len(self._sources) >= MAX_CACHED_UDP_SOURCES:
            self._sources.clear()
        self._sources[name] = source
        return source


_UNKNOWN_SOURCE: tuple[Any, ...] = ()


async def _bound_udp_socket(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A non-blocking datagram socket bound as ``create_datagram_endpoint`` binds one."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned nothing")
    family, kind, protocol, _, address = infos[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setblocking(False)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def _listening_sockets(loop: asyncio.AbstractEventLoop, host: str | None, port: int) -> list[socket.socket]:
    """Non-blocking listening sockets bound as ``loop.create_server`` binds them."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned nothing")
    sockets: list[socket.socket] = []
    try:
        for family, kind, protocol, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, protocol)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if hasattr(socket, "TCP_DEFER_ACCEPT"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
            sock.bind(address)
            sock.setblocking(False)
            sock.listen(LISTEN_BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def open_store(config: TrackerConfig) -> TrackerStore:
    if config.store == "memory":
        return MemoryStore(peer_timeout_s=config.peer_timeout_s, rng=random.Random())
    from bitswarm.tracker.redis_store import RedisStore  # noqa: PLC0415 - only Redis users need redis

    return await RedisStore.open(config.store, peer_timeout_s=config.peer_timeout_s)


class TrackerServer:
    """Binds the configured addresses and serves until ``close``."""

    def __init__(self, service: TrackerService) -> None:
        self.service = service
        self.http_servers: list[asyncio.Server] = []
        self.udp_transports: list[asyncio.DatagramTransport] = []
        self.udp_batched: list[_BatchedUdpServer] = []
        self.http_fast: list[_FastHttpListener] = []
        self.connections: set[_HttpConnection] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        self._idle_sweep: asyncio.Task[None] | None = None

    @property
    def http_addresses(self) -> list[tuple[str, int]]:
        fast = [listener.sock.getsockname()[:2] for listener in self.http_fast]
        return fast + [socket.getsockname()[:2] for server in self.http_servers for socket in server.sockets]

    @property
    def udp_addresses(self) -> list[tuple[str, int]]:
        batched = [server.sock.getsockname()[:2] for server in self.udp_batched]
        return batched + [transport.get_extra_info("sockname")[:2] for transport in self.udp_transports]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for address in self.service.config.http:
            host, port = split_host_port(address)
            if FAST_HTTP and self.service.answers_at_once:
                for sock in await _listening_sockets(loop, host or None, port):
                    listener = _FastHttpListener(self.service, self.connections, sock)
                    listener.start(loop)
                    self.http_fast.append(listener)
                continue
            server = await loop.create_server(
                lambda: _HttpConnection(self.service, self.connections), host or None, port, reuse_address=True
            )
            self.http_servers.append(server)
        for address in self.service.config.udp:
            host, port = split_host_port(address)
            if BATCHED_UDP and self.service.answers_at_once:
                batched = _BatchedUdpServer(self.service, await _bound_udp_socket(loop, host or "::", port))
                batched.start(loop)
                self.udp_batched.append(batched)
                continue
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpEndpoint(self.service), local_addr=(host or "::", port)
            )
            self.udp_transports.append(transport)
        self._housekeeping = loop.create_task(self.service.run_housekeeping())
        self._idle_sweep = loop.create_task(self._sweep_idle())

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(IDLE_TIMEOUT_S / 3)
            deadline = time.monotonic() - IDLE_TIMEOUT_S
            for connection in [c for c in self.connections if c.last_active < deadline and not c.waiting]:
                if connection.transport is not None:
                    connection.transport.close()

    async def close(self) -> None:
        for task in (self._housekeeping, self._idle_sweep):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for server in self.http_servers:
            server.close()
        for listener in self.http_fast:
            listener.close()
        for transport in self.udp_transports:
            transport.close()
        for batched in self.udp_batched:
            batched.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        for server in self.http_servers:
            await server.wait_closed()
        await self.service.store.close()


async def serve(config: TrackerConfig, *, ready: Callable[[TrackerServer], None] | None = None) -> None:
    """Run a tracker until SIGINT or SIGTERM, then shut down cleanly."""
    store = await open_store(config)
    server = TrackerServer(TrackerService(config, store))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        log.info("tracker serving HTTP on %s and UDP on %s", server.http_addresses, server.udp_addresses)
        if ready is not None:
            ready(server)
        await stop.wait()
    finally:
        await server.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        log.info("tracker stopped")


def run(config: TrackerConfig, *, ready: Callable[[TrackerServer], None] | None = None) -> None:
    """Serve on uvloop when it is installed (5x the datagram rate of the stock loop here)."""
    try:
        import uvloop  # noqa: PLC0415

        runner: Callable[..., None] = uvloop.run
    except ImportError:
        runner = asyncio.run
    if os.environ.get("BITSWARM_STOCK_LOOP"):
        runner = asyncio.run
    runner(serve(config, ready=ready))
