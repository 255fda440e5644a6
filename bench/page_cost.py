"""Instructions per torrent page of `bitswarm index`, counted by callgrind: a measure the
load of other processes on the machine does not change (wrk's requests per second and
even CPU seconds per request do, by a factor of two on a shared 2-core VM).

    python3 bench/page_cost.py --db /tmp/idx.db --entries 20000 [--requests 300] [--rotating 200]
        [--src OTHER_TREE/src]

The site runs under `valgrind --tool=callgrind` with counting off; after a warm-up visit of
every page measured, counting is switched on for exactly ``--requests`` visits on one
keep-alive connection, one at a time, then off. Only the site process's user-space
instructions count (its threads too, aiosqlite's included; the kernel's socket work and
PostgreSQL's server do not). ``--rotating N`` visits N random entries in turn instead of
one. The database (made by bench/index_bench.py ``--keep-sqlite``) is migrated by the
tree measured: keep a copy for an older tree.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

START_TIMEOUT_S = 300.0
SEED = 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", type=Path, required=True, help="an SQLite database of generated entries")
    parser.add_argument("--entries", type=int, required=True, help="how many entries it holds (ids 1..N)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rotating", type=int, default=0, help="visit this many entries in turn (0: one)")
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent / "src")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bitswarm-page-cost-"))
    config = folder / "index.toml"
    config.write_text("scrape_other_trackers = false\n")
    out = folder / "callgrind.out"
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", sys.executable, "-m",
        "bitswarm", "index", "--bind", "127.0.0.1:0", "--db", f"sqlite:///{args.db.resolve()}", "--config", str(config),
    ]  # fmt: skip
    environment = dict(os.environ, PYTHONPATH=str(args.src.resolve()))
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=folder,
                              env=environment)  # fmt: skip
    try:
        line = server.stdout.readline() if server.stdout else ""
        address = re.search(r"http://([\d.]+):(\d+)/", line)
        if address is None:
            raise SystemExit(f"the site did not start: {line!r}")
        rng = random.Random(SEED)
        paths = [f"/t/{rng.randint(1, args.entries)}" for _ in range(max(1, args.rotating))]
        connection = http.client.HTTPConnection(address.group(1), int(address.group(2)), timeout=START_TIMEOUT_S)

        def visit(path: str) -> None:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{path}: {response.status}")

        for path in paths:
            visit(path)
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True, capture_output=True)
        for number in range(args.requests):
            visit(paths[number % len(paths)])
        subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
    finally:
        server.terminate()
        server.wait()
    total = 0
    for dump in folder.glob("callgrind.out*"):
        for text in dump.read_text(errors="replace").splitlines():
            if text.startswith("totals:"):
                total += int(text.split()[1])
    kind = f"{len(paths)} entries in turn" if args.rotating else "one entry"
    print(f"{args.src}: {args.requests} visits, {kind}: {total / args.requests / 1e6:.2f} M instructions per page")


if __name__ == "__main__":
    main()
