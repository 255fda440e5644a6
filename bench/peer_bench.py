"""Benchmark: bitswarm's peer engine beside libtorrent 2.0 on loopback (issue 4, point 10).

    python3 bench/peer_bench.py throughput [--size-mib 1024] [--repeat 2]
    python3 bench/peer_bench.py swarm [--quick] [--size-mib 64] [--peers 1,2,4,8,16] [--max-up-kib 2048]
    python3 bench/peer_bench.py memory [--torrents 200] [--torrent-mib 16]
    python3 bench/peer_bench.py limits [--size-mib 32] [--limit-kib 2048] [--repeat 2]

Every peer is a process of its own: bitswarm's run this file's hidden `bitswarm-peer` /
`bitswarm-memory` commands (the Python API: a `Session` on uvloop, as `bitswarm get`
runs it), libtorrent's run `bench/lt_peer.py` under /usr/bin/python3 (Debian's
python3-libtorrent 2.0.8). Both speak one line protocol (JSON events out, "start" and
"stop" in; see lt_peer.py), and report times from CLOCK_MONOTONIC, which every process
shares. Sessions listen on 127.0.0.1 only; libtorrent's loopback peers are moved out of
its unthrottled local peer class when a rate limit applies, and it allows several
connections per IP.

- throughput: one seeder, one downloader, one file (seeded pseudo-random bytes, in the
  page cache), 512 KiB pieces. Pairs bitswarm->bitswarm, libtorrent->libtorrent,
  bitswarm->libtorrent and libtorrent->bitswarm, interleaved, --repeat times. The
  downloader connects straight to the seeder (`TorrentRuntime.connect` /
  `torrent_handle.connect_peer`; no tracker). Time runs from the "start" command to the
  downloader's "finished" event (every piece verified); CPU is utime + stime of each
  process over that window, from /proc/PID/stat.
- swarm: one seed and N downloaders, every peer's upload (the seed's too) capped at
  --max-up-kib, peers found through a fresh `bitswarm tracker` (HTTP) per run. The seed
  announces first; then all downloaders get "start" at once. Time until the last one
  finishes, against the P2P lower bound max(F/u_seed, N*F/(u_seed + sum u_i)).
- memory: one session, empty and then seeding --torrents torrents (each checks its data
  first); VmRSS, RssAnon and RssFile from /proc/PID/status. The data is one file of
  pseudo-random bytes hard-linked under every torrent's name (one copy in the page
  cache), so each torrent has its own info-hash but hashing costs no disk reads.
- limits: one seeder and one downloader on loopback with the seeder's upload, then the
  downloader's download, capped at --limit-kib; the rate achieved over the limit (1.0 is
  exact; the bucket's burst, a quarter second's worth, lets it sit a little above).

Only processes this benchmark started are ever stopped, by PID. Every wait has a
deadline. This is a measurement, not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import filecmp
import hashlib
import json
import os
import platform
import queue
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitswarm import bencode
from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion

REPO = Path(__file__).resolve().parent.parent
LT_PEER = Path(__file__).with_name("lt_peer.py")
LIBTORRENT_PYTHON = "/usr/bin/python3"
SEED = 4  # issue 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WRITE_BLOCK_BYTES = 4 << 20
MIB = 1 << 20

START_TIMEOUT_S = 120.0  # a seed hashes its data before it is ready (1 GiB: a few seconds)
STOP_TIMEOUT_S = 10.0
# A transfer slower than this many MiB/s (plus a minute) counts as stalled.
STALL_FLOOR_MIB_S = 2.0
TRACKER_SEED_TIMEOUT_S = 30.0
CHILD_LIFETIME_S = 3600.0
PROGRESS_PERIOD_S = 2.0
SETTLE_S = 2.0

_TRACKER_READY = re.compile(r"bitswarm tracker: http 127\.0\.0\.1:(\d+); udp off; store memory")


# -- children ----------------------------------------------------------------------------


@dataclass(eq=False)  # identity: children are dict keys
class Child:
    """One peer process and the events it printed (read by a thread into a shared queue)."""

    name: str
    kind: str  # "bitswarm" or "libtorrent"
    process: subprocess.Popen[str]
    events: queue.Queue[tuple[Child, dict[str, Any]]]
    last: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()

    def cpu_s(self) -> float:
        """utime + stime so far, from /proc/PID/stat (0 once the process is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory(self) -> dict[str, int]:
        """VmRSS, RssAnon, RssFile, VmHWM (KiB) and Threads from /proc/PID/status."""
        wanted = {"VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"}
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in wanted:
                found[key] = int(value.split()[0])
        return found


def start_child(name: str, kind: str, argv: list[str], events: queue.Queue[tuple[Child, dict[str, Any]]]) -> Child:
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    child = Child(name, kind, process, events)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "junk", "line": line.rstrip()}
            child.last[event.get("event", "?")] = event
            events.put((child, event))
        events.put((child, {"event": "exited", "t": time.monotonic()}))

    threading.Thread(target=pump, name=f"read-{name}", daemon=True).start()
    return child


def stop_children(children: list[Child]) -> None:
    """ "stop" to each; SIGTERM, then SIGKILL, by PID, for any that does not exit in time."""
    for child in children:
        child.send("stop")
    for child in children:
        try:
            child.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGTERM)
            try:
                child.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(child.pid, signal.SIGKILL)
                child.process.wait(timeout=STOP_TIMEOUT_S)
        if child.process.returncode not in (0, None) and child.process.stderr is not None:
            print(f"# {child.name} exited {child.process.returncode}: {child.process.stderr.read()[-600:]}")


def wait_events(
    events: queue.Queue[tuple[Child, dict[str, Any]]], wanted: str, children: list[Child], timeout_s: float
) -> dict[Child, dict[str, Any]]:
    """Until every child in ``children`` printed event ``wanted``; returns child -> that event.

    Raises RuntimeError on a child's error or exit, or at the deadline.
    """
    deadline = time.monotonic() + timeout_s
    seen: dict[Child, dict[str, Any]] = {child: child.last[wanted] for child in children if wanted in child.last}
    while len(seen) < len(children):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = [child.name for child in children if child not in seen]
            progress = {child.name: child.last.get("progress", {}).get("done") for child in children}
            raise RuntimeError(f"no {wanted!r} from {missing} within {timeout_s:.0f} s (bytes done: {progress})")
        try:
            child, event = events.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if event["event"] in ("error", "exited") and child in children and child not in seen:
            raise RuntimeError(f"{child.name}: {event}")
        if event["event"] == wanted and child in children:
            seen[child] = event
    return seen


def peer_argv(
    kind: str, torrent: Path, folder: Path, role: str, *, connect: int = 0, max_up: int = 0, max_down: int = 0
) -> list[str]:
    if kind == "bitswarm":
        program = [sys.executable, str(Path(__file__).resolve()), "bitswarm-peer"]
    else:
        program = [LIBTORRENT_PYTHON, str(LT_PEER), "peer"]
    limits = ["--max-up", str(max_up), "--max-down", str(max_down)]
    return [*program, str(torrent), str(folder), "--role", role, "--connect", str(connect), *limits]


# -- bitswarm's side (runs in the children) ------------------------------------------------


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


async def open_commands() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def next_command(reader: asyncio.StreamReader, timeout_s: float) -> str | None:
    """A line from the parent within timeout_s, or None; "stop" once the pipe is closed."""
    try:
        async with asyncio.timeout(timeout_s):
            line = await reader.readline()
    except TimeoutError:
        return None
    return line.decode().strip() if line else "stop"


async def bitswarm_peer(args: argparse.Namespace) -> None:
    from bitswarm.net.session import Session, TorrentOptions, TorrentRuntime  # noqa: PLC0415

    torrent = Torrent.decode(Path(args.torrent).read_bytes())
    session = Session(port=0, host="127.0.0.1", max_up=float(args.max_up), max_down=float(args.max_down))
    await session.start()
    commands = await open_commands()
    runtime: TorrentRuntime | None = None
    try:
        if args.role == "seed":
            options = TorrentOptions(super_seed=False) if args.no_super_seed else None
            runtime = await session.add(torrent, Path(args.folder), options)
            if not runtime.finished.is_set():
                raise RuntimeError("the seed's data does not match the torrent")
        emit("ready", port=session.port)
        finished = runtime is not None
        end = time.monotonic() + CHILD_LIFETIME_S
        while time.monotonic() < end:
            wait_s = PROGRESS_PERIOD_S
            if runtime is not None and not finished:
                # Wake for the finish itself, so its time is exact.
                waiter = asyncio.ensure_future(runtime.finished.wait())
                command_task = asyncio.ensure_future(next_command(commands, PROGRESS_PERIOD_S))
                done, _ = await asyncio.wait({waiter, command_task}, return_when=asyncio.FIRST_COMPLETED)
                if waiter in done:
                    finished = True
                    emit("finished")
                else:
                    waiter.cancel()
                    emit("progress", done=runtime.status()["pieces"] * torrent.piece_length)
                command = await command_task
            else:
                command = await next_command(commands, wait_s)
            if runtime is not None:
                emit("uploaded", bytes=runtime.status()["uploaded"])
            if command == "stop":
                break
            if command == "start" and runtime is None:
                runtime = await session.add(torrent, Path(args.folder))
                if args.connect:
                    runtime.spawn(runtime.connect(("127.0.0.1", args.connect)))
    finally:
        await session.close()


async def bitswarm_memory(args: argparse.Namespace) -> None:
    from bitswarm.net.session import Session  # noqa: PLC0415

    session = Session(port=0, host="127.0.0.1")
    await session.start()
    commands = await open_commands()
    emit("ready", port=session.port)
    loaded = False
    try:
        end = time.monotonic() + CHILD_LIFETIME_S
        while time.monotonic() < end:
            command = await next_command(commands, 1.0)
            if command == "stop":
                break
            if command == "start" and not loaded:
                loaded = True
                for path in sorted(Path(args.torrent_dir).glob("*.torrent")):
                    runtime = await session.add(Torrent.decode(path.read_bytes()), Path(args.folder))
                    if not runtime.finished.is_set():
                        raise RuntimeError(f"{path.name}: the data does not match")
                emit("loaded", torrents=len(session.torrents))
    finally:
        await session.close()


def run_child(coroutine: Any) -> int:
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(coroutine)
    except ImportError:
        asyncio.run(coroutine)
    return 0


# -- shared set-up --------------------------------------------------------------------------


def write_data(path: Path, size: int, seed: int = SEED) -> None:
    # SHAKE-128 keyed by the seed and the offset: deterministic and random-looking.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        for at in range(0, size, WRITE_BLOCK_BYTES):
            stream.write(hashlib.shake_128(f"{seed}:{at}".encode()).digest(min(WRITE_BLOCK_BYTES, size - at)))


def warm_page_cache(path: Path) -> None:
    with path.open("rb", buffering=0) as stream:
        while stream.read(WRITE_BLOCK_BYTES):
            pass


def make_torrent(data: Path, out: Path, piece_length: int, trackers: tuple[str, ...] = ()) -> Torrent:
    options = CreateOptions(version=TorrentVersion.V1, piece_length=piece_length, trackers=trackers)
    out.write_bytes(create(data, options))
    return Torrent.decode(out.read_bytes())


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (every core), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def header(args: list[str]) -> None:
    print(f"# bitswarm peer benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"# {shlex.join([Path(sys.executable).name, *args])}")
    print(f"# {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}")
    version = subprocess.run(
        [LIBTORRENT_PYTHON, "-c", "import libtorrent; print(libtorrent.__version__)"],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout.strip()  # fmt: skip
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout.strip()  # fmt: skip
    print(f"# libtorrent {version}; bitswarm at {commit}; load average {os.getloadavg()[0]:.2f}")


@contextlib.contextmanager
def work_folder(base: Path, prefix: str = "bitswarm-peer-bench-") -> Iterator[Path]:
    base = base.resolve()
    if base == REPO or REPO in base.parents:
        raise SystemExit(f"--dir {base} is inside the repository; pick a folder outside it")
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- throughput --------------------------------------------------------------------------------


@dataclass
class Transfer:
    seeder: str
    downloader: str
    times_s: list[float] = field(default_factory=list)
    seeder_cpu_s: list[float] = field(default_factory=list)
    downloader_cpu_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.seeder} -> {self.downloader}"


def throughput(args: argparse.Namespace) -> int:
    size = args.size_mib * MIB
    with work_folder(args.dir) as work:
        data = work / "seed" / "payload.bin"
        started = time.perf_counter()
        write_data(data, size)
        warm_page_cache(data)
        torrent_path = work / "payload.torrent"
        make_torrent(data, torrent_path, args.piece_kib * 1024)
        print(f"# {args.size_mib} MiB file, {args.piece_kib} KiB pieces, made in {time.perf_counter() - started:.1f} s")
        kinds = ("bitswarm", "libtorrent")
        pairs = [Transfer(a, b) for a, b in (("bitswarm", "bitswarm"), ("libtorrent", "libtorrent"),
                                             ("bitswarm", "libtorrent"), ("libtorrent", "bitswarm"))]  # fmt: skip
        assert all(pair.seeder in kinds for pair in pairs)
        timeout_s = 60.0 + args.size_mib / STALL_FLOOR_MIB_S
        busy_before, ours_before, clock_before = machine_busy_s(), 0.0, time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        own_before = usage.ru_utime + usage.ru_stime
        for round_index in range(args.repeat):
            for pair in pairs:
                ours_before += run_transfer(pair, work, torrent_path, data, timeout_s, round_index)
        elapsed = time.monotonic() - clock_before
        # The peers' CPU (whole lives) and this process's own (writing and comparing copies).
        own = resource.getrusage(resource.RUSAGE_SELF)
        others = machine_busy_s() - busy_before - ours_before - (own.ru_utime + own.ru_stime - own_before)
    print()
    print("| seeder -> downloader | MiB/s (best) | MiB/s (median) | / libtorrent->libtorrent | seeder CPU s | "
          "downloader CPU s | failures |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    reference = max((args.size_mib / min(pair.times_s) for pair in pairs[1:2] if pair.times_s), default=0.0)
    for pair in pairs:
        if not pair.times_s:
            print(f"| {pair.label} | - | - | - | - | - | {len(pair.failures)} |")
            continue
        best = args.size_mib / min(pair.times_s)
        median = args.size_mib / statistics.median(pair.times_s)
        ratio = f"{best / reference:.2f}" if reference else "-"
        print(
            f"| {pair.label} | {best:.0f} | {median:.0f} | {ratio} | {statistics.median(pair.seeder_cpu_s):.2f} | "
            f"{statistics.median(pair.downloader_cpu_s):.2f} | {len(pair.failures)} |"
        )
    for pair in pairs:
        for failure in pair.failures:
            print(f"- {pair.label}: {failure}")
    print(f"noise: other processes used {max(others, 0.0):.1f} CPU s in {elapsed:.0f} s of measuring")
    return 0


def run_transfer(pair: Transfer, work: Path, torrent: Path, data: Path, timeout_s: float, round_index: int) -> float:
    """One transfer; returns the CPU seconds the two peers used in all."""
    events: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()
    folder = work / f"get-{round_index}"
    folder.mkdir()
    seeder = start_child("seeder", pair.seeder, peer_argv(pair.seeder, torrent, data.parent, "seed"), events)
    children = [seeder]
    cpu_total = 0.0
    try:
        port = wait_events(events, "ready", [seeder], START_TIMEOUT_S)[seeder]["port"]
        downloader = start_child(
            "downloader", pair.downloader, peer_argv(pair.downloader, torrent, folder, "download", connect=port), events
        )
        children.append(downloader)
        wait_events(events, "ready", [downloader], START_TIMEOUT_S)
        cpu_before = (seeder.cpu_s(), downloader.cpu_s())
        started = time.monotonic()
        downloader.send("start")
        finished = wait_events(events, "finished", [downloader], timeout_s)[downloader]["t"]
        cpu_after = (seeder.cpu_s(), downloader.cpu_s())
        elapsed = finished - started
        copy = folder / data.name
        if not filecmp.cmp(data, copy, shallow=False):
            raise RuntimeError("the downloaded copy differs from the seed's data")
        pair.times_s.append(elapsed)
        pair.seeder_cpu_s.append(cpu_after[0] - cpu_before[0])
        pair.downloader_cpu_s.append(cpu_after[1] - cpu_before[1])
        cpu_total = sum(cpu_after)
        size_mib = data.stat().st_size / MIB
        print(f"# {pair.label}: {elapsed:.2f} s, {size_mib / elapsed:.0f} MiB/s, CPU seeder "
              f"{pair.seeder_cpu_s[-1]:.2f} s, downloader {pair.downloader_cpu_s[-1]:.2f} s", flush=True)  # fmt: skip
    except RuntimeError as error:
        pair.failures.append(str(error))
        print(f"# {pair.label}: FAILED: {error}", flush=True)
    finally:
        stop_children(children)
        shutil.rmtree(folder, ignore_errors=True)
    return cpu_total


# -- limits ------------------------------------------------------------------------------------------


def limits(args: argparse.Namespace) -> int:
    """How closely a rate limit holds on loopback: one seeder, one downloader, the seeder's
    upload or the downloader's download capped; achieved rate over the limit."""
    size, limit = args.size_mib * MIB, args.limit_kib * 1024
    rows: list[tuple[str, str, list[float]]] = []
    with work_folder(args.dir) as work:
        data = work / "seed" / "payload.bin"
        write_data(data, size)
        warm_page_cache(data)
        torrent = work / "payload.torrent"
        make_torrent(data, torrent, args.piece_kib * 1024)
        print(f"# {args.size_mib} MiB, {args.piece_kib} KiB pieces, limit {args.limit_kib} KiB/s; "
              f"{args.repeat} rounds", flush=True)  # fmt: skip
        for side in ("upload", "download"):
            for kind in ("bitswarm", "libtorrent"):
                ratios: list[float] = []
                for round_index in range(args.repeat):
                    elapsed = run_limited(kind, side, work, torrent, data, limit, round_index)
                    if elapsed is not None:
                        ratios.append(size / elapsed / limit)
                rows.append((kind, side, ratios))
    print()
    print("| peers | limited | achieved / limit (median) | min | max | runs |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, side, ratios in rows:
        if ratios:
            print(f"| {kind} | {side} | {statistics.median(ratios):.3f} | {min(ratios):.3f} | {max(ratios):.3f} | "
                  f"{len(ratios)} |")  # fmt: skip
        else:
            print(f"| {kind} | {side} | - | - | - | 0 |")
    return 0


def run_limited(
    kind: str, side: str, work: Path, torrent: Path, data: Path, limit: int, round_index: int
) -> float | None:
    """Seconds from the start command to the verified copy, or None on failure."""
    events: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()
    folder = work / f"limit-{kind}-{side}-{round_index}"
    folder.mkdir()
    children: list[Child] = []
    timeout_s = 60.0 + 4 * data.stat().st_size / limit
    try:
        up = limit if side == "upload" else 0
        seeder = start_child("seeder", kind, peer_argv(kind, torrent, data.parent, "seed", max_up=up), events)
        children.append(seeder)
        port = wait_events(events, "ready", [seeder], START_TIMEOUT_S)[seeder]["port"]
        down = limit if side == "download" else 0
        argv = peer_argv(kind, torrent, folder, "download", connect=port, max_down=down)
        downloader = start_child("downloader", kind, argv, events)
        children.append(downloader)
        wait_events(events, "ready", [downloader], START_TIMEOUT_S)
        started = time.monotonic()
        downloader.send("start")
        finished = wait_events(events, "finished", [downloader], timeout_s)[downloader]["t"]
        if not filecmp.cmp(data, folder / data.name, shallow=False):
            raise RuntimeError("the downloaded copy differs from the seed's data")
        elapsed = float(finished - started)
        print(f"# {kind}, {side} limited: {elapsed:.2f} s, {data.stat().st_size / elapsed / limit:.3f} x the limit",
              flush=True)  # fmt: skip
        return elapsed
    except RuntimeError as error:
        print(f"# {kind}, {side} limited: FAILED: {error}", flush=True)
        return None
    finally:
        stop_children(children)
        shutil.rmtree(folder, ignore_errors=True)


# -- swarm -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_tracker(log_path: Path, port: int = 0) -> Iterator[str]:
    """A fresh `bitswarm tracker` (memory store, HTTP only) on 127.0.0.1; yields its announce URL."""
    argv = [sys.executable, "-m", "bitswarm", "tracker", "--http", f"127.0.0.1:{port}", "--udp", "off"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            assert process.stdout is not None
            line_holder: list[str] = []
            reader = threading.Thread(target=lambda: line_holder.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
            reader.start()
            reader.join(START_TIMEOUT_S)
            match = _TRACKER_READY.fullmatch(line_holder[0].strip()) if line_holder else None
            if match is None:
                raise RuntimeError(f"bitswarm tracker did not start: {line_holder!r}")
            yield f"http://127.0.0.1:{match[1]}/announce"
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_S)


def scrape_counts(announce_url: str, info_hash: bytes) -> tuple[int, int]:
    url = announce_url.replace("/announce", "/scrape") + "?info_hash=" + urllib.parse.quote_from_bytes(info_hash)
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - our own tracker on loopback
        answer = bencode.decode(reply.read())
    assert isinstance(answer, dict)
    files = answer.get(b"files", {})
    assert isinstance(files, dict)
    entry = files.get(info_hash, {})
    assert isinstance(entry, dict)
    complete, incomplete = entry.get(b"complete", 0), entry.get(b"incomplete", 0)
    assert isinstance(complete, int)
    assert isinstance(incomplete, int)
    return complete, incomplete


@dataclass
class SwarmRun:
    kind: str
    peers: int
    time_s: float | None = None
    each_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    failure: str = ""


def lower_bound_s(size: int, peers: int, seed_up: float, peer_up: float) -> float:
    return max(size / seed_up, peers * size / (seed_up + peers * peer_up))


def swarm(args: argparse.Namespace) -> int:
    size_mib = args.size_mib if args.size_mib else (16 if args.quick else 64)
    counts = [int(text) for text in (args.peers or ("1,2,4" if args.quick else "1,2,4,8,16")).split(",")]
    size, max_up = size_mib * MIB, args.max_up_kib * 1024
    runs: list[SwarmRun] = []
    with work_folder(args.dir) as work:
        data = work / "seed" / "payload.bin"
        write_data(data, size)
        warm_page_cache(data)
        print(f"# {size_mib} MiB file, {args.piece_kib} KiB pieces; every peer's upload capped at "
              f"{args.max_up_kib} KiB/s; N = {counts}", flush=True)  # fmt: skip
        for peers in counts:
            for kind in args.kinds.split(","):
                run = SwarmRun(kind, peers)
                runs.append(run)
                run_swarm(run, work, data, args.piece_kib * 1024, max_up)
    print()
    print("| N | bound s | bitswarm s | / bound | libtorrent s | / bound | bitswarm / libtorrent | "
          "bitswarm CPU s (all peers) | libtorrent CPU s |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for peers in counts:
        bound = lower_bound_s(size, peers, max_up, max_up)
        ours = next((run for run in runs if run.peers == peers and run.kind == "bitswarm"), SwarmRun("bitswarm", peers))
        theirs = next(
            (run for run in runs if run.peers == peers and run.kind == "libtorrent"), SwarmRun("libtorrent", peers)
        )

        def cell(run: SwarmRun, bound: float = bound) -> str:
            return f"{run.time_s:.1f} | {run.time_s / bound:.2f}" if run.time_s else "did not finish | -"

        ratio = f"{ours.time_s / theirs.time_s:.2f}" if ours.time_s and theirs.time_s else "-"
        print(f"| {peers} | {bound:.1f} | {cell(ours)} | {cell(theirs)} | {ratio} | {ours.cpu_s:.1f} | "
              f"{theirs.cpu_s:.1f} |")  # fmt: skip
    for run in runs:
        if run.failure:
            print(f"- {run.kind}, N = {run.peers}: {run.failure}")
    return 0


def run_swarm(run: SwarmRun, work: Path, data: Path, piece_length: int, max_up: int) -> None:
    events: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()
    folder = work / f"swarm-{run.kind}-{run.peers}"
    children: list[Child] = []
    size = data.stat().st_size
    bound = lower_bound_s(size, run.peers, max_up, max_up)
    with run_tracker(work / f"tracker-{run.kind}-{run.peers}.log") as announce:
        try:
            torrent_path = folder / "payload.torrent"
            folder.mkdir()
            torrent = make_torrent(data, torrent_path, piece_length, (announce,))
            assert torrent.info_hash_v1 is not None
            seed = start_child("seed", run.kind, peer_argv(run.kind, torrent_path, data.parent, "seed", max_up=max_up),
                               events)  # fmt: skip
            children.append(seed)
            wait_events(events, "ready", [seed], START_TIMEOUT_S)
            deadline = time.monotonic() + TRACKER_SEED_TIMEOUT_S
            while scrape_counts(announce, torrent.info_hash_v1)[0] < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the seed never showed up at the tracker")
                time.sleep(0.05)  # polling the tracker's count, an observable
            downloaders = []
            for index in range(run.peers):
                target = folder / f"peer-{index}"
                target.mkdir()
                argv = peer_argv(run.kind, torrent_path, target, "download", max_up=max_up)
                downloaders.append(start_child(f"peer-{index}", run.kind, argv, events))
            children += downloaders
            wait_events(events, "ready", downloaders, START_TIMEOUT_S)
            cpu_before = sum(child.cpu_s() for child in children)
            started = time.monotonic()
            for child in downloaders:
                child.send("start")
            finished = wait_events(events, "finished", downloaders, 4 * bound + 60.0)
            run.cpu_s = sum(child.cpu_s() for child in children) - cpu_before
            run.each_s = sorted(event["t"] - started for event in finished.values())
            run.time_s = run.each_s[-1]
            if run.kind == "bitswarm":
                # How much of the seed's scarce upload went to bytes it had already sent.
                seed_up = seed.last.get("uploaded", {}).get("bytes", 0)
                print(f"# bitswarm, N = {run.peers}: the seed uploaded {seed_up / size:.2f} x the file "
                      f"(by its last report)", flush=True)  # fmt: skip
            for index in range(run.peers):
                if not filecmp.cmp(data, folder / f"peer-{index}" / data.name, shallow=False):
                    raise RuntimeError(f"peer-{index}'s copy differs from the seed's data")
            each = ", ".join(f"{value:.1f}" for value in run.each_s)
            print(f"# {run.kind}, N = {run.peers}: {run.time_s:.1f} s = {run.time_s / bound:.2f} x the bound "
                  f"({bound:.1f} s); each: {each}; CPU {run.cpu_s:.1f} s", flush=True)  # fmt: skip
        except (RuntimeError, OSError) as error:
            run.failure = str(error)
            print(f"# {run.kind}, N = {run.peers}: FAILED: {error}", flush=True)
        finally:
            stop_children(children)
            shutil.rmtree(folder, ignore_errors=True)


# -- memory ---------------------------------------------------------------------------------------


def memory(args: argparse.Namespace) -> int:
    with work_folder(args.dir) as work:
        folder, torrents = work / "data", work / "torrents"
        torrents.mkdir()
        original = work / "original.bin"
        started = time.perf_counter()
        write_data(original, args.torrent_mib * MIB)
        warm_page_cache(original)
        folder.mkdir()
        for index in range(args.torrents):
            name = f"t{index:03d}.bin"
            os.link(original, folder / name)
            make_torrent(folder / name, torrents / f"t{index:03d}.torrent", args.piece_kib * 1024)
        print(f"# {args.torrents} torrents of {args.torrent_mib} MiB ({args.piece_kib} KiB pieces), one hard-linked "
              f"file, made in {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        results: dict[str, dict[str, dict[str, int]]] = {}
        for kind in ("bitswarm", "libtorrent"):
            if kind == "bitswarm":
                argv = [sys.executable, str(Path(__file__).resolve()), "bitswarm-memory", str(torrents), str(folder)]
            else:
                argv = [LIBTORRENT_PYTHON, str(LT_PEER), "memory", str(torrents), str(folder)]
            events: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()
            child = start_child(kind, kind, argv, events)
            try:
                wait_events(events, "ready", [child], START_TIMEOUT_S)
                time.sleep(SETTLE_S)  # let the idle session settle before reading its memory
                empty = child.memory()
                began = time.monotonic()
                child.send("start")
                loaded = wait_events(events, "loaded", [child], 600.0)[child]
                time.sleep(SETTLE_S)
                full = child.memory()
                results[kind] = {"empty": empty, "full": full}
                took = loaded["t"] - began
                print(f"# {kind}: {args.torrents} torrents checked and seeding in {took:.1f} s", flush=True)
            except RuntimeError as error:
                print(f"# {kind}: FAILED: {error}")
            finally:
                stop_children([child])
    print()
    print("| session | VmRSS empty MiB | VmRSS loaded MiB | RssAnon empty | RssAnon loaded | RssFile loaded | "
          "VmRSS per torrent KiB | RssAnon per torrent KiB | threads loaded |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, figures in results.items():
        empty, full = figures["empty"], figures["full"]
        print(
            f"| {kind} | {empty['VmRSS'] / 1024:.1f} | {full['VmRSS'] / 1024:.1f} | {empty['RssAnon'] / 1024:.1f} | "
            f"{full['RssAnon'] / 1024:.1f} | {full['RssFile'] / 1024:.1f} | "
            f"{(full['VmRSS'] - empty['VmRSS']) / args.torrents:.1f} | "
            f"{(full['RssAnon'] - empty['RssAnon']) / args.torrents:.1f} | {full['Threads']} |"
        )
    if len(results) == 2:
        ours, theirs = results["bitswarm"], results["libtorrent"]
        for key in ("VmRSS", "RssAnon"):
            whole = ours["full"][key] / theirs["full"][key]
            per_torrent = (ours["full"][key] - ours["empty"][key]) / max(theirs["full"][key] - theirs["empty"][key], 1)
            print(f"{key} loaded, bitswarm / libtorrent: {whole:.2f}; per torrent: {per_torrent:.2f}")
    return 0


# -- command line -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to work [/tmp]")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("throughput", help="one seeder to one downloader")
    one.add_argument("--size-mib", type=int, default=1024)
    one.add_argument("--piece-kib", type=int, default=512)
    one.add_argument("--repeat", type=int, default=2)
    many = sub.add_parser("swarm", help="one seed, N downloaders, capped uploads")
    many.add_argument("--quick", action="store_true", help="16 MiB, N = 1, 2, 4")
    many.add_argument("--size-mib", type=int, default=0, help="[64; 16 with --quick]")
    many.add_argument("--peers", help="comma-separated N values [1,2,4,8,16; 1,2,4 with --quick]")
    many.add_argument("--piece-kib", type=int, default=256)
    many.add_argument("--kinds", default="bitswarm,libtorrent", help="which peers to run [bitswarm,libtorrent]")
    many.add_argument("--max-up-kib", type=int, default=2048)
    limit = sub.add_parser("limits", help="how closely upload and download limits hold on loopback")
    limit.add_argument("--size-mib", type=int, default=32)
    limit.add_argument("--piece-kib", type=int, default=256)
    limit.add_argument("--limit-kib", type=int, default=2048)
    limit.add_argument("--repeat", type=int, default=2)
    mem = sub.add_parser("memory", help="one session seeding many torrents")
    mem.add_argument("--torrents", type=int, default=200)
    mem.add_argument("--torrent-mib", type=int, default=16)
    mem.add_argument("--piece-kib", type=int, default=256)
    child = sub.add_parser("bitswarm-peer", help=argparse.SUPPRESS)
    child.add_argument("torrent")
    child.add_argument("folder")
    child.add_argument("--role", choices=("seed", "download"), required=True)
    child.add_argument("--connect", type=int, default=0)
    child.add_argument("--max-up", type=int, default=0)
    child.add_argument("--max-down", type=int, default=0)
    # A capped bitswarm seed super-seeds by default (BEP 16), revealing its pieces one at a time.
    child.add_argument("--no-super-seed", action="store_true")
    child_memory = sub.add_parser("bitswarm-memory", help=argparse.SUPPRESS)
    child_memory.add_argument("torrent_dir")
    child_memory.add_argument("folder")
    args = parser.parse_args()
    if args.command == "bitswarm-peer":
        return run_child(bitswarm_peer(args))
    if args.command == "bitswarm-memory":
        return run_child(bitswarm_memory(args))
    header(sys.argv[1:])
    return {"throughput": throughput, "swarm": swarm, "memory": memory, "limits": limits}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
