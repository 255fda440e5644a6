"""Benchmark: a BEP 19 web seed download from nginx on loopback, bitswarm beside libtorrent.

    python3 bench/webseed_bench.py [--size-mib 64] [--repeat 3]

One file of --size-mib MiB (seeded pseudo-random bytes, in the page cache), a v1 torrent
with bitswarm's automatic piece length and nginx's URL as its only web seed; no peers.
One nginx (Debian's nginx-light, single process, tests/webseed_nginx.py) serves it for
the whole run. Each round, interleaved, --repeat times: `bitswarm get --no-seed` (a
subprocess, as a user runs it) and libtorrent 2.0.8 (tests/lt_webseed.py under
/usr/bin/python3) download it into an empty folder. Time is wall time from starting the
process to its exit, start-up included, and to its completion (bitswarm's ``finished``
event; libtorrent's ``is_seeding``, then its own add-to-complete time is shown too).
bitswarm's stop after ``finished`` makes the files durable (fsync), which libtorrent's
does not. bitswarm's bytecode is compiled first, as an install does (without it each run
compiles its modules again: a tenth of a second). nginx's access log gives each client's
requests and connections. Every copy is compared with the original. Each run prints the
CPU seconds other processes used during it (``measure.Noise``: the machine is shared), so
a noisy round shows. Only processes this benchmark started are stopped, by PID. This is a
measurement, not a test.
"""

from __future__ import annotations

import argparse
import compileall
import filecmp
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from measure import Noise, commit, machine  # noqa: E402

import bitswarm  # noqa: E402
from bitswarm.create import CreateOptions, create  # noqa: E402
from bitswarm.metainfo import Torrent, TorrentVersion  # noqa: E402
from webseed_nginx import Nginx, nginx_binary, serve_with_nginx  # noqa: E402

LIBTORRENT_PYTHON = "/usr/bin/python3"
LT_WEBSEED = ROOT / "tests" / "lt_webseed.py"
RUN_TIMEOUT_S = 300.0


def run_bitswarm(torrent_path: Path, out: Path) -> dict[str, float]:
    """Wall time to exit, and to the ``finished`` event (every piece verified and written;
    what follows is the stop: the files' fsync, the resume data, closing)."""
    started = time.monotonic()
    finished_s = 0.0
    with subprocess.Popen(
        [sys.executable, "-m", "bitswarm", "get", str(torrent_path), "-o", str(out), "--port", "0", "--no-seed",
         "--no-dht", "--no-lsd", "--no-pex", "--no-port-mapping", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:  # each event is flushed as it happens
            if not finished_s and json.loads(line).get("event") == "finished":
                finished_s = time.monotonic() - started
        _stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    if process.returncode != 0 or not finished_s:
        raise SystemExit(f"bitswarm get failed: {stderr.strip()}")
    return {"wall_s": time.monotonic() - started, "finished_s": finished_s}


def run_libtorrent(torrent_path: Path, out: Path) -> dict[str, float]:
    """Wall time to exit, and to completion (``completed_monotonic``: the same clock)."""
    started = time.monotonic()
    done = subprocess.run(
        [LIBTORRENT_PYTHON, str(LT_WEBSEED), str(torrent_path), str(out), "--timeout", str(RUN_TIMEOUT_S)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S + 30, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"libtorrent failed: {done.stdout.strip()} {done.stderr.strip()}")
    result = json.loads(done.stdout)
    return {
        "wall_s": time.monotonic() - started,
        "finished_s": float(result["completed_monotonic"]) - started,
        "own_s": float(result["elapsed_s"]),
    }


def traffic(nginx: Nginx, skip: int) -> tuple[int, int, int]:
    """(requests, connections, body bytes) in the access log after its first ``skip`` lines."""
    rows = nginx.requests()[skip:]
    return len(rows), len({row[0] for row in rows}), sum(row[3] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("nginx is not installed (Debian package nginx-light)")
    # PYTHONDONTWRITEBYTECODE (set on this machine) stops Python writing it as it imports.
    compileall.compile_dir(Path(bitswarm.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="webseed-bench-") as temp:
        work = Path(temp)
        www = work / "www"
        www.mkdir()
        original = www / "bench.bin"
        rng = random.Random(19)
        with original.open("wb") as file:
            for _mib in range(args.size_mib):  # randbytes takes at most 256 MiB at once
                file.write(rng.randbytes(1 << 20))
        with serve_with_nginx(www, work / "nginx", binary) as nginx:
            data = create(original, CreateOptions(version=TorrentVersion.V1, web_seeds=[nginx.url + "bench.bin"]))
            torrent_path = work / "bench.torrent"
            torrent_path.write_bytes(data)
            piece_kib = Torrent.decode(data).piece_length >> 10
            print(f"{machine()}; bitswarm at {commit()}")
            print(f"{args.size_mib} MiB, {piece_kib} KiB pieces, nginx at {nginx.url}, {args.repeat} rounds")
            times: dict[str, list[float]] = {"bitswarm": [], "libtorrent": []}
            finished: dict[str, list[float]] = {"bitswarm": [], "libtorrent": []}
            for round_number in range(args.repeat):
                for name, runner in (("bitswarm", run_bitswarm), ("libtorrent", run_libtorrent)):
                    out = work / f"{name}-{round_number}"
                    out.mkdir()
                    skip = len(nginx.requests())
                    noise = Noise()
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    result = runner(torrent_path, out)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    other_cpu_s, _wall_s = noise.measure()
                    if not filecmp.cmp(original, out / "bench.bin", shallow=False):
                        raise SystemExit(f"{name}: the copy differs from the original")
                    requests, connections, sent = traffic(nginx, skip)
                    times[name].append(result["wall_s"])
                    finished[name].append(result["finished_s"])
                    own = f", own {result['own_s']:.3f} s" if "own_s" in result else ""
                    print(
                        f"round {round_number + 1} {name:10} {result['wall_s']:.3f} s "
                        f"(finished {result['finished_s']:.3f} s{own}, CPU {cpu_s:.2f} s)  "
                        f"{requests} requests over {connections} connections, {sent >> 20} MiB, "
                        f"other processes {other_cpu_s:.2f} CPU s"
                    )
                    shutil.rmtree(out)
    for label, table in (("to exit", times), ("to finished", finished)):
        best = {name: min(values) for name, values in table.items()}
        median = {name: statistics.median(values) for name, values in table.items()}
        for name in table:
            print(f"{label:11} {name:10} best {best[name]:.3f} s  median {median[name]:.3f} s")
        print(f"{label:11} bitswarm / libtorrent: best {best['bitswarm'] / best['libtorrent']:.2f}x, "
              f"median {median['bitswarm'] / median['libtorrent']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
