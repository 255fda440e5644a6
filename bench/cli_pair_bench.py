"""Benchmark: one seed and one downloader as users run them, through a tracker (issue 16, points 1, 2, 6).

    python3 bench/cli_pair_bench.py [--size-mib 1024] [--piece-kib 512,1024] [--repeat 5]
        [--pairs bitswarm-bitswarm,libtorrent-libtorrent,libtorrent-bitswarm,bitswarm-libtorrent]
        [--encryption default,require] [--libtorrent-utp] [--bitswarm-option=--no-utp ...]

bitswarm runs as its users run it: `bitswarm seed` and `bitswarm get --no-seed`, default
settings but for what keeps the traffic on loopback (--no-dht, --no-lsd,
--no-port-mapping) and --port 0, its bytecode compiled first as an install does.
libtorrent 2.0.8 runs `bench/lt_peer.py`: libtorrent's own settings (its encryption
defaults among them) but for the loopback allowances (listen on 127.0.0.1, several
connections per IP, no DHT, LSD, UPnP or NAT-PMP) and with uTP off: as it comes,
libtorrent dials a loopback peer over uTP and moves about 10 MiB/s there
(`--libtorrent-utp` measures that). Its seed checks its data when added, as a seeding
user's does. A .torrent of one file of pseudo-random bytes (in the page cache) per piece
size, announcing to a fresh `bitswarm tracker` on loopback for each transfer, so the
downloader finds exactly one seed. The seed starts first and counts as ready once the
tracker lists it; then the downloader starts. Time runs from the downloader's process
start (interpreter start-up, session start, announce included, for both clients) to its
"finished" event (every piece verified). CPU seconds: the downloader's over its whole
life until then, the seed's over the same window, from /proc/PID/stat; printed per GiB.
On this virtual machine memory freed for about a second goes back to the host (free page
reporting), and the first touch of such memory costs about 1.5 CPU s per GiB: whichever
downloader writes its copy into it pays that on top. So the previous transfer's copy is
removed just before each downloader starts (a scratch file of the same size stands in
before the first), and every downloader writes into just-freed page cache as on a machine
without a balloon; `--cold-memory-s S` waits S seconds after that removal instead, so that
every downloader writes into memory the host has taken back.
`--encryption require` has both clients insist on RC4 on every byte (bitswarm
`--encryption require`; libtorrent's forced policy at the RC4 level). Pairs, piece sizes
and policies are interleaved within a round. Every copy is compared with the original.

Only processes this benchmark started are stopped, by PID. Every wait has a deadline.
This is a measurement, not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import compileall
import filecmp
import itertools
import os
import queue
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import measure
import peer_bench
from peer_bench import MIB, Child, scrape_counts, start_child, stop_children, wait_events

import bitswarm
from bitswarm.metainfo import Torrent

KINDS = ("bitswarm", "libtorrent")
LOOPBACK_ONLY = ["--port", "0", "--no-dht", "--no-lsd", "--no-port-mapping"]
SEED_LISTED_TIMEOUT_S = 30.0
SCRAPE_PERIOD_S = 0.05


@dataclass
class Pair:
    seeder: str
    downloader: str
    piece_kib: int
    encryption: str
    times_s: list[float] = field(default_factory=list)
    seeder_cpu_s: list[float] = field(default_factory=list)
    downloader_cpu_s: list[float] = field(default_factory=list)
    transports: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.seeder} -> {self.downloader}, {self.piece_kib} KiB, {self.encryption}"


def bitswarm_argv(command: str, torrent: Path, folder: Path, encryption: str, extra: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "bitswarm", command, str(torrent)]
    argv += ["-o", str(folder)] if command == "get" else [str(folder)]
    argv += ["--json", *LOOPBACK_ONLY]
    argv += ["--state-dir", str(folder.parent / f"state-{command}")]
    if command == "get":
        argv.append("--no-seed")
    if encryption != "default":
        argv += ["--encryption", encryption]
    return argv + extra


def libtorrent_argv(role: str, torrent: Path, folder: Path, encryption: str, utp: bool) -> list[str]:
    argv = [peer_bench.LIBTORRENT_PYTHON, str(peer_bench.LT_PEER), "peer", str(torrent), str(folder), "--role", role]
    argv += ["--check"] if role == "seed" else ["--start"]
    if utp:
        argv.append("--stock")
    if encryption != "default":
        argv += ["--encryption", encryption]
    return argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(children: list[Child]) -> None:
    """bitswarm's command lines stop on SIGTERM as a user's would; libtorrent's script on "stop"."""
    for child in children:
        if child.kind == "bitswarm" and child.process.poll() is None:
            os.kill(child.pid, signal.SIGTERM)
    stop_children(children)


def wait_listed(announce_url: str, info_hash: bytes) -> None:
    """Until the tracker lists one seed for ``info_hash``."""
    deadline = time.monotonic() + SEED_LISTED_TIMEOUT_S
    while scrape_counts(announce_url, info_hash)[0] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the tracker listed no seed within {SEED_LISTED_TIMEOUT_S:.0f} s")
        time.sleep(SCRAPE_PERIOD_S)  # polling a server we do not control the events of


def run_transfer(
    pair: Pair,
    work: Path,
    data: Path,
    tracker_port: int,
    size_mib: int,
    extra: list[str],
    lt_utp: bool,
    timeout_s: float,
    cold_memory_s: float,
) -> None:
    events: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()
    folder = work / "get"
    children: list[Child] = []
    torrent_path = work / f"{pair.piece_kib}.torrent"
    info_hash = Torrent.decode(torrent_path.read_bytes()).info_hash_v1
    assert info_hash is not None
    # A fresh tracker at the torrents' address for each transfer: it lists this seed only.
    with peer_bench.run_tracker(work / "tracker.log", tracker_port) as announce_url:
        try:
            if pair.seeder == "bitswarm":
                argv = bitswarm_argv("seed", torrent_path, data.parent, pair.encryption, extra)
                seeder = start_child("seeder", pair.seeder, argv, events)
                children.append(seeder)
                wait_events(events, "started", [seeder], peer_bench.START_TIMEOUT_S)
            else:
                argv = libtorrent_argv("seed", torrent_path, data.parent, pair.encryption, lt_utp)
                seeder = start_child("seeder", pair.seeder, argv, events)
                children.append(seeder)
                wait_events(events, "ready", [seeder], peer_bench.START_TIMEOUT_S)
            wait_listed(announce_url, info_hash)
            shutil.rmtree(folder, ignore_errors=True)
            if cold_memory_s:
                time.sleep(cold_memory_s)  # the condition measured: the host takes the freed memory back
            seeder_cpu_before = seeder.cpu_s()
            started = time.monotonic()
            if pair.downloader == "bitswarm":
                argv = bitswarm_argv("get", torrent_path, folder, pair.encryption, extra)
            else:
                argv = libtorrent_argv("download", torrent_path, folder, pair.encryption, lt_utp)
            downloader = start_child("downloader", pair.downloader, argv, events)
            children.append(downloader)
            wait_events(events, "finished", [downloader], timeout_s)
            elapsed = time.monotonic() - started
            cpu = (seeder.cpu_s() - seeder_cpu_before, downloader.cpu_s())
            pair.transports.update(downloader.last["finished"].get("transports", []))
            if not filecmp.cmp(data, folder / data.name, shallow=False):
                raise RuntimeError("the downloaded copy differs from the seed's data")
            pair.times_s.append(elapsed)
            pair.seeder_cpu_s.append(cpu[0])
            pair.downloader_cpu_s.append(cpu[1])
            print(f"# {pair.label}: {elapsed:.2f} s, {size_mib / elapsed:.0f} MiB/s, CPU seed {cpu[0]:.2f} s, "
                  f"downloader {cpu[1]:.2f} s", flush=True)  # fmt: skip
        except RuntimeError as error:
            pair.failures.append(str(error))
            print(f"# {pair.label}: FAILED: {error}", flush=True)
        finally:
            stop(children)


def report(pairs: list[Pair], size_mib: int) -> None:
    gib = size_mib / 1024
    print()
    print("| seed -> downloader | pieces | encryption | MiB/s (median) | MiB/s (range) | / libtorrent -> libtorrent | "
          "seed CPU s/GiB | downloader CPU s/GiB | failures |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    reference = {
        (pair.piece_kib, pair.encryption): size_mib / statistics.median(pair.times_s)
        for pair in pairs
        if pair.seeder == pair.downloader == "libtorrent" and pair.times_s
    }
    for pair in pairs:
        if not pair.times_s:
            cells = f"{pair.seeder} -> {pair.downloader} | {pair.piece_kib} KiB | {pair.encryption}"
            print(f"| {cells} | - | - | - | - | - | {len(pair.failures)} |")
            continue
        median = size_mib / statistics.median(pair.times_s)
        low, high = size_mib / max(pair.times_s), size_mib / min(pair.times_s)
        base = reference.get((pair.piece_kib, pair.encryption))
        ratio = f"{median / base:.2f}" if base else "-"
        via = f" ({'+'.join(sorted(pair.transports))})" if pair.transports else ""
        print(f"| {pair.seeder} -> {pair.downloader}{via} | {pair.piece_kib} KiB | {pair.encryption} | {median:.0f} | "
              f"{low:.0f}-{high:.0f} | {ratio} | {statistics.median(pair.seeder_cpu_s) / gib:.2f} | "
              f"{statistics.median(pair.downloader_cpu_s) / gib:.2f} | {len(pair.failures)} |")  # fmt: skip
    encrypted = {(p.seeder, p.downloader, p.piece_kib): p for p in pairs if p.encryption == "require" and p.times_s}
    for pair in pairs:
        other = encrypted.get((pair.seeder, pair.downloader, pair.piece_kib))
        if pair.encryption == "default" and pair.times_s and other is not None:
            share = statistics.median(pair.times_s) / statistics.median(other.times_s)
            print(f"- {pair.seeder} -> {pair.downloader}, {pair.piece_kib} KiB: RC4 throughput / default: {share:.2f}")
    for pair in pairs:
        for failure in pair.failures:
            print(f"- {pair.label}: {failure}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to work [/tmp]")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--piece-kib", default="512,1024", help="comma-separated piece sizes [512,1024]")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--pairs", default="bitswarm-bitswarm,libtorrent-libtorrent,libtorrent-bitswarm,bitswarm-libtorrent"
    )
    parser.add_argument("--encryption", default="default", help="comma-separated: default, require [default]")
    parser.add_argument("--libtorrent-utp", action="store_true", help="libtorrent with uTP on, as it comes")
    parser.add_argument("--cold-memory-s", type=float, default=0.0, help="wait after freeing the last copy [0]")
    parser.add_argument("--bitswarm-option", action="append", default=[], help="one more option for bitswarm's side")
    args = parser.parse_args()
    kinds = [tuple(spec.split("-")) for spec in args.pairs.split(",")]
    if any(len(kind) != 2 or not set(kind) <= set(KINDS) for kind in kinds):
        raise SystemExit(f"--pairs: each one SEEDER-DOWNLOADER of {', '.join(KINDS)}")
    policies = args.encryption.split(",")
    if not set(policies) <= {"default", "require"}:
        raise SystemExit("--encryption: default and/or require")
    pieces = [int(value) for value in args.piece_kib.split(",")]
    pairs = [Pair(seeder, downloader, piece, policy)
             for piece, policy, (seeder, downloader) in itertools.product(pieces, policies, kinds)]  # fmt: skip
    print(f"# bitswarm CLI pair benchmark at {measure.commit()}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# {' '.join(sys.argv)}")
    print(f"# {measure.machine()}")
    # As an install does: without it each run compiles bitswarm's modules again (a tenth of a
    # second here, where PYTHONDONTWRITEBYTECODE is set).
    compileall.compile_dir(Path(bitswarm.__file__).parent, quiet=1)
    timeout_s = 60.0 + args.size_mib / peer_bench.STALL_FLOOR_MIB_S
    with peer_bench.work_folder(args.dir, "bitswarm-cli-pair-") as work:
        data = work / "seed" / "payload.bin"
        peer_bench.write_data(data, args.size_mib * MIB)
        peer_bench.warm_page_cache(data)
        # Page cache for the first downloader to find freed, as the others find a copy's.
        peer_bench.write_data(work / "get" / "scratch", args.size_mib * MIB)
        tracker_port = free_port()
        for piece_kib in pieces:
            announce_url = f"http://127.0.0.1:{tracker_port}/announce"
            peer_bench.make_torrent(data, work / f"{piece_kib}.torrent", piece_kib * 1024, (announce_url,))
        noise = measure.Noise()
        for _round in range(args.repeat):
            for pair in pairs:
                run_transfer(
                    pair, work, data, tracker_port, args.size_mib, args.bitswarm_option, args.libtorrent_utp, timeout_s,
                    args.cold_memory_s,
                )  # fmt: skip
        other_s, wall_s = noise.measure()
    report(pairs, args.size_mib)
    print(f"noise: other processes used {other_s:.1f} CPU s in {wall_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
