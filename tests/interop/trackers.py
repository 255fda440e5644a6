"""Trackers and a seeding client as processes on loopback, and small tracker clients.

`run_bitswarm_tracker` and `run_opentracker` start a tracker on free 127.0.0.1 ports and
stop it by PID; `run_transmission` starts transmission-daemon 3.00 with its own config
folder, DHT, LPD, PEX, port mapping and (unless asked for) uTP off, and RPC without
authentication on 127.0.0.1. The bitswarm tracker and Transmission can run in a test
network's namespace instead (see `netns.py`): they take the address to use, a `wrap` for
their command line and, for Transmission's RPC, a `call` that runs it in the namespace.

`http_announce`, `http_scrape` and `UdpTrackerClient` speak BEP 3, 48 and 15 to any of
the trackers; they are written from the BEPs, independent of bitswarm's tracker core, so
they can check it. A missing tool fails the test (`tools.require`).

Nothing here sleeps in place of synchronisation: `wait_for` polls something observable
(a port answering, a tracker's counts, an RPC status) until a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bitswarm import bencode

from .tools import require

T = TypeVar("T")

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05
REQUEST_TIMEOUT_S = 5.0
UDP_REPLY_TIMEOUT_S = 1.0
UDP_ATTEMPTS = 3

LOOPBACK = "127.0.0.1"
# Runs a command line as it is given; a test network's `argv` runs it in a namespace.
Wrap = Callable[[list[str]], list[str]]
# Runs a call here; a test network's `call` runs it in a namespace.
Caller = Callable[[Callable[[], Any]], Any]


def _as_given(argv: list[str]) -> list[str]:
    return argv


def _here(function: Callable[[], Any]) -> Any:
    return function()


def _ready_line(host: str) -> re.Pattern[str]:
    """bitswarm tracker's first line when it serves HTTP and UDP on ``host`` from memory."""
    address = re.escape(host)
    return re.compile(rf"bitswarm tracker: http {address}:(\d+); udp {address}:(\d+); store memory")


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = 30.0) -> T:
    """Call ``probe`` until it returns something other than None or False; return that.

    Raises AssertionError naming ``what`` (and the last value seen) at the deadline.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s (last: {value!r})")
        time.sleep(POLL_INTERVAL_S)  # polling an observable, not standing in for one


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP just now (another process may take it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise AssertionError("no port free for both TCP and UDP on 127.0.0.1")


def stop_process(process: subprocess.Popen[Any], name: str) -> int:
    """SIGTERM ``process`` by its PID, wait for it, and return its exit status."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"{name} did not stop within {STOP_TIMEOUT_S} s of SIGTERM") from None


@dataclass(frozen=True, slots=True)
class TrackerUrls:
    host: str
    http_port: int
    udp_port: int

    @property
    def announce(self) -> str:
        return f"http://{self.host}:{self.http_port}/announce"

    @property
    def scrape(self) -> str:
        return f"http://{self.host}:{self.http_port}/scrape"

    @property
    def udp(self) -> str:
        return f"udp://{self.host}:{self.udp_port}/announce"

    @property
    def udp_address(self) -> tuple[str, int]:
        return (self.host, self.udp_port)


@contextlib.contextmanager
def run_bitswarm_tracker(
    log_path: Path, *options: str, host: str = LOOPBACK, wrap: Wrap = _as_given
) -> Iterator[TrackerUrls]:
    """Run ``bitswarm tracker`` (memory store) on free ports of ``host`` until the block ends.

    ``wrap`` rewrites the command line (to run it in a test network's namespace). Yields
    its URLs once it printed its ready line. At the end it is sent SIGTERM by PID and
    must exit with status 0; raises AssertionError otherwise.
    """
    argv = [sys.executable, "-m", "bitswarm", "tracker", "--http", f"{host}:0", "--udp", f"{host}:0", *options]
    with log_path.open("wb") as log:
        process = subprocess.Popen(wrap(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        try:
            assert process.stdout is not None
            line = _read_line(process, START_TIMEOUT_S)
            match = _ready_line(host).fullmatch(line.strip())
            if match is None:
                raise AssertionError(f"bitswarm tracker: unexpected ready line {line!r}; log:\n{_tail(log_path)}")
            yield TrackerUrls(host, int(match[1]), int(match[2]))
        finally:
            status = stop_process(process, "bitswarm tracker")
            if process.stdout is not None:
                process.stdout.close()
        assert status == 0, f"bitswarm tracker exited with status {status}; log:\n{_tail(log_path)}"


def _read_line(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The first line ``process`` prints on stdout, within ``timeout_s``."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise AssertionError(f"{process.args!r}: no output within {timeout_s} s")
    return process.stdout.readline().decode("utf-8", "replace")


def _tail(path: Path, size: int = 2000) -> str:
    return path.read_bytes()[-size:].decode("utf-8", "replace")


@contextlib.contextmanager
def run_opentracker(root: Path, whitelist: list[bytes], probe_hash: bytes) -> Iterator[TrackerUrls]:
    """Run Debian's opentracker (whitelist mode) on a free 127.0.0.1 port, HTTP and UDP.

    ``whitelist`` and ``probe_hash`` go in its whitelist file. It is ready once an HTTP
    announce of ``probe_hash`` is accepted (the whitelist is read by a thread after start)
    and a UDP connect is answered; the probe peer is then stopped again. opentracker
    chroots into ``root``; as root it also drops to user nobody, so ``root`` is made
    world-readable.
    """
    binary = require("opentracker")
    root.mkdir(parents=True, exist_ok=True)
    (root / "whitelist").write_text("".join(f"{info_hash.hex()}\n" for info_hash in [*whitelist, probe_hash]))
    root.chmod(0o755)
    (root / "whitelist").chmod(0o644)
    port = free_port()
    argv = [binary, "-i", "127.0.0.1", "-p", str(port), "-P", str(port), "-d", str(root), "-w", "whitelist"]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]
    log_path = root.parent / f"{root.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        urls = TrackerUrls("127.0.0.1", port, port)
        try:

            def accepted() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"opentracker exited with {process.returncode}:\n{_tail(log_path)}")
                with contextlib.suppress(OSError):
                    reply = http_announce(urls.announce, probe_hash, port=1, left=0)
                    return b"failure reason" not in reply
                return False

            wait_for(accepted, "opentracker accepting a whitelisted announce", START_TIMEOUT_S)
            http_announce(urls.announce, probe_hash, port=1, left=0, event="stopped")
            with UdpTrackerClient(urls.udp_address) as client:
                client.connect()
            yield urls
        finally:
            status = stop_process(process, "opentracker")
        # opentracker has no clean shutdown: SIGTERM ends it by the signal.
        assert status in (0, -signal.SIGTERM), f"opentracker exited with {status}:\n{_tail(log_path)}"


def peer_id_for(port: int) -> bytes:
    return f"-BT0001-{port:012d}".encode()


def http_announce(
    url: str,
    info_hash: bytes,
    *,
    port: int,
    left: int,
    event: str = "",
    numwant: int = 200,
    downloaded: int = 0,
) -> dict[bytes, Any]:
    """Send one BEP 3 announce (compact) and return the decoded reply dictionary."""
    query = {
        "info_hash": info_hash,
        "peer_id": peer_id_for(port),
        "port": str(port),
        "uploaded": "0",
        "downloaded": str(downloaded),
        "left": str(left),
        "numwant": str(numwant),
        "compact": "1",
    }
    if event:
        query["event"] = event
    return _get_bencoded(f"{url}?{urllib.parse.urlencode(query)}")


def http_scrape(url: str, info_hashes: list[bytes]) -> dict[bytes, Any]:
    """Send one BEP 48 scrape and return the decoded reply dictionary."""
    query = urllib.parse.urlencode([("info_hash", info_hash) for info_hash in info_hashes])
    return _get_bencoded(f"{url}?{query}")


def _get_bencoded(url: str) -> dict[bytes, Any]:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:  # noqa: S310 - http:// on loopback
        body = response.read()
    # opentracker writes a scrape's "files" in its own order, not sorted as bencode wants.
    reply = bencode.decode_document(body, allow_unsorted_keys=True).value
    if not isinstance(reply, dict):
        raise AssertionError(f"{url}: reply is not a dictionary: {body[:200]!r}")
    return reply


def compact_peers(blob: bytes) -> set[tuple[str, int]]:
    """(ip, port) for each 6-byte compact IPv4 peer."""
    assert len(blob) % 6 == 0, f"compact peers of {len(blob)} bytes"
    return {
        (socket.inet_ntoa(blob[at : at + 4]), int.from_bytes(blob[at + 4 : at + 6], "big"))
        for at in range(0, len(blob), 6)
    }


@dataclass(frozen=True, slots=True)
class UdpAnnounceReply:
    interval_s: int
    leechers: int
    seeders: int
    peers: set[tuple[str, int]]


UDP_PROTOCOL_ID = 0x41727101980
_UDP_EVENTS = {"": 0, "completed": 1, "started": 2, "stopped": 3}


class UdpTrackerClient:
    """A BEP 15 client on one socket; each request is retried a few times on silence."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(address)
        self.connection_id: int | None = None

    def __enter__(self) -> UdpTrackerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()

    def _request(self, payload: bytes, action: int, transaction_id: int) -> bytes | None:
        """The reply body (after action and transaction ID), or None for silence."""
        for _ in range(UDP_ATTEMPTS):
            self.sock.send(payload)
            self.sock.settimeout(UDP_REPLY_TIMEOUT_S)
            try:
                while True:
                    reply = self.sock.recv(65536)
                    got_action, got_transaction = struct.unpack_from(">II", reply)
                    if got_transaction != transaction_id:
                        continue  # a late answer to an earlier attempt
                    if got_action == 3:
                        raise UdpTrackerError(reply[8:].decode("utf-8", "replace"))
                    assert got_action == action, f"action {got_action}, expected {action}"
                    return reply[8:]
            except TimeoutError:
                continue
        return None

    def connect(self) -> None:
        transaction_id = secrets.randbits(32)
        reply = self._request(struct.pack(">QII", UDP_PROTOCOL_ID, 0, transaction_id), 0, transaction_id)
        if reply is None:
            raise AssertionError(f"udp tracker {self.address}: no reply to connect")
        (self.connection_id,) = struct.unpack(">Q", reply[:8])

    def announce(
        self, info_hash: bytes, *, port: int, left: int, event: str = "", numwant: int = 200
    ) -> UdpAnnounceReply | None:
        """The tracker's reply, or None if it stayed silent."""
        if self.connection_id is None:
            self.connect()
        transaction_id = secrets.randbits(32)
        payload = struct.pack(">QII", self.connection_id, 1, transaction_id) + struct.pack(
            ">20s20sQQQIIIiH",
            info_hash,
            peer_id_for(port),
            0,
            left,
            0,
            _UDP_EVENTS[event],
            0,
            secrets.randbits(32),
            numwant,
            port,
        )
        reply = self._request(payload, 1, transaction_id)
        if reply is None:
            return None
        if len(reply) < 12:
            raise UdpTrackerError(f"announce reply of {8 + len(reply)} bytes, without counts")
        interval_s, leechers, seeders = struct.unpack_from(">III", reply)
        return UdpAnnounceReply(interval_s, leechers, seeders, compact_peers(reply[12:]))

    def scrape(self, info_hashes: list[bytes]) -> dict[bytes, tuple[int, int, int]]:
        """(seeders, completed, leechers) per info-hash, in BEP 15's order."""
        if self.connection_id is None:
            self.connect()
        transaction_id = secrets.randbits(32)
        payload = struct.pack(">QII", self.connection_id, 2, transaction_id) + b"".join(info_hashes)
        reply = self._request(payload, 2, transaction_id)
        if reply is None:
            raise AssertionError(f"udp tracker {self.address}: no reply to scrape")
        assert len(reply) == 12 * len(info_hashes), f"scrape reply of {len(reply)} bytes"
        return {info_hash: struct.unpack_from(">III", reply, 12 * at) for at, info_hash in enumerate(info_hashes)}


class UdpTrackerError(Exception):
    """The UDP tracker answered with an error (action 3); the message is its text."""


@dataclass
class Transmission:
    """A running transmission-daemon and how to reach it."""

    process: subprocess.Popen[bytes]
    rpc_url: str
    peer_port: int
    log_path: Path
    call: Caller = _here
    session_id: str = ""
    # (user, password) when the daemon was started with RPC authentication.
    rpc_auth: tuple[str, str] | None = None

    def rpc(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Call one RPC method (through ``call``) and return its "arguments".

        Raises AssertionError on failure.
        """
        reply: dict[str, Any] = self.call(lambda: self._rpc(method, arguments))
        return reply

    def _rpc(self, method: str, arguments: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _ in range(2):  # the first call learns the session ID from a 409
            headers = {"X-Transmission-Session-Id": self.session_id}
            if self.rpc_auth is not None:
                token = base64.b64encode(":".join(self.rpc_auth).encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            request = urllib.request.Request(  # noqa: S310 - http:// on loopback
                self.rpc_url, data=body, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:  # noqa: S310
                    reply: dict[str, Any] = json.loads(response.read())
            except urllib.error.HTTPError as error:
                if error.code == 409:
                    self.session_id = error.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise
            if reply.get("result") != "success":
                raise AssertionError(f"transmission {method}: {reply.get('result')}")
            arguments_out: dict[str, Any] = reply.get("arguments", {})
            return arguments_out
        raise AssertionError(f"transmission {method}: no session ID")


@contextlib.contextmanager
def run_transmission(
    root: Path,
    *,
    address: str = LOOPBACK,
    wrap: Wrap = _as_given,
    call: Caller = _here,
    rpc_auth: tuple[str, str] | None = None,
    utp: bool = False,
) -> Iterator[Transmission]:
    """Run transmission-daemon in the foreground with its config under ``root``.

    RPC listens on a free port of ``address`` without authentication; peers on another,
    on ``address`` and ::1 only. DHT, LPD, PEX, port mapping and (unless ``utp``) uTP are
    off, so the only way peers find each other is a tracker (or their own dial). ``wrap`` rewrites its command line and
    ``call`` makes its RPC calls (both to run them in a test network's namespace).
    ``rpc_auth`` (user, password) turns RPC authentication on; ``utp`` turns uTP (BEP 29)
    on, in and out, on the UDP socket of the peer port. Stopped by PID at the end; it must
    exit with status 0.
    """
    binary = require("transmission-daemon")
    config_dir = root / "config"
    config_dir.mkdir(parents=True)
    rpc_port, peer_port = free_port(), free_port()
    settings = {
        "dht-enabled": False,
        "lpd-enabled": False,
        "pex-enabled": False,
        "utp-enabled": utp,
        "port-forwarding-enabled": False,
        "peer-port": peer_port,
        "peer-port-random-on-start": False,
        "bind-address-ipv4": address,
        "bind-address-ipv6": "::1",
        "rpc-enabled": True,
        "rpc-bind-address": address,
        "rpc-port": rpc_port,
        "rpc-authentication-required": rpc_auth is not None,
        # Transmission reads a plain password here and stores its hash on the first save.
        "rpc-username": rpc_auth[0] if rpc_auth else "",
        "rpc-password": rpc_auth[1] if rpc_auth else "",
        "rpc-whitelist-enabled": False,
        "rpc-host-whitelist-enabled": False,
        "download-dir": str(root / "downloads"),
        "incomplete-dir-enabled": False,
        "watch-dir-enabled": False,
        "ratio-limit-enabled": False,
        "idle-seeding-limit-enabled": False,
        "speed-limit-up-enabled": False,
        "speed-limit-down-enabled": False,
        "start-added-torrents": True,
        "blocklist-enabled": False,
        "message-level": 2,
    }
    (config_dir / "settings.json").write_text(json.dumps(settings))
    log_path = root / "transmission.log"
    argv = [binary, "--foreground", "--config-dir", str(config_dir), "--logfile", str(log_path)]
    process = subprocess.Popen(
        wrap(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    daemon = Transmission(
        process, f"http://{address}:{rpc_port}/transmission/rpc", peer_port, log_path, call, rpc_auth=rpc_auth
    )
    try:

        def answering() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"transmission-daemon exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                daemon.rpc("session-get")
            except OSError:
                return False
            return True

        wait_for(answering, "transmission-daemon answering RPC", START_TIMEOUT_S)
        yield daemon
    finally:
        status = stop_process(process, "transmission-daemon")
    assert status == 0, f"transmission-daemon exited with {status}:\n{_tail(log_path)}"
