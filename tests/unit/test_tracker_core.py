"""The tracker's protocol cores: every request shape, good and hostile, bytes in and out."""

from __future__ import annotations

import random
import struct
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswarm import bencode
from bitswarm.tracker.memory import MemoryStore
from bitswarm.tracker.server import (
    CONNECTION_WINDOW_S,
    MAX_QUERY_BYTES,
    MAX_SCRAPE_HASHES,
    UDP_PROTOCOL_ID,
    HttpTracker,
    RequestCounters,
    TrackerPolicy,
    TrackerRequestError,
    UdpAnnounce,
    UdpReply,
    UdpScrape,
    UdpTracker,
    compact_address,
    unescape,
)
from bitswarm.tracker.swarm import Event

INFO_HASH = bytes(range(20))
PEER_ID = b"-BS0100-" + b"x" * 12
CLIENT = ("192.0.2.7", 40000)


def query(**overrides: bytes | str | None) -> bytes:
    values: dict[str, bytes | str | None] = {
        "info_hash": INFO_HASH,
        "peer_id": PEER_ID,
        "port": "6881",
        "uploaded": "0",
        "downloaded": "0",
        "left": "100",
        "compact": "1",
    }
    values.update(overrides)
    parts = []
    for name, value in values.items():
        if value is None:
            continue
        raw = value.encode() if isinstance(value, str) else value
        parts.append(f"{name}={quote_from_bytes(raw)}")
    return "&".join(parts).encode()


def http(policy: TrackerPolicy | None = None) -> HttpTracker:
    return HttpTracker(policy or TrackerPolicy(), RequestCounters())


def test_announce_is_parsed_with_the_address_the_tracker_saw() -> None:
    announce = http().parse_announce(query(event="started", numwant="30", key="abc"), CLIENT, None)
    request = announce.request
    assert request.info_hash == INFO_HASH
    assert request.peer_id == PEER_ID
    assert request.address == bytes([192, 0, 2, 7]) + (6881).to_bytes(2, "big")
    assert request.event is Event.STARTED
    assert (request.left, request.uploaded, request.downloaded, request.numwant) == (100, 0, 0, 30)
    assert announce.compact


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"info_hash": None}, "missing info_hash"),
        ({"peer_id": None}, "missing peer_id"),
        ({"port": None}, "missing port"),
        ({"left": None}, "missing left"),
        ({"info_hash": b"short"}, "invalid info_hash"),
        ({"info_hash": b"x" * 21}, "invalid info_hash"),
        ({"peer_id": b"x" * 19}, "invalid peer_id"),
        ({"port": "0"}, "invalid port"),
        ({"port": "65536"}, "invalid port"),
        ({"port": "-1"}, "invalid port"),
        ({"port": "http"}, "invalid port"),
        ({"left": "-5"}, "invalid left"),
        ({"uploaded": "1e9"}, "invalid uploaded"),
        ({"downloaded": "9" * 30}, "invalid downloaded"),
        ({"numwant": "-1"}, "invalid numwant"),
        ({"event": "exploded"}, "invalid event"),
        ({"key": "k" * 65}, "invalid key"),
    ],
)
def test_bad_announce_parameters_get_a_named_failure(overrides: dict[str, bytes | str | None], reason: str) -> None:
    with pytest.raises(TrackerRequestError, match=reason):
        http().parse_announce(query(**overrides), CLIENT, None)


def test_repeated_parameters_are_refused() -> None:
    with pytest.raises(TrackerRequestError, match="repeated port"):
        http().parse_announce(query() + b"&port=7000", CLIENT, None)


def test_a_repeat_hidden_by_escaping_the_name_is_refused() -> None:
    with pytest.raises(TrackerRequestError, match="repeated port"):
        http().parse_announce(query() + b"&p%6Frt=7000", CLIENT, None)


def test_unknown_parameters_may_repeat_and_escaped_names_count() -> None:
    escaped = query().replace(b"peer_id=", b"peer%5Fid=") + b"&x=1&x=2&&"
    assert http().parse_announce(escaped, CLIENT, None).request.peer_id == PEER_ID


@given(st.binary(max_size=40), st.sampled_from(["", "/", "~", "-._"]))
def test_unescape_agrees_with_urllib_on_valid_escapes(value: bytes, safe: str) -> None:
    sent = quote_from_bytes(value, safe=safe).encode()
    assert unescape(sent) == unquote_to_bytes(sent)


@pytest.mark.parametrize("value", [b"%", b"%4", b"%zz", b"%4g", b"ab%", b"%\\41"])
def test_a_broken_percent_escape_is_a_failure_not_passed_through(value: bytes) -> None:
    with pytest.raises(TrackerRequestError, match="invalid percent-encoding"):
        unescape(value)
    with pytest.raises(TrackerRequestError, match="invalid percent-encoding"):
        http().parse_announce(query() + b"&key=" + value, CLIENT, None)


def test_over_long_query_and_too_many_parameters_are_refused() -> None:
    with pytest.raises(TrackerRequestError, match="too long"):
        http().parse_announce(query() + b"&x=" + b"a" * MAX_QUERY_BYTES, CLIENT, None)
    with pytest.raises(TrackerRequestError, match="too many"):
        http().parse_announce(query() + b"".join(b"&p%d=1" % n for n in range(MAX_SCRAPE_HASHES + 20)), CLIENT, None)


def test_ip_parameter_is_ignored_unless_trusted() -> None:
    spoofed = query(ip="203.0.113.9")
    assert http().parse_announce(spoofed, CLIENT, None).request.address[:4] == bytes([192, 0, 2, 7])
    trusted = http(TrackerPolicy(trust_ip_parameter=True)).parse_announce(spoofed, CLIENT, None)
    assert trusted.request.address[:4] == bytes([203, 0, 113, 9])


def test_numwant_is_capped_and_defaulted() -> None:
    policy = TrackerPolicy(default_numwant=40, max_numwant=100)
    assert http(policy).parse_announce(query(numwant="5000"), CLIENT, None).request.numwant == 100
    assert http(policy).parse_announce(query(), CLIENT, None).request.numwant == 40


def test_ipv4_mapped_ipv6_client_counts_as_ipv4() -> None:
    announce = http().parse_announce(query(), ("::ffff:192.0.2.7", 1), None)
    assert len(announce.request.address) == 6
    assert compact_address("2001:db8::1", 80) == bytes.fromhex("20010db8000000000000000000000001") + b"\x00\x50"


def _view_for(requests: list[tuple[str, str]], asker: str) -> tuple[HttpTracker, bytes]:
    tracker = http()
    store = MemoryStore(peer_timeout_s=100, rng=random.Random(1))
    for host, left in requests:
        store.announce_now(tracker.parse_announce(query(left=left), (host, 1), None).request, now=0)
    announce = tracker.parse_announce(query(left="100"), (asker, 1), None)
    return tracker, tracker.encode_announce(announce, store.announce_now(announce.request, now=0))


def test_compact_response_carries_counts_intervals_and_peers() -> None:
    _, body = _view_for([("192.0.2.1", "0"), ("192.0.2.2", "5")], "192.0.2.3")
    response = bencode.decode(body)
    assert isinstance(response, dict)
    assert (response[b"complete"], response[b"incomplete"], response[b"downloaded"]) == (1, 2, 0)
    assert (response[b"interval"], response[b"min interval"]) == (1800, 900)
    peers = response[b"peers"]
    assert isinstance(peers, bytes)
    # Seeders first for a leecher, never the asker.
    assert [peers[at : at + 4] for at in range(0, len(peers), 6)] == [bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])]


def test_ipv6_peers_go_in_peers6() -> None:
    _, body = _view_for([("2001:db8::1", "0")], "2001:db8::2")
    response = bencode.decode(body)
    assert isinstance(response, dict)
    assert response[b"peers6"] == bytes.fromhex("20010db8000000000000000000000001") + (6881).to_bytes(2, "big")
    assert response[b"peers"] == b""


def test_dictionary_model_when_compact_is_zero() -> None:
    tracker = http()
    store = MemoryStore(peer_timeout_s=100, rng=random.Random(1))
    store.announce_now(tracker.parse_announce(query(left="0"), ("192.0.2.1", 1), None).request, now=0)
    announce = tracker.parse_announce(query(compact="0"), ("192.0.2.2", 1), None)
    response = bencode.decode(tracker.encode_announce(announce, store.announce_now(announce.request, now=0)))
    assert isinstance(response, dict)
    assert response[b"peers"] == [{b"ip": b"192.0.2.1", b"port": 6881}]


def test_scrape_takes_many_hashes_once_each_within_a_limit() -> None:
    other = bytes(20)
    hashes = http().parse_scrape(query(info_hash=INFO_HASH) + b"&info_hash=" + quote_from_bytes(other).encode(), None)
    assert hashes == [INFO_HASH, other]
    many = b"&".join(b"info_hash=" + quote_from_bytes(bytes([n]) * 20).encode() for n in range(MAX_SCRAPE_HASHES + 1))
    with pytest.raises(TrackerRequestError, match="too many"):
        http().parse_scrape(many, None)
    with pytest.raises(TrackerRequestError, match="invalid info_hash"):
        http().parse_scrape(b"info_hash=abc", None)


def test_full_scrape_can_be_turned_off() -> None:
    assert http().parse_scrape(b"", None) is None
    with pytest.raises(TrackerRequestError, match="disabled"):
        http(TrackerPolicy(allow_full_scrape=False)).parse_scrape(b"", None)


def test_whitelist_and_passkeys_admit_only_what_they_list() -> None:
    policy = TrackerPolicy(whitelist=frozenset([INFO_HASH]), passkeys=frozenset(["alice"]))
    assert http(policy).parse_announce(query(), CLIENT, "alice").request.passkey == "alice"
    with pytest.raises(TrackerRequestError, match="unknown passkey"):
        http(policy).parse_announce(query(), CLIENT, "mallory")
    with pytest.raises(TrackerRequestError, match="unknown passkey"):
        http(policy).parse_announce(query(), CLIENT, None)
    with pytest.raises(TrackerRequestError, match="not registered"):
        http(policy).parse_announce(query(info_hash=bytes(20)), CLIENT, "alice")


def test_private_swarms_in_an_open_tracker_need_one_of_their_passkeys() -> None:
    policy = TrackerPolicy(private_swarms=frozenset([INFO_HASH]), swarm_passkeys=frozenset(["buyer1"]))
    assert http(policy).parse_announce(query(), CLIENT, "buyer1").request.passkey == "buyer1"
    for passkey in (None, "mallory"):
        with pytest.raises(TrackerRequestError, match="unknown passkey"):
            http(policy).parse_announce(query(), CLIENT, passkey)
    # Every other swarm stays open, with or without a passkey.
    assert http(policy).parse_announce(query(info_hash=bytes(20)), CLIENT, None).request.info_hash == bytes(20)
    assert http(policy).parse_announce(query(info_hash=bytes(20)), CLIENT, "anyone").request.info_hash == bytes(20)


# ---- UDP (BEP 15) ---------------------------------------------------------------------

SOURCE = ("198.51.100.4", 5555)


def udp(policy: TrackerPolicy | None = None) -> UdpTracker:
    return UdpTracker(policy or TrackerPolicy(), RequestCounters(), secret=b"k" * 32)


def connect(tracker: UdpTracker, now: float = 1000.0, source: tuple[str, int] = SOURCE) -> bytes:
    reply = tracker.receive(struct.pack(">QII", UDP_PROTOCOL_ID, 0, 77), source, now)
    assert isinstance(reply, UdpReply)
    action, transaction = struct.unpack_from(">II", reply.payload)
    assert (action, transaction, len(reply.payload)) == (0, 77, 16)
    return reply.payload[8:]


def announce_datagram(connection_id: bytes, *, event: int = 2, port: int = 6881, numwant: int = -1) -> bytes:
    return connection_id + struct.pack(
        ">II20s20sQQQIIIiH", 1, 99, INFO_HASH, PEER_ID, 0, 100, 0, event, 0, 0, numwant, port
    )


def test_udp_connect_then_announce_gives_a_request_from_the_source_address() -> None:
    tracker = udp()
    action = tracker.receive(announce_datagram(connect(tracker)), SOURCE, 1001.0)
    assert isinstance(action, UdpAnnounce)
    assert action.transaction_id == (99).to_bytes(4, "big")
    assert action.request.address == bytes([198, 51, 100, 4]) + (6881).to_bytes(2, "big")
    assert action.request.numwant == TrackerPolicy().default_numwant
    reply = tracker.encode_announce(
        action.transaction_id, MemoryStore(peer_timeout_s=1, rng=random.Random()).announce_now(action.request, 0)
    )
    assert struct.unpack(">IIIII", reply) == (1, 99, 1800, 1, 0)


def test_udp_connection_id_lives_one_to_two_minutes_and_only_for_its_address() -> None:
    tracker = udp()
    now = 10 * CONNECTION_WINDOW_S  # the start of a window: the ID lives two full windows
    connection_id = connect(tracker, now)
    assert isinstance(tracker.receive(announce_datagram(connection_id), SOURCE, now + 119), UdpAnnounce)
    assert tracker.receive(announce_datagram(connection_id), SOURCE, now + 120) is None
    assert tracker.receive(announce_datagram(connection_id), ("198.51.100.5", 5555), now) is None
    assert tracker.receive(announce_datagram(b"\x00" * 8), SOURCE, now) is None


def test_udp_tolerates_bep41_url_data_after_the_announce() -> None:
    tracker = udp()
    options = b"\x02\x0c/announce?x=\x01\x00"
    assert isinstance(tracker.receive(announce_datagram(connect(tracker)) + options, SOURCE, 1000.0), UdpAnnounce)


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x00" * 15,
        struct.pack(">QII", UDP_PROTOCOL_ID + 1, 0, 1),
        struct.pack(">QII", UDP_PROTOCOL_ID, 0, 1) + b"extra",
        struct.pack(">QII", UDP_PROTOCOL_ID, 7, 1),
        b"\x00" * 5000,
    ],
    ids=["empty", "short", "wrong-protocol-id", "long-connect", "unknown-action", "oversized"],
)
def test_udp_garbage_gets_silence(datagram: bytes) -> None:
    tracker = udp()
    assert tracker.receive(datagram, SOURCE, 1000.0) is None
    assert sum(tracker.counters.errors.values()) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"event": 4}, b"invalid event"), ({"port": 0}, b"invalid port")],
)
def test_udp_bad_announce_from_a_proven_address_gets_an_error_datagram(kwargs: dict[str, int], message: bytes) -> None:
    tracker = udp()
    reply = tracker.receive(announce_datagram(connect(tracker), **kwargs), SOURCE, 1000.0)
    assert isinstance(reply, UdpReply)
    assert struct.unpack_from(">II", reply.payload) == (3, 99)
    assert reply.payload[8:] == message


def test_udp_short_announce_gets_an_error() -> None:
    tracker = udp()
    reply = tracker.receive(announce_datagram(connect(tracker))[:60], SOURCE, 1000.0)
    assert isinstance(reply, UdpReply)
    assert reply.payload[8:] == b"announce too short"


def test_udp_scrape_answers_each_hash_in_order() -> None:
    tracker = udp()
    header = connect(tracker) + struct.pack(">II", 2, 5)
    action = tracker.receive(header + INFO_HASH + bytes(20), SOURCE, 1000.0)
    assert isinstance(action, UdpScrape)
    assert action.info_hashes == [INFO_HASH, bytes(20)]
    reply = tracker.encode_scrape(action.transaction_id, action.info_hashes, {})
    assert struct.unpack(">II" + "III" * 2, reply) == (2, 5, 0, 0, 0, 0, 0, 0)
    for body in (b"", INFO_HASH[:7], bytes(20) * (MAX_SCRAPE_HASHES + 1)):
        answer = tracker.receive(header + body, SOURCE, 1000.0)
        assert answer is None or (isinstance(answer, UdpReply) and answer.payload[:4] == b"\x00\x00\x00\x03")


def test_udp_refuses_private_swarms_it_cannot_check_a_passkey_for() -> None:
    policy = TrackerPolicy(private_swarms=frozenset([INFO_HASH]), swarm_passkeys=frozenset(["buyer1"]))
    tracker = udp(policy)
    reply = tracker.receive(announce_datagram(connect(tracker)), SOURCE, 1000.0)
    assert isinstance(reply, UdpReply)
    assert b"unknown passkey" in reply.payload
    store = MemoryStore(peer_timeout_s=100, rng=random.Random(5))
    assert b"unknown passkey" in (tracker.answer_now(announce_datagram(connect(tracker)), SOURCE, 1000.0, store) or b"")


def test_udp_honours_the_whitelist() -> None:
    tracker = udp(TrackerPolicy(whitelist=frozenset([bytes(20)])))
    reply = tracker.receive(announce_datagram(connect(tracker)), SOURCE, 1000.0)
    assert isinstance(reply, UdpReply)
    assert b"not registered" in reply.payload


# ---- the memory store's direct paths: the same bytes as the general ones ----------------


def paired_stores() -> tuple[MemoryStore, MemoryStore]:
    return (
        MemoryStore(peer_timeout_s=100, rng=random.Random(5)),
        MemoryStore(peer_timeout_s=100, rng=random.Random(5)),
    )


def general_udp_answer(
    tracker: UdpTracker, datagram: bytes, source: tuple[str, int], store: MemoryStore
) -> bytes | None:
    action = tracker.receive(datagram, source, 1000.0)
    if action is None or isinstance(action, UdpReply):
        return None if action is None else action.payload
    if isinstance(action, UdpAnnounce):
        return tracker.encode_announce(action.transaction_id, store.announce_now(action.request, 1000.0))
    return tracker.encode_scrape(action.transaction_id, action.info_hashes, store.scrape_now(action.info_hashes))


@pytest.mark.parametrize(
    "policy",
    [TrackerPolicy(), TrackerPolicy(whitelist=frozenset([bytes(20)])), TrackerPolicy(trust_ip_parameter=True)],
    ids=["open", "whitelist", "trusted-ip"],
)
def test_udp_answer_now_gives_the_general_paths_bytes(policy: TrackerPolicy) -> None:
    fast, general = udp(policy), udp(policy)
    fast_store, general_store = paired_stores()
    for source in (SOURCE, ("2001:db8::7", 5555)):
        connection_id = connect(fast, source=source)
        claimed_ip = connection_id + struct.pack(
            ">II20s20sQQQIIIiH", 1, 9, INFO_HASH, PEER_ID, 0, 0, 0, 0, 0x0A000001, 0, -1, 7000
        )
        datagrams = [
            struct.pack(">QII", UDP_PROTOCOL_ID, 0, 77),
            *(announce_datagram(connection_id, port=port, event=port % 4) for port in range(6000, 6040)),
            announce_datagram(connection_id, numwant=3),
            announce_datagram(connection_id, numwant=5000),
            announce_datagram(connection_id, event=5),
            announce_datagram(connection_id, port=0),
            announce_datagram(connection_id)[:60],
            announce_datagram(b"\x00" * 8),
            claimed_ip,
            connection_id + struct.pack(">II", 2, 5) + INFO_HASH + bytes(20),
            b"garbage",
        ]
        for datagram in datagrams:
            expected = general_udp_answer(general, datagram, source, general_store)
            assert fast.answer_now(datagram, source, 1000.0, fast_store) == expected
    assert fast_store.full_scrape_now() == general_store.full_scrape_now()
    assert fast.counters.errors == general.counters.errors


@pytest.mark.parametrize("compact", ["1", "0"])
@pytest.mark.parametrize("client", [CLIENT, ("2001:db8::9", 40000)])
def test_http_answer_announce_now_gives_the_general_paths_bytes(compact: str, client: tuple[str, int]) -> None:
    fast, general = http(), http()
    fast_store, general_store = paired_stores()
    for port in range(6000, 6030):
        request = query(port=str(port), left=str(port % 3), compact=compact, numwant=str(port % 7))
        announce = general.parse_announce(request, client, None)
        expected = general.encode_announce(announce, general_store.announce_now(announce.request, 1000.0))
        assert fast.answer_announce_now(request, client, None, 1000.0, fast_store) == expected
    with pytest.raises(TrackerRequestError, match="invalid port"):
        fast.answer_announce_now(query(port="0"), client, None, 1000.0, fast_store)


def test_a_re_announce_in_a_small_swarm_refreshes_only_the_askers_second() -> None:
    # The store's fast path for a known peer in a frozen (bytes) array: one concatenation.
    store = MemoryStore(peer_timeout_s=120, rng=random.Random(3))
    v4 = [compact_address("192.0.2.1", 6000 + n) for n in range(4)]
    v6 = [compact_address("2001:db8::1", 6000 + n) for n in range(3)]
    for n, address in enumerate(v4 + v6):
        store.announce_packed(INFO_HASH, address, 2 if n % 3 == 0 else 0, n % 3 == 0, 50, 1000.0)
    before = store.full_scrape_now()
    # A v4 leecher, a v4 seeder and a v6 seeder say so again; "completed" from a seeder counts not.
    for address, is_seed, event in ((v4[1], False, 0), (v4[0], True, 1), (v6[2], True, 0)):
        seeders, leechers, completed, peers = store.announce_packed(INFO_HASH, address, event, is_seed, 50, 1090.0)
        counts = before[INFO_HASH]
        assert (seeders, leechers, completed) == (counts.seeders, counts.leechers, counts.completed)
        assert address not in [peers[at : at + len(address)] for at in range(0, len(peers), len(address))]
    assert store.full_scrape_now() == before
    assert isinstance(store._swarms[INFO_HASH], bytes)
    assert isinstance(store._swarms6[INFO_HASH], bytes)
    store.expire_now(1150.0, max_swarms=10)
    assert store.peer_count == 3
    seeders, leechers, _, peers = store.announce_packed(INFO_HASH, v4[3], 0, False, 50, 1150.0)
    assert (seeders, leechers) == (2, 2)
    assert sorted(peers[at : at + 6] for at in range(0, len(peers), 6)) == sorted([v4[0], v4[1]])
