"""Benchmark: bitswarm -> bitswarm throughput with protocol encryption on and off (issue 5, point 7).

    python3 bench/mse_bench.py [--size-mib 512] [--piece-kib 512] [--repeat 2]

One seeder and one downloader, each a process of its own (a `Session` on uvloop, as
`bitswarm get` runs it), on 127.0.0.1, meeting by direct connection; one file of seeded
pseudo-random bytes in the page cache. The two sessions share one policy per transfer:
`require` (MSE, RC4 on every byte both ways) or `disable` (plain BitTorrent), interleaved,
--repeat times each. Time runs from the "start" command to the downloader's "finished"
event (every piece verified); CPU is utime + stime over that window; the copy is compared
with the original. Each downloader reports how its connection was carried, so a run that
did not measure what it claims to is visible.

The plumbing (children, events, data, page cache, work folder) is peer_bench.py's. Only
processes this benchmark started are stopped, by PID. Every wait has a deadline. This is
a measurement, not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import filecmp
import queue
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peer_bench
from peer_bench import MIB, Child, emit, next_command, open_commands, start_child, stop_children, wait_events

from bitswarm.metainfo import Torrent
from bitswarm.wire.mse import CryptoMethod

POLICIES = ("require", "disable")


async def encrypted_peer(args: argparse.Namespace) -> None:
    """peer_bench's bitswarm child with the session's encryption policy set."""
    from bitswarm.net.session import Session, TorrentRuntime  # noqa: PLC0415

    torrent = Torrent.decode(Path(args.torrent).read_bytes())
    session = Session(port=0, host="127.0.0.1", encryption=args.encryption)
    await session.start()
    commands = await open_commands()
    runtime: TorrentRuntime | None = None
    try:
        if args.role == "seed":
            runtime = await session.add(torrent, Path(args.folder))
            if not runtime.finished.is_set():
                raise RuntimeError("the seed's data does not match the torrent")
        emit("ready", port=session.port)
        end = time.monotonic() + peer_bench.CHILD_LIFETIME_S
        while time.monotonic() < end:
            command = await next_command(commands, peer_bench.PROGRESS_PERIOD_S)
            if command == "stop":
                break
            if command == "start" and runtime is None:
                runtime = await session.add(torrent, Path(args.folder))
                runtime.spawn(runtime.connect(("127.0.0.1", args.connect)))
                await runtime.finished.wait()  # the finish's own time, not the next poll's
                emit("finished", crypto=sorted(_carried_as(peer.crypto) for peer in runtime.peers))
    finally:
        await session.close()


def _carried_as(crypto: CryptoMethod | None) -> str:
    return "plain handshake" if crypto is None else f"MSE, {crypto.name}"


def child_argv(torrent: Path, folder: Path, role: str, encryption: str, connect: int = 0) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "peer", str(torrent), str(folder),
            "--role", role, "--encryption", encryption, "--connect", str(connect)]  # fmt: skip


@dataclass
class Runs:
    policy: str
    times_s: list[float] = field(default_factory=list)
    seeder_cpu_s: list[float] = field(default_factory=list)
    downloader_cpu_s: list[float] = field(default_factory=list)
    carried_as: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def run_transfer(runs: Runs, work: Path, torrent: Path, data: Path, timeout_s: float, round_index: int) -> None:
    events: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()
    folder = work / f"get-{runs.policy}-{round_index}"
    folder.mkdir()
    seeder = start_child("seeder", "bitswarm", child_argv(torrent, data.parent, "seed", runs.policy), events)
    children = [seeder]
    try:
        port = wait_events(events, "ready", [seeder], peer_bench.START_TIMEOUT_S)[seeder]["port"]
        argv = child_argv(torrent, folder, "download", runs.policy, connect=port)
        downloader = start_child("downloader", "bitswarm", argv, events)
        children.append(downloader)
        wait_events(events, "ready", [downloader], peer_bench.START_TIMEOUT_S)
        cpu_before = (seeder.cpu_s(), downloader.cpu_s())
        started = time.monotonic()
        downloader.send("start")
        finished = wait_events(events, "finished", [downloader], timeout_s)[downloader]
        cpu_after = (seeder.cpu_s(), downloader.cpu_s())
        elapsed = finished["t"] - started
        if not filecmp.cmp(data, folder / data.name, shallow=False):
            raise RuntimeError("the downloaded copy differs from the seed's data")
        runs.times_s.append(elapsed)
        runs.seeder_cpu_s.append(cpu_after[0] - cpu_before[0])
        runs.downloader_cpu_s.append(cpu_after[1] - cpu_before[1])
        runs.carried_as.update(finished["crypto"])
        size_mib = data.stat().st_size / MIB
        print(f"# {runs.policy}: {elapsed:.2f} s, {size_mib / elapsed:.0f} MiB/s, CPU seeder "
              f"{runs.seeder_cpu_s[-1]:.2f} s, downloader {runs.downloader_cpu_s[-1]:.2f} s, "
              f"connection {finished['crypto']}", flush=True)  # fmt: skip
    except RuntimeError as error:
        runs.failures.append(str(error))
        print(f"# {runs.policy}: FAILED: {error}", flush=True)
    finally:
        stop_children(children)
        shutil.rmtree(folder, ignore_errors=True)


def throughput(args: argparse.Namespace) -> int:
    peer_bench.header(sys.argv[1:])
    with peer_bench.work_folder(args.dir) as work:
        data = work / "seed" / "payload.bin"
        peer_bench.write_data(data, args.size_mib * MIB)
        peer_bench.warm_page_cache(data)
        torrent = work / "payload.torrent"
        peer_bench.make_torrent(data, torrent, args.piece_kib * 1024)
        print(f"# {args.size_mib} MiB file, {args.piece_kib} KiB pieces; policies {POLICIES}, "
              f"{args.repeat} rounds", flush=True)  # fmt: skip
        timeout_s = 60.0 + args.size_mib / peer_bench.STALL_FLOOR_MIB_S
        all_runs = {policy: Runs(policy) for policy in POLICIES}
        for round_index in range(args.repeat):
            for policy in POLICIES:
                run_transfer(all_runs[policy], work, torrent, data, timeout_s, round_index)
    print()
    print("| policy | carried as | MiB/s (best) | MiB/s (median) | seeder CPU s | downloader CPU s | failures |")
    print("|---|---|---:|---:|---:|---:|---:|")
    best: dict[str, float] = {}
    for policy, runs in all_runs.items():
        if not runs.times_s:
            print(f"| {policy} | - | - | - | - | - | {len(runs.failures)} |")
            continue
        best[policy] = args.size_mib / min(runs.times_s)
        median = args.size_mib / statistics.median(runs.times_s)
        print(f"| {policy} | {', '.join(sorted(runs.carried_as))} | {best[policy]:.0f} | {median:.0f} | "
              f"{statistics.median(runs.seeder_cpu_s):.2f} | {statistics.median(runs.downloader_cpu_s):.2f} | "
              f"{len(runs.failures)} |")  # fmt: skip
    if len(best) == len(POLICIES):
        print(f"encrypted / plain (best MiB/s): {best['require'] / best['disable']:.2f}")
    for runs in all_runs.values():
        for failure in runs.failures:
            print(f"- {runs.policy}: {failure}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to work [/tmp]")
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("peer", help=argparse.SUPPRESS)
    child.add_argument("torrent")
    child.add_argument("folder")
    child.add_argument("--role", choices=("seed", "download"), required=True)
    child.add_argument("--encryption", choices=POLICIES, required=True)
    child.add_argument("--connect", type=int, default=0)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--piece-kib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.command == "peer":
        return peer_bench.run_child(encrypted_peer(args))
    return throughput(args)


if __name__ == "__main__":
    sys.exit(main())
