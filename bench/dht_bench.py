"""DHT lookups in simulated networks: rounds and messages per lookup, and the core's speed.

    python3 bench/dht_bench.py [--sizes 500 5000] [--lookups 50] [--seed 1] [--loss 0.0]

Each network is built from real ``DHTNode`` cores (``bitswarm.dht.simnet``): every node
joins through a random earlier one. Then, per lookup, ANNOUNCERS random nodes announce a
fresh info-hash and another random node searches for it. For the searches the table
gives the hops in sequence (rounds), the queries the searcher sent, the datagrams the
searcher sent and received meanwhile (its queries, their answers, and the pings and
queries of nodes that learn of it), the virtual time it took (latency 10-100 ms per
datagram) and whether every announced peer was found. Last, the wall-clock cost of the
core answering get_peers queries, in queries per second on one core.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bitswarm.dht import krpc
from bitswarm.dht.krpc import GetPeers, Query
from bitswarm.dht.node import DHTNode
from bitswarm.dht.simnet import SimDHT

ANNOUNCERS = 3


def measure(size: int, lookups: int, seed: int, loss: float) -> dict[str, float]:
    net = SimDHT(seed=seed)
    started = time.perf_counter()
    addresses = net.build(size)
    build_s = time.perf_counter() - started
    net.loss = loss
    rounds, queries, datagrams, times, found = [], [], [], [], 0
    for _ in range(lookups):
        info_hash = net.rng.randbytes(20)
        chosen = net.rng.sample(addresses, ANNOUNCERS + 1)
        for port, address in enumerate(chosen[:ANNOUNCERS], start=1000):
            lookup_id, outputs = net.nodes[address].get_peers(info_hash, net.now, announce_port=port)
            net.emit(address, outputs)
            net.wait_lookup(address, lookup_id)
        net.run_until(None, max_time_s=30.0)
        searcher = net.nodes[chosen[-1]]
        # The searcher's own traffic: the rest of the network refreshes its buckets meanwhile.
        before, began = searcher.stats.sent + searcher.stats.received, net.now
        lookup_id, outputs = searcher.get_peers(info_hash, net.now)
        net.emit(chosen[-1], outputs)
        done = net.wait_lookup(chosen[-1], lookup_id)
        elapsed = net.now - began
        rounds.append(done.rounds)
        queries.append(done.queries)
        datagrams.append(searcher.stats.sent + searcher.stats.received - before)
        times.append(elapsed)
        found += len(done.peers) >= ANNOUNCERS
    table_sizes = [len(node.tables[4]) for node in net.nodes.values()]
    return {
        "nodes": size,
        "build_s": build_s,
        "table": statistics.mean(table_sizes),
        "rounds_mean": statistics.mean(rounds),
        "rounds_max": max(rounds),
        "queries_mean": statistics.mean(queries),
        "datagrams_mean": statistics.mean(datagrams),
        "time_mean_s": statistics.mean(times),
        "found": found / lookups,
    }


def core_queries_per_s(count: int = 20_000) -> float:
    node = DHTNode(bytes(20), random.Random(1), 0.0, query_rate_per_s=1e9, query_burst=1e9)
    rng = random.Random(2)
    for i in range(200):
        node.tables[4].heard_from(krpc.NodeInfo(rng.randbytes(20), (f"10.0.{i >> 8}.{i & 255}", 6881)), 0.0)
    wires = [krpc.encode(Query(b"aa", b"s" * 20, GetPeers(rng.randbytes(20)))) for _ in range(100)]
    source = ("10.9.9.9", 6881)
    node.receive(source, wires[0], 0.0)  # the querier's ping goes out once, not in the loop
    started = time.perf_counter()
    for i in range(count):
        node.receive(source, wires[i % 100], 1.0)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--lookups", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loss", type=float, default=0.0)
    args = parser.parse_args()
    print(f"get_peers lookups, {args.lookups} per network, seed {args.seed}, loss {args.loss:.0%}, alpha 3, k 8")
    header = (
        f"{'nodes':>6} {'table':>6} {'rounds':>7} {'max':>4} {'queries':>8} {'datagrams':>10}"
        f" {'virtual s':>10} {'found all':>10} {'build s':>8}"
    )
    print(header)
    for size in args.sizes:
        row = measure(size, args.lookups, args.seed, args.loss)
        print(
            f"{row['nodes']:>6} {row['table']:>6.1f} {row['rounds_mean']:>7.2f} {row['rounds_max']:>4}"
            f" {row['queries_mean']:>8.1f} {row['datagrams_mean']:>10.1f} {row['time_mean_s']:>10.2f}"
            f" {row['found']:>10.0%} {row['build_s']:>8.1f}",
            flush=True,
        )
    print(f"core: {core_queries_per_s():,.0f} get_peers queries answered per second (one core)")


if __name__ == "__main__":
    main()
