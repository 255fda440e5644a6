"""Torrent pages of `bitswarm index` under wrk, on a database made before: the torrent-page
part of bench/index_bench.py's pages, without the import and the searches, so that two
trees can be measured in turn on the same machine.

    python3 bench/torrent_page_load.py --db /tmp/idx.db|--db-url URL --entries 20000 [--runs 2] [--src OTHER_TREE/src]

Each run: `wrk -t2 -c16 -d10s` on one entry's page, then on 1,000 random entries' pages in
turn; requests/s, latency, the server's CPU per request and other processes' CPU (the
machine's load). The database is migrated by the tree measured: keep a copy for an older
tree.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import index_bench as bench
from measure import Noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", type=Path, help="an SQLite database of generated entries")
    where.add_argument("--db-url", help="or a database URL (postgresql://...) of generated entries")
    parser.add_argument("--entries", type=int, required=True, help="how many entries it holds (ids 1..N)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--src", type=Path, help="the tree to serve (default: this one)")
    args = parser.parse_args()
    if args.src is not None:
        source = str(args.src.resolve())
        popen = subprocess.Popen

        # index_bench.index_server starts the site with this tree's src on PYTHONPATH.
        def with_source(command: Any, **options: Any) -> Any:
            if "env" in options:
                options["env"] = dict(options["env"], PYTHONPATH=source)
            return popen(command, **options)

        subprocess.Popen = with_source  # type: ignore[assignment, misc]
    folder = Path(tempfile.mkdtemp(prefix="bitswarm-torrent-page-"))
    rng = random.Random(bench.SEED)
    entry_id = rng.randint(1, args.entries)
    rotating = [f"/t/{rng.randint(1, args.entries)}" for _ in range(1000)]
    script = folder / "pages.lua"
    script.write_text(bench.ROTATING_PAGES_LUA.format(paths=", ".join(f'"{path}"' for path in rotating)))
    url = args.db_url or f"sqlite:///{args.db.resolve()}"
    with bench.index_server(folder, url) as (site, pid):
        for path in [f"/t/{entry_id}", *rotating]:
            bench.fetch(site + path)
        for _run in range(args.runs):
            for name, target, lua in ((f"/t/{entry_id}", f"/t/{entry_id}", None), ("1,000 entries", "/", script)):
                noise = Noise()
                cpu_before = bench.process_cpu_s(pid)
                rate, p50, p99, errors = bench.run_wrk(site + target, 10, 16, lua)
                cpu_ms = (bench.process_cpu_s(pid) - cpu_before) * 1000 / max(1.0, rate * 10)
                other, wall = noise.measure()
                print(f"{name}: {rate:,.0f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors, "
                      f"server {cpu_ms:.3f} ms CPU/request, other processes {other:.1f} CPU s in {wall:.0f} s",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
