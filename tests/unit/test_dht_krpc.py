"""KRPC codec (BEP 5, 32, 42, 43): every message both ways, and strictness on bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswarm import bencode
from bitswarm.dht import krpc
from bitswarm.dht.krpc import (
    AnnouncePeer,
    Error,
    FindNode,
    GetPeers,
    NodeInfo,
    Ping,
    Query,
    Response,
)
from bitswarm.errors import KRPCError

ID_A = b"abcdefghij0123456789"
ID_B = b"mnopqrstuvwxyz123456"


def test_ping_query_from_bep5_decodes_and_encodes_to_the_same_bytes() -> None:
    wire = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
    message = krpc.decode(wire)
    assert message == Query(b"aa", ID_A, Ping())
    assert krpc.encode(message) == wire


def test_find_node_response_from_bep5_decodes() -> None:
    wire = b"d1:rd2:id20:0123456789abcdefghij5:nodes0:e1:t2:aa1:y1:re"
    assert krpc.decode(wire) == Response(b"aa", b"0123456789abcdefghij")


def test_announce_peer_with_implied_port_decodes() -> None:
    wire = (
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz123456"
        b"4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"
    )
    assert krpc.decode(wire) == Query(b"aa", ID_A, AnnouncePeer(ID_B, 6881, b"aoeusnth", implied_port=True))


def test_error_from_bep5_decodes() -> None:
    assert krpc.decode(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee") == Error(
        b"aa", 201, "A Generic Error Ocurred"
    )


@pytest.mark.parametrize(
    "message",
    [
        Query(b"t1", ID_A, Ping(), read_only=True),
        Query(b"t2", ID_A, FindNode(ID_B, frozenset({4, 6}))),
        Query(b"t3", ID_A, GetPeers(ID_B, frozenset({6}))),
        Query(b"t4", ID_A, AnnouncePeer(ID_B, 51413, b"tok")),
        Query(b"t5", ID_A, AnnouncePeer(ID_B, 0, b"tok", implied_port=True)),
        Response(
            b"r1",
            ID_A,
            nodes=(NodeInfo(ID_B, ("10.0.0.1", 6881)),),
            nodes6=(NodeInfo(ID_B, ("2001:db8::1", 6882)),),
            values=(("10.0.0.2", 1), ("2001:db8::2", 65535)),
            token=b"secret",
            requester=("192.0.2.7", 4000),
        ),
        Error(b"e1", 204, "Method Unknown"),
    ],
)
def test_every_message_survives_encode_then_decode(message: krpc.Message) -> None:
    assert krpc.decode(krpc.encode(message, version=b"BS01")) == message


def test_unknown_keys_are_ignored_so_the_protocol_can_grow() -> None:
    wire = bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": {b"id": ID_A, b"x": 1}, b"zz": [1]})
    assert krpc.decode(wire) == Query(b"aa", ID_A, Ping())


def test_unknown_want_entries_are_ignored() -> None:
    arguments = {b"id": ID_A, b"target": ID_B, b"want": [b"n4", b"n9"]}
    wire = bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"find_node", b"a": arguments})
    assert krpc.decode(wire) == Query(b"aa", ID_A, FindNode(ID_B, frozenset({4})))


def query(method: bytes, arguments: dict[bytes, object], tid: bytes = b"aa") -> bytes:
    return bencode.encode({b"t": tid, b"y": b"q", b"q": method, b"a": arguments})


def expect(wire: bytes, code: int, tid: bytes | None) -> KRPCError:
    with pytest.raises(KRPCError) as caught:
        krpc.decode(wire)
    assert caught.value.code == code
    assert caught.value.transaction_id == tid
    return caught.value


def test_an_unknown_method_is_error_204_with_the_transaction_id() -> None:
    expect(query(b"sample_infohashes", {b"id": ID_A}), 204, b"aa")


@pytest.mark.parametrize(
    ("method", "arguments"),
    [
        (b"ping", {}),
        (b"ping", {b"id": b"short"}),
        (b"ping", {b"id": 7}),
        (b"find_node", {b"id": ID_A}),
        (b"find_node", {b"id": ID_A, b"target": ID_B + b"x"}),
        (b"find_node", {b"id": ID_A, b"target": ID_B, b"want": b"n4"}),
        (b"find_node", {b"id": ID_A, b"target": ID_B, b"want": [b"n4"] * 5}),
        (b"get_peers", {b"id": ID_A, b"info_hash": [ID_B]}),
        (b"announce_peer", {b"id": ID_A, b"info_hash": ID_B, b"port": b"6881", b"token": b"t"}),
        (b"announce_peer", {b"id": ID_A, b"info_hash": ID_B, b"port": 0, b"token": b"t"}),
        (b"announce_peer", {b"id": ID_A, b"info_hash": ID_B, b"port": 65536, b"token": b"t"}),
        (b"announce_peer", {b"id": ID_A, b"info_hash": ID_B, b"port": 1}),
        (b"announce_peer", {b"id": ID_A, b"info_hash": ID_B, b"port": 1, b"token": b"t" * 65}),
        (b"announce_peer", {b"id": ID_A, b"info_hash": ID_B, b"port": 1, b"token": b"t", b"implied_port": b"1"}),
    ],
)
def test_bad_arguments_are_error_203_with_the_transaction_id(method: bytes, arguments: dict[bytes, object]) -> None:
    expect(query(method, arguments), 203, b"aa")


def test_a_query_whose_arguments_are_not_a_dictionary_is_error_203() -> None:
    expect(bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": [ID_A]}), 203, b"aa")


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"not bencode",
        b"d1:t2:aae",  # no y
        b"li1ee",
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe",  # no t
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t0:1:y1:qe",  # empty t
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:ti1e1:y1:qe",  # t not a string
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:q1:t2:aae",  # unsorted keys
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qejunk",
    ],
)
def test_datagrams_without_a_usable_transaction_id_get_silence(wire: bytes) -> None:
    expect(wire, 203, None)


def test_a_long_transaction_id_is_never_echoed() -> None:
    expect(query(b"ping", {b"id": ID_A}, tid=b"x" * (krpc.MAX_TRANSACTION_ID_BYTES + 1)), 203, None)


def test_an_oversize_datagram_is_refused_before_decoding() -> None:
    wire = query(b"ping", {b"id": ID_A, b"pad": b"x" * krpc.MAX_DATAGRAM_BYTES})
    error = expect(wire, 203, None)
    assert "datagram of" in str(error)


def test_deep_nesting_is_refused() -> None:
    expect(b"d1:ad1:xllllleeeeee1:t2:aa1:y1:qe", 203, None)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {b"id": b"short"},
        {b"id": ID_A, b"nodes": b"x" * 27},
        {b"id": ID_A, b"nodes6": b"x" * 26},
        {b"id": ID_A, b"nodes": b"x" * 26 * (krpc.MAX_NODES_PER_REPLY + 1)},
        {b"id": ID_A, b"values": b"xxxxxx"},
        {b"id": ID_A, b"values": [b"xxxxx"]},
        {b"id": ID_A, b"values": [1]},
        {b"id": ID_A, b"values": [b"xxxxxx"] * (krpc.MAX_PEERS_PER_REPLY + 1)},
        {b"id": ID_A, b"token": 5},
    ],
)
def test_malformed_responses_raise_and_are_never_answered(body: dict[bytes, object]) -> None:
    expect(bencode.encode({b"t": b"aa", b"y": b"r", b"r": body}), 203, None)


@pytest.mark.parametrize("body", [[], [201], [b"201", b"x"], b"oops"])
def test_malformed_errors_raise(body: object) -> None:
    expect(bencode.encode({b"t": b"aa", b"y": b"e", b"e": body}), 203, None)


def test_compact_node_info_round_trips_for_both_families() -> None:
    nodes = (NodeInfo(ID_A, ("1.2.3.4", 80)), NodeInfo(ID_B, ("5.6.7.8", 65535)))
    assert krpc.decode_nodes(krpc.encode_nodes(nodes), krpc.NODE_V4_BYTES) == nodes
    nodes6 = (NodeInfo(ID_A, ("2001:db8::5", 6881)),)
    assert krpc.decode_nodes(krpc.encode_nodes(nodes6), krpc.NODE_V6_BYTES) == nodes6
    assert krpc.encode_address(("1.2.3.4", 0x1AE1)) == b"\x01\x02\x03\x04\x1a\xe1"


def check_decodes_or_refuses(data: bytes) -> None:
    message: krpc.Message | KRPCError
    try:
        message = krpc.decode(data)
    except KRPCError as error:
        message = error
    if isinstance(message, KRPCError):
        assert message.code in (KRPCError.PROTOCOL, KRPCError.METHOD_UNKNOWN)
        assert message.transaction_id is None or len(message.transaction_id) <= krpc.MAX_TRANSACTION_ID_BYTES
    else:
        assert krpc.decode(krpc.encode(message)) == message


@given(st.binary(max_size=600))
def test_arbitrary_bytes_decode_or_raise_krpc_error(data: bytes) -> None:
    check_decodes_or_refuses(data)


values = st.recursive(
    st.integers(-5, 70000) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=12), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from([b"t", b"y", b"q", b"a", b"r", b"e", b"id", b"ro", b"ip", b"nodes", b"values", b"token"])


@given(
    st.dictionaries(keys, values | st.sampled_from([b"q", b"r", b"e", b"ping", b"get_peers", b"announce_peer"])),
    st.dictionaries(keys | st.sampled_from([b"info_hash", b"target", b"port", b"want"]), values, max_size=6),
)
def test_krpc_shaped_messages_decode_or_raise_krpc_error(top: dict[bytes, object], inner: dict[bytes, object]) -> None:
    top = {**top, b"a": inner, b"r": inner}
    check_decodes_or_refuses(bencode.encode(top))
