"""From a magnet link to the first verified piece and to completion, with the DHT as the
only source of peers: bitswarm against libtorrent in the same loopback setup.

    python3 bench/magnet_dht_bench.py [--size-mib 64] [--rounds 3] [--piece-kib 256] [--dir /tmp]

Each round starts afresh: three `bitswarm dht` nodes on 127.0.0.1 (a router and two joined
through it), a libtorrent seed
(bench/lt_dht_peer.py seed: seed mode, its forced DHT announce ended), then one
downloader given `magnet:?xt=urn:btih:HEX` and nothing else (no tracker, no x.pe, no LSD
or PEX) and the node as its DHT bootstrap. The downloader reports, on the shared
CLOCK_MONOTONIC, the moment just before it makes its session (t0), the metadata in, the
first piece verified, and completion; times are from t0 and so include the DHT join and
search. bitswarm runs as a child of this script (the Session API, as `bitswarm get`
does, on uvloop when installed), libtorrent as bench/lt_dht_peer.py magnet under
/usr/bin/python3. The two downloaders alternate, and every copy is compared with the
original. Medians and bests per client are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion

REPO = Path(__file__).resolve().parent.parent
LIBTORRENT_PYTHON = "/usr/bin/python3"
LT_PEER = Path(__file__).with_name("lt_dht_peer.py")
MIB = 1 << 20
WRITE_BLOCK_BYTES = 1 << 20
STAGES = ("metadata", "first_piece", "finished")
WAIT_S = 120.0
NODES = 3


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


# -- the bitswarm downloader (a child process) ----------------------------------------------


async def bitswarm_magnet(link_text: str, folder: Path, bootstrap: str) -> None:
    from bitswarm import magnet  # noqa: PLC0415
    from bitswarm.net.session import Session  # noqa: PLC0415

    link = magnet.parse(link_text)
    emit("t0")
    session = Session(port=0, host="127.0.0.1", dht=True, dht_bootstrap=[bootstrap])
    await session.start()
    try:
        fetching = await session.add_magnet(link, folder)
        runtime = await fetching.wait_for_torrent()
        emit("metadata")
        events = runtime.events()
        if runtime.status()["pieces"] == 0:
            await anext(aiter(events))  # the first event a fresh download has is a piece verified
        events.close()
        emit("first_piece")
        await runtime.finished.wait()
        emit("finished", done=runtime.status()["pieces"])
    finally:
        await session.close()


def run_bitswarm_child(args: argparse.Namespace) -> int:
    coroutine = bitswarm_magnet(args.magnet, Path(args.folder), args.bootstrap)
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(coroutine)
    except ImportError:
        asyncio.run(coroutine)
    return 0


# -- the parent -----------------------------------------------------------------------------


class Child:
    """A process whose JSON lines are read on a thread, so waits have deadlines."""

    def __init__(self, argv: list[str]) -> None:
        self.name = " ".join(Path(word).name for word in argv[:3])
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self) -> str:
        try:
            line = self.lines.get(timeout=WAIT_S)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: nothing within {WAIT_S} s") from None
        if line is None:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"{self.name}: ended: {stderr[-1500:]}")
        return line

    def next_event(self) -> dict[str, Any]:
        while not (line := self.next_line()).startswith("{"):
            pass
        event: dict[str, Any] = json.loads(line)
        if event["event"] == "error":
            raise RuntimeError(f"{self.name}: {event}")
        return event

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                assert self.process.stdin is not None
                self.process.stdin.write("\n")
                self.process.stdin.flush()
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


def write_data(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        for at in range(0, size, WRITE_BLOCK_BYTES):
            stream.write(hashlib.shake_128(f"magnet:{at}".encode()).digest(min(WRITE_BLOCK_BYTES, size - at)))


def file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(WRITE_BLOCK_BYTES):
            digest.update(block)
    return digest.digest()


def start_node(started: list[Child], *bootstrap: str) -> str:
    """A `bitswarm dht` on loopback (joined through ``bootstrap``); its HOST:PORT."""
    options = [option for address in bootstrap for option in ("--dht-bootstrap", address)]
    node = Child([sys.executable, "-m", "bitswarm", "dht", "--bind", "127.0.0.1:0", *options])
    started.append(node)
    ready = node.next_line()
    if not ready.startswith("bitswarm dht: listening on "):
        raise RuntimeError(f"bitswarm dht: {ready!r}")
    return ready.removeprefix("bitswarm dht: listening on ").split(";")[0]


def one_round(
    client: str, work: Path, torrent: Torrent, torrent_path: Path, data: Path, number: int
) -> dict[str, float]:
    """Seconds from t0 to each stage for one download by ``client``."""
    started: list[Child] = []
    try:
        # A router and two more nodes: libtorrent keeps no router in its routing table, so
        # it needs other nodes to hold the seed's announce.
        bootstrap = start_node(started)
        for _ in range(NODES - 1):
            start_node(started, bootstrap)
        seed = Child([LIBTORRENT_PYTHON, str(LT_PEER), "seed", str(torrent_path), str(data.parent),
                      "--bootstrap", bootstrap])  # fmt: skip
        started.append(seed)
        if seed.next_event()["event"] != "ready":
            raise RuntimeError("the seed did not get ready")
        folder = work / f"{client}-{number}"
        folder.mkdir()
        link = f"magnet:?xt=urn:btih:{(torrent.info_hash_v1 or b'').hex()}"
        if client == "bitswarm":
            argv = [sys.executable, str(Path(__file__)), "child", link, str(folder), "--bootstrap", bootstrap]
        else:
            argv = [LIBTORRENT_PYTHON, str(LT_PEER), "magnet", link, str(folder), "--bootstrap", bootstrap]
        downloader = Child(argv)
        started.append(downloader)
        times: dict[str, float] = {}
        while "finished" not in times:
            event = downloader.next_event()
            times[event["event"]] = event["t"]
        if file_digest(folder / data.name) != file_digest(data):
            raise RuntimeError(f"{client}: the copy differs")
        shutil.rmtree(folder)
        return {stage: times[stage] - times["t0"] for stage in STAGES}
    finally:
        for child in reversed(started):
            child.stop()


@contextlib.contextmanager
def work_folder(base: Path) -> Iterator[Path]:
    base = base.resolve()
    if base == REPO or REPO in base.parents:
        raise SystemExit(f"--dir {base} is inside the repository; pick a folder outside it")
    work = Path(tempfile.mkdtemp(prefix="bitswarm-magnet-bench-", dir=base))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def header(argv: list[str]) -> None:
    print(f"# bitswarm magnet-over-DHT benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"# {' '.join([Path(sys.executable).name, *argv])}")
    version = subprocess.run(
        [LIBTORRENT_PYTHON, "-c", "import libtorrent; print(libtorrent.__version__)"],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout.strip()  # fmt: skip
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout.strip()  # fmt: skip
    print(f"# {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
          f"libtorrent {version}, bitswarm at {commit}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("child", help="(internal) the bitswarm downloader")
    child.add_argument("magnet")
    child.add_argument("folder")
    child.add_argument("--bootstrap", required=True)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--piece-kib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    if args.command == "child":
        return run_bitswarm_child(args)
    header(sys.argv[1:])
    results: dict[str, list[dict[str, float]]] = {"bitswarm": [], "libtorrent": []}
    with work_folder(args.dir) as work:
        data = work / "seed" / "payload.bin"
        write_data(data, args.size_mib * MIB)
        torrent_path = work / "payload.torrent"
        options = CreateOptions(version=TorrentVersion.V1, piece_length=args.piece_kib * 1024)
        torrent_path.write_bytes(create(data, options))
        torrent = Torrent.decode(torrent_path.read_bytes())
        print(f"# {args.size_mib} MiB, {torrent.num_pieces} pieces of {args.piece_kib} KiB, v1 magnet link (btih only)")
        for number in range(args.rounds):
            order = ("bitswarm", "libtorrent") if number % 2 == 0 else ("libtorrent", "bitswarm")
            for client in order:
                results[client].append(one_round(client, work, torrent, torrent_path, data, number))
                times = results[client][-1]
                print(f"# round {number + 1} {client}: " + ", ".join(f"{s} {times[s]:.3f} s" for s in STAGES))
    print()
    print("| downloader | metadata s (median / best) | first piece s (median / best) | complete s (median / best) |")
    print("|---|---:|---:|---:|")
    for client, rounds in results.items():
        cells = [
            f"{statistics.median(r[stage] for r in rounds):.3f} / {min(r[stage] for r in rounds):.3f}"
            for stage in STAGES
        ]
        print(f"| {client} | {' | '.join(cells)} |")
    ours, theirs = results["bitswarm"], results["libtorrent"]
    ratios = [
        f"{stage} {statistics.median(r[stage] for r in ours) / statistics.median(r[stage] for r in theirs):.2f}x"
        for stage in STAGES
    ]
    print(f"\nbitswarm / libtorrent (medians): {', '.join(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
