"""Benchmark: `bitswarm daemon` and transmission-daemon with 1,000 torrents (issue 13 point 7).

    python3 bench/daemon_bench.py [--torrents 1000] [--downloads 10] [--idle-s 60] [--calls 50]
                                  [--min-kib 64] [--max-kib 1024] [--seed 13] [--daemons bitswarm,transmission]

In one run, in a fresh folder under /tmp (removed at the end):

1. **Content**: --torrents single-file v1 torrents (Transmission 3.00 reads no v2), each of
   a seeded random size from --min-kib to --max-kib (log-uniform), made with
   `bitswarm.create` and announcing to one `bitswarm tracker` on loopback (HTTP). The
   content of all but --downloads of them is on disk in a folder both daemons seed from;
   the content of the other --downloads is only in the folder of one libtorrent 2.0 session
   (`bench/lt_peer.py memory`, Debian's python3-libtorrent), which checks and seeds them.
2. **Each daemon in turn** (so the two never see each other as peers), with a fresh state:
   bitswarm (`python -m bitswarm daemon`, DHT and LSD off, RPC and peer port on free
   loopback ports) and transmission-daemon 3.00 (`--foreground`, its own config folder,
   DHT, LPD, PEX, uTP and port mapping off, no RPC authentication):
   - every torrent added over the RPC (`torrent-add` with base64 `metainfo` and
     `download-dir`: the shared content folder for the seeds, the daemon's own folder for
     the downloads); the time until every seed is seeding (each daemon hashes what is on
     disk) and every download is done (status 6, `percentDone` 1);
   - **memory**: VmRSS from /proc/PID/status (plus any child process), after a settling
     pause and again at the end of the idle window;
   - **idle CPU**: utime + stime from /proc/PID/stat over --idle-s seconds in which nothing
     is asked of it;
   - **`torrent-get`** of every torrent with the fields Sonarr asks for
     (`TransmissionProxy.GetTorrents`), over one kept-alive HTTP connection as Sonarr's
     client keeps it: 5 calls to warm up, then --calls; p50, p99 and max of the time from
     sending the request to having read the whole answer;
   - **restart**: SIGTERM by PID (the time to exit), then the same command again; the time
     from starting the process until `torrent-get` (polled every 20 ms) lists every torrent
     and every one is seeding with every byte valid (`haveValid` = `totalSize`). A re-hash
     would show as status 1 or 2 (check pending, checking) or as a `haveValid` short of
     the size in any answer, and as CPU time: the daemon's CPU seconds from its start to
     serving are printed beside it.

The machine has 2 cores and is shared: for each phase the CPU seconds of every other
process (from /proc/stat, minus this process's tree) are printed as noise. Every wait is
bounded; every process is ours and is stopped by its PID; all traffic stays on loopback.
This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import math
import os
import random
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from measure import CLOCK_TICKS, ROOT, Noise, commit, descendants, machine

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import TorrentVersion, read_torrent_file
from interop.trackers import free_port, run_bitswarm_tracker

SEED = 13  # issue 13
LT_PYTHON = "/usr/bin/python3"
TRANSMISSION = "/usr/bin/transmission-daemon"
# What Sonarr's Transmission client asks torrent-get for (TransmissionProxy.GetTorrents);
# the same list as tests/daemon/test_clients.py.
SONARR_FIELDS = [
    "id", "hashString", "name", "downloadDir", "totalSize", "leftUntilDone", "isFinished", "eta", "status",
    "secondsDownloading", "secondsSeeding", "errorString", "uploadedEver", "downloadedEver", "seedRatioLimit",
    "seedRatioMode", "seedIdleLimit", "seedIdleMode", "fileCount", "file-count", "labels",
]  # fmt: skip
# Transmission's status numbers.
CHECK_WAIT, CHECK, SEED_STATUS = 1, 2, 6
TARGET_GET_MS = 100.0
TARGET_RESTART_S = 5.0
# Bounds: anything slower than these is an error, not a figure.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 600.0
RESTART_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 60.0
POLL_S = 0.02
SETTLE_S = 10.0
CONNECT_EVERY_S = 5.0
WARM_UP_CALLS = 5
READY_LINE = re.compile(r"bitswarm daemon: http://127\.0\.0\.1:(\d+)/")


# -- noise and processes -----------------------------------------------------------------


def tree_cpu_s(pid: int) -> float:
    """utime + stime of a process and its live children, in seconds."""
    total = 0
    for member in descendants(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def tree_rss_mib(pid: int) -> float:
    """VmRSS of a process and its live children, in MiB."""
    total_kib = 0
    for member in descendants(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total_kib += int(found[1]) if found else 0
    return total_kib / 1024


def stop_by_pid(process: subprocess.Popen[Any], timeout_s: float = STOP_TIMEOUT_S) -> tuple[int, float]:
    """SIGTERM by PID and wait: (exit status, seconds to exit); SIGKILL after ``timeout_s``."""
    started = time.monotonic()
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        status = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        status = process.wait()
    return status, time.monotonic() - started


def wait_until(probe: Callable[[], Any], what: str, timeout_s: float, poll_s: float = POLL_S) -> Any:
    """Call ``probe`` until it returns something other than None; that value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(poll_s)
    raise SystemExit(f"daemon_bench: {what}: not within {timeout_s:.0f} s")


# -- an RPC client as Sonarr's is: one kept-alive connection -----------------------------


class Rpc:
    """The Transmission RPC over one persistent HTTP/1.1 connection (the 409 handshake done
    as a client does it). A dropped connection is opened again and counted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.session_id = ""
        self.connection: http.client.HTTPConnection | None = None
        self.reconnects = 0
        self.last_body_bytes = 0

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _post(self, body: bytes) -> tuple[int, str, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        headers = {"X-Transmission-Session-Id": self.session_id, "Content-Type": "application/json"}
        self.connection.request("POST", "/transmission/rpc", body=body, headers=headers)
        response = self.connection.getresponse()
        answer = response.read()
        session_id = response.getheader("X-Transmission-Session-Id", "")
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, session_id, answer

    def raw(self, method: str, arguments: dict[str, Any]) -> bytes:
        """The answer's bytes, once the session id is known; raises OSError when the
        daemon cannot be reached."""
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _attempt in range(3):
            try:
                status, session_id, answer = self._post(body)
            except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError):
                self.close()
                self.reconnects += 1
                continue
            if status == 409:
                self.session_id = session_id
                continue
            if status != 200:
                raise SystemExit(f"daemon_bench: {method}: HTTP {status}: {answer[:200]!r}")
            self.last_body_bytes = len(answer)
            return answer
        raise OSError(f"{method}: no answer after three tries")

    def call(self, method: str, **arguments: Any) -> dict[str, Any]:
        reply = json.loads(self.raw(method, arguments))
        if reply.get("result") != "success":
            raise SystemExit(f"daemon_bench: {method}: {reply.get('result')}")
        result: dict[str, Any] = reply.get("arguments", {})
        return result


# -- the daemons ---------------------------------------------------------------------------


class Daemon:
    """One daemon under test: how to start it on its own state, and its RPC."""

    name = ""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.downloads = folder / "downloads"
        self.downloads.mkdir(parents=True)
        self.process: subprocess.Popen[Any] | None = None
        self.rpc: Rpc | None = None
        self.rpc_port = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> tuple[int, float]:
        assert self.process is not None
        if self.rpc is not None:
            self.rpc.close()
        done = stop_by_pid(self.process)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self.process = None
        return done

    def wait_rpc(self, timeout_s: float) -> Rpc:
        """An Rpc once ``session-get`` is answered."""
        rpc = Rpc(self.rpc_port)

        def answering() -> Rpc | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SystemExit(f"daemon_bench: {self.name} exited with {self.process.returncode}")
            try:
                rpc.call("session-get")
            except OSError:
                rpc.close()
                return None
            return rpc

        found: Rpc = wait_until(answering, f"{self.name} answering", timeout_s)
        self.rpc = found
        return found


class Bitswarm(Daemon):
    name = "bitswarm"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.config = folder / "daemon.toml"
        self.config.write_text("dht = false\nlsd = false\nport_mapping = false\n")
        self.log = folder / "daemon.log"

    def start(self) -> None:
        # bitswarm's modules load from cached bytecode, as an installed copy's do (this machine
        # sets PYTHONDONTWRITEBYTECODE, so a source checkout would compile them at every start).
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "PYTHONPYCACHEPREFIX": str(self.folder / "pycache"),
        }
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        argv = [
            sys.executable, "-m", "bitswarm", "daemon", "--config", str(self.config), "--state",
            str(self.folder / "state"), "--rpc", "127.0.0.1:0", "--download-dir", str(self.downloads), "--port", "0",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                            text=True, env=environment)  # fmt: skip
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT_S):
                raise SystemExit(f"daemon_bench: bitswarm printed no ready line in {START_TIMEOUT_S} s")
        line = self.process.stdout.readline()
        match = READY_LINE.fullmatch(line.strip())
        if match is None:
            raise SystemExit(f"daemon_bench: bitswarm: unexpected ready line {line!r}")
        self.rpc_port = int(match[1])
        self.wait_rpc(START_TIMEOUT_S)


class Transmission(Daemon):
    name = "transmission"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.config_dir = folder / "config"
        self.config_dir.mkdir()
        self.rpc_port = free_port()
        # As tests/interop/trackers.py runs it: loopback only, no DHT, LPD, PEX, uTP or port
        # mapping, no authentication, no limits, no seeding goals, queues at their defaults.
        settings = {
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
            "port-forwarding-enabled": False, "peer-port": free_port(), "peer-port-random-on-start": False,
            "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1", "rpc-enabled": True,
            "rpc-bind-address": "127.0.0.1", "rpc-port": self.rpc_port, "rpc-authentication-required": False,
            "rpc-whitelist-enabled": False, "rpc-host-whitelist-enabled": False,
            "download-dir": str(self.downloads), "incomplete-dir-enabled": False, "watch-dir-enabled": False,
            "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False, "speed-limit-up-enabled": False,
            "speed-limit-down-enabled": False, "start-added-torrents": True, "blocklist-enabled": False,
            "message-level": 2,
        }  # fmt: skip
        (self.config_dir / "settings.json").write_text(json.dumps(settings))

    def start(self) -> None:
        argv = [TRANSMISSION, "--foreground", "--config-dir", str(self.config_dir), "--logfile",
                str(self.folder / "transmission.log")]  # fmt: skip
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # fmt: skip
        self.wait_rpc(START_TIMEOUT_S)


# -- the torrents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Made:
    metainfo: bytes
    info_hash: str
    size: int
    seeded: bool  # content on disk for the daemons; else only in the libtorrent seed's folder


def make_torrents(folder: Path, args: argparse.Namespace, announce: str) -> list[Made]:
    """Content and v1 .torrent files: the first --downloads only in folder/lt, the rest in
    folder/content; the .torrent files of the libtorrent ones also in folder/lt-torrents."""
    rng = random.Random(args.seed)
    content, lt_content, lt_torrents = folder / "content", folder / "lt", folder / "lt-torrents"
    for path in (content, lt_content, lt_torrents):
        path.mkdir()
    made = []
    low, high = math.log(args.min_kib * 1024), math.log(args.max_kib * 1024)
    for index in range(args.torrents):
        seeded = index >= args.downloads
        size = int(math.exp(rng.uniform(low, high)))
        path = (content if seeded else lt_content) / f"bench-{index:04}.bin"
        path.write_bytes(rng.randbytes(size))
        data = create(path, CreateOptions(version=TorrentVersion.V1, trackers=[announce]))
        info_hash = read_torrent_file(data).info_hash_v1
        assert info_hash is not None
        if not seeded:
            (lt_torrents / f"bench-{index:04}.torrent").write_bytes(data)
        made.append(Made(data, info_hash.hex(), size, seeded))
    return made


@contextmanager
def libtorrent_seed(folder: Path) -> Iterator[Callable[[int], None]]:
    """`bench/lt_peer.py memory` seeding every torrent of folder/lt-torrents (checked from
    disk first), once it seeds them all; yields a function that makes each of its torrents
    connect to 127.0.0.1:PORT. Stopped by PID at the end."""
    argv = [LT_PYTHON, str(ROOT / "bench" / "lt_peer.py"), "memory", str(folder / "lt-torrents"), str(folder / "lt")]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)  # fmt: skip
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        for expected in ("ready", "loaded"):
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                if not selector.select(START_TIMEOUT_S):
                    raise SystemExit(f"daemon_bench: libtorrent seed: no {expected!r} within {START_TIMEOUT_S} s")
            event = json.loads(process.stdout.readline() or "{}")
            if event.get("event") != expected:
                raise SystemExit(f"daemon_bench: libtorrent seed: {event}")
            if expected == "ready":
                process.stdin.write("start\n")
                process.stdin.flush()

        def connect(port: int) -> None:
            assert process.stdin is not None
            process.stdin.write(f"connect {port}\n")
            process.stdin.flush()

        yield connect
    finally:
        if process.poll() is None:
            process.stdin.write("stop\n")
            process.stdin.flush()
        stop_by_pid(process, 30.0)
        process.stdin.close()
        process.stdout.close()


# -- the measurements --------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    start_s: float = 0.0
    add_s: float = 0.0
    ready_s: float = 0.0
    ready_cpu_s: float = 0.0
    rss_mib: float = 0.0
    rss_end_mib: float = 0.0
    idle_cpu_s: float = 0.0
    idle_wall_s: float = 0.0
    get_p50_ms: float = 0.0
    get_p99_ms: float = 0.0
    get_max_ms: float = 0.0
    get_bytes: int = 0
    get_cpu_ms: float = 0.0
    reconnects: int = 0
    stop_s: float = 0.0
    stop_status: int = 0
    restart_s: float = 0.0
    restart_cpu_s: float = 0.0
    restart_rss_mib: float = 0.0
    rehash_seen: str = "no"
    noise: dict[str, tuple[float, float]] = field(default_factory=dict)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def torrent_statuses(rpc: Rpc, count: int) -> tuple[set[int], bool]:
    """(the statuses the torrents are in, whether all ``count`` are there and done).
    Raises SystemExit when a torrent is in error."""
    torrents = rpc.call("torrent-get", fields=["id", "status", "percentDone", "error", "errorString"])["torrents"]
    failed = [torrent for torrent in torrents if torrent.get("error")]
    if failed:
        raise SystemExit(f"daemon_bench: torrent in error: {failed[0]}")
    done = len(torrents) == count and all(torrent["percentDone"] == 1 for torrent in torrents)
    return {torrent["status"] for torrent in torrents}, done


def bench_daemon(
    daemon: Daemon, made: list[Made], content: Path, connect: Callable[[int], None], args: argparse.Namespace
) -> Result:
    result = Result(daemon.name)
    print(f"\n## {daemon.name}", flush=True)
    noise = Noise()
    started = time.monotonic()
    daemon.start()
    result.start_s = time.monotonic() - started
    rpc = daemon.rpc
    assert rpc is not None
    first_rpc: Rpc = rpc  # the closure below needs a name that is not assigned again
    for torrent in made:
        folder = content if torrent.seeded else daemon.downloads
        metainfo = base64.b64encode(torrent.metainfo).decode()
        added = rpc.call("torrent-add", metainfo=metainfo, **{"download-dir": str(folder)})
        if "torrent-added" not in added:
            raise SystemExit(f"daemon_bench: {daemon.name}: torrent-add: {added}")
    result.add_s = time.monotonic() - started - result.start_s
    print(f"  added {len(made)} torrents in {result.add_s:.1f} s", flush=True)
    # Transmission 3.00 ignores the 127.x peers the tracker gives it, so the libtorrent seed
    # connects to each daemon (to both, for the same conditions), again every few seconds
    # while a download is not done (a connection before the torrent is ready is refused).
    peer_port = int(rpc.call("session-get")["peer-port"])
    next_connect = 0.0

    def ready() -> bool | None:
        nonlocal next_connect
        statuses, done = torrent_statuses(first_rpc, len(made))
        if time.monotonic() >= next_connect and not statuses & {CHECK_WAIT, CHECK}:
            connect(peer_port)
            next_connect = time.monotonic() + CONNECT_EVERY_S
        return True if done and statuses == {SEED_STATUS} else None

    wait_until(ready, f"{daemon.name}: every torrent seeding", READY_TIMEOUT_S, poll_s=0.5)
    result.ready_s = time.monotonic() - started
    result.ready_cpu_s = tree_cpu_s(daemon.pid)
    result.noise["add and seed"] = noise.measure()
    print(f"  every torrent seeding {result.ready_s:.1f} s after the start ({result.ready_cpu_s:.1f} CPU s)",
          flush=True)  # fmt: skip

    # Idle: nothing asked of it; the first SETTLE_S let the last connections and writes end.
    time.sleep(SETTLE_S)
    result.rss_mib = tree_rss_mib(daemon.pid)
    noise = Noise()
    cpu_before = tree_cpu_s(daemon.pid)
    time.sleep(args.idle_s)
    result.idle_cpu_s = tree_cpu_s(daemon.pid) - cpu_before
    result.noise["idle"] = noise.measure()
    result.idle_wall_s = result.noise["idle"][1]
    result.rss_end_mib = tree_rss_mib(daemon.pid)
    print(f"  RSS {result.rss_mib:.1f} MiB; idle {result.idle_cpu_s:.2f} CPU s in {result.idle_wall_s:.0f} s",
          flush=True)  # fmt: skip

    # torrent-get of every torrent with Sonarr's fields.
    for _warm in range(WARM_UP_CALLS):
        rpc.raw("torrent-get", {"fields": SONARR_FIELDS})
    noise = Noise()
    times_ms = []
    reconnects = rpc.reconnects
    # The daemon's own CPU per call: on a loaded machine the wall-clock times are mostly
    # waiting for a core, this is not.
    cpu_before = tree_cpu_s(daemon.pid)
    for _call in range(args.calls):
        begin = time.perf_counter()
        rpc.raw("torrent-get", {"fields": SONARR_FIELDS})
        times_ms.append((time.perf_counter() - begin) * 1000)
    result.get_cpu_ms = (tree_cpu_s(daemon.pid) - cpu_before) * 1000 / args.calls
    result.noise["torrent-get"] = noise.measure()
    result.reconnects = rpc.reconnects - reconnects
    answer = json.loads(rpc.raw("torrent-get", {"fields": SONARR_FIELDS}))
    if len(answer["arguments"]["torrents"]) != len(made):
        raise SystemExit(f"daemon_bench: {daemon.name}: torrent-get listed {len(answer['arguments']['torrents'])}")
    result.get_bytes = rpc.last_body_bytes
    result.get_p50_ms, result.get_p99_ms = percentile(times_ms, 0.5), percentile(times_ms, 0.99)
    result.get_max_ms = max(times_ms)
    print(f"  torrent-get: p50 {result.get_p50_ms:.1f} ms, p99 {result.get_p99_ms:.1f} ms, "
          f"{result.get_cpu_ms:.1f} daemon CPU ms a call, {result.get_bytes:,} bytes", flush=True)  # fmt: skip

    # Restart: SIGTERM, then the same command, until every torrent is listed, seeding, valid.
    noise = Noise()
    result.stop_status, result.stop_s = daemon.stop()
    started = time.monotonic()
    daemon.start()
    rpc = daemon.rpc
    assert rpc is not None
    statuses_seen: set[int] = set()
    short: list[int] = []

    def serving() -> bool | None:
        fields = ["id", "status", "haveValid", "totalSize", "recheckProgress"]
        torrents = rpc.call("torrent-get", fields=fields)["torrents"]
        for torrent in torrents:
            statuses_seen.add(torrent["status"])
            if torrent["haveValid"] < torrent["totalSize"] and torrent["id"] not in short:
                short.append(torrent["id"])
        complete = len(torrents) == len(made)
        return True if complete and all(torrent["status"] == SEED_STATUS for torrent in torrents) else None

    wait_until(serving, f"{daemon.name}: serving again", RESTART_TIMEOUT_S)
    result.restart_s = time.monotonic() - started
    result.restart_cpu_s = tree_cpu_s(daemon.pid)
    result.noise["restart"] = noise.measure()
    checking = statuses_seen & {CHECK_WAIT, CHECK}
    if checking or short:
        result.rehash_seen = f"yes: statuses {sorted(statuses_seen)}, {len(short)} torrents short of valid bytes"
    else:
        result.rehash_seen = f"no (statuses seen: {sorted(statuses_seen)})"
    time.sleep(2.0)
    result.restart_rss_mib = tree_rss_mib(daemon.pid)
    print(f"  stop {result.stop_s:.2f} s (status {result.stop_status}); serving again {result.restart_s:.2f} s after "
          f"the start ({result.restart_cpu_s:.2f} CPU s); re-hash: {result.rehash_seen}", flush=True)  # fmt: skip
    daemon.stop()
    return result


# -- the run -------------------------------------------------------------------------------------


def transmission_version() -> str:
    done = subprocess.run([TRANSMISSION, "--version"], capture_output=True, text=True, check=False, timeout=10)
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


def report(results: list[Result]) -> None:
    by_name = {result.name: result for result in results}
    ours, theirs = by_name.get("bitswarm"), by_name.get("transmission")

    def ratio(get: Callable[[Result], float]) -> str:
        if ours is None or theirs is None or get(theirs) == 0:
            return "-"
        return f"{get(ours) / get(theirs):.2f}"

    rows: list[tuple[str, Callable[[Result], float], str, str]] = [
        ("start to RPC answering, s", lambda r: r.start_s, ".2f", ""),
        ("adding every torrent (torrent-add), s", lambda r: r.add_s, ".1f", ""),
        ("start to every torrent seeding, s", lambda r: r.ready_s, ".1f", ""),
        ("CPU s until then", lambda r: r.ready_cpu_s, ".1f", ""),
        ("RSS MiB after settling", lambda r: r.rss_mib, ".1f", "target: ratio <= 1"),
        ("RSS MiB after the idle window", lambda r: r.rss_end_mib, ".1f", ""),
        ("idle CPU s over the window", lambda r: r.idle_cpu_s, ".2f", "target: ratio <= 1"),
        ("torrent-get, all, Sonarr's fields: p50 ms", lambda r: r.get_p50_ms, ".1f", ""),
        ("torrent-get p99 ms", lambda r: r.get_p99_ms, ".1f", f"target: < {TARGET_GET_MS:.0f} ms"),
        ("torrent-get max ms", lambda r: r.get_max_ms, ".1f", ""),
        ("torrent-get: the daemon's CPU ms a call (mean)", lambda r: r.get_cpu_ms, ".1f", ""),
        ("torrent-get answer bytes", lambda r: float(r.get_bytes), ",.0f", ""),
        ("stop (SIGTERM to exit), s", lambda r: r.stop_s, ".2f", ""),
        ("restart: start to serving all, s", lambda r: r.restart_s, ".2f", f"target: < {TARGET_RESTART_S:.0f} s"),
        ("restart: CPU s until serving", lambda r: r.restart_cpu_s, ".2f", ""),
        ("RSS MiB after the restart", lambda r: r.restart_rss_mib, ".1f", ""),
    ]
    names = [result.name for result in results]
    print(f"\n| measure | {' | '.join(names)} | bitswarm / transmission | note |")
    print(f"|---|{'---:|' * len(names)}---:|---|")
    for label, get, spec, note in rows:
        values = " | ".join(format(get(result), spec) for result in results)
        print(f"| {label} | {values} | {ratio(get)} | {note} |")
    print(f"| re-hash at restart | {' | '.join(result.rehash_seen for result in results)} | | |")
    print(f"| stop exit status | {' | '.join(str(result.stop_status) for result in results)} | | |")
    print(f"| reconnects during torrent-get | {' | '.join(str(result.reconnects) for result in results)} | | |")
    print("\nnoise (other processes' CPU s / wall s):")
    for result in results:
        phases = ", ".join(f"{phase} {other:.1f}/{wall:.0f}" for phase, (other, wall) in result.noise.items())
        print(f"  {result.name}: {phases}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--torrents", type=int, default=1000)
    parser.add_argument("--downloads", type=int, default=10, help="torrents fetched from the libtorrent seed")
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--calls", type=int, default=50, help="torrent-get calls timed, after 5 to warm up")
    parser.add_argument("--min-kib", type=int, default=64)
    parser.add_argument("--max-kib", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--daemons", default="bitswarm,transmission")
    args = parser.parse_args()
    daemons = [name.strip() for name in args.daemons.split(",") if name.strip()]
    if not set(daemons) <= {"bitswarm", "transmission"} or not 0 < args.downloads < args.torrents <= 10_000:
        parser.error("--daemons: bitswarm and/or transmission; 0 < --downloads < --torrents <= 10,000")
    if not 0 < args.idle_s <= 600 or not 0 < args.calls <= 10_000 or not 16 <= args.min_kib <= args.max_kib <= 65536:
        parser.error("--idle-s: up to 600; --calls: up to 10,000; 16 <= --min-kib <= --max-kib <= 65536")
    print(f"# daemon bench, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}")
    print(f"machine: {machine()}; {transmission_version()}")
    print(f"command: {' '.join(sys.argv)}")
    folder = Path(tempfile.mkdtemp(prefix="bitswarm-daemon-bench-"))
    results = []
    try:
        with run_bitswarm_tracker(folder / "tracker.log") as tracker:
            started = time.monotonic()
            made = make_torrents(folder, args, tracker.announce)
            total = sum(torrent.size for torrent in made)
            print(f"{len(made)} torrents, {total / (1 << 20):.0f} MiB, made in {time.monotonic() - started:.1f} s; "
                  f"median {statistics.median(t.size for t in made) / 1024:.0f} KiB", flush=True)  # fmt: skip
            with libtorrent_seed(folder) as connect:
                for name in daemons:
                    kind = Bitswarm if name == "bitswarm" else Transmission
                    daemon = kind(folder / name)
                    try:
                        results.append(bench_daemon(daemon, made, folder / "content", connect, args))
                    finally:
                        if daemon.process is not None:
                            daemon.stop()
        report(results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
