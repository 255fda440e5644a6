"""The DHT node core: answers, tokens, hostile input, read-only mode, BEP 42, lookups, state."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bitswarm import bencode
from bitswarm.dht import krpc
from bitswarm.dht.krpc import Address, AnnouncePeer, FindNode, GetPeers, NodeInfo, Ping, Query, Response
from bitswarm.dht.lookup import Lookup
from bitswarm.dht.node import DHTNode, LookupCompleted, Output, SendDatagram, load_state, save_state
from bitswarm.dht.node_id import is_valid_for, node_id_for
from bitswarm.errors import KRPCError, UsageError

OWN = b"\x80" + bytes(19)
PEER = ("10.0.0.2", 7000)
INFO_HASH = b"i" * 20


def make_node(**options: Any) -> DHTNode:
    return DHTNode(OWN, random.Random(5), 0.0, **options)


def datagrams(outputs: list[Output]) -> list[SendDatagram]:
    return [output for output in outputs if isinstance(output, SendDatagram)]


def ask(
    node: DHTNode,
    arguments: krpc.Arguments,
    *,
    source: Address = PEER,
    now: float = 1.0,
    sender_id: bytes = b"s" * 20,
    read_only: bool = False,
) -> list[Output]:
    wire = krpc.encode(Query(b"tt", sender_id, arguments, read_only=read_only))
    return node.receive(source, wire, now)


def reply_to(node: DHTNode, outputs: list[Output], source: Address = PEER) -> krpc.Message:
    """The one datagram sent back to ``source``, decoded."""
    replies = [d for d in datagrams(outputs) if d.address == source and krpc.decode(d.payload).transaction_id == b"tt"]
    assert len(replies) == 1, replies
    return krpc.decode(replies[0].payload)


def test_ping_is_answered_with_our_id_and_the_requester_address() -> None:
    node = make_node()
    reply = reply_to(node, ask(node, Ping()))
    assert reply == Response(b"tt", OWN, requester=PEER)


def test_find_node_answers_the_closest_nodes_of_each_wanted_family() -> None:
    node = make_node(families=(4, 6))
    node.tables[4].heard_from(NodeInfo(b"\x81" + bytes(19), ("10.0.0.9", 1)), now=0.0)
    node.tables[6].heard_from(NodeInfo(b"\x82" + bytes(19), ("fd00::9", 2)), now=0.0)
    reply = reply_to(node, ask(node, FindNode(b"\x81" + bytes(19), frozenset({4, 6}))))
    assert isinstance(reply, Response)
    assert [n.address for n in reply.nodes] == [("10.0.0.9", 1)]
    assert [n.address for n in reply.nodes6] == [("fd00::9", 2)]
    only_own_family = reply_to(node, ask(node, FindNode(b"\x81" + bytes(19))))
    assert isinstance(only_own_family, Response)
    assert only_own_family.nodes6 == ()


def test_announce_with_the_token_from_get_peers_is_stored_and_served() -> None:
    node = make_node()
    reply = reply_to(node, ask(node, GetPeers(INFO_HASH)))
    assert isinstance(reply, Response)
    assert reply.token is not None
    assert reply.values == ()
    announced = reply_to(node, ask(node, AnnouncePeer(INFO_HASH, 51413, reply.token)))
    assert isinstance(announced, Response)
    other = ("10.0.0.3", 9)
    served = reply_to(node, ask(node, GetPeers(INFO_HASH), source=other), source=other)
    assert isinstance(served, Response)
    assert served.values == (("10.0.0.2", 51413),)


def test_implied_port_stores_the_source_port() -> None:
    node = make_node()
    token = node.tokens.issue(PEER[0], 1.0)
    reply_to(node, ask(node, AnnouncePeer(INFO_HASH, 0, token, implied_port=True)))
    assert node.peer_store.get(INFO_HASH, 4, 1.0, node.rng) == [PEER]


@pytest.mark.parametrize("token_host", ["10.0.0.99", None])
def test_announce_with_a_bad_token_gets_error_203_and_stores_nothing(token_host: str | None) -> None:
    node = make_node()
    token = node.tokens.issue(token_host, 1.0) if token_host else b"forged"
    reply = reply_to(node, ask(node, AnnouncePeer(INFO_HASH, 51413, token)))
    assert isinstance(reply, krpc.Error)
    assert reply.code == KRPCError.PROTOCOL
    assert len(node.peer_store) == 0


def test_a_token_expires_after_two_rotations() -> None:
    node = make_node()
    token = node.tokens.issue(PEER[0], 1.0)
    reply = reply_to(node, ask(node, AnnouncePeer(INFO_HASH, 1, token), now=1.0 + 2 * node.tokens.rotation_s))
    assert isinstance(reply, krpc.Error)


def test_an_unknown_method_gets_error_204() -> None:
    node = make_node()
    wire = bencode.encode({b"t": b"tt", b"y": b"q", b"q": b"vote", b"a": {b"id": b"s" * 20}})
    reply = reply_to(node, node.receive(PEER, wire, 1.0))
    assert reply == krpc.Error(b"tt", 204, "method b'vote' unknown")


def test_bad_arguments_get_error_203() -> None:
    node = make_node()
    wire = bencode.encode({b"t": b"tt", b"y": b"q", b"q": b"find_node", b"a": {b"id": b"s" * 20}})
    reply = reply_to(node, node.receive(PEER, wire, 1.0))
    assert isinstance(reply, krpc.Error)
    assert reply.code == 203


@pytest.mark.parametrize(
    "wire",
    [
        b"garbage",
        b"d1:t9:123456789e",
        b"x" * 5000,
        bencode.encode({b"t": b"tt", b"y": b"r", b"r": {b"id": b"short"}}),
        bencode.encode({b"t": b"tt", b"y": b"r", b"r": {b"id": b"s" * 20}}),  # unsolicited
    ],
)
def test_garbage_and_stray_responses_get_silence_and_change_nothing(wire: bytes) -> None:
    node = make_node()
    assert node.receive(PEER, wire, 1.0) == []
    assert len(node.tables[4]) == 0
    assert sum(node.stats.dropped.values()) == 1


def test_a_flood_from_one_address_is_cut_to_its_budget_and_others_still_get_answers() -> None:
    node = make_node(query_rate_per_s=10.0, query_burst=50.0)
    answered = 0
    for i in range(1000):
        wire = krpc.encode(Query(i.to_bytes(2, "big"), b"s" * 20, Ping()))
        answered += len([d for d in datagrams(node.receive(PEER, wire, 1.0)) if d.address == PEER])
    assert answered <= 50 + 1  # the burst (the first may add our ping to the sender)
    assert node.stats.dropped["rate limit"] >= 949
    # One simulated second later the budget has refilled by the rate.
    later = sum(
        len(datagrams(node.receive(PEER, krpc.encode(Query(b"zz", b"s" * 20, Ping())), 2.0))) for _ in range(30)
    )
    assert 10 <= later <= 11
    other = ("10.0.0.3", 1)
    assert reply_to(node, ask(node, Ping(), source=other, now=1.0), source=other)


def test_an_unknown_querier_is_pinged_and_enters_the_table_only_when_it_answers() -> None:
    node = make_node()
    outputs = ask(node, Ping(), sender_id=b"q" * 20)
    pings = [d for d in datagrams(outputs) if isinstance(krpc.decode(d.payload), Query)]
    assert len(pings) == 1
    assert len(node.tables[4]) == 0
    ping = krpc.decode(pings[0].payload)
    node.receive(PEER, krpc.encode(Response(ping.transaction_id, b"q" * 20)), 2.0)
    assert [n.node_id for n in node.tables[4].nodes()] == [b"q" * 20]


def answer_pings(node: DHTNode, outputs: list[Output], node_id: bytes, source: Address, now: float) -> None:
    for datagram in datagrams(outputs):
        message = krpc.decode(datagram.payload)
        if isinstance(message, Query) and datagram.address == source:
            node.receive(source, krpc.encode(Response(message.transaction_id, node_id)), now)


def test_a_response_from_another_address_or_with_another_id_is_not_trusted() -> None:
    node = make_node()
    outputs = node.ping(PEER, 1.0)
    tid = krpc.decode(datagrams(outputs)[0].payload).transaction_id
    assert node.receive(("10.0.0.66", 7000), krpc.encode(Response(tid, b"q" * 20)), 1.5) == []
    assert node.stats.dropped["unsolicited"] == 1
    assert node.pending_queries == 1
    node.receive(PEER, krpc.encode(Response(tid, b"q" * 20)), 1.6)
    assert len(node.tables[4]) == 1
    # A node we know under one ID answering with another is a failure, not a new node.
    outputs = node.find_node(b"z" * 20, 2.0)[1]
    tid = krpc.decode(datagrams(outputs)[0].payload).transaction_id
    node.receive(PEER, krpc.encode(Response(tid, b"w" * 20)), 2.1)
    assert node.stats.dropped["wrong node id"] == 1
    assert [n.node_id for n in node.tables[4].nodes()] == [b"q" * 20]


@pytest.mark.parametrize("enforce", [True, False])
def test_bep42_violators_stay_out_of_the_table_when_enforced(enforce: bool) -> None:
    node = make_node(enforce_node_id=enforce)
    public = ("8.8.8.8", 6881)
    compliant_host = ("8.8.4.4", 6881)
    good_id = node_id_for(compliant_host[0], random.Random(1))
    for address, node_id in ((public, b"v" * 20), (compliant_host, good_id)):
        outputs = node.ping(address, 1.0)
        answer_pings(node, outputs, node_id, address, 1.1)
    ids = {n.node_id for n in node.tables[4].nodes()}
    assert good_id in ids
    assert (b"v" * 20 in ids) is not enforce
    if enforce:
        assert node.stats.dropped["bep 42 violation"] == 1
        # A violator that queries us is answered, but not pinged into the table.
        outputs = ask(node, Ping(), source=public, sender_id=b"v" * 20)
        assert [krpc.decode(d.payload) for d in datagrams(outputs)] == [Response(b"tt", OWN, requester=public)]


def test_read_only_node_answers_nothing_and_marks_its_queries() -> None:
    node = make_node(read_only=True)
    assert ask(node, Ping()) == []
    assert ask(node, FindNode(b"x" * 20)) == []
    assert node.receive(PEER, b"garbage", 1.0) == []
    query = krpc.decode(datagrams(node.ping(PEER, 1.0))[0].payload)
    assert isinstance(query, Query)
    assert query.read_only
    with pytest.raises(UsageError):
        node.get_peers(INFO_HASH, 1.0, announce_port=1)


def test_read_only_queriers_never_enter_our_table() -> None:
    node = make_node()
    outputs = ask(node, Ping(), sender_id=b"r" * 20, read_only=True)
    assert [krpc.decode(d.payload) for d in datagrams(outputs)] == [Response(b"tt", OWN, requester=PEER)]
    assert node.pending_queries == 0


def test_our_queries_time_out_and_a_lookup_ends_without_answers() -> None:
    node = make_node(query_timeout_s=2.0)
    lookup_id, outputs = node.bootstrap([("10.0.0.7", 1), ("10.0.0.8", 1)], now=0.0)
    assert len(datagrams(outputs)) == 2
    assert node.next_deadline() == node.soft_timeout_s
    assert node.tick(node.soft_timeout_s) == []  # slow, but nobody else to ask
    assert node.next_deadline() == 2.0
    done = [o for o in node.tick(2.0) if isinstance(o, LookupCompleted)]
    assert [d.lookup_id for d in done] == [lookup_id]
    assert done[0].closest == ()
    assert node.pending_queries == 0


def test_the_transaction_table_is_bounded() -> None:
    node = make_node(max_pending=4)
    sent = sum(len(node.ping(("10.0.1.1", port), 0.0)) for port in range(1, 20))
    assert sent == 4
    assert node.pending_queries == 4
    assert node.stats.dropped["pending table full"] == 15


def test_saved_state_restores_the_id_and_the_nodes() -> None:
    node = make_node(families=(4, 6))
    node.tables[4].heard_from(NodeInfo(b"a" * 20, ("10.0.0.1", 1)), 0.0)
    node.tables[6].heard_from(NodeInfo(b"b" * 20, ("fd00::1", 2)), 0.0)
    state = load_state(save_state(node))
    assert state.node_id == OWN
    assert set(state.nodes) == {NodeInfo(b"a" * 20, ("10.0.0.1", 1)), NodeInfo(b"b" * 20, ("fd00::1", 2))}


@pytest.mark.parametrize("data", [b"", b"de", b"d2:id3:abce", b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes3:abce"])
def test_broken_state_raises_a_krpc_error(data: bytes) -> None:
    with pytest.raises(KRPCError):
        load_state(data)


def test_get_peers_searches_announce_to_the_nodes_that_gave_tokens() -> None:
    """Three nodes joined by hand: A searches and announces; B and C store A's peer."""
    rng = random.Random(9)
    addresses = [("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]
    nodes = {address: DHTNode(rng.randbytes(20), random.Random(i), 0.0) for i, address in enumerate(addresses)}
    a, b, c = (nodes[address] for address in addresses)
    completed: list[tuple[Address, LookupCompleted]] = []

    def deliver(source: Address, outputs: list[Output]) -> None:
        queue = [(source, o) for o in outputs]
        for _ in range(1000):
            if not queue:
                return
            sender, output = queue.pop(0)
            if isinstance(output, LookupCompleted):
                completed.append((sender, output))
            else:
                queue += [(output.address, o) for o in nodes[output.address].receive(sender, output.payload, 1.0)]
        raise AssertionError("messages kept flowing")

    deliver(addresses[1], b.bootstrap([addresses[0]], 1.0)[1])
    deliver(addresses[2], c.bootstrap([addresses[0]], 1.0)[1])
    assert len(a.tables[4]) == 2
    lookup_id, outputs = a.get_peers(INFO_HASH, 1.0, announce_port=6000)
    deliver(addresses[0], outputs)
    result = completed[-1][1]
    assert completed[-1][0] == addresses[0]
    assert result.lookup_id == lookup_id
    assert result.announced_to == 2
    assert result.rounds >= 1
    for store in (b.peer_store, c.peer_store):
        assert store.get(INFO_HASH, 4, 1.0, rng) == [("10.0.0.1", 6000)]
    lookup_id, outputs = c.get_peers(INFO_HASH, 1.0)
    deliver(addresses[2], outputs)
    assert completed[-1][0] == addresses[2]
    assert completed[-1][1].lookup_id == lookup_id
    assert completed[-1][1].peers == (("10.0.0.1", 6000),)


def answer_ping(node: DHTNode, index: int, reported: str, now: float = 1.0) -> None:
    """Node 10.0.3.``index`` answers our ping, saying it sees us at ``reported`` (BEP 42 ``ip``)."""
    address = (f"10.0.3.{index}", 1)
    tid = krpc.decode(datagrams(node.ping(address, now))[0].payload).transaction_id
    node.receive(address, krpc.encode(Response(tid, bytes([index + 1]) * 20, requester=(reported, 7))), now + 0.1)


def test_our_external_address_is_what_most_answering_nodes_report() -> None:
    node = make_node()
    answer_ping(node, 0, "203.0.113.5")
    answer_ping(node, 1, "198.51.100.1")
    for _ in range(5):  # one node repeating a claim is one voice
        answer_ping(node, 1, "198.51.100.1")
    assert node.external_host is None
    answer_ping(node, 2, "203.0.113.5")
    assert node.external_host == "203.0.113.5"


def test_a_public_external_address_gives_a_bep42_node_id_and_the_table_is_kept() -> None:
    node = make_node()
    known = [NodeInfo(bytes([n]) * 20, (f"10.0.4.{n}", 1)) for n in range(1, 9)]
    for info in known:
        node.tables[4].heard_from(info, 0.0)
    answer_ping(node, 0, "8.8.4.4")
    answer_ping(node, 1, "8.8.4.4")
    assert node.node_id == OWN  # the ID changes at the next tick, not inside a reply
    node.tick(2.0)
    assert node.node_id != OWN
    assert is_valid_for(node.node_id, "8.8.4.4")
    assert {info.node_id for info in known} <= {info.node_id for info in node.tables[4].nodes()}
    changed = node.node_id
    node.tick(3.0)
    assert node.node_id == changed  # once per address


def test_a_private_external_address_keeps_the_node_id() -> None:
    node = make_node()
    answer_ping(node, 0, "10.9.9.9")
    answer_ping(node, 1, "10.9.9.9")
    node.tick(2.0)
    assert node.external_host == "10.9.9.9"
    assert node.node_id == OWN  # BEP 42 exempts private addresses


def test_a_bucket_untouched_for_15_minutes_is_refreshed_by_a_search() -> None:
    node = make_node()
    node.tables[4].heard_from(NodeInfo(b"a" * 20, ("10.0.0.1", 1)), 0.0)
    assert node.next_deadline() == 60.0
    assert node.tick(60.0) == []  # housekeeping, but nothing is stale yet
    assert node.next_deadline() == 120.0
    refresh = [krpc.decode(d.payload) for d in datagrams(node.tick(960.0))]
    assert len(refresh) == 1
    assert isinstance(refresh[0], Query)
    assert isinstance(refresh[0].arguments, FindNode)
    assert node.searches == 1
    assert datagrams(node.tick(1020.0)) == []  # refreshed once, not every minute


def test_a_slow_query_frees_its_slot_for_the_next_candidate() -> None:
    node = make_node()
    for i in range(5):
        node.tables[4].heard_from(NodeInfo(bytes([i + 1]) * 20, (f"10.0.5.{i}", 1)), 0.0)
    _, outputs = node.find_node(bytes(20), now=1.0)
    assert len(datagrams(outputs)) == 3  # alpha
    more = datagrams(node.tick(1.0 + node.soft_timeout_s))
    assert len(more) == 2  # the other two candidates, while the first three may still answer
    assert node.pending_queries == 5


def test_a_search_follows_at_most_max_rounds_hops_of_ever_nearer_nodes() -> None:
    """A hostile node names one "nearer" node per answer, forever; the search stops."""
    target = bytes(20)
    first = NodeInfo(b"\xff" * 20, ("10.0.9.0", 1))
    lookup = Lookup(target, [first], max_rounds=3)
    asked = []
    for step in range(1, 10):
        chosen = lookup.next_queries()
        if not chosen:
            break
        asked += chosen
        nearer = NodeInfo((0xFF >> step).to_bytes(1, "big") + b"\xff" * 19, (f"10.0.9.{step}", 1))
        lookup.on_response(chosen[0].address, chosen[0].node_id or b"", [nearer], [], None)
    assert [candidate.hop for candidate in asked] == [1, 2, 3]
    assert lookup.rounds == 3
    assert lookup.is_done


def test_a_search_ends_at_its_deadline_even_with_answers_outstanding() -> None:
    node = make_node(query_timeout_s=1000.0, soft_timeout_s=100.0)
    lookup_id, _ = node.bootstrap([("10.0.0.7", 1)], now=0.0)
    assert node.next_deadline() == 60.0
    done = [o for o in node.tick(60.0) if isinstance(o, LookupCompleted)]
    assert [d.lookup_id for d in done] == [lookup_id]
    assert node.searches == 0
    assert node.stats.dropped["search timeout"] == 1
