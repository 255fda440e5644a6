"""``bitswarm demo``: a whole swarm on loopback, in one process, in well under a minute.

A tracker, one seeder whose upload is held to 1 MiB/s, and four downloaders of a
generated 8 MiB file. Alone the seeder would need 32 seconds to send four copies; the
downloaders pass pieces on to each other as soon as they verify them, so the swarm
fills up far sooner. Every copy is verified at the end and everything stops cleanly.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from bitswarm import __version__
from bitswarm.cli import human_size
from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentRuntime
from bitswarm.net.tracker import TrackerServer, TrackerService
from bitswarm.storage.atomic import replace_durably
from bitswarm.storage.verify import verify
from bitswarm.tracker.config import TrackerConfig
from bitswarm.tracker.memory import MemoryStore
from bitswarm.tracker.swarm import SwarmCounts

SAMPLE_BYTES = 8 * 1024 * 1024
SEED_UPLOAD = 1024 * 1024
DOWNLOADER_UPLOAD = 2 * 1024 * 1024
DOWNLOADERS = 4
DEADLINE_S = 50.0


def make_sample(folder: Path, seed: int = 2026) -> Path:
    """Write the sample content under ``folder/bitswarm-sample`` and return that path."""
    rng = random.Random(seed)
    root = folder / "bitswarm-sample"
    (root / "notes").mkdir(parents=True, exist_ok=True)
    (root / "video.bin").write_bytes(rng.randbytes(SAMPLE_BYTES - 4321))
    (root / "notes" / "readme.txt").write_bytes(rng.randbytes(4321))
    return root


def run_demo(keep: Path | None) -> None:
    work = keep or Path(tempfile.mkdtemp(prefix="bitswarm-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_tour(work))
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _step(text: str) -> None:
    click.secho(f"\n== {text}", bold=True)


async def _tour(work: Path) -> None:
    _step("1. a tracker on loopback")
    store = MemoryStore(peer_timeout_s=3900, rng=random.Random())
    tracker = TrackerServer(TrackerService(TrackerConfig(http=("127.0.0.1:0",), udp=()), store))
    await tracker.start()
    host, port = tracker.http_addresses[0]
    click.echo(f"bitswarm tracker at http://{host}:{port}/announce")
    sessions: list[Session] = []
    try:
        _step("2. a sample folder and its torrent (hybrid v1 + v2)")
        sample = make_sample(work / "seeder")
        options = CreateOptions(
            version=TorrentVersion.HYBRID,
            piece_length=64 * 1024,
            trackers=(f"http://{host}:{port}/announce",),
            created_by=f"bitswarm/{__version__}",
            creation_date=int(time.time()),
        )
        data = create(sample, options)
        torrent_path = work / "bitswarm-sample.torrent"
        replace_durably(torrent_path, data)
        torrent = Torrent.decode(data)
        click.echo(
            f"{torrent_path.name}: {human_size(torrent.total_size)} in {torrent.num_pieces} pieces; "
            f"{torrent.magnet().format()[:80]}..."
        )

        _step(f"3. one seeder (upload held to {human_size(SEED_UPLOAD)}/s) and {DOWNLOADERS} downloaders")
        seeder = Session(port=0, host="127.0.0.1", max_up=SEED_UPLOAD)
        sessions.append(seeder)
        await seeder.start()
        seeding = await seeder.add(torrent, work / "seeder")
        assert seeding.finished.is_set(), "the seeder must have every piece"
        await _wait_until(lambda: store.scrape_now([torrent.info_hash_v1 or b""]), "the seeder's announce")
        downloads: list[TorrentRuntime] = []
        for number in range(DOWNLOADERS):
            session = Session(port=0, host="127.0.0.1", max_up=DOWNLOADER_UPLOAD)
            sessions.append(session)
            await session.start()
            downloads.append(await session.add(torrent, work / f"downloader-{number + 1}"))
        started = time.monotonic()
        await _show_progress(seeding, downloads, started)
        elapsed = time.monotonic() - started

        _step("4. every copy verified")
        for number in range(DOWNLOADERS):
            report = verify(torrent, work / f"downloader-{number + 1}")
            click.echo(f"downloader-{number + 1}: {report.good_pieces} of {len(report.pieces)} pieces good")
            if not report.is_complete:
                raise click.ClickException(f"downloader-{number + 1}'s copy is incomplete")
        from_seed = seeding.status()["uploaded"]
        among = sum(download.status()["uploaded"] for download in downloads)
        alone = DOWNLOADERS * torrent.total_size / SEED_UPLOAD
        click.echo(
            f"\n{DOWNLOADERS} copies of {human_size(torrent.total_size)} in {elapsed:.1f} s; the seeder alone "
            f"would have needed {alone:.0f} s.\nThe seeder sent {human_size(from_seed)}; the downloaders sent "
            f"{human_size(among)} to each other."
        )
    finally:
        _step("5. stopping everything")
        for session in sessions:
            await session.close()
        await tracker.close()
        click.echo("demo finished")


async def _wait_until(probe: Callable[[], dict[bytes, SwarmCounts]], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(count.seeders for count in probe().values()):
            return
        await asyncio.sleep(0.05)
    raise click.ClickException(f"timed out waiting for {what}")


async def _show_progress(seeding: TorrentRuntime, downloads: list[TorrentRuntime], started: float) -> None:
    interactive = sys.stdout.isatty()
    last_print = 0.0
    while not all(download.finished.is_set() for download in downloads):
        now = time.monotonic()
        if now - started > DEADLINE_S:
            raise click.ClickException(f"the swarm did not fill up within {DEADLINE_S:.0f} s")
        if interactive or now - last_print >= 1.0:
            last_print = now
            columns = []
            for number, download in enumerate(downloads, 1):
                status = download.status()
                percent = 100 * status["pieces"] / status["num_pieces"]
                columns.append(f"d{number} {percent:5.1f}% up {human_size(int(status['upload_rate']))}/s")
            seed_rate = human_size(int(seeding.status()["upload_rate"]))
            line = f"{now - started:5.1f}s  seed up {seed_rate}/s | " + " | ".join(columns)
            click.echo(f"\r\x1b[K{line}" if interactive else line, nl=not interactive)
        await asyncio.sleep(0.2)
    if interactive:
        click.echo()
