"""Routing table (k-buckets), BEP 42 node IDs, tokens and the peer store."""

from __future__ import annotations

import random

import pytest

from bitswarm.dht.krpc import NodeInfo
from bitswarm.dht.node_id import crc32c, distance, is_exempt, is_valid_for, node_id_for
from bitswarm.dht.peer_store import PeerStore
from bitswarm.dht.routing import GOOD_FOR_S, K, NodeState, RoutingTable
from bitswarm.dht.tokens import TokenIssuer

OWN = bytes(20)  # our ID is all zeros: the bucket holding it is the lowest one


def node(value: int, port: int = 6881) -> NodeInfo:
    return NodeInfo(value.to_bytes(20, "big"), (f"10.0.{value >> 8 & 255}.{value & 255}", port))


def far(index: int) -> NodeInfo:
    """Nodes in the upper half of the ID space: never in our bucket, so never split."""
    return NodeInfo(((1 << 159) + index).to_bytes(20, "big"), (f"10.1.0.{index}", 6881))


# -- BEP 42 -------------------------------------------------------------------------------

BEP42_VECTORS = [
    ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
]


@pytest.mark.parametrize(("host", "node_id"), BEP42_VECTORS)
def test_bep42_examples_are_valid_for_their_address_only(host: str, node_id: str) -> None:
    assert is_valid_for(bytes.fromhex(node_id), host)
    assert not is_valid_for(bytes.fromhex(node_id), "8.8.8.8")


def test_crc32c_matches_the_standard_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("host", ["124.31.75.21", "8.8.4.4", "2a00:1450:4001:80b::200e"])
def test_generated_ids_are_valid_for_their_address(host: str) -> None:
    rng = random.Random(7)
    for _ in range(20):
        assert is_valid_for(node_id_for(host, rng), host)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "172.16.5.5", "169.254.1.1", "::1"])
def test_local_and_private_addresses_are_exempt(host: str) -> None:
    assert is_exempt(host)
    assert is_valid_for(bytes(20), host)


def test_distance_is_xor() -> None:
    assert distance(b"\x00" * 19 + b"\x05", b"\x00" * 19 + b"\x03") == 6


# -- routing table ------------------------------------------------------------------------


def test_the_bucket_holding_our_id_splits_and_others_stay_at_k() -> None:
    table = RoutingTable(OWN)
    rng = random.Random(3)
    for i in range(2000):
        table.heard_from(NodeInfo(rng.randbytes(20), ("10.2.0.1", 1000 + i)), now=0.0)
    assert len(table.buckets) > 5
    assert all(len(bucket.nodes) <= K for bucket in table.buckets)
    # Every ID lies in the bucket covering it, and the buckets tile the whole space.
    for bucket in table.buckets:
        assert all(bucket.covers(int.from_bytes(node_id, "big")) for node_id in bucket.nodes)
    assert table.buckets[0].low == 0
    assert table.buckets[-1].high == 1 << 160
    assert all(a.high == b.low for a, b in zip(table.buckets, table.buckets[1:], strict=False))


def test_closest_returns_nodes_nearest_first() -> None:
    table = RoutingTable(OWN)
    for value in (1, 2, 3, 4, 5, 6, 7):
        table.heard_from(node(value), now=0.0)
    target = (6).to_bytes(20, "big")
    found = [int.from_bytes(n.node_id, "big") for n in table.closest(target, 3)]
    assert found == [6, 7, 4]


def test_a_full_far_bucket_keeps_its_good_nodes_and_caches_the_newcomer() -> None:
    table = RoutingTable(OWN)
    for i in range(K):
        assert table.heard_from(far(i), now=0.0) is None
    assert table.heard_from(far(100), now=1.0) is None  # all good: nobody to ping
    assert table.get(far(100).node_id) is None
    assert far(100).node_id in table.buckets[-1].replacements
    assert not table.would_accept(far(101).node_id, now=1.0)


def test_a_newcomer_meeting_questionable_nodes_asks_for_the_stalest_to_be_pinged() -> None:
    table = RoutingTable(OWN)
    for i in range(K):
        table.heard_from(far(i), now=float(i))
    later = GOOD_FOR_S + 10.0
    assert table.get(far(0).node_id).state(later) is NodeState.QUESTIONABLE  # type: ignore[union-attr]
    assert table.heard_from(far(100), now=later) == far(0)


def test_a_node_failing_twice_is_replaced_by_the_freshest_replacement() -> None:
    table = RoutingTable(OWN)
    for i in range(K):
        table.heard_from(far(i), now=0.0)
    table.heard_from(far(100), now=1.0)
    table.heard_from(far(101), now=2.0)
    table.failed(far(3).node_id, now=3.0)
    assert table.get(far(3).node_id) is not None
    table.failed(far(3).node_id, now=4.0)
    assert table.get(far(3).node_id) is None
    assert table.get(far(101).node_id) is not None
    assert len(table) == K


def test_an_answer_clears_failures() -> None:
    table = RoutingTable(OWN)
    table.heard_from(far(1), now=0.0)
    table.failed(far(1).node_id, now=1.0)
    table.heard_from(far(1), now=2.0)
    entry = table.get(far(1).node_id)
    assert entry is not None
    assert entry.failures == 0


def test_an_id_seen_at_a_new_address_does_not_move() -> None:
    table = RoutingTable(OWN)
    table.heard_from(far(1), now=0.0)
    table.heard_from(NodeInfo(far(1).node_id, ("10.9.9.9", 1)), now=1.0)
    entry = table.get(far(1).node_id)
    assert entry is not None
    assert entry.address == far(1).address


def test_our_own_id_never_enters_the_table() -> None:
    table = RoutingTable(OWN)
    table.heard_from(NodeInfo(OWN, ("10.0.0.1", 1)), now=0.0)
    assert len(table) == 0
    assert not table.would_accept(OWN, now=0.0)


def test_buckets_untouched_for_15_minutes_are_due_for_refresh() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(far(1), now=0.0)
    assert table.stale_ranges(now=60.0, interval_s=900.0) == []
    stale = table.stale_ranges(now=901.0, interval_s=900.0)
    assert stale == [(0, 1 << 160)]
    table.touch_range(stale[0][0], now=901.0)
    assert table.stale_ranges(now=902.0, interval_s=900.0) == []


# -- tokens -------------------------------------------------------------------------------


def test_a_token_is_valid_for_its_address_for_one_to_two_rotations() -> None:
    issuer = TokenIssuer(random.Random(1), now=0.0, rotation_s=300.0)
    token = issuer.issue("10.0.0.1", now=10.0)
    assert issuer.is_valid(token, "10.0.0.1", now=299.0)
    assert not issuer.is_valid(token, "10.0.0.2", now=299.0)
    assert issuer.is_valid(token, "10.0.0.1", now=599.0)  # previous secret
    assert not issuer.is_valid(token, "10.0.0.1", now=601.0)  # two rotations on


def test_after_a_long_silence_no_old_token_passes() -> None:
    issuer = TokenIssuer(random.Random(1), now=0.0, rotation_s=300.0)
    token = issuer.issue("10.0.0.1", now=250.0)
    assert not issuer.is_valid(token, "10.0.0.1", now=10_000.0)


def test_tokens_are_not_guessable_from_another_issuer() -> None:
    ours = TokenIssuer(random.Random(1), now=0.0)
    theirs = TokenIssuer(random.Random(2), now=0.0)
    assert not ours.is_valid(theirs.issue("10.0.0.1", 0.0), "10.0.0.1", 0.0)


# -- peer store ---------------------------------------------------------------------------


def test_the_peer_store_keeps_its_caps_and_forgets_old_peers() -> None:
    store = PeerStore(max_peers_per_info_hash=3, max_info_hashes=2, peer_ttl_s=100.0)
    rng = random.Random(0)
    for port in range(1, 6):
        store.add(b"a" * 20, ("10.0.0.1", port), now=float(port))
    assert sorted(store.get(b"a" * 20, 4, now=6.0, rng=rng)) == [("10.0.0.1", 3), ("10.0.0.1", 4), ("10.0.0.1", 5)]
    store.add(b"b" * 20, ("10.0.0.1", 1), now=7.0)
    store.add(b"c" * 20, ("10.0.0.1", 1), now=8.0)
    assert store.info_hash_count == 2
    assert store.get(b"a" * 20, 4, now=8.0, rng=rng) == []  # the oldest swarm went
    assert store.get(b"c" * 20, 4, now=107.0, rng=rng) == [("10.0.0.1", 1)]
    assert store.get(b"c" * 20, 4, now=109.0, rng=rng) == []
    store.expire(now=1000.0)
    assert len(store) == 0


def test_the_peer_store_answers_per_family_and_samples_big_swarms() -> None:
    store = PeerStore()
    for port in range(1, 101):
        store.add(b"a" * 20, ("10.0.0.1", port), now=0.0)
    store.add(b"a" * 20, ("2001:db8::1", 1), now=0.0)
    rng = random.Random(0)
    assert store.get(b"a" * 20, 6, now=1.0, rng=rng) == [("2001:db8::1", 1)]
    sample = store.get(b"a" * 20, 4, now=1.0, rng=rng, limit=50)
    assert len(sample) == 50
    assert len(set(sample)) == 50


def test_a_reannounce_refreshes_a_peer() -> None:
    store = PeerStore(peer_ttl_s=100.0)
    store.add(b"a" * 20, ("10.0.0.1", 1), now=0.0)
    store.add(b"a" * 20, ("10.0.0.1", 2), now=50.0)
    store.add(b"a" * 20, ("10.0.0.1", 1), now=90.0)
    assert sorted(store.get(b"a" * 20, 4, now=120.0, rng=random.Random(0))) == [("10.0.0.1", 1), ("10.0.0.1", 2)]
    assert store.get(b"a" * 20, 4, now=160.0, rng=random.Random(0)) == [("10.0.0.1", 1)]
