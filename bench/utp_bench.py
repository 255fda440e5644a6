"""Benchmark: uTP (BEP 29) throughput on loopback, bitswarm against libtorrent 2.0 (issue 15).

    python3 bench/utp_bench.py [--size-mib 256] [--repeat 1]

Three pairs over uTP only (libtorrent with TCP off both ways, `--utp-only` of
tests/interop/lt_driver.py), one file of seeded pseudo-random bytes with 1 MiB pieces:

- libtorrent -> bitswarm: libtorrent seeds (`seed-here`); a bitswarm Session in this
  process (uTP on, default asyncio loop) dials it; time from the dial to every piece
  verified;
- bitswarm -> libtorrent: the Session seeds; libtorrent downloads (`download-from`); its
  own time from start to seeding (its session start and empty check included, well
  under a second);
- libtorrent -> libtorrent: the same two driver commands against each other.

Every copy is compared with the source by SHA-1. Only processes this benchmark started
are stopped, by PID; every wait has a deadline. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import platform
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session

LT_DRIVER = Path(__file__).resolve().parents[1] / "tests" / "interop" / "lt_driver.py"
LIBTORRENT_PYTHON = "/usr/bin/python3"
PIECE = 1 << 20
TIMEOUT_S = 900.0


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - comparing copies, not security
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def driver(*args: str | Path) -> list[str]:
    return [LIBTORRENT_PYTHON, str(LT_DRIVER), *(str(arg) for arg in args)]


async def json_line(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
    if not line:
        raise RuntimeError("lt_driver ended without a result")
    result = json.loads(line)
    if "error" in result:
        raise RuntimeError(result["error"])
    assert isinstance(result, dict)
    return result


async def start_lt_seed(torrent_path: Path, folder: Path) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        *driver("seed-here", torrent_path, folder, "--utp-only", "--timeout", str(TIMEOUT_S)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    seeding = await json_line(process)
    return process, int(seeding["listen_port"])


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None:
        process.stdin.write(b"\n")
        await process.stdin.drain()
    try:
        await asyncio.wait_for(process.wait(), 30.0)
    except TimeoutError:
        process.kill()
        await process.wait()


async def lt_to_bitswarm(torrent_path: Path, torrent: Torrent, source: Path, work: Path) -> float:
    process, port = await start_lt_seed(torrent_path, source.parent)
    session = Session(port=0, host="127.0.0.1", utp=True)
    await session.start()
    try:
        download = await session.add(torrent, work)
        started = time.monotonic()
        await download.connect(("127.0.0.1", port))
        await asyncio.wait_for(download.finished.wait(), TIMEOUT_S)
        elapsed = time.monotonic() - started
        assert session.utp is not None
        assert session.utp.opened["outgoing"] >= 1, "not over uTP"
    finally:
        await session.close()
        await stop(process)
    return elapsed


async def lt_download(torrent_path: Path, work: Path, port: int) -> float:
    process = await asyncio.create_subprocess_exec(
        *driver(
            "download-from",
            torrent_path,
            work,
            "--peer",
            f"127.0.0.1:{port}",
            "--utp-only",
            "--timeout",
            str(TIMEOUT_S),
        ),
        stdout=asyncio.subprocess.PIPE,
    )
    result = await json_line(process)
    await process.wait()
    if not all(peer.get("utp") for peer in result["peers"]):
        raise RuntimeError(f"a peer not over uTP: {result['peers']}")
    return float(result["elapsed_s"])


async def bitswarm_to_lt(torrent_path: Path, torrent: Torrent, source: Path, work: Path) -> float:
    session = Session(port=0, host="127.0.0.1", utp=True)
    await session.start()
    try:
        await session.add(torrent, source.parent)
        return await lt_download(torrent_path, work, session.port)
    finally:
        await session.close()


async def lt_to_lt(torrent_path: Path, source: Path, work: Path) -> float:
    process, port = await start_lt_seed(torrent_path, source.parent)
    try:
        return await lt_download(torrent_path, work, port)
    finally:
        await stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="utp-bench-") as temporary:
        root = Path(temporary)
        source = root / "seed" / "payload.bin"
        source.parent.mkdir()
        rng = random.Random(29)
        with source.open("wb") as out:
            for _ in range(args.size_mib):
                out.write(rng.randbytes(1 << 20))
        metainfo = create(source, CreateOptions(version=TorrentVersion.V1, piece_length=PIECE))
        torrent_path = root / "payload.torrent"
        torrent_path.write_bytes(metainfo)
        torrent = Torrent.decode(metainfo)
        expected = sha1_of(source)
        names = ("libtorrent->bitswarm", "bitswarm->libtorrent", "libtorrent->libtorrent")
        results: dict[str, list[float]] = {name: [] for name in names}
        for run in range(args.repeat):
            for name in names:
                work = root / f"get-{run}-{name.replace('->', '-')}"
                work.mkdir()
                if name == "libtorrent->bitswarm":
                    seconds = asyncio.run(lt_to_bitswarm(torrent_path, torrent, source, work))
                elif name == "bitswarm->libtorrent":
                    seconds = asyncio.run(bitswarm_to_lt(torrent_path, torrent, source, work))
                else:
                    seconds = asyncio.run(lt_to_lt(torrent_path, source, work))
                if sha1_of(work / "payload.bin") != expected:
                    raise RuntimeError(f"{name}: the copy differs from the source")
                subprocess.run(["rm", "-rf", str(work)], check=True)
                results[name].append(seconds)
                print(
                    f"{name}: {args.size_mib} MiB in {seconds:.2f} s = {args.size_mib / seconds:.1f} MiB/s", flush=True
                )
    best = {name: min(times) for name, times in results.items()}
    reference = best["libtorrent->libtorrent"]
    print(
        json.dumps(
            {
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "size_mib": args.size_mib,
                "best_s": best,
                "mib_per_s": {name: round(args.size_mib / seconds, 1) for name, seconds in best.items()},
                "ratio_to_libtorrent": {name: round(reference / seconds, 3) for name, seconds in best.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
