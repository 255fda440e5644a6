"""Benchmark: announces per second, CPU and memory of `bitswarm tracker` beside opentracker
(issue 3).

    python3 bench/tracker_bench.py [--swarms 100000] [--peers-per-swarm 10] [--duration-s 10]
                                   [--repeat 3] [--workers 2] [--http-connections 16]
                                   [--no-redis] [--no-keep-alive] [--wrk]

Everything runs on loopback. The benchmark starts, in a fresh folder under /tmp:
`bitswarm tracker` with the memory store, Debian's opentracker (whitelist build: every
info-hash goes in its whitelist file, it runs with a config file of its own), and, when
`bitswarm.tracker.redis_store` exists, redis-server with two `bitswarm tracker`
processes sharing it. Only the processes it started are ever stopped, by PID.

Load: every peer announces once (event=started, over UDP) to every tracker. A peer is
the address the tracker keys on: for UDP the datagram's source IP (always 127.0.0.1) and
the announced port, for HTTP the connection's IP and the `port` parameter. So peer k of
swarm s announces port 20000 + k, and the 1,000,000 peers are 100,000 swarms x 10 ports;
3 of each swarm's 10 are seeders. After loading, each server's resident memory (VmRSS
from /proc/PID/status) is read.

Measure: re-announces (no event, default numwant) of random loaded peers for
--duration-s, per protocol per tracker, repeated --repeat times with the trackers'
order rotated each round, so noise on this shared machine spreads over all of them; the
medians are printed. UDP: generator processes each keep a window of outstanding requests
on a few connected sockets (a connect first, refreshed every 30 s, as connection IDs
live one to two minutes) and count the replies that arrive in the window. HTTP:
opentracker answers one request per connection (it closes after each response), so the
comparison is one request per connection for both, with `Connection: close`; bitswarm's
keep-alive rate is shown on its own row. A tracker's CPU is its utime + stime from
/proc/PID/stat over the measured window; the generators' CPU is their own getrusage, and
"other" is what the rest of the machine used meanwhile (from /proc/stat), a noise gauge.

--wrk adds HTTP rows driven by Debian's wrk instead (a load generator in C, with a Lua
script sending the same re-announces, `Connection: close`, as many threads as --workers
and --workers x --http-connections connections), so that the HTTP ratio does not rest on
the Python generators alone; its CPU is the wrk child's getrusage.

Every loop is bounded in time and count. This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import hashlib
import importlib.util
import multiprocessing
import os
import platform
import random
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

SEED = 3  # issue 3
BASE_PORT = 20000
SEEDERS_PER_SWARM = 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BITSWARM = shutil.which("bitswarm", path=str(Path(sys.executable).parent)) or "bitswarm"
OPENTRACKER = "/usr/bin/opentracker"
REDIS_SERVER = "/usr/bin/redis-server"
# Debian's wrk: an HTTP load generator in C, for a second opinion on the HTTP rows (--wrk).
WRK = "/usr/bin/wrk"

# Generator settings: enough requests in flight to keep a server busy, few enough that a
# server's socket buffer (212 KiB by default) does not overflow and drop them.
UDP_SOCKETS_PER_WORKER = 4
UDP_WINDOW = 32
HTTP_CONNECTIONS_PER_WORKER = 16
# A socket whose requests got no answer for this long has lost them (UDP) or is stuck.
STALL_S = 0.25
CONNECTION_ID_REFRESH_S = 30.0
MAX_LOAD_ATTEMPTS = 5
# Hard limits: a tracker that does not start or stalls must not hang the benchmark.
START_TIMEOUT_S = 30.0
LOAD_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.02
MAX_READS_PER_EVENT = 64

_UDP_CONNECT = struct.Struct(">QII")
_UDP_ANNOUNCE = struct.Struct(">8sII20s20sQQQIIIiH")
_UDP_REPLY_HEADER = struct.Struct(">II")
UDP_PROTOCOL_ID = 0x41727101980
# Transaction IDs of connect requests; announces count up from 0 and never reach it.
CONNECT_TRANSACTION = 0xFFFFFFFF


# -- what every process agrees on -------------------------------------------------------


@dataclass(frozen=True)
class Population:
    swarms: int
    peers_per_swarm: int

    @property
    def peers(self) -> int:
        return self.swarms * self.peers_per_swarm

    def info_hashes(self) -> list[bytes]:
        return [
            hashlib.sha1(b"bitswarm tracker bench %d" % index, usedforsecurity=False).digest()
            for index in range(self.swarms)
        ]


def peer_id(peer: int) -> bytes:
    return b"-BS0001-%012d" % peer


def left_of(slot: int) -> int:
    return 0 if slot < SEEDERS_PER_SWARM else 1 << 20


# -- generator processes ----------------------------------------------------------------


@dataclass
class Tally:
    replies: int = 0
    errors: int = 0
    lost: int = 0
    unsent: int = 0
    cpu_s: float = 0.0
    detail: str = ""


class _UdpSocket:
    __slots__ = ("connecting_at", "connection_at", "connection_id", "last_reply", "outstanding", "sock")

    def __init__(self, target: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(target)
        self.sock.setblocking(False)
        self.connection_id = b""
        self.connection_at = 0.0
        self.connecting_at = 0.0
        self.last_reply = 0.0
        # transaction ID -> peer, so a lost load request can be sent again
        self.outstanding: dict[int, int] = {}

    def connect(self, now: float) -> None:
        self.connecting_at = now
        self.last_reply = now
        self.sock.send(_UDP_CONNECT.pack(UDP_PROTOCOL_ID, 0, CONNECT_TRANSACTION))


def run_udp(
    population: Population,
    hashes: list[bytes],
    targets: list[tuple[str, int]],
    work: Iterator[int],
    *,
    event: int,
    start_at: float,
    end_at: float,
    resend: bool,
) -> Tally:
    """Announce the peers ``work`` yields over UDP until it runs dry or ``end_at``.

    With ``resend``, requests lost on the way are sent again (loading); without, they
    are counted as lost (measuring). Replies that arrive after ``end_at`` are not counted.
    """
    tally = Tally()
    sockets = [_UdpSocket(targets[index % len(targets)]) for index in range(UDP_SOCKETS_PER_WORKER * len(targets))]
    by_fd = {udp.sock.fileno(): udp for udp in sockets}
    poller = select.epoll()
    for udp in sockets:
        poller.register(udp.sock.fileno(), select.EPOLLIN)
    retry: deque[int] = deque()
    exhausted = False
    transaction = 0
    pps = population.peers_per_swarm
    pack = _UDP_ANNOUNCE.pack
    unpack_header = _UDP_REPLY_HEADER.unpack_from
    _wait_until(start_at)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    now = time.monotonic()
    for udp in sockets:
        udp.connect(now)
    next_check = now + STALL_S

    def refill(udp: _UdpSocket) -> None:
        nonlocal exhausted, transaction
        if not udp.connection_id:
            return
        outstanding = udp.outstanding
        send = udp.sock.send
        connection_id = udp.connection_id
        while len(outstanding) < UDP_WINDOW:
            if retry:
                peer = retry.popleft()
            elif exhausted:
                return
            else:
                peer = next(work, -1)
                if peer < 0:
                    exhausted = True
                    return
            swarm, slot = divmod(peer, pps)
            datagram = pack(
                connection_id, 1, transaction, hashes[swarm], peer_id(peer), 0, left_of(slot), 0, event, 0, peer, -1,
                BASE_PORT + slot,
            )  # fmt: skip
            try:
                send(datagram)
            except BlockingIOError:
                retry.appendleft(peer)
                return
            outstanding[transaction] = peer
            transaction += 1

    while now < end_at:
        for fd, _ in poller.poll(POLL_S):
            udp = by_fd[fd]
            for _ in range(MAX_READS_PER_EVENT):
                try:
                    data = udp.sock.recv(4096)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    tally.errors += 1
                    break
                if len(data) < _UDP_REPLY_HEADER.size:
                    tally.errors += 1
                    continue
                action, answered = unpack_header(data)
                if answered == CONNECT_TRANSACTION and action == 0 and len(data) >= 16:
                    udp.connection_id = data[8:16]
                    udp.connection_at = udp.last_reply = time.monotonic()
                    udp.connecting_at = 0.0
                    continue
                if udp.outstanding.pop(answered, None) is None:
                    continue
                if action == 1:
                    tally.replies += 1
                else:
                    tally.errors += 1
                    if not tally.detail:
                        tally.detail = data[8:80].decode("ascii", "replace")
            udp.last_reply = time.monotonic()
            refill(udp)
        now = time.monotonic()
        if now >= next_check:
            next_check = now + STALL_S
            for udp in sockets:
                if udp.connecting_at and now - udp.connecting_at > 4 * STALL_S:
                    udp.connect(now)  # the connect itself was lost
                elif not udp.connecting_at and now - udp.connection_at > CONNECTION_ID_REFRESH_S:
                    udp.connect(now)
                if udp.outstanding and now - udp.last_reply > STALL_S:
                    tally.lost += len(udp.outstanding)
                    if resend:
                        retry.extend(udp.outstanding.values())
                    udp.outstanding.clear()
                refill(udp)
        if exhausted and not retry and not any(udp.outstanding for udp in sockets):
            break
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    tally.cpu_s = _cpu_between(usage_before, usage_after)
    tally.unsent = len(retry) + sum(len(udp.outstanding) for udp in sockets) + (0 if exhausted else -1)
    poller.close()
    for udp in sockets:
        udp.sock.close()
    return tally


class _HttpConnection:
    __slots__ = ("buffer", "is_connecting", "sock")

    def __init__(self, target: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.is_connecting = True
        code = self.sock.connect_ex(target)
        if code not in (0, errno.EINPROGRESS):
            self.sock.close()
            raise OSError(code, os.strerror(code))


def _content_length(head: bytes) -> int:
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    return int(match.group(1)) if match else -1


def run_http(
    population: Population,
    hashes: list[bytes],
    targets: list[tuple[str, int]],
    work: Iterator[int],
    *,
    keep_alive: bool,
    start_at: float,
    end_at: float,
    per_target: int = HTTP_CONNECTIONS_PER_WORKER,
) -> Tally:
    """Re-announce the peers ``work`` yields over HTTP until ``end_at``; count the answers."""
    tally = Tally()
    quoted = [quote_from_bytes(info_hash, safe="").encode() for info_hash in hashes]
    pps = population.peers_per_swarm
    tail = b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (b"\r\n" if keep_alive else b"Connection: close\r\n\r\n")
    poller = select.epoll()
    connections: dict[int, _HttpConnection] = {}
    target_of: dict[int, tuple[str, int]] = {}

    def request() -> bytes:
        peer = next(work)
        swarm, slot = divmod(peer, pps)
        return b"".join(
            (
                b"GET /announce?info_hash=",
                quoted[swarm],
                b"&peer_id=",
                peer_id(peer),
                b"&port=%d&uploaded=0&downloaded=0&left=%d&compact=1" % (BASE_PORT + slot, left_of(slot)),
                tail,
            )
        )

    def open_connection(slot: int) -> None:
        target = targets[slot % len(targets)]
        try:
            connection = _HttpConnection(target)
        except OSError as error:
            tally.errors += 1
            tally.detail = tally.detail or str(error)
            return
        fd = connection.sock.fileno()
        connections[fd] = connection
        target_of[fd] = target
        poller.register(fd, select.EPOLLOUT)

    def close(fd: int) -> None:
        connection = connections.pop(fd)
        target_of.pop(fd)
        poller.unregister(fd)
        connection.sock.close()

    def finish(fd: int, body_ok: bool, reopen: bool) -> None:
        if body_ok:
            tally.replies += 1
        else:
            tally.errors += 1
        connection = connections[fd]
        if keep_alive and not reopen:
            connection.buffer.clear()
            connection.sock.send(request())
            return
        target = target_of[fd]
        close(fd)
        if time.monotonic() < end_at:
            open_connection(targets.index(target))

    _wait_until(start_at)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    count = per_target * len(targets)
    for slot in range(count):
        open_connection(slot)
    now = time.monotonic()
    while now < end_at and connections:
        for fd, _ in poller.poll(POLL_S):
            connection = connections.get(fd)
            if connection is None:
                continue
            if connection.is_connecting:
                code = connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    tally.errors += 1
                    tally.detail = tally.detail or os.strerror(code)
                    close(fd)
                    if len(connections) < count and time.monotonic() < end_at:
                        open_connection(len(connections))
                    continue
                connection.is_connecting = False
                poller.modify(fd, select.EPOLLIN)
                connection.sock.send(request())
                continue
            try:
                data = connection.sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionError:
                data = b""
            buffer = connection.buffer
            buffer += data
            head_end = buffer.find(b"\r\n\r\n")
            if not data:
                # EOF: the answer is complete if it had all the bytes it announced.
                length = _content_length(bytes(buffer[:head_end])) if head_end >= 0 else -1
                complete = head_end >= 0 and (length < 0 or len(buffer) >= head_end + 4 + length)
                finish(fd, complete and _is_announce_answer(buffer, tally), reopen=True)
                continue
            if keep_alive and head_end >= 0:
                length = _content_length(bytes(buffer[:head_end]))
                if length >= 0 and len(buffer) >= head_end + 4 + length:
                    finish(fd, _is_announce_answer(buffer, tally), reopen=False)
        now = time.monotonic()
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    tally.cpu_s = _cpu_between(usage_before, usage_after)
    tally.unsent = len(connections)
    for fd in list(connections):
        close(fd)
    poller.close()
    return tally


def _is_announce_answer(buffer: bytearray, tally: Tally) -> bool:
    if buffer.startswith(b"HTTP/1.") and buffer[9:12] == b"200" and b"8:interval" in buffer:
        return True
    if not tally.detail:
        tally.detail = bytes(buffer[:200]).decode("ascii", "replace")
    return False


def random_peers(rng: random.Random, total: int) -> Iterator[int]:
    """Loaded peers picked at random, endlessly (the caller's deadline ends it)."""
    while True:
        yield rng.randrange(total)


def _wait_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _cpu_between(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def worker_main(channel: Connection, index: int, workers: int, population: Population) -> None:
    """A generator process: runs the commands the parent sends until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    hashes = population.info_hashes()
    while True:
        command: tuple[Any, ...] = channel.recv()
        kind = command[0]
        if kind == "stop":
            return
        targets: list[tuple[str, int]] = command[1]
        start_at: float = command[2]
        if kind == "udp_load":
            peers = iter(range(index, population.peers, workers))
            tally = run_udp(
                population, hashes, targets, peers, event=2, start_at=start_at, end_at=start_at + LOAD_TIMEOUT_S,
                resend=True,
            )  # fmt: skip
        else:
            duration_s: float = command[3]
            seed: int = command[4]
            picks = random_peers(random.Random(seed * 1000 + index), population.peers)
            if kind == "udp":
                tally = run_udp(
                    population, hashes, targets, picks, event=0, start_at=start_at, end_at=start_at + duration_s,
                    resend=False,
                )  # fmt: skip
            else:
                tally = run_http(
                    population, hashes, targets, picks, keep_alive=kind == "http_keepalive", start_at=start_at,
                    end_at=start_at + duration_s, per_target=command[5],
                )  # fmt: skip
        channel.send(tally)


class Generators:
    """The generator processes and the pipes that command them."""

    def __init__(self, workers: int, population: Population) -> None:
        context = multiprocessing.get_context("fork")
        self.channels: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for index in range(workers):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=worker_main, args=(child_end, index, workers, population), daemon=True)
            process.start()
            self.channels.append(parent_end)
            self.processes.append(process)

    def run(self, command: tuple[Any, ...], timeout_s: float) -> list[Tally]:
        for channel in self.channels:
            channel.send(command)
        tallies = []
        deadline = time.monotonic() + timeout_s
        for channel in self.channels:
            if not channel.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"generator did not finish {command[0]} in {timeout_s:.0f} s")
            tallies.append(channel.recv())
        return tallies

    def stop(self) -> None:
        for channel in self.channels:
            with contextlib.suppress(OSError):
                channel.send(("stop",))
        for process in self.processes:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.join(STOP_TIMEOUT_S)


# -- the servers ------------------------------------------------------------------------


@dataclass
class Server:
    """One tracker under test: the processes whose CPU and memory count, and its addresses."""

    label: str
    pids: list[int]
    udp: list[tuple[str, int]]
    http: list[tuple[str, int]]
    rss_kib: int = 0
    load_rate: float = 0.0
    load_note: str = ""
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpus: dict[str, list[float]] = field(default_factory=dict)
    generator_cpus: dict[str, list[float]] = field(default_factory=dict)
    others: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Processes:
    """Processes this benchmark started; only these are ever signalled, each by its PID."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        command: list[str],
        cwd: Path,
        *,
        stdout: int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        log = (cwd / f"{Path(command[0]).name}-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=log, stdin=subprocess.DEVNULL, env=env)
        log.close()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in reversed(self.started):
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT_S)


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_bitswarm(processes: Processes, work: Path, label: str, store: str, source: Path | None = None) -> Server:
    """``source``: run the bitswarm package in this src folder instead of the installed one."""
    config = work / "bitswarm.toml"
    # All requests come from 127.0.0.1: the per-address rate limit would refuse them.
    config.write_text("rate-limit-per-s = 1e9\nrate-limit-burst = 1e9\nudp-secret = 'bench-secret-0123456789'\n")
    program = [BITSWARM] if source is None else [sys.executable, "-m", "bitswarm"]
    env = None if source is None else {**os.environ, "PYTHONPATH": str(source)}
    command = [*program, "tracker", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--store", store]
    process = processes.start([*command, "--config", str(config)], work, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    line = process.stdout.readline().decode() if ready else ""
    match = re.search(r"http 127\.0\.0\.1:(\d+); udp 127\.0\.0\.1:(\d+)", line)
    if match is None:
        raise RuntimeError(f"{label}: no ready line in {START_TIMEOUT_S:.0f} s (got {line!r}); see {work}")
    http_port, udp_port = int(match.group(1)), int(match.group(2))
    return Server(label, [process.pid], [("127.0.0.1", udp_port)], [("127.0.0.1", http_port)])


def start_opentracker(processes: Processes, work: Path, population: Population, hashes: list[bytes]) -> Server:
    root = work / "opentracker"
    root.mkdir()
    root.chmod(0o755)  # it chroots here and drops to "nobody", who must read the whitelist
    whitelist = root / "whitelist"
    whitelist.write_text("".join(f"{info_hash.hex()}\n" for info_hash in hashes))
    whitelist.chmod(0o644)
    port = free_port(socket.SOCK_STREAM)
    # Paths are resolved inside the chroot (tracker.rootdir), hence "/whitelist".
    config = root / "opentracker.conf"
    config.write_text(
        f"listen.tcp 127.0.0.1:{port}\nlisten.udp 127.0.0.1:{port}\naccess.whitelist /whitelist\n"
        f"tracker.rootdir {root}\n"
    )
    process = processes.start([OPENTRACKER, "-f", str(config)], root)
    server = Server("opentracker", [process.pid], [("127.0.0.1", port)], [("127.0.0.1", port)])
    # Ready once it answers an announce for the last whitelisted swarm (the list loads in a thread).
    deadline = time.monotonic() + START_TIMEOUT_S
    query = (
        f"/announce?info_hash={quote_from_bytes(hashes[-1], safe='')}&peer_id=-BS0001-probe0000000"
        f"&port=1&uploaded=0&downloaded=0&left=0&compact=1&event=stopped"
    )
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"opentracker exited with status {process.returncode}; see {root}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as probe:
                probe.sendall(f"GET {query} HTTP/1.0\r\n\r\n".encode())
                answer = probe.recv(4096)
            if b"interval" in answer:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"opentracker did not accept the whitelist in {START_TIMEOUT_S:.0f} s")


def start_redis_pair(processes: Processes, work: Path) -> Server:
    port = free_port(socket.SOCK_STREAM)
    redis_dir = work / "redis"
    redis_dir.mkdir()
    redis = processes.start(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], redis_dir
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(64).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.1)
    else:
        raise RuntimeError("redis-server did not answer PING")
    url = f"redis://127.0.0.1:{port}/0"
    first = start_bitswarm(processes, work, "bitswarm A", url)
    second = start_bitswarm(processes, work, "bitswarm B", url)
    return Server(
        "bitswarm x2 + redis", [*first.pids, *second.pids, redis.pid], first.udp + second.udp, first.http + second.http
    )


# -- /proc ------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process and its threads, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def machine_busy_s() -> float:
    """CPU seconds all cores spent not idle, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


# -- the run ----------------------------------------------------------------------------


def load(server: Server, generators: Generators, population: Population) -> None:
    """Announce every peer once; retry the peers whose answers got lost, a bounded number of times."""
    started = time.monotonic()
    tallies = generators.run(("udp_load", server.udp, time.monotonic() + 0.2), LOAD_TIMEOUT_S + 30)
    elapsed = time.monotonic() - started
    replies = sum(tally.replies for tally in tallies)
    errors = sum(tally.errors for tally in tallies)
    lost = sum(tally.lost for tally in tallies)
    server.load_rate = replies / elapsed
    server.rss_kib = sum(rss_kib(pid) for pid in server.pids)
    server.load_note = f"{replies} of {population.peers} loaded in {elapsed:.1f} s, {lost} resent, {errors} errors"
    details = {tally.detail for tally in tallies if tally.detail}
    print(f"# load {server.label}: {server.load_note}{'; ' + '; '.join(details) if details else ''}", flush=True)


def measure(
    server: Server, generators: Generators, kind: str, duration_s: float, seed: int, worker_count: int,
    http_connections: int,
) -> None:  # fmt: skip
    targets = server.udp if kind == "udp" else server.http
    start_at = time.monotonic() + 0.3
    command = (kind, targets, start_at, duration_s, seed, http_connections)
    for channel in generators.channels:
        channel.send(command)
    _wait_until(start_at)
    cpu_before = [process_cpu_s(pid) for pid in server.pids]
    busy_before = machine_busy_s()
    _wait_until(start_at + duration_s)
    cpu_after = [process_cpu_s(pid) for pid in server.pids]
    busy_after = machine_busy_s()
    tallies = []
    for channel in generators.channels:
        if not channel.poll(duration_s + 30):
            raise TimeoutError(f"generator did not finish {kind}")
        tallies.append(channel.recv())
    replies = sum(tally.replies for tally in tallies)
    errors = sum(tally.errors for tally in tallies)
    lost = sum(tally.lost for tally in tallies)
    server_cpu = sum(after - before for before, after in zip(cpu_before, cpu_after, strict=True))
    generator_cpu = sum(tally.cpu_s for tally in tallies)
    other = max(0.0, (busy_after - busy_before) - server_cpu - generator_cpu)
    rate = replies / duration_s
    server.rates.setdefault(kind, []).append(rate)
    server.cpus.setdefault(kind, []).append(server_cpu)
    server.generator_cpus.setdefault(kind, []).append(generator_cpu)
    server.others.setdefault(kind, []).append(other)
    details = {tally.detail for tally in tallies if tally.detail}
    if errors or lost:
        server.notes.append(f"{kind}: {errors} errors, {lost} lost ({'; '.join(details)[:160]})")
    print(
        f"# {kind:<14} {server.label:<20} {rate:>9.0f}/s  server CPU {server_cpu:5.2f} s  "
        f"generators ({worker_count}) CPU {generator_cpu:5.2f} s  other {other:4.2f} s  "
        f"errors {errors} lost {lost}",
        flush=True,
    )


def wrk_script(work: Path, population: Population, hashes: list[bytes]) -> Path:
    """A Lua script for wrk: re-announces of random loaded peers, as the Python generators send."""
    script = work / "announce.lua"
    quoted = ",".join(f'"{quote_from_bytes(info_hash, safe="")}"' for info_hash in hashes)
    script.write_text(
        f"local hashes = {{{quoted}}}\n"
        f"local per_swarm, seeders = {population.peers_per_swarm}, {SEEDERS_PER_SWARM}\n"
        "request = function()\n"
        "  local swarm = math.random(#hashes) - 1\n"
        "  local slot = math.random(per_swarm) - 1\n"
        "  local left = slot < seeders and 0 or 1048576\n"
        "  local path = '/announce?info_hash=' .. hashes[swarm + 1] .. '&peer_id=-BS0001-' ..\n"
        "    string.format('%012d', swarm * per_swarm + slot) .. '&port=' .. (" + str(BASE_PORT) + " + slot) ..\n"
        "    '&uploaded=0&downloaded=0&left=' .. left .. '&compact=1'\n"
        "  return wrk.format('GET', path, {['Connection'] = 'close'})\n"
        "end\n"
    )
    return script


def measure_wrk(server: Server, script: Path, duration_s: float, threads: int, connections: int) -> None:
    """One HTTP row driven by wrk instead of the Python generators; its CPU is the wrk child's."""
    host, port = server.http[0]
    command = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "-s",
        str(script),
        f"http://{host}:{port}/",
    ]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = [process_cpu_s(pid) for pid in server.pids]
    busy_before = machine_busy_s()
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 30, check=True)
    cpu_after = [process_cpu_s(pid) for pid in server.pids]
    busy_after = machine_busy_s()
    generator_cpu = _cpu_between(children_before, resource.getrusage(resource.RUSAGE_CHILDREN))
    done = re.search(r"(\d+) requests in ([\d.]+)s", result.stdout)
    if done is None:
        raise RuntimeError(f"wrk printed no request count: {result.stdout[-300:]!r}")
    rate = int(done.group(1)) / float(done.group(2))
    server_cpu = sum(after - before for before, after in zip(cpu_before, cpu_after, strict=True))
    other = max(0.0, (busy_after - busy_before) - server_cpu - generator_cpu)
    server.rates.setdefault("http_wrk", []).append(rate)
    server.cpus.setdefault("http_wrk", []).append(server_cpu)
    server.generator_cpus.setdefault("http_wrk", []).append(generator_cpu)
    server.others.setdefault("http_wrk", []).append(other)
    failures = re.findall(r"(Non-2xx or 3xx responses: \d+|Socket errors: [^\n]*)", result.stdout)
    if failures:
        server.notes.append(f"http_wrk: {'; '.join(failures)}")
    print(
        f"# {'http_wrk':<14} {server.label:<20} {rate:>9.0f}/s  server CPU {server_cpu:5.2f} s  "
        f"wrk ({threads} threads) CPU {generator_cpu:5.2f} s  other {other:4.2f} s  {'; '.join(failures)}",
        flush=True,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(servers: list[Server], kinds: list[str], duration_s: float, repeat: int, workers: int) -> None:
    reference = next(server for server in servers if server.label == "opentracker")
    print()
    print(f"Medians of {repeat} runs of {duration_s:g} s each; {workers} generator processes.")
    print()
    print("| tracker | protocol | announces/s | / opentracker | server CPU s | announces per CPU s "
          "| generator CPU s | other CPU s |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for kind in kinds:
        reference_kind = "http" if kind == "http_keepalive" else kind
        for server in servers:
            if kind not in server.rates:
                continue
            rate = median(server.rates[kind])
            cpu = median(server.cpus[kind])
            reference_rate = median(reference.rates[reference_kind]) if reference_kind in reference.rates else 0.0
            ratio = rate / reference_rate if reference_rate else float("nan")
            per_cpu = rate * duration_s / cpu if cpu else float("nan")
            label = {
                "udp": "UDP",
                "http": "HTTP, 1 per connection",
                "http_keepalive": "HTTP keep-alive",
                "http_wrk": "HTTP, 1 per connection, wrk",
            }[kind]
            print(
                f"| {server.label} | {label} | {rate:,.0f} | {ratio:.2f} | {cpu:.2f} | "
                f"{per_cpu:,.0f} | {median(server.generator_cpus[kind]):.2f} | "
                f"{median(server.others[kind]):.2f} |"
            )
    print()
    print("| tracker | resident memory after loading (MiB) | / opentracker | load over UDP (announces/s) |")
    print("|---|---:|---:|---:|")
    for server in servers:
        print(
            f"| {server.label} | {server.rss_kib / 1024:,.1f} | {server.rss_kib / reference.rss_kib:.2f} | "
            f"{server.load_rate:,.0f} |"
        )
    for server in servers:
        for note in server.notes:
            print(f"# {server.label}: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swarms", type=int, default=100_000, help="swarms [100000]")
    parser.add_argument("--peers-per-swarm", type=int, default=10, help="peers per swarm [10]")
    parser.add_argument("--duration-s", type=float, default=10.0, help="length of one measurement [10]")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per protocol per tracker [3]")
    parser.add_argument("--workers", type=int, default=2, help="generator processes [2]")
    parser.add_argument(
        "--http-connections", type=int, default=HTTP_CONNECTIONS_PER_WORKER,
        help=f"HTTP connections in flight per generator process and address [{HTTP_CONNECTIONS_PER_WORKER}]",
    )  # fmt: skip
    parser.add_argument("--no-redis", action="store_true", help="leave out the Redis store")
    parser.add_argument("--no-keep-alive", action="store_true", help="leave out bitswarm's keep-alive HTTP row")
    parser.add_argument(
        "--wrk", action="store_true", help="add HTTP rows driven by Debian's wrk (apt-get install wrk), a C generator"
    )
    parser.add_argument(
        "--baseline-src", type=Path, help="also run the bitswarm in this src folder (e.g. an older commit's) as a row"
    )
    args = parser.parse_args()
    if not 0 < args.swarms <= 10_000_000 or not 0 < args.peers_per_swarm <= 1000:
        parser.error("--swarms must be 1..10,000,000 and --peers-per-swarm 1..1000")
    if not 0 < args.duration_s <= 300 or not 0 < args.repeat <= 20 or not 0 < args.workers <= 16:
        parser.error("--duration-s must be 0..300, --repeat 1..20, --workers 1..16")
    if not 0 < args.http_connections <= 1000:
        parser.error("--http-connections must be 1..1000")
    if args.wrk and not Path(WRK).exists():
        parser.error(f"--wrk needs {WRK}: apt-get install wrk")
    population = Population(args.swarms, args.peers_per_swarm)
    has_redis = importlib.util.find_spec("bitswarm.tracker.redis_store") is not None
    with_redis = has_redis and not args.no_redis
    print(f"# bitswarm tracker benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"# {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()}")
    print(f"# {population.swarms} swarms x {population.peers_per_swarm} peers = {population.peers} peers; "
          f"{args.workers} generator processes, {UDP_SOCKETS_PER_WORKER} UDP sockets x {UDP_WINDOW} in flight "
          f"and {args.http_connections} HTTP connections each")  # fmt: skip
    if not with_redis:
        missing = "left out (--no-redis)" if has_redis else "bitswarm.tracker.redis_store does not exist"
        print(f"# Redis store: {missing}")

    work = Path(tempfile.mkdtemp(prefix="bitswarm-tracker-bench-"))
    work.chmod(0o755)
    processes = Processes()
    generators = Generators(args.workers, population)
    try:
        hashes = population.info_hashes()
        servers = [
            start_bitswarm(processes, work, "bitswarm", "memory"),
            start_opentracker(processes, work, population, hashes),
        ]
        if args.baseline_src is not None:
            servers.append(start_bitswarm(processes, work, "bitswarm baseline", "memory", args.baseline_src.resolve()))
        if with_redis:
            servers.append(start_redis_pair(processes, work))
        for server in servers:
            load(server, generators, population)
        kinds = ["udp", "http"] + ([] if args.no_keep_alive else ["http_keepalive"])
        script = wrk_script(work, population, hashes) if args.wrk else None
        for round_number in range(args.repeat):
            order = servers[round_number % len(servers) :] + servers[: round_number % len(servers)]
            for kind in kinds:
                for server in order:
                    if kind == "http_keepalive" and server.label == "opentracker":
                        continue  # it closes every connection after one answer
                    measure(
                        server, generators, kind, args.duration_s, SEED + round_number, args.workers,
                        args.http_connections,
                    )  # fmt: skip
            if script is not None:
                for server in order:
                    if len(server.http) != 1:
                        continue  # wrk drives one address; the Redis pair has two
                    measure_wrk(server, script, args.duration_s, args.workers, args.workers * args.http_connections)
        report(
            servers, kinds + (["http_wrk"] if script is not None else []), args.duration_s, args.repeat, args.workers
        )
    finally:
        generators.stop()
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
