"""``bitswarm demo``: the tour a newcomer runs first.

Until the peer engine lands it shows the foundation on generated content: make a hybrid
torrent of a small folder, read it back, verify the content, damage one byte and find
the damaged piece, then repair it.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

import click

from bitswarm import __version__
from bitswarm.cli import format_facts, format_report, human_size, torrent_facts, write_atomically
from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.storage.verify import verify

# Sizes chosen to show pieces spanning files, a file smaller than a piece and an empty one.
_SAMPLE_FILES = {
    ("video.bin",): 9 * 1024 * 1024 + 12345,
    ("notes", "readme.txt"): 4321,
    ("notes", "empty.txt"): 0,
    ("music", "track01.bin"): 3 * 1024 * 1024,
}


def make_sample(folder: Path, seed: int = 2026) -> Path:
    """Write the sample content under ``folder/bitswarm-sample`` and return that path."""
    rng = random.Random(seed)
    root = folder / "bitswarm-sample"
    for relative, size in _SAMPLE_FILES.items():
        target = root.joinpath(*relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(size))
    return root


def run_demo(keep: Path | None) -> None:
    work = keep or Path(tempfile.mkdtemp(prefix="bitswarm-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        _tour(work)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _step(text: str) -> None:
    click.secho(f"\n== {text}", bold=True)


def _tour(work: Path) -> None:
    _step("1. generating sample content")
    sample = make_sample(work)
    click.echo(f"{sample}: {len(_SAMPLE_FILES)} files, {human_size(sum(_SAMPLE_FILES.values()))}")

    _step("2. bitswarm create (hybrid v1+v2 torrent)")
    started = time.perf_counter()
    options = CreateOptions(
        version=TorrentVersion.HYBRID,
        trackers=("http://127.0.0.1:6969/announce",),
        comment="made by bitswarm demo",
        created_by=f"bitswarm/{__version__}",
        creation_date=int(time.time()),
    )
    data = create(sample, options)
    torrent_path = work / "bitswarm-sample.torrent"
    write_atomically(torrent_path, data)
    click.echo(f"{torrent_path} written in {time.perf_counter() - started:.2f} s")

    _step("3. bitswarm info")
    torrent = Torrent.decode(torrent_path.read_bytes())
    click.echo(format_facts(torrent_facts(torrent)))

    _step("4. bitswarm verify (intact content)")
    report = verify(torrent, work)
    click.echo(format_report(report))
    if not report.is_complete:
        raise click.ClickException("the intact sample failed verification")

    _step("5. flipping one byte in video.bin, verifying again")
    victim = sample / "video.bin"
    position = 5 * 1024 * 1024 + 7
    with victim.open("r+b") as stream:
        stream.seek(position)
        original = stream.read(1)
        stream.seek(position)
        stream.write(bytes([original[0] ^ 0xFF]))
    damaged = verify(torrent, work)
    click.echo(format_report(damaged))
    bad = [index for index, good in enumerate(damaged.pieces) if not good]
    entry = next(entry for entry in torrent.files if entry.path == ("bitswarm-sample", "video.bin"))
    expected = (entry.offset + position) // torrent.piece_length
    if bad != [expected]:
        raise click.ClickException(f"expected piece {expected} to be bad, found {bad}")
    click.echo(f"piece {expected} caught, as expected")

    _step("6. repairing the byte")
    with victim.open("r+b") as stream:
        stream.seek(position)
        stream.write(original)
    if not verify(torrent, work).is_complete:
        raise click.ClickException("the repaired sample failed verification")
    click.echo("all pieces good again: demo finished")
