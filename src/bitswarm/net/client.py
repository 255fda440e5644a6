"""``bitswarm get`` and ``bitswarm seed``: a session with one torrent, shown as it runs.

On a terminal a status line is redrawn every second (progress bar, speeds, peers and
seeds, ETA, ratio); otherwise a plain line every few seconds; with ``--json`` one JSON
object per line. SIGINT and SIGTERM stop the session cleanly (stopped announces, resume
data written).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bitswarm.errors import BitswarmError
from bitswarm.magnet import Magnet, printable
from bitswarm.metainfo import Torrent
from bitswarm.net.magnet import MagnetRuntime
from bitswarm.net.session import Session, TorrentOptions, TorrentRuntime

PLAIN_PERIOD_S = 5.0
# The longest a finished magnet download waits for the files to be hashed into its v2
# .torrent's piece layers before it stops anyway (the .torrent then stays without them).
TORRENT_FILE_TIMEOUT_S = 120.0
EXIT_OK, EXIT_INTERRUPTED = 0, 130


@dataclass(frozen=True, slots=True)
class TransferPlan:
    torrent: Torrent | None  # None: fetched from peers for ``magnet``
    folder: Path
    port: int
    options: TorrentOptions
    seed_ratio: float | None  # None: seed until stopped
    keep_seeding: bool
    as_json: bool
    max_up: float = 0.0
    max_down: float = 0.0
    encryption: str = "prefer"  # an EncryptionPolicy's value
    magnet: Magnet | None = None
    select: tuple[int, ...] | None = None  # files to get from a magnet link (overrides its 'so')
    dht: bool = False
    dht_bootstrap: tuple[str, ...] = ()
    dht_state_path: Path | None = None
    lsd: bool = False
    lsd_interface: str | None = None
    port_mapping: bool = False
    utp: bool = False


def _human_rate(rate: float) -> str:
    for unit in ("B/s", "KiB/s", "MiB/s", "GiB/s"):
        if rate < 1024 or unit == "GiB/s":
            return f"{rate:.0f} {unit}" if unit == "B/s" else f"{rate:.1f} {unit}"
        rate /= 1024
    raise AssertionError("unreachable")


class Display:
    def __init__(self, stream: TextIO, *, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.on_terminal = stream.isatty() and not as_json
        self._last_plain = 0.0

    def event(self, name: str, **fields: Any) -> None:
        if self.as_json:
            print(json.dumps({"event": name, **fields}), file=self.stream, flush=True)
            return
        # A message may carry a magnet link's display name: its control characters are escaped.
        message = printable(str(fields.get("message", "")))
        if self.on_terminal:
            print(f"\r\x1b[K{name}: {message}", file=self.stream, flush=True)
        else:
            print(f"{name}: {message}", file=self.stream, flush=True)

    def status(self, runtime: TorrentRuntime, now: float) -> None:
        status = runtime.status()
        fraction = status["pieces"] / max(status["num_pieces"], 1)
        down, up = status["download_rate"], status["upload_rate"]
        ratio = status["uploaded"] / max(status["size"], 1)
        left = status["size"] * (1 - fraction)
        eta = "--:--" if down < 1 or fraction >= 1 else time.strftime("%H:%M:%S", time.gmtime(left / down))
        if self.as_json:
            self.event("status", progress=round(fraction, 4), download_rate=round(down), upload_rate=round(up),
                       peers=status["peers"], seeds=status["seeds"], downloaded=status["downloaded"],
                       uploaded=status["uploaded"], ratio=round(ratio, 3))  # fmt: skip
            return
        bar = "#" * int(fraction * 20) + "-" * (20 - int(fraction * 20))
        line = (
            f"[{bar}] {fraction * 100:5.1f}%  down {_human_rate(down)}  up {_human_rate(up)}  "
            f"peers {status['peers']} ({status['seeds']} seeds)  ETA {eta}  ratio {ratio:.2f}"
        )
        if self.on_terminal:
            print(f"\r\x1b[K{line}", end="", file=self.stream, flush=True)
        elif now - self._last_plain >= PLAIN_PERIOD_S:
            self._last_plain = now
            print(line, file=self.stream, flush=True)


def session_for(plan: TransferPlan) -> Session:
    """A session (not started yet) with the plan's port, limits, encryption and discovery.
    A private torrent's session runs no DHT and no LSD (BEP 27): it would only write a
    routing table nobody uses."""
    public = plan.torrent is None or not plan.torrent.private
    return Session(
        port=plan.port, max_up=plan.max_up, max_down=plan.max_down, encryption=plan.encryption,
        dht=plan.dht and public, dht_bootstrap=plan.dht_bootstrap, dht_state_path=plan.dht_state_path,
        lsd=plan.lsd and public, lsd_interface=plan.lsd_interface, port_mapping=plan.port_mapping,
        utp=plan.utp,
    )  # fmt: skip


async def run_transfer(plan: TransferPlan) -> int:
    display = Display(sys.stdout if plan.as_json else sys.stderr, as_json=plan.as_json)
    session = session_for(plan)
    interrupted = False
    runtime: TorrentRuntime | None = None
    with stop_on_signals() as stop:
        try:
            await session.start()
            stop_waiter = asyncio.get_running_loop().create_task(stop.wait())
            try:
                runtime, magnet = await add_to_session(plan, session, display, stop_waiter)
                interrupted = runtime is None or await _transfer(plan, runtime, session, display, stop, stop_waiter)
                if magnet is not None and runtime is not None and runtime.finished.is_set():
                    # A v2 or hybrid link's .torrent gets its piece layers once the files are in.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(magnet.wait_for_torrent_file(), TORRENT_FILE_TIMEOUT_S)
            finally:
                stop_waiter.cancel()
        finally:
            await session.close()
    if not plan.keep_seeding and runtime is not None and runtime.finished.is_set() and not interrupted:
        forget_resume(runtime.resume_path)
    display.event("stopped", message="stopped cleanly")
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def forget_resume(path: Path) -> None:
    """After ``get --no-seed`` has verified every piece, its resume data has no use left (a
    later seed of the folder checks the files anyway): remove it, and its folder if that is
    now empty, as libtorrent's and aria2's tools leave nothing behind."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(OSError):  # not empty (other torrents' records) or gone
        path.parent.rmdir()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (the running loop's handlers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def add_to_session(
    plan: TransferPlan, session: Session, display: Display, stop_waiter: asyncio.Task[Any]
) -> tuple[TorrentRuntime | None, MagnetRuntime | None]:
    """The plan's torrent running in ``session``: added at once, or for a magnet link once
    its metadata is in (with the link's runtime); (None, None) when stopped first."""
    if plan.magnet is not None:
        fetched = await fetch_metadata(plan, session, display, stop_waiter)
        return fetched if fetched is not None else (None, None)
    assert plan.torrent is not None
    return await session.add(plan.torrent, plan.folder, plan.options), None


async def _transfer(
    plan: TransferPlan,
    runtime: TorrentRuntime,
    session: Session,
    display: Display,
    stop: asyncio.Event,
    stop_waiter: asyncio.Task[Any],
) -> bool:
    """Show the torrent's progress until it is done or stopped; True when stopped before the end."""
    torrent = runtime.torrent
    display.event("started", message=f"{torrent.name} on port {session.port}", port=session.port,
                  pieces=runtime.status()["pieces"], num_pieces=torrent.num_pieces)  # fmt: skip
    announced_finish = runtime.finished.is_set()
    finish_waiter = asyncio.get_running_loop().create_task(runtime.finished.wait())
    try:
        while not stop.is_set():
            display.status(runtime, time.monotonic())
            if runtime.finished.is_set() and not announced_finish:
                announced_finish = True
                display.event("finished", message=f"{torrent.name}: every piece verified")
            if runtime.finished.is_set():
                ratio = runtime.status()["uploaded"] / max(torrent.total_size, 1)
                if not plan.keep_seeding or (plan.seed_ratio is not None and ratio >= plan.seed_ratio):
                    break
            waiters = {stop_waiter} if finish_waiter.done() else {stop_waiter, finish_waiter}
            await asyncio.wait(waiters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
    finally:
        finish_waiter.cancel()
    return stop.is_set() and not runtime.finished.is_set()


async def fetch_metadata(
    plan: TransferPlan, session: Session, display: Display, stop_waiter: asyncio.Task[Any]
) -> tuple[TorrentRuntime, MagnetRuntime] | None:
    """The metadata phase of ``bitswarm get MAGNET``: the torrent's runtime once the info
    dictionary is in and saved, or None when stopped first. Raises BitswarmError."""
    assert plan.magnet is not None
    magnet = await session.add_magnet(plan.magnet, plan.folder, plan.options, select=plan.select)
    display.event("fetching", message=f"{magnet.name}: fetching the metadata from peers on port {session.port}",
                  port=session.port, info_hash=magnet.info_hash.hex())  # fmt: skip
    ready = asyncio.get_running_loop().create_task(magnet.ready.wait())
    try:
        await asyncio.wait({ready, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if not magnet.ready.is_set():
        return None
    try:
        runtime = await magnet.wait_for_torrent()
    except BitswarmError as error:
        raise BitswarmError(f"{magnet.name}: {error}") from None
    display.event("metadata", message=f"{runtime.torrent.name}: metadata received, saved to {magnet.torrent_path}",
                  torrent=str(magnet.torrent_path), num_pieces=runtime.torrent.num_pieces)  # fmt: skip
    return runtime, magnet
