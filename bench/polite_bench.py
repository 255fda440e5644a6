"""Politeness on a DSL-like uplink (issue 15, point 5): what a seeding client does to the
latency of the line and to a TCP transfer sharing it, bitswarm against libtorrent.

    python3 bench/polite_bench.py [--size-mib 64] [--rounds 1] [--cases NAME,...]
        [--warmup-s 5] [--window-s 10] [--tcp-cc cubic] [--base-rtt-ms 0]
    PYTHONPATH=/work/wt-utp/src python3 bench/polite_bench.py    # another bitswarm build

Needs root (iproute2's `ip netns` and `tc`), Debian's iputils-ping and python3-libtorrent.
The network is a line of three namespaces built here with iproute2: "seed" (10.253.1.2)
-- veth -- "modem" (10.253.1.1 and 10.253.2.1, forwarding) -- veth -- "net" (10.253.2.2),
with a route each way through the modem and none anywhere else (the root namespace gets
no interface). The modem's egress towards "net" is the bottleneck, a DSL modem's upload:
`tc qdisc replace dev up0 root tbf rate 10mbit burst 15000 latency 500ms` (the queue holds
500 ms at 10 Mbit/s; what does not fit is dropped). This kernel has no netem (nor fq, for
a BPF delay): the base RTT is the veths' own, well under a millisecond, unless
--base-rtt-ms asks for a delay line: then what "net" sends "seed" is routed into a
blackhole in the modem and carried instead by this script's `_delay` (a packet socket on
each modem interface; TCP and UDP checksums filled in, since a veth leaves them to the
"hardware"), that many milliseconds later; the way there, through the bottleneck, stays
the kernel's. The queue is behind a routing hop, as a modem is another box: a packet
keeps its sending socket across a veth or a bridge, and only IP's receive path lets go of
it, so on the senders' side of the hop the queue would count against the TCP sender's own
limits (TCP Small Queues, local drops): a CUBIC flow alone kept 80-120 ms of backlog
there, not 500 ms, and left the rest of the queue to uTP's UDP.

TCP's congestion control matters here: this host defaults to BBR, which keeps its own
queue short and would never show what LEDBAT yields to. The competing flow is CUBIC (the
desktops' default; set on its socket with TCP_CONGESTION, --tcp-cc), and the namespaces
default to it too where the host lets them, else to reno, loss-based as CUBIC is (a
namespace may only default to one of the host's tcp_allowed_congestion_control, here "reno
bbr"): that is what the TCP seeders run; the header says which.

Cases, each in turn in the same run, every one with a libtorrent 2.0 downloader in "net"
(bench/lt_polite_peer.py, TCP or uTP only, stock settings) dialling a seed in "seed":

- bitswarm over TCP: an in-process Session seeding (this script's `_bitswarm-seed`);
- bitswarm over uTP: the same with `Session(utp=True)`, when the bitswarm under PYTHONPATH has
  it (else the run prints "bitswarm uTP: not in this build");
- libtorrent over uTP and libtorrent over TCP: bench/lt_polite_peer.py seeding.

Before the cases: the idle RTT (ping -i 0.2 for IDLE_PING_S), then a TCP bulk flow alone
(this script's `_source` in "seed" sending to `_sink` in "net"), as the reference. Each case:
the seed starts, the downloader dials it, and once payload flows and --warmup-s has passed,

1. the torrent alone for --window-s: the probe (`ping -i 0.2` from "seed" to "net", through
   the bottleneck) gives the added delay, median and p95 of RTT minus the idle median; the
   link use is the bytes the shaper sent (tc's counters, Ethernet frames, so every header
   counts) over 10 Mbit/s times the window; the payload rate is the downloader's;
2. then the TCP bulk flow starts in the same direction; after COMPETITOR_WARMUP_S, for
   --window-s: its share is the bytes its sink received over 10 Mbit/s times the window
   (payload only: a TCP flow alone reaches about 95 %, see the reference row), beside the
   torrent's payload rate and the probe's added delay then.

The table gives each case's figures (medians over --rounds), and the ratios bitswarm uTP
against libtorrent uTP, with issue 15's targets: uTP keeps the added delay near its 100 ms
target, within 1.2x of libtorrent's uTP, and uses >= 90 % of an idle link. A case whose
download ends before its windows do is flagged (raise --size-mib). The machine's other
load shows in the figures: the run prints its load average before and after.

Traffic stays inside the namespaces; every process is ended by its PID and the namespaces
are removed at the end, failure or not. Every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import inspect
import json
import os
import queue
import random
import re
import secrets
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from bitswarm.create import CreateOptions, create  # noqa: E402
from bitswarm.metainfo import Torrent, TorrentVersion  # noqa: E402
from bitswarm.net.session import Session  # noqa: E402
from interop.netns import Host, NamespaceNetwork  # noqa: E402

LIBTORRENT_PYTHON = "/usr/bin/python3"
LT_PEER = REPO / "bench" / "lt_polite_peer.py"
MIB = 1 << 20
PIECE_LENGTH = 256 * 1024
RATE_BIT_S = 10_000_000
SHAPER = ["tbf", "rate", "10mbit", "burst", "15000", "latency", "500ms"]
PING_INTERVAL_S = 0.2
IDLE_PING_S = 4.0
COMPETITOR_WARMUP_S = 5.0  # cubic takes about 8 s to fill the 500 ms queue
SINK_PORT = 5201
SEED_PORT = 6881
READY_TIMEOUT_S = 60.0
FIRST_PAYLOAD_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
CHILD_LIFETIME_S = 600.0  # a child left behind ends itself after this
REPORT_PERIOD_S = 0.25
SEND_BLOCK = 64 * 1024
TCP_TIMEOUT_S = 10.0
RTT = re.compile(r"time=([0-9.]+) ms")
BOTTLENECK = "up0"  # the modem's interface towards "net"
DOWNLINK = "down0"  # the modem's interface towards "seed"
ETH_P_IP = 0x0800
IP_TIMEOUT_S = 10.0
NETNS_DIR = "/run/netns"


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    seeder: str  # "bitswarm" | "libtorrent"
    transport: str  # "tcp" | "utp"


CASES = (
    Case("bitswarm TCP", "bitswarm", "tcp"),
    Case("bitswarm uTP", "bitswarm", "utp"),
    Case("libtorrent uTP", "libtorrent", "utp"),
    Case("libtorrent TCP", "libtorrent", "tcp"),
)


# -- the children's side ------------------------------------------------------------------


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def stop_asked(timeout_s: float) -> bool:
    """True once stdin holds a line or is closed, waiting at most ``timeout_s``."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    return bool(ready)


def bitswarm_seed(args: argparse.Namespace) -> None:
    """Seed one torrent over TCP or uTP; "ready" with the port; stop on a line or EOF on stdin."""

    async def run() -> None:
        options: dict[str, Any] = {"port": args.port, "host": args.host}
        if has_utp():  # a build without it seeds over TCP only, and the parent asks no uTP of it
            options["utp"] = args.transport == "utp"
        session = Session(**options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), stop.set)
        try:
            await session.start()
            torrent = Torrent.decode(Path(args.torrent).read_bytes())
            await session.add(torrent, Path(args.folder))
            emit("ready", port=session.port, utp=getattr(session, "utp", None) is not None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHILD_LIFETIME_S)
        finally:
            loop.remove_reader(sys.stdin.fileno())
            await session.close()

    asyncio.run(run())


def sink(args: argparse.Namespace) -> None:
    """Accept one TCP connection, read it to the end; report the bytes received every REPORT_PERIOD_S."""
    with socket.create_server((args.host, args.port), reuse_port=False) as server:
        server.settimeout(READY_TIMEOUT_S)
        emit("ready")
        connection, _ = server.accept()
    received = 0
    next_report = time.monotonic()
    end = time.monotonic() + CHILD_LIFETIME_S
    with connection:
        connection.settimeout(REPORT_PERIOD_S)
        buffer = bytearray(SEND_BLOCK)
        while time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                count = connection.recv_into(buffer)
                if count == 0:
                    break
                received += count
            if time.monotonic() >= next_report:
                next_report += REPORT_PERIOD_S
                emit("progress", bytes=received)
    emit("progress", bytes=received)


def with_checksum(packet: bytes) -> bytes:
    """An IPv4 packet with its TCP or UDP checksum filled in: a veth leaves it to the
    "hardware" (CHECKSUM_PARTIAL), so a copy taken off the wire by a packet socket has none."""
    header_length = (packet[0] & 0x0F) * 4
    protocol = packet[9]
    offset = {6: 16, 17: 6}.get(protocol)
    total = int.from_bytes(packet[2:4], "big")
    if offset is None or total > len(packet) or total < header_length + offset + 2:
        return packet
    segment = bytearray(packet[header_length:total])
    segment[offset : offset + 2] = b"\0\0"
    pseudo = packet[12:20] + bytes((0, protocol)) + len(segment).to_bytes(2, "big")
    data = pseudo + segment + (b"\0" if len(segment) % 2 else b"")
    folded = sum(memoryview(data).cast("H"))  # ones' complement sums are byte-order free (RFC 1071)
    while folded >> 16:
        folded = (folded & 0xFFFF) + (folded >> 16)
    checksum = (~folded & 0xFFFF) or 0xFFFF
    segment[offset : offset + 2] = checksum.to_bytes(2, sys.byteorder)
    return packet[:header_length] + bytes(segment) + packet[total:]


def delay_line(args: argparse.Namespace) -> None:
    """In the modem: take the IPv4 frames that come in on ``args.inbound`` (kernel routing
    discards them: a blackhole rule) and send them out on ``args.outbound`` ``args.delay_ms``
    later, with that side's Ethernet addresses. Stops on a line or EOF on stdin."""
    delay_s = args.delay_ms / 1000
    header = bytes.fromhex(args.to_mac.replace(":", "") + args.from_mac.replace(":", "")) + b"\x08\x00"
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    with (
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as inbound,
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as outbound,
    ):
        inbound.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
        inbound.bind((args.inbound, ETH_P_IP))
        outbound.bind((args.outbound, 0))
        emit("ready")
        end = time.monotonic() + CHILD_LIFETIME_S
        while time.monotonic() < end:
            wait_s = max(0.0, held[0][0] - time.monotonic()) if held else 1.0
            readable, _, _ = select.select([inbound, sys.stdin], [], [], wait_s)
            if sys.stdin in readable:
                break
            if inbound in readable:
                while True:
                    try:
                        frame, address = inbound.recvfrom(65536, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    if address[2] != socket.PACKET_OUTGOING:
                        held.append((time.monotonic() + delay_s, header + with_checksum(frame[14:])))
            now = time.monotonic()
            while held and held[0][0] <= now:
                with contextlib.suppress(OSError):  # a full queue drops, as a wire would
                    outbound.send(held.popleft()[1])


def source(args: argparse.Namespace) -> None:
    """Send to the sink as fast as TCP lets it, until a line or EOF on stdin."""
    block = random.Random(5).randbytes(SEND_BLOCK)
    sent = 0
    with socket.socket() as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.congestion_control.encode())
        connection.settimeout(TCP_TIMEOUT_S)
        connection.connect((args.host, args.port))
        emit("ready")
        connection.setblocking(False)
        end = time.monotonic() + CHILD_LIFETIME_S
        while time.monotonic() < end:
            readable, writable, _ = select.select([sys.stdin], [connection], [], 1.0)
            if readable:
                break
            if writable:
                with contextlib.suppress(BlockingIOError):
                    sent += connection.send(block)
    emit("stopped", bytes=sent)


# -- the parent's side --------------------------------------------------------------------


class Child:
    """A process in a namespace that prints JSON lines; a thread collects them."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self._errors: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(target=self._read_errors, args=(self.process.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def _read_errors(self, stream: IO[str]) -> None:
        for line in stream:
            self._errors.append(line)
            del self._errors[:-20]

    def drain(self) -> list[dict[str, Any]]:
        """Every line so far, in order."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.seen.append(self.lines.get_nowait())
        return self.seen

    def wait_for(self, event: str, timeout_s: float) -> dict[str, Any]:
        """The first line with this event (raises RuntimeError after ``timeout_s`` or on "error")."""
        deadline = time.monotonic() + timeout_s
        for line in self.drain():
            if line["event"] == event:
                return line
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self.process.poll() is not None and self.lines.empty()):
                break
            with contextlib.suppress(queue.Empty):
                line = self.lines.get(timeout=min(left, 0.5))
                self.seen.append(line)
                if line["event"] == "error":
                    break
                if line["event"] == event:
                    return line
        raise RuntimeError(f"{self.name}: no {event!r} (exit {self.process.poll()}): {''.join(self._errors)[-1500:]}")

    def stop(self) -> None:
        """Ask it to stop (a line on stdin, then EOF); SIGTERM, then SIGKILL, by its PID, if it does not."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.process.stdin is not None
                self.process.stdin.write("stop\n")
                self.process.stdin.close()
            for end in (None, self.process.terminate, self.process.kill):
                if end is not None:
                    end()
                try:
                    self.process.wait(timeout=STOP_TIMEOUT_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
        time.sleep(0.1)  # the reader thread's last lines
        self.drain()


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """A list to put children in; every one is stopped at the end, failure or not."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def ip(*args: str) -> None:
    """One `ip` command; raises RuntimeError with its stderr when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def sysctl(netns: str, setting: str, value: str) -> None:
    """Set net.ipv4.SETTING in ``netns`` (/proc/sys/net is the writer's namespace's)."""
    write = f"echo {value} > /proc/sys/net/ipv4/{setting}"
    subprocess.run(
        ["ip", "netns", "exec", netns, "sh", "-c", write], check=True, timeout=IP_TIMEOUT_S, stderr=subprocess.DEVNULL
    )


@contextlib.contextmanager
def open_line(congestion_control: str) -> Iterator[tuple[NamespaceNetwork, str]]:
    """The line "seed" -- "modem" -- "net" (see the module docstring), and the TCP congestion
    control its namespaces default to; the namespaces are deleted at the end."""
    tag = secrets.token_hex(3)
    names = {label: f"bsw-{tag}-{label}" for label in ("seed", "modem", "net")}
    created: list[str] = []
    try:
        for netns in names.values():
            ip("netns", "add", netns)
            created.append(netns)
            ip("-n", netns, "link", "set", "lo", "up")
        seed, modem, net = names["seed"], names["modem"], names["net"]
        # Both ends of each veth are made inside namespaces: the root namespace never holds one.
        ip("-n", modem, "link", "add", "down0", "type", "veth", "peer", "name", "eth0", "netns", seed)
        ip("-n", modem, "link", "add", BOTTLENECK, "type", "veth", "peer", "name", "eth0", "netns", net)
        for netns, device, address in (
            (seed, "eth0", "10.253.1.2/24"),
            (modem, "down0", "10.253.1.1/24"),
            (modem, BOTTLENECK, "10.253.2.1/24"),
            (net, "eth0", "10.253.2.2/24"),
        ):
            ip("-n", netns, "addr", "add", address, "dev", device)
            ip("-n", netns, "link", "set", device, "up")
        ip("-n", seed, "route", "add", "10.253.2.0/24", "via", "10.253.1.1")
        ip("-n", net, "route", "add", "10.253.1.0/24", "via", "10.253.2.1")
        sysctl(modem, "ip_forward", "1")
        # The TCP seeders' congestion control: a namespace may only default to one of the
        # host's tcp_allowed_congestion_control, so reno (loss-based as cubic is) when not.
        default = congestion_control
        for netns in (seed, net):
            try:
                sysctl(netns, "tcp_congestion_control", congestion_control)
            except subprocess.CalledProcessError:
                default = "reno"
                sysctl(netns, "tcp_congestion_control", default)
        addresses = {"seed": "10.253.1.2", "modem": "10.253.2.1", "net": "10.253.2.2"}
        yield NamespaceNetwork({label: Host(label, names[label], addresses[label]) for label in names}), default
    finally:
        errors: list[str] = []
        for netns in reversed(created):  # a namespace's veth ends go with it
            try:
                ip("netns", "del", netns)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
                errors.append(str(error))
        left = set(os.listdir(NETNS_DIR)) & set(created) if os.path.isdir(NETNS_DIR) else set()
        if errors or left:
            print(f"polite_bench: namespaces not removed: {errors} {sorted(left)}", file=sys.stderr)


def mac(netns: str, device: str) -> str:
    done = subprocess.run(["ip", "-n", netns, "-j", "link", "show", "dev", device],
                          capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=True)  # fmt: skip
    return str(json.loads(done.stdout)[0]["address"])


def start_delay_line(network: NamespaceNetwork, started: list[Child], delay_ms: float) -> None:
    """The base RTT, without netem: what "net" sends "seed" is routed into a blackhole in
    the modem and carried by this script's `_delay` instead, ``delay_ms`` later."""
    modem = network["modem"].netns
    ip("-n", modem, "rule", "add", "priority", "100", "iif", BOTTLENECK, "to", "10.253.1.0/24", "blackhole")
    argv = [sys.executable, str(Path(__file__).resolve()), "_delay", f"--inbound={BOTTLENECK}",
            f"--outbound={DOWNLINK}", f"--from-mac={mac(modem, DOWNLINK)}",
            f"--to-mac={mac(network['seed'].netns, 'eth0')}", f"--delay-ms={delay_ms}"]  # fmt: skip
    line = Child("delay line", network.argv("modem", argv))
    started.append(line)
    line.wait_for("ready", READY_TIMEOUT_S)


def tc(network: NamespaceNetwork, *args: str) -> str:
    """Run `tc` in the modem's namespace, where the bottleneck is."""
    argv = ["tc", "-n", network["modem"].netns, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def shaped_bytes(network: NamespaceNetwork) -> int:
    """Bytes the bottleneck has sent so far (Ethernet frames)."""
    (qdisc,) = [q for q in json.loads(tc(network, "-s", "-j", "qdisc", "show", "dev", BOTTLENECK)) if q.get("root")]
    return int(qdisc["bytes"])


class Probe:
    """`ping -i 0.2` from "seed" to "net" for a number of seconds."""

    def __init__(self, network: NamespaceNetwork, seconds: float) -> None:
        argv = ["ping", "-n", "-i", str(PING_INTERVAL_S), "-w", str(round(seconds)), network["net"].address]
        self.process = subprocess.Popen(network.argv("seed", argv), stdout=subprocess.PIPE, text=True)
        self.seconds = seconds

    def rtts_ms(self) -> tuple[list[float], int]:
        """The RTTs of the replies, and the number of echo requests sent."""
        try:
            out, _ = self.process.communicate(timeout=self.seconds + 15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        rtts = [float(match.group(1)) for match in RTT.finditer(out)]
        sent = re.search(r"(\d+) packets transmitted", out)
        return rtts, int(sent.group(1)) if sent else len(rtts)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def bytes_at(lines: list[dict[str, Any]], moment: float) -> tuple[float, int]:
    """The last progress report at or before ``moment`` (time, bytes); the first one if none."""
    reports = [(line["t"], line["bytes"]) for line in lines if line["event"] == "progress"]
    if not reports:
        return moment, 0
    before = [report for report in reports if report[0] <= moment]
    return before[-1] if before else reports[0]


def rate_bit_s(lines: list[dict[str, Any]], start: float, end: float) -> float:
    (t0, b0), (t1, b1) = bytes_at(lines, start), bytes_at(lines, end)
    return 8 * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


@dataclass
class Figures:
    """One measured window: the probe's RTTs and rates in bit/s."""

    rtts_ms: list[float] = field(default_factory=list)
    probes_sent: int = 0
    link_bit_s: float = 0.0
    torrent_bit_s: float = 0.0
    tcp_bit_s: float = 0.0

    def delay(self, idle_ms: float) -> tuple[float, float]:
        """Added delay, median and p95, in ms (NaN without replies)."""
        if not self.rtts_ms:
            return float("nan"), float("nan")
        added = [rtt - idle_ms for rtt in self.rtts_ms]
        return statistics.median(added), p95(added)

    @property
    def probe_loss(self) -> float:
        return 1 - len(self.rtts_ms) / self.probes_sent if self.probes_sent else 0.0


@dataclass
class CaseResult:
    alone: Figures
    shared: Figures
    transport_seen: str
    ran_out: bool


def measure(network: NamespaceNetwork, window_s: float, torrent: Child | None, tcp: Child | None) -> Figures:
    """Probe and count for ``window_s`` from now."""
    probe = Probe(network, window_s)
    start, sent_before = time.monotonic(), shaped_bytes(network)
    time.sleep(window_s)
    end, sent_after = time.monotonic(), shaped_bytes(network)
    rtts, probes_sent = probe.rtts_ms()
    figures = Figures(rtts, probes_sent, 8 * (sent_after - sent_before) / (end - start))
    if torrent is not None:
        figures.torrent_bit_s = rate_bit_s(torrent.drain(), start, end)
    if tcp is not None:
        figures.tcp_bit_s = rate_bit_s(tcp.drain(), start, end)
    return figures


def start_tcp_flow(network: NamespaceNetwork, started: list[Child], congestion_control: str) -> Child:
    """The competing bulk flow, "seed" -> "net", with this TCP congestion control; returns
    its sink, which reports the bytes."""
    me = [sys.executable, str(Path(__file__).resolve())]
    address = f"--host={network['net'].address}"
    receiver = Child("sink", network.argv("net", [*me, "_sink", address, f"--port={SINK_PORT}"]))
    started.append(receiver)
    receiver.wait_for("ready", READY_TIMEOUT_S)
    sender = Child(
        "source",
        network.argv(
            "seed", [*me, "_source", address, f"--port={SINK_PORT}", f"--congestion-control={congestion_control}"]
        ),
    )
    started.append(sender)
    sender.wait_for("ready", READY_TIMEOUT_S)
    return receiver


def run_case(
    network: NamespaceNetwork, case: Case, work: Path, torrent_path: Path, args: argparse.Namespace
) -> CaseResult:
    seed_address, net_address = network["seed"].address, network["net"].address
    folder = work / f"get-{case.seeder}-{case.transport}"
    folder.mkdir()
    try:
        with children() as started:
            if case.seeder == "bitswarm":
                argv = [sys.executable, str(Path(__file__).resolve()), "_bitswarm-seed", str(torrent_path),
                        str(work / "seed"), f"--host={seed_address}", f"--port={SEED_PORT}",
                        f"--transport={case.transport}"]  # fmt: skip
            else:
                argv = [LIBTORRENT_PYTHON, str(LT_PEER), "seed", str(torrent_path), str(work / "seed"),
                        f"--interface={seed_address}", f"--port={SEED_PORT}",
                        f"--transport={case.transport}"]  # fmt: skip
            seeder = Child(case.name, network.argv("seed", argv))
            started.append(seeder)
            port = seeder.wait_for("ready", READY_TIMEOUT_S)["port"]
            downloader = Child(
                "downloader",
                network.argv("net", [LIBTORRENT_PYTHON, str(LT_PEER), "download", str(torrent_path), str(folder),
                                     f"--interface={net_address}", f"--transport={case.transport}",
                                     f"--peer={seed_address}:{port}"]),
            )  # fmt: skip
            started.append(downloader)
            downloader.wait_for("ready", READY_TIMEOUT_S)
            deadline = time.monotonic() + FIRST_PAYLOAD_TIMEOUT_S
            while not any(line["event"] == "progress" and line["bytes"] > 0 for line in downloader.drain()):
                if time.monotonic() > deadline or downloader.process.poll() is not None:
                    raise RuntimeError(f"{case.name}: no payload within {FIRST_PAYLOAD_TIMEOUT_S} s")
                time.sleep(0.2)
            time.sleep(args.warmup_s)
            alone = measure(network, args.window_s, downloader, None)
            with children() as flow:
                receiver = start_tcp_flow(network, flow, args.tcp_cc)
                time.sleep(COMPETITOR_WARMUP_S)
                shared = measure(network, args.window_s, downloader, receiver)
            lines = downloader.drain()
            utp = [line["utp"] for line in lines if line["event"] == "progress" and line["peers"]]
            seen = "uTP" if utp and all(utp) else "TCP" if utp and not any(utp) else "mixed" if utp else "?"
            ran_out = any(line["event"] == "finished" for line in lines)
            return CaseResult(alone, shared, seen, ran_out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def reference(network: NamespaceNetwork, args: argparse.Namespace) -> tuple[float, Figures]:
    """The idle RTT's median (ms), and the TCP flow alone on the link."""
    rtts, _ = Probe(network, IDLE_PING_S).rtts_ms()
    if not rtts:
        raise RuntimeError("the probe got no reply on the idle link")
    with children() as flow:
        receiver = start_tcp_flow(network, flow, args.tcp_cc)
        time.sleep(COMPETITOR_WARMUP_S)
        alone = measure(network, args.window_s, None, receiver)
    return statistics.median(rtts), alone


def median_figures(runs: list[Figures]) -> Figures:
    """One Figures for several rounds: every RTT pooled, the rates' medians."""
    return Figures(
        [rtt for run in runs for rtt in run.rtts_ms],
        sum(run.probes_sent for run in runs),
        statistics.median(run.link_bit_s for run in runs),
        statistics.median(run.torrent_bit_s for run in runs),
        statistics.median(run.tcp_bit_s for run in runs),
    )


def pct(bit_s: float) -> str:
    return f"{100 * bit_s / RATE_BIT_S:.0f} %"


def mbit(bit_s: float) -> str:
    return f"{bit_s / 1e6:.2f}"


def ms(value: float) -> str:
    return f"{value:.0f}"


def report(idle_ms: float, tcp_alone: Figures, results: dict[str, CaseResult]) -> None:
    print()
    print(f"Idle RTT {idle_ms:.3f} ms (median). TCP bulk flow alone: {pct(tcp_alone.tcp_bit_s)} of 10 Mbit/s "
          f"(payload), link use {pct(tcp_alone.link_bit_s)}, added delay {ms(tcp_alone.delay(idle_ms)[0])} / "
          f"{ms(tcp_alone.delay(idle_ms)[1])} ms (median / p95).")  # fmt: skip
    print()
    print(
        "| case | over | alone: added delay median / p95 (ms) | alone: link use | alone: payload Mbit/s "
        "| with TCP flow: its share | with TCP flow: torrent Mbit/s | with TCP flow: added delay median / p95 (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        alone, shared = result.alone, result.shared
        flag = " (download ran out)" if result.ran_out else ""
        median_a, p95_a = alone.delay(idle_ms)
        median_s, p95_s = shared.delay(idle_ms)
        loss = f", probe loss {100 * shared.probe_loss:.0f} %" if shared.probe_loss > 0 else ""
        print(f"| {name}{flag} | {result.transport_seen} | {ms(median_a)} / {ms(p95_a)} | {pct(alone.link_bit_s)} "
              f"| {mbit(alone.torrent_bit_s)} | {pct(shared.tcp_bit_s)} | {mbit(shared.torrent_bit_s)} "
              f"| {ms(median_s)} / {ms(p95_s)}{loss} |")  # fmt: skip
    ours, theirs = results.get("bitswarm uTP"), results.get("libtorrent uTP")
    print()
    if ours is None or theirs is None:
        print("bitswarm uTP against libtorrent uTP: no ratio (a case is missing)")
        return
    (our_median, our_p95), (their_median, their_p95) = ours.alone.delay(idle_ms), theirs.alone.delay(idle_ms)
    use = ours.alone.link_bit_s / RATE_BIT_S
    print("bitswarm uTP / libtorrent uTP:")
    print(f"- added delay, torrent alone: median {ratio(our_median, their_median)}, p95 {ratio(our_p95, their_p95)} "
          f"(target <= 1.2x: {'met' if our_median <= 1.2 * their_median else 'NOT met'})")  # fmt: skip
    print(f"- idle-link use: {ratio(ours.alone.link_bit_s, theirs.alone.link_bit_s)} "
          f"({100 * use:.0f} %; target >= 90 %: {'met' if use >= 0.9 else 'NOT met'})")  # fmt: skip
    print(f"- the TCP flow's share beside it: {ratio(ours.shared.tcp_bit_s, theirs.shared.tcp_bit_s)}")


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs > 0 else "n/a"


def has_utp() -> bool:
    return "utp" in inspect.signature(Session).parameters


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def terminate_as_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop the children and remove the namespaces


def bench(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("polite_bench: needs root (ip netns, tc)", file=sys.stderr)
        return 2
    for tool in ("ping", "tc", "ip", LIBTORRENT_PYTHON):
        if shutil.which(tool) is None:
            print(f"polite_bench: needs {tool} (ping: Debian's iputils-ping)", file=sys.stderr)
            return 2
    import bitswarm  # noqa: PLC0415 - only to say which build runs

    wanted = [case for case in CASES if not args.cases or case.name in args.cases]
    print(
        f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, python3 bench/polite_bench.py "
        f"--size-mib {args.size_mib} --rounds {args.rounds} --warmup-s {args.warmup_s} --window-s {args.window_s} "
        f"--tcp-cc {args.tcp_cc} --base-rtt-ms {args.base_rtt_ms}"
    )
    print(f"# bitswarm from {Path(bitswarm.__file__).parent}; load average {load()}")  # fmt: skip
    if not has_utp():
        print("bitswarm uTP: not in this build")
        wanted = [case for case in wanted if case.name != "bitswarm uTP"]
    # The children (this script again) find the same bitswarm from wherever they start.
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    os.environ["PYTHONPATH"] = os.pathsep.join(os.path.abspath(path) for path in paths if path)
    signal.signal(signal.SIGTERM, terminate_as_exit)
    work = Path(tempfile.mkdtemp(prefix="bitswarm-polite-bench-"))
    try:
        source_file = work / "seed" / "data.bin"
        source_file.parent.mkdir()
        rng = random.Random(15)
        with source_file.open("wb") as out:
            for _ in range(args.size_mib):
                out.write(rng.randbytes(MIB))
        torrent_path = work / "data.torrent"
        torrent_path.write_bytes(
            create(source_file, CreateOptions(version=TorrentVersion.V1, piece_length=PIECE_LENGTH))
        )
        runs: dict[str, list[CaseResult]] = {case.name: [] for case in wanted}
        with open_line(args.tcp_cc) as (network, seed_cc), children() as delay:
            print(f"# TCP congestion control: the competing flow {args.tcp_cc}, the TCP seeders {seed_cc}")
            tc(network, "qdisc", "replace", "dev", BOTTLENECK, "root", *SHAPER)
            if args.base_rtt_ms > 0:
                start_delay_line(network, delay, args.base_rtt_ms)
            idle_ms, tcp_alone = reference(network, args)
            print(f"# idle RTT {idle_ms:.3f} ms; TCP alone {mbit(tcp_alone.tcp_bit_s)} Mbit/s", flush=True)
            for round_index in range(args.rounds):
                order = wanted if round_index % 2 == 0 else wanted[::-1]
                for case in order:
                    result = run_case(network, case, work, torrent_path, args)
                    runs[case.name].append(result)
                    median, top = result.alone.delay(idle_ms)
                    print(f"# round {round_index + 1} {case.name} over {result.transport_seen}: alone "
                          f"{ms(median)}/{ms(top)} ms, {pct(result.alone.link_bit_s)}; with TCP: its share "
                          f"{pct(result.shared.tcp_bit_s)}, torrent {mbit(result.shared.torrent_bit_s)} Mbit/s",
                          flush=True)  # fmt: skip
            stats = tc(network, "-s", "qdisc", "show", "dev", BOTTLENECK).split("\n")
            print(f"# shaper at the end: {' '.join(line.strip() for line in stats[1:3])}")
        results = {
            name: CaseResult(
                median_figures([run.alone for run in case_runs]),
                median_figures([run.shared for run in case_runs]),
                "/".join(sorted({run.transport_seen for run in case_runs})),
                any(run.ran_out for run in case_runs),
            )
            for name, case_runs in runs.items()
        }
        report(idle_ms, tcp_alone, results)
        print(f"\n# load average at the end {load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="child")
    seed = sub.add_parser("_bitswarm-seed")
    seed.add_argument("torrent")
    seed.add_argument("folder")
    seed.add_argument("--host", required=True)
    seed.add_argument("--port", type=int, required=True)
    seed.add_argument("--transport", choices=("tcp", "utp"), required=True)
    delay = sub.add_parser("_delay")
    for option in ("--inbound", "--outbound", "--from-mac", "--to-mac"):
        delay.add_argument(option, required=True)
    delay.add_argument("--delay-ms", type=float, required=True)
    for name in ("_sink", "_source"):
        flow = sub.add_parser(name)
        flow.add_argument("--host", required=True)
        flow.add_argument("--port", type=int, required=True)
        flow.add_argument("--congestion-control", default="cubic")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup-s", type=float, default=5.0, help="from the first payload to the first window")
    parser.add_argument("--window-s", type=float, default=10.0, help="each measured window")
    parser.add_argument(
        "--tcp-cc", default="cubic", help="TCP congestion control in the namespaces [cubic, the desktops' default]"
    )
    parser.add_argument(
        "--base-rtt-ms", type=float, default=0.0, help="a delay line on the way back from net to seed [0: none]"
    )
    parser.add_argument("--cases", type=lambda text: text.split(","), default=[], help="names, comma-separated")
    args = parser.parse_args()
    if args.child == "_bitswarm-seed":
        bitswarm_seed(args)
    elif args.child == "_sink":
        sink(args)
    elif args.child == "_source":
        source(args)
    elif args.child == "_delay":
        delay_line(args)
    else:
        return bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
