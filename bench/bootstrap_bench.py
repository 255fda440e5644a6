"""A first download at home of a bare info-hash magnet link, joining the DHT from nothing
through the bootstrap names: bitswarm against libtorrent in the same network of namespaces.

    python3 bench/bootstrap_bench.py [--rounds 3] [--size-mib 4]

The set-up is tests/interop/home_network.py's, built with iproute2 (as root): an
"internet" namespace with a DNS server (Debian's dnsmasq) answering router.bittorrent.com
and router.utorrent.com with a `bitswarm dht` node there, dht.libtorrent.org with a second
node in "internet2" (joined to the first), dht.transmissionbt.com with nothing; a bitswarm
seed in its own namespace, on the DHT only; and a "home" namespace whose resolver is that
DNS server. Each round, in turn (alternating the order), runs there with nothing saved:

- `bitswarm get magnet:?xt=urn:btih:HEX --no-seed --json` with the default settings but LSD
  (the default bootstrap names, resolved through DNS);
- bench/lt_dht_peer.py magnet --home: libtorrent 2.0 with its stock settings but for its two
  DHT IP restrictions (a test network is one /24): its default bootstrap node,
  dht.libtorrent.org:25401, found through DNS.

The time is from the start of the client's process to the metadata, and to completion, as
this script sees the client's lines arrive. Every copy is compared with the original.
Traffic stays inside the namespaces; they are removed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from bitswarm.create import CreateOptions, create  # noqa: E402
from bitswarm.metainfo import Torrent, TorrentVersion  # noqa: E402
from interop.home_network import BITSWARM, open_dht_seed, open_internet, use_dns  # noqa: E402
from interop.netns import NamespaceNetwork, open_test_network  # noqa: E402

LIBTORRENT_PYTHON = "/usr/bin/python3"
LT_PEER = REPO / "bench" / "lt_dht_peer.py"
MIB = 1 << 20
RUN_TIMEOUT_S = 180.0


def run_client(network: NamespaceNetwork, argv: list[str], started_at: float) -> dict[str, float]:
    """Seconds from ``started_at`` to each event the client prints (metadata, finished)."""
    process = subprocess.Popen(network.argv("home", argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    lines: list[str] = []
    assert process.stdout is not None
    try:
        deadline = started_at + RUN_TIMEOUT_S
        for line in process.stdout:
            lines.append(line)
            event = json.loads(line).get("event")
            if event in ("metadata", "finished") and event not in seen:
                seen[event] = time.monotonic() - started_at
            if event == "error":
                raise RuntimeError(line)
            if "finished" in seen or time.monotonic() > deadline:
                break
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=60)
    if "metadata" in seen and process.returncode == -11:
        # libtorrent 2.0.8 here dies of SIGSEGV now and then after its first piece (about
        # one run in ten); the metadata time stands, the run is counted as a crash.
        print(f"# {argv[2]} died of SIGSEGV after the metadata", flush=True)
        return seen
    if "finished" not in seen:
        raise RuntimeError(f"{argv[2:4]}: no finish (exit {process.returncode}): {lines[-3:]} {errors[-500:]}")
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=4)
    args = parser.parse_args()
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, python3 bench/bootstrap_bench.py "
          f"--rounds {args.rounds} --size-mib {args.size_mib}")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bitswarm-bootstrap-bench-"))
    results: dict[str, list[dict[str, float]]] = {"bitswarm": [], "libtorrent": []}
    try:
        source = work / "seed" / "data.bin"
        source.parent.mkdir()
        source.write_bytes(random.Random(15).randbytes(args.size_mib * MIB))
        torrent_path = work / "data.torrent"
        torrent_path.write_bytes(create(source, CreateOptions(version=TorrentVersion.HYBRID)))
        torrent = Torrent.decode(torrent_path.read_bytes())
        link = f"magnet:?xt=urn:btih:{(torrent.info_hash_v1 or b'').hex()}"
        config = work / "client.toml"
        config.write_text("lsd = false\n")
        with (
            open_test_network(["internet", "internet2", "seed", "home"]) as network,
            open_internet(network, work) as internet,
            use_dns(network, "home", internet.dns),
            open_dht_seed(network, internet, torrent_path, source.parent, work / "seed.dat"),
        ):
            for round_index in range(args.rounds):
                order = ["bitswarm", "libtorrent"] if round_index % 2 == 0 else ["libtorrent", "bitswarm"]
                for client in order:
                    out = work / f"{client}-{round_index}"
                    state = work / f"state-{client}-{round_index}"
                    if client == "bitswarm":
                        argv = ["env", f"XDG_STATE_HOME={state}", *BITSWARM, "get", link, "-o", str(out),
                                    "--port", "6881", "--no-seed", "--config", str(config), "--json"]  # fmt: skip
                    else:
                        argv = [LIBTORRENT_PYTHON, str(LT_PEER), "magnet", link, str(out), "--home"]
                    figures = run_client(network, argv, time.monotonic())
                    if "finished" in figures and (out / "data.bin").read_bytes() != source.read_bytes():
                        raise RuntimeError(f"{client}: the copy differs")
                    results[client].append(figures)
                    print(f"# round {round_index + 1}, {client}: metadata {figures['metadata']:.2f} s, "
                              f"finished {figures.get('finished', float('nan')):.2f} s", flush=True)  # fmt: skip
                    shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"| first get of a bare info-hash, {args.size_mib} MiB, medians of {args.rounds} | metadata s | finished s |")
    print("|---|---:|---:|")
    for client, runs in results.items():
        metadata = statistics.median(run["metadata"] for run in runs)
        finished = statistics.median(run["finished"] for run in runs if "finished" in run)
        print(f"| {client} | {metadata:.2f} | {finished:.2f} |")
    ours, theirs = (statistics.median(r["metadata"] for r in results[c]) for c in ("bitswarm", "libtorrent"))
    print(f"| bitswarm / libtorrent, metadata | {ours / theirs:.2f}x | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
