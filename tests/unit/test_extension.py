"""BEP 10 handshakes, BEP 9 metadata exchange and BEP 11 peer exchange (wire/extension.py)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import pytest

from bitswarm import bencode
from bitswarm.errors import DecodeError, PeerProtocolError, UsageError
from bitswarm.metainfo import Torrent
from bitswarm.wire.extension import (
    METADATA_PIECE_BYTES,
    OUR_EXTENSION_IDS,
    PEX_MAX_ADDED,
    PEX_MAX_INCOMING,
    UT_METADATA,
    UT_PEX,
    ExtendedHandshake,
    FetchState,
    MetadataCompleted,
    MetadataData,
    MetadataFetch,
    MetadataHashFailed,
    MetadataPeerFailed,
    MetadataReject,
    MetadataRequest,
    MetadataServe,
    PeerExtensions,
    PexFlags,
    PexMessage,
    PexPeer,
    PexState,
    SendMetadataRequest,
    decode_handshake,
    decode_metadata,
    decode_pex,
    encode_handshake,
    encode_metadata,
    encode_pex,
)
from bitswarm.wire.messages import Extended


def info_dict(size_hint: int, seed: int = 1) -> bytes:
    """A real v1 info dictionary of about ``size_hint`` bytes (its piece hashes make the bulk)."""
    rng = random.Random(seed)
    num_pieces = max(1, size_hint // 20)
    return bencode.encode(
        {
            "length": num_pieces * 16384,
            "name": "sample.bin",
            "piece length": 16384,
            "pieces": rng.randbytes(20 * num_pieces),
        }
    )


# -- BEP 10 handshake ----------------------------------------------------------------------


def test_our_handshake_round_trips_through_the_strict_decoder() -> None:
    payload = encode_handshake(metadata_size=31_337, listen_port=6881, client="bitswarm 1", reqq=500, yourip="10.0.0.7")
    handshake = decode_handshake(payload)
    assert handshake == ExtendedHandshake(
        extensions=dict(OUR_EXTENSION_IDS),
        metadata_size=31_337,
        listen_port=6881,
        client="bitswarm 1",
        reqq=500,
        yourip="10.0.0.7",
    )
    fields = bencode.decode(payload)
    assert isinstance(fields, dict)
    assert fields[b"m"] == {b"ut_metadata": 1, b"ut_pex": 2, b"bs_due": 3}


def test_a_libtorrent_like_handshake_with_unknown_keys_is_read() -> None:
    payload = bencode.encode(
        {
            "complete_ago": -1,
            "ipv6": bytes(15) + b"\x01",
            "m": {"lt_donthave": 7, "upload_only": 3, "ut_holepunch": 4, "ut_metadata": 2, "ut_pex": 1},
            "metadata_size": 12_345,
            "p": 51413,
            "reqq": 500,
            "upload_only": 0,
            "v": "libtorrent/2.0.8.0",
            "yourip": bytes([127, 0, 0, 1]),
        }
    )
    handshake = decode_handshake(payload)
    assert handshake.extensions["ut_metadata"] == 2
    assert handshake.extensions["ut_pex"] == 1
    assert handshake.metadata_size == 12_345
    assert handshake.listen_port == 51413
    assert handshake.client == "libtorrent/2.0.8.0"
    assert handshake.yourip == "127.0.0.1"
    assert handshake.ipv6 == "::1"
    assert handshake.upload_only is False
    assert handshake.prefers_encryption is None


def test_handshake_keys_in_any_order_are_read_but_duplicates_are_not() -> None:
    assert decode_handshake(b"d1:pi6881e1:md6:ut_pexi3eee").listen_port == 6881
    with pytest.raises(PeerProtocolError, match="duplicate"):
        decode_handshake(b"d1:pi1e1:pi2ee")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"garbage", "extended handshake"),
        (b"", "extended handshake"),
        (b"li1ee", "not a dictionary"),
        (bencode.encode({"m": [1, 2]}), "'m' is not a dictionary"),
        (bencode.encode({"m": {"ut_pex": b"1"}}), "not 0..255"),
        (bencode.encode({"m": {"ut_pex": 256}}), "not 0..255"),
        (bencode.encode({"m": {"ut_pex": -1}}), "not 0..255"),
        (bencode.encode({"metadata_size": b"100"}), "metadata_size"),
        (bencode.encode({"metadata_size": -5}), "metadata_size"),
        (bencode.encode({"p": 70000}), "'p'"),
        (bencode.encode({"v": 12}), "'v'"),
        (bencode.encode({"reqq": b"x"}), "reqq"),
        (bencode.encode({"yourip": b"12345"}), "yourip"),
        (bencode.encode({"ipv4": bytes(16)}), "ipv4"),
        (bencode.encode({"ipv6": bytes(4)}), "ipv6"),
        (bencode.encode({"e": b"1"}), "'e'"),
        (bencode.encode({"upload_only": -1}), "upload_only"),
        (b"d1:md" + b"d" * 20 + b"e" * 22, "extended handshake"),  # nested past the depth limit
    ],
)
def test_handshake_with_a_wrong_type_or_value_is_a_protocol_error(payload: bytes, match: str) -> None:
    with pytest.raises(PeerProtocolError, match=match):
        decode_handshake(payload)


def test_a_handshake_with_port_zero_means_no_listen_port_and_long_names_are_cut() -> None:
    handshake = decode_handshake(bencode.encode({"p": 0, "v": "x" * 5000, "m": {"\xe9t\xe9": 5}}))
    assert handshake.listen_port is None
    assert handshake.client == "x" * 100
    assert handshake.extensions == {}  # a non-ASCII name is no extension of ours


def test_later_handshakes_update_and_disable_extensions() -> None:
    peer = PeerExtensions()
    first = peer.decode(Extended(0, bencode.encode({"m": {"ut_metadata": 3, "ut_pex": 4}, "metadata_size": 99})))
    assert isinstance(first, ExtendedHandshake)
    assert peer.id_for(UT_METADATA) == 3
    assert peer.id_for(UT_PEX) == 4
    second = peer.decode(Extended(0, bencode.encode({"e": 1, "m": {"ut_pex": 0}})))
    assert isinstance(second, ExtendedHandshake)
    assert peer.id_for(UT_PEX) is None
    assert not peer.supports(UT_PEX)
    assert peer.id_for(UT_METADATA) == 3  # a name left out keeps its id
    assert second.metadata_size == 99  # and so does a key left out
    assert second.prefers_encryption is True
    assert peer.handshake == second


def test_extended_messages_are_decoded_by_the_ids_we_offered() -> None:
    peer = PeerExtensions()
    request = peer.decode(Extended(OUR_EXTENSION_IDS[UT_METADATA], encode_metadata(MetadataRequest(2))))
    assert request == MetadataRequest(2)
    pex = PexMessage((PexPeer(("10.0.0.2", 6881), PexFlags.SEED),))
    assert peer.decode(Extended(OUR_EXTENSION_IDS[UT_PEX], encode_pex(pex))) == pex
    with pytest.raises(PeerProtocolError, match="never offered"):
        peer.decode(Extended(9, b"de"))


def test_a_private_torrent_offers_no_pex_and_refuses_pex_messages() -> None:
    private_ids = {UT_METADATA: 1}
    assert decode_handshake(encode_handshake(extensions=private_ids)).extensions == {UT_METADATA: 1}
    peer = PeerExtensions(private_ids)
    with pytest.raises(PeerProtocolError, match="never offered"):
        peer.decode(Extended(OUR_EXTENSION_IDS[UT_PEX], encode_pex(PexMessage())))


def test_encode_handshake_refuses_ids_that_do_not_fit_a_byte() -> None:
    with pytest.raises(UsageError):
        encode_handshake(extensions={"ut_pex": 300})


# -- BEP 9 codec ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [MetadataRequest(0), MetadataReject(7), MetadataData(1, 20_000, b"x" * 3616), MetadataData(0, 0, b"")],
)
def test_metadata_messages_round_trip(message: MetadataRequest | MetadataReject | MetadataData) -> None:
    assert decode_metadata(encode_metadata(message)) == message


def test_a_data_message_carries_its_piece_after_the_dictionary() -> None:
    payload = encode_metadata(MetadataData(0, 5, b"d1:ae"))  # piece bytes that look like bencode
    assert payload == b"d8:msg_typei1e5:piecei0e10:total_sizei5eed1:ae"
    assert decode_metadata(payload) == MetadataData(0, 5, b"d1:ae")


def test_an_unknown_metadata_message_type_is_ignored() -> None:
    assert decode_metadata(bencode.encode({"msg_type": 9, "piece": 0})) is None


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "ut_metadata"),
        (b"xyz", "ut_metadata"),
        (b"le", "not a dictionary"),
        (bencode.encode({"msg_type": 0}), "piece"),
        (bencode.encode({"msg_type": b"0", "piece": 0}), "msg_type"),
        (bencode.encode({"msg_type": 0, "piece": -1}), "negative"),
        (bencode.encode({"msg_type": 0, "piece": 0}) + b"extra", "after a request"),
        (bencode.encode({"msg_type": 2, "piece": 0}) + b"x", "after a request or reject"),
        (bencode.encode({"msg_type": 1, "piece": 0}) + b"x", "total_size"),
        (bencode.encode({"msg_type": 1, "piece": 0, "total_size": 1 << 20}) + bytes(16385), "more than one piece"),
    ],
)
def test_malformed_metadata_messages_are_protocol_errors(payload: bytes, match: str) -> None:
    with pytest.raises(PeerProtocolError, match=match):
        decode_metadata(payload)


def test_decode_prefix_reports_where_the_value_ends() -> None:
    assert bencode.decode_prefix(b"d1:ai1eetrailing") == ({b"a": 1}, 8)
    with pytest.raises(DecodeError):
        bencode.decode_prefix(b"d1:a")


# -- BEP 9 fetch ---------------------------------------------------------------------------


def serve(fetch: MetadataFetch, server: MetadataServe, events: Sequence[object], now: float) -> list[object]:
    """Answer every request in ``events`` from ``server`` through the wire codec, until none is left."""
    out: list[object] = []
    pending: list[object] = list(events)
    for _ in range(10_000):
        if not pending:
            return out
        event = pending.pop(0)
        if isinstance(event, SendMetadataRequest):
            wire = encode_metadata(server.answer(event.peer, MetadataRequest(event.piece)))
            answer = decode_metadata(wire)
            assert isinstance(answer, MetadataData | MetadataReject)
            pending += fetch.on_message(event.peer, answer, now)
        else:
            out.append(event)
    raise AssertionError("the fetch never stopped asking")


def test_metadata_is_fetched_from_two_peers_and_checked_with_sha1() -> None:
    info = info_dict(40_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest())
    server = MetadataServe(info)
    first = fetch.add_peer("a", len(info), now=0.0)
    second = fetch.add_peer("b", len(info), now=0.0)
    assert [event.piece for event in first] == [0, 1, 2]  # type: ignore[union-attr]
    assert second == []  # every piece already asked of "a"
    assert serve(fetch, server, first, now=1.0) == [MetadataCompleted(info)]
    assert fetch.state is FetchState.DONE
    assert fetch.info == info
    assert Torrent.from_info(info).info_hash_v1 == hashlib.sha1(info).digest()


def test_metadata_requests_are_spread_over_peers() -> None:
    info = info_dict(200_000)  # 13 pieces
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), requests_per_peer=2)
    events = fetch.add_peer("a", len(info), 0.0) + fetch.add_peer("b", len(info), 0.0)
    assert [(event.peer, event.piece) for event in events] == [  # type: ignore[union-attr]
        ("a", 0),
        ("a", 1),
        ("b", 2),
        ("b", 3),
    ]
    assert serve(fetch, MetadataServe(info), events, 1.0) == [MetadataCompleted(info)]


def test_v2_metadata_is_checked_against_the_whole_sha256() -> None:
    info = info_dict(20_000)
    v2 = hashlib.sha256(info).digest()
    fetch = MetadataFetch(info_hash_v2=v2)
    assert serve(fetch, MetadataServe(info), fetch.add_peer(1, len(info), 0.0), 0.0) == [MetadataCompleted(info)]
    # The first 20 bytes (the v2 handshake's truncated hash) are not enough to pass.
    with pytest.raises(UsageError):
        MetadataFetch(info_hash_v2=v2[:20])


def test_a_hybrid_link_needs_both_hashes_to_match() -> None:
    info = info_dict(20_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), info_hash_v2=bytes(32))
    events = serve(fetch, MetadataServe(info), fetch.add_peer("a", len(info), 0.0), 0.0)
    assert events == [MetadataHashFailed(frozenset({"a"}))]
    assert fetch.state is FetchState.WAITING_FOR_PEERS


def test_metadata_that_does_not_hash_to_the_info_hash_is_dropped_and_its_senders_named() -> None:
    info = info_dict(40_000)
    forged = info_dict(40_000, seed=2)
    assert len(forged) == len(info)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), requests_per_peer=1)
    liar, liar2, honest = MetadataServe(forged), MetadataServe(forged), MetadataServe(info)
    events = fetch.add_peer("liar", len(info), 0.0) + fetch.add_peer("liar2", len(info), 0.0)
    assert len(events) == 2
    out: list[object] = []
    for event in events:
        assert isinstance(event, SendMetadataRequest)
        server = liar if event.peer == "liar" else liar2
        answer = server.answer(event.peer, MetadataRequest(event.piece))
        assert isinstance(answer, MetadataData)
        out += fetch.on_message(event.peer, answer, 0.0)
    # The third piece goes to whichever asked first; answer it from the liars' copy.
    requests = [event for event in out if isinstance(event, SendMetadataRequest)]
    assert len(requests) == 1
    answer = liar.answer(requests[0].peer, MetadataRequest(requests[0].piece))
    assert isinstance(answer, MetadataData)
    assert fetch.on_message(requests[0].peer, answer, 0.0) == [MetadataHashFailed(frozenset({"liar", "liar2"}))]
    # The senders are out; an honest peer still completes the fetch.
    assert fetch.on_message("liar", answer, 0.0) == []
    assert serve(fetch, honest, fetch.add_peer("honest", len(info), 1.0), 1.0) == [MetadataCompleted(info)]


def test_a_metadata_piece_of_the_wrong_size_fails_that_peer_and_is_asked_elsewhere() -> None:
    info = info_dict(40_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), requests_per_peer=1)
    fetch.add_peer("a", len(info), 0.0)
    fetch.add_peer("b", len(info), 0.0)
    short = MetadataData(0, len(info), info[:100])
    events = fetch.on_message("a", short, 0.0)
    assert events[0] == MetadataPeerFailed("a", "metadata piece 0 has 100 bytes, not 16384")
    assert SendMetadataRequest("b", 0) not in events  # b is busy with piece 1; piece 0 waits
    assert fetch.on_message("a", short, 0.0) == []  # the failed peer is no longer heard
    events = fetch.on_message("b", MetadataData(1, len(info), info[16384:32768]), 0.0)
    assert events == [SendMetadataRequest("b", 0)]


def test_an_unsolicited_metadata_piece_fails_the_peer() -> None:
    info = info_dict(40_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), requests_per_peer=1)
    fetch.add_peer("a", len(info), 0.0)
    events = fetch.on_message("a", MetadataData(2, len(info), info[32768:]), 0.0)
    assert events == [MetadataPeerFailed("a", "metadata piece 2 was not requested")]


def test_a_piece_with_another_total_size_fails_the_peer() -> None:
    info = info_dict(40_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest())
    fetch.add_peer("a", len(info), 0.0)
    events = fetch.on_message("a", MetadataData(0, len(info) + 1, info[:16384]), 0.0)
    assert events == [MetadataPeerFailed("a", f"total_size {len(info) + 1}, not {len(info)}")]


def test_a_peer_failing_after_sending_pieces_restarts_the_round_without_them() -> None:
    info = info_dict(40_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), requests_per_peer=1)
    fetch.add_peer("a", len(info), 0.0)
    assert fetch.on_message("a", MetadataData(0, len(info), info[:16384]), 0.0) == [SendMetadataRequest("a", 1)]
    events = fetch.on_message("a", MetadataData(1, len(info), b"short"), 0.0)
    assert events == [MetadataPeerFailed("a", "metadata piece 1 has 5 bytes, not 16384")]
    assert fetch.state is FetchState.WAITING_FOR_PEERS
    assert fetch.add_peer("b", len(info), 0.0) == [SendMetadataRequest("b", 0)]  # from the start


def test_an_oversized_or_empty_metadata_size_is_never_asked_for() -> None:
    fetch = MetadataFetch(info_hash_v1=bytes(20), max_metadata_bytes=1 << 20)
    assert fetch.add_peer("huge", (1 << 20) + 1, 0.0) == []
    assert fetch.add_peer("none", None, 0.0) == []
    assert fetch.add_peer("zero", 0, 0.0) == []
    assert fetch.state is FetchState.WAITING_FOR_PEERS
    assert fetch.add_peer("fine", 1 << 20, 0.0)[0] == SendMetadataRequest("fine", 0)
    assert fetch.metadata_size == 1 << 20


def test_the_size_most_peers_announce_is_fetched_and_the_others_are_not_asked() -> None:
    info = info_dict(20_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest())
    fetch.add_peer("liar", 4 * len(info), 0.0)  # the only peer so far: its size is tried first
    assert fetch.metadata_size == 4 * len(info)
    fetch.add_peer("b", len(info), 0.0)
    assert fetch.add_peer("c", len(info), 0.0) == []  # the round already runs with the liar's size
    # The liar's first piece does not add up; once it has failed, no peer has its size and
    # a new round takes the size the others agree on.
    events = fetch.on_message("liar", MetadataData(0, 4 * len(info), b"x"), 0.0)
    assert events == [
        MetadataPeerFailed("liar", f"metadata piece 0 has 1 bytes, not {METADATA_PIECE_BYTES}"),
        SendMetadataRequest("b", 0),
        SendMetadataRequest("b", 1),
    ]
    assert fetch.metadata_size == len(info)
    assert serve(fetch, MetadataServe(info), events[1:], 0.0) == [MetadataCompleted(info)]


def test_a_silent_peer_times_out_and_its_piece_goes_to_another() -> None:
    info = info_dict(20_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), request_timeout_s=10.0, requests_per_peer=1)
    assert fetch.add_peer("slow", len(info), 0.0) == [SendMetadataRequest("slow", 0)]
    assert fetch.add_peer("fast", len(info), 0.0) == [SendMetadataRequest("fast", 1)]
    assert fetch.on_message("fast", MetadataData(1, len(info), info[16384:]), 1.0) == []
    assert fetch.next_deadline() == 10.0
    assert fetch.tick(9.9) == []
    assert fetch.tick(10.0) == [SendMetadataRequest("fast", 0)]
    # The slow peer's late answer still counts: it is not a piece it was never asked for.
    assert fetch.on_message("slow", MetadataData(0, len(info), info[:16384]), 11.0) == [MetadataCompleted(info)]


def test_a_reject_sends_the_piece_to_another_peer_and_rests_the_rejecter() -> None:
    info = info_dict(20_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), request_timeout_s=5.0, requests_per_peer=1)
    fetch.add_peer("a", len(info), 0.0)
    fetch.add_peer("b", len(info), 0.0)
    assert fetch.on_message("a", MetadataReject(0), 1.0) == []  # b is busy; a rests
    assert fetch.next_deadline() == 5.0  # b's request times out before a may be asked again
    assert fetch.on_message("b", MetadataData(1, len(info), info[16384:]), 2.0) == [SendMetadataRequest("b", 0)]
    assert fetch.on_message("a", MetadataReject(5), 3.0) == []  # a reject of nothing asked is noise


def test_a_rested_peer_is_asked_again_after_the_timeout() -> None:
    info = info_dict(10_000)  # one piece
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest(), request_timeout_s=5.0)
    fetch.add_peer("only", len(info), 0.0)
    assert fetch.on_message("only", MetadataReject(0), 1.0) == []
    assert fetch.next_deadline() == 6.0
    assert fetch.tick(5.9) == []
    assert fetch.tick(6.0) == [SendMetadataRequest("only", 0)]


def test_a_peer_leaving_hands_its_pieces_to_the_others() -> None:
    info = info_dict(20_000)
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(info).digest())
    fetch.add_peer("a", len(info), 0.0)
    fetch.add_peer("b", len(info), 0.0)
    assert fetch.remove_peer("a", 1.0) == [SendMetadataRequest("b", 0), SendMetadataRequest("b", 1)]
    assert fetch.remove_peer("nobody", 1.0) == []


def test_a_fetch_needs_a_whole_info_hash() -> None:
    with pytest.raises(UsageError):
        MetadataFetch()
    with pytest.raises(UsageError):
        MetadataFetch(info_hash_v1=bytes(19))


# -- BEP 9 serving -------------------------------------------------------------------------


def test_serving_answers_pieces_and_rejects_what_does_not_exist() -> None:
    info = info_dict(40_000)
    server = MetadataServe(info)
    assert server.metadata_size == len(info)
    last = server.answer("p", MetadataRequest(2))
    assert last == MetadataData(2, len(info), info[2 * METADATA_PIECE_BYTES :])
    assert server.answer("p", MetadataRequest(3)) == MetadataReject(3)
    assert server.answer("p", MetadataRequest(1 << 40)) == MetadataReject(1 << 40)


def test_a_peer_asking_for_the_metadata_over_and_over_is_rejected() -> None:
    info = info_dict(20_000)  # two pieces
    server = MetadataServe(info, serves_per_peer=2)
    answers = [server.answer("greedy", MetadataRequest(index % 2)) for index in range(10)]
    assert all(isinstance(answer, MetadataData) for answer in answers[:4])
    assert all(isinstance(answer, MetadataReject) for answer in answers[4:])
    assert isinstance(server.answer("other", MetadataRequest(0)), MetadataData)
    server.forget("greedy")
    assert isinstance(server.answer("greedy", MetadataRequest(0)), MetadataData)


# -- BEP 11 codec --------------------------------------------------------------------------


def test_pex_messages_round_trip_both_families_with_flags() -> None:
    message = PexMessage(
        added=(
            PexPeer(("10.0.0.1", 6881), PexFlags.SEED | PexFlags.REACHABLE),
            PexPeer(("2001:db8::1", 51413), PexFlags.UTP | PexFlags.PREFERS_ENCRYPTION),
            PexPeer(("10.0.0.2", 1), PexFlags.HOLEPUNCH),
        ),
        dropped=(("192.168.1.9", 7000), ("2001:db8::2", 80)),
    )
    decoded = decode_pex(encode_pex(message))
    assert set(decoded.added) == set(message.added)
    assert set(decoded.dropped) == set(message.dropped)
    fields = bencode.decode(encode_pex(message))
    assert isinstance(fields, dict)
    assert fields[b"added"] == bytes([10, 0, 0, 1, 0x1A, 0xE1, 10, 0, 0, 2, 0, 1])
    assert fields[b"added.f"] == bytes([0x12, 0x08])


def test_pex_flags_of_the_wrong_length_are_ignored_but_the_peers_kept() -> None:
    payload = bencode.encode({"added": bytes([10, 0, 0, 1, 0, 80]), "added.f": b"\x02\x02"})
    assert decode_pex(payload).added == (PexPeer(("10.0.0.1", 80), PexFlags.NONE),)


def test_pex_addresses_no_peer_can_have_are_dropped() -> None:
    added = bytes([0, 0, 0, 0, 0, 80]) + bytes([224, 0, 0, 1, 0, 80]) + bytes([10, 0, 0, 1, 0, 0])
    added += bytes([255, 255, 255, 255, 0, 80]) + bytes([10, 0, 0, 9, 0, 80])
    assert decode_pex(bencode.encode({"added": added})).added == (PexPeer(("10.0.0.9", 80)),)


def test_an_oversized_pex_list_is_ignored_whole() -> None:
    flood = b"".join(bytes([10, 0, index >> 8, index & 0xFF, 0, 80]) for index in range(PEX_MAX_INCOMING + 1))
    just_enough = flood[: 6 * PEX_MAX_INCOMING]
    assert decode_pex(bencode.encode({"added": flood})).added == ()
    assert len(decode_pex(bencode.encode({"added": just_enough})).added) == PEX_MAX_INCOMING
    assert decode_pex(bencode.encode({"dropped": flood})).dropped == ()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"i3e", "not a dictionary"),
        (b"d5:added", "ut_pex"),
        (bencode.encode({"added": bytes(7)}), "6-byte"),
        (bencode.encode({"added6": bytes(6)}), "18-byte"),
        (bencode.encode({"dropped": 5}), "'dropped'"),
        (bencode.encode({"dropped6": [b"x"]}), "'dropped6'"),
    ],
)
def test_malformed_pex_messages_are_protocol_errors(payload: bytes, match: str) -> None:
    with pytest.raises(PeerProtocolError, match=match):
        decode_pex(payload)


def test_encode_pex_refuses_a_host_name() -> None:
    with pytest.raises(UsageError):
        encode_pex(PexMessage(added=(PexPeer(("example.org", 80)),)))


# -- BEP 11 state --------------------------------------------------------------------------


def addresses(count: int, start: int = 0) -> dict[tuple[str, int], PexFlags]:
    return {(f"10.1.{(start + index) >> 8}.{(start + index) & 0xFF}", 6881): PexFlags.NONE for index in range(count)}


def test_pex_sends_the_first_diff_at_once_then_about_once_a_minute() -> None:
    state = PexState(remote=("10.9.9.9", 1))
    connected = {("10.9.9.9", 1): PexFlags.NONE, ("10.0.0.1", 2): PexFlags.SEED}
    assert state.message_due(connected, 0.0) == PexMessage(added=(PexPeer(("10.0.0.1", 2), PexFlags.SEED),))
    assert state.next_deadline() == 60.0
    later = {("10.0.0.3", 4): PexFlags.NONE}
    assert state.message_due(later, 59.0) is None
    assert state.message_due(later, 60.0) == PexMessage(added=(PexPeer(("10.0.0.3", 4)),), dropped=(("10.0.0.1", 2),))
    assert state.message_due(later, 500.0) is None  # nothing changed: no empty message


def test_pex_sends_at_most_fifty_added_and_fifty_dropped_and_the_rest_later() -> None:
    state = PexState()
    first = state.message_due(addresses(120), 0.0)
    assert first is not None
    assert len(first.added) == PEX_MAX_ADDED
    second = state.message_due(addresses(120), 60.0)
    assert second is not None
    assert len(second.added) == PEX_MAX_ADDED
    assert not set(first.added) & set(second.added)
    third = state.message_due({}, 120.0)
    assert third is not None
    assert len(third.dropped) == 50
    assert third.added == ()
    fourth = state.message_due({}, 180.0)
    assert fourth is not None
    assert len(fourth.dropped) == 50
    assert state.message_due({}, 240.0) is None


def test_incoming_pex_floods_are_ignored_until_the_interval_passes() -> None:
    state = PexState(remote=("10.9.9.9", 1))
    message = PexMessage(added=(PexPeer(("10.0.0.1", 2)), PexPeer(("10.9.9.9", 1))))
    assert state.receive(message, 0.0) == [PexPeer(("10.0.0.1", 2))]  # never the peer itself
    assert all(state.receive(message, 0.1 * index) == [] for index in range(1, 400))
    assert state.receive(message, 45.0) == [PexPeer(("10.0.0.1", 2))]
