"""A DHT of 500 real node cores on a virtual network: announces are found in few rounds.

Each node joins through a random earlier one, some nodes announce an info-hash, and
nodes that took no part search for it. The seed is in each test's id, so a failure
replays exactly (see bitswarm.dht.simnet).
"""

from __future__ import annotations

import pytest

from bitswarm.dht.krpc import Address
from bitswarm.dht.simnet import SimDHT

NODES = 500
ANNOUNCERS = 5
SEARCHERS = 10
# A lookup needs about log2(n / k) hops in sequence: 6 for 500 nodes, with room for
# latency reordering; 30 queries is the alpha-wide search with some dead ends.
MAX_ROUNDS = 6
MAX_QUERIES = 40


def announce_and_search(
    net: SimDHT, addresses: list[Address], info_hash: bytes | None = None
) -> list[tuple[set[Address], int, int]]:
    """ANNOUNCERS nodes announce one info-hash; SEARCHERS others search for it.
    Returns (peers found, rounds, queries) per search."""
    info_hash = info_hash or net.rng.randbytes(20)
    chosen = net.rng.sample(addresses, ANNOUNCERS + SEARCHERS)
    for port, address in enumerate(chosen[:ANNOUNCERS], start=1000):
        lookup_id, outputs = net.nodes[address].get_peers(info_hash, net.now, announce_port=port)
        net.emit(address, outputs)
        assert net.wait_lookup(address, lookup_id).announced_to > 0
    net.run_until(None, max_time_s=30.0)  # the announce_peer queries arrive
    results = []
    for address in chosen[ANNOUNCERS:]:
        lookup_id, outputs = net.nodes[address].get_peers(info_hash, net.now)
        net.emit(address, outputs)
        done = net.wait_lookup(address, lookup_id)
        results.append((set(done.peers), done.rounds, done.queries))
    return results


@pytest.mark.parametrize("seed", [1, 2])
def test_500_nodes_find_every_announced_peer_within_the_round_bound(seed: int) -> None:
    net = SimDHT(seed=seed)
    addresses = net.build(NODES)
    results = announce_and_search(net, addresses)
    for peers, rounds, queries in results:
        assert {port for _, port in peers} == set(range(1000, 1000 + ANNOUNCERS))
        assert 1 <= rounds <= MAX_ROUNDS
        assert queries <= MAX_QUERIES


@pytest.mark.parametrize("seed", [3])
def test_lookups_still_succeed_with_loss_and_a_fifth_of_the_nodes_gone(seed: int) -> None:
    net = SimDHT(seed=seed)
    addresses = net.build(NODES)
    net.loss = 0.05
    gone = net.rng.sample(addresses, NODES // 5)
    for address in gone:
        del net.nodes[address]  # silent from now on: their datagrams vanish
    alive = [address for address in addresses if address in net.nodes]
    results = announce_and_search(net, alive)
    for peers, rounds, queries in results:
        assert len(peers) >= ANNOUNCERS - 1  # a lost announce may cost one
        assert rounds <= MAX_ROUNDS + 2
        assert queries <= 2 * MAX_QUERIES
    assert sum(len(peers) for peers, _, _ in results) >= 0.9 * ANNOUNCERS * SEARCHERS


@pytest.mark.parametrize("seed", [4])
def test_nodes_breaking_bep42_never_enter_tables_nor_capture_an_info_hash(seed: int) -> None:
    """Fifty nodes on public addresses pick IDs right beside one info-hash, which BEP 42
    forbids them; honest nodes (exempt on 10.x addresses) enforce BEP 42."""
    net = SimDHT(seed=seed)
    addresses = net.build(NODES, enforce_node_id=True)
    info_hash = net.rng.randbytes(20)
    attackers = []
    for index in range(50):
        near = info_hash[:17] + bytes([index, 0, 0])
        attacker = net.add_node(address=(f"8.8.{index}.1", 6881), node_id=near)
        net.join(attacker, net.rng.choice(addresses))
        attackers.append(attacker)
    net.run_until(None, max_time_s=30.0)
    attacker_set = set(attackers)
    for address in addresses:
        assert not attacker_set & {n.address for n in net.nodes[address].tables[4].nodes()}
    # They were answered (and so learned honest nodes); they were just never listed.
    assert all(len(net.nodes[a].tables[4]) > 0 for a in attackers)
    results = announce_and_search(net, addresses, info_hash)
    for peers, rounds, _ in results:
        assert {port for _, port in peers} == set(range(1000, 1000 + ANNOUNCERS))
        assert rounds <= MAX_ROUNDS
    assert all(len(net.nodes[a].peer_store) == 0 for a in attackers)
