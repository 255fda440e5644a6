"""The tracker client cores, paired with bitswarm's own tracker core: no sockets needed."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import pytest

from bitswarm import bencode
from bitswarm.errors import TrackerError, UsageError
from bitswarm.tracker.announce import (
    AnnounceParams,
    TrackerTiers,
    UdpAnnouncer,
    UdpState,
    decode_compact_peers,
    decode_http_announce,
    http_announce_url,
    tracker_kind,
)
from bitswarm.tracker.memory import MemoryStore
from bitswarm.tracker.server import HttpTracker, RequestCounters, TrackerPolicy, UdpAnnounce, UdpReply, UdpTracker
from bitswarm.tracker.swarm import Event

PARAMS = AnnounceParams(
    info_hash=bytes(range(20)), peer_id=b"-BS0100-abcdefghijkl", port=6881, uploaded=1, downloaded=2, left=3,
    event=Event.STARTED, numwant=25, key=0xBEEF,
)  # fmt: skip


def test_http_url_is_understood_by_our_tracker_and_its_answer_by_our_client() -> None:
    url = http_announce_url("http://tracker.example/announce?passkey=x", PARAMS)
    query = urlsplit(url).query.encode()
    tracker = HttpTracker(TrackerPolicy(), RequestCounters())
    announce = tracker.parse_announce(query, ("192.0.2.9", 1), None)
    request = announce.request
    assert (request.info_hash, request.peer_id, request.event, request.numwant) == (
        PARAMS.info_hash, PARAMS.peer_id, Event.STARTED, 25,
    )  # fmt: skip
    assert (request.uploaded, request.downloaded, request.left) == (1, 2, 3)
    store = MemoryStore(peer_timeout_s=100, rng=random.Random(1))
    other = tracker.parse_announce(query.replace(b"port=6881", b"port=7000"), ("192.0.2.8", 1), None)
    store.announce_now(other.request, 0)
    result = decode_http_announce(tracker.encode_announce(announce, store.announce_now(request, 0)))
    assert result.peers == (("192.0.2.8", 7000),)
    assert (result.seeders, result.leechers, result.interval_s) == (0, 2, 1800)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"d14:failure reason5:nope!e", "tracker says: nope!"),
        (b"garbage", "not valid bencode"),
        (b"li1ee", "not a dictionary"),
        (b"d5:peers0:e", "no interval"),
    ],
)
def test_broken_or_refusing_http_replies_are_tracker_errors(body: bytes, message: str) -> None:
    with pytest.raises(TrackerError, match=message):
        decode_http_announce(body)


def test_replies_with_keys_out_of_order_are_read_but_duplicates_are_not() -> None:
    assert decode_http_announce(b"d8:intervali900e5:peers0:8:completei1ee").seeders == 1
    with pytest.raises(TrackerError, match="duplicate"):
        decode_http_announce(b"d8:intervali900e5:peers0:8:intervali1ee")


def test_dictionary_peers_and_peers6_and_hostile_entries() -> None:
    body = bencode.encode({
        b"interval": 5,  # clamped up to a minute
        b"peers": [
            {b"ip": b"10.0.0.1", b"port": 1},
            {b"ip": b"evil.example", b"port": 2},
            {b"ip": b"10.0.0.2", b"port": 0},
        ],
        b"peers6": bytes(15) + b"\x01" + b"\x00\x50" + b"\x01",  # a trailing partial entry
        b"warning message": b"be nice",
    })  # fmt: skip
    result = decode_http_announce(body)
    assert result.peers == (("10.0.0.1", 1), ("::1", 80))
    assert result.interval_s == 60
    assert result.warning == "be nice"
    assert decode_compact_peers(b"\x7f\x00\x00\x01\x00\x00", 4) == []


def udp_pair() -> tuple[UdpAnnouncer, UdpTracker, MemoryStore]:
    tracker = UdpTracker(TrackerPolicy(), RequestCounters(), secret=b"s" * 32)
    return UdpAnnouncer(PARAMS, random.Random(5)), tracker, MemoryStore(peer_timeout_s=100, rng=random.Random(2))


def test_udp_client_and_server_cores_complete_an_announce() -> None:
    client, tracker, store = udp_pair()
    source = ("192.0.2.20", 4444)
    connect = client.start(now=0.0)
    reply = tracker.receive(connect.payload, source, 0.0)
    assert isinstance(reply, UdpReply)
    announce = client.receive(reply.payload, 0.0)
    assert announce is not None
    action = tracker.receive(announce.payload, source, 0.0)
    assert isinstance(action, UdpAnnounce)
    assert action.request.address == bytes([192, 0, 2, 20]) + (6881).to_bytes(2, "big")
    assert (
        client.receive(tracker.encode_announce(action.transaction_id, store.announce_now(action.request, 0)), 0.0)
        is None
    )
    assert client.state is UdpState.DONE
    assert client.result is not None
    assert (client.result.leechers, client.result.seeders, client.result.peers) == (1, 0, ())
    assert client.connection is not None


def test_udp_client_retries_with_backoff_then_gives_up() -> None:
    client, _, _ = udp_pair()
    first = client.start(now=0.0)
    assert first.retry_at == 15
    retries: list[float] = []
    while (next_try := client.timeout(now=retries[-1] if retries else first.retry_at)) is not None:
        retries.append(next_try.retry_at)
    assert retries == [15 + 30, 45 + 60, 105 + 120]
    assert client.state is UdpState.FAILED
    with pytest.raises(UsageError):
        client.timeout(now=1000.0)


def test_udp_client_ignores_replies_for_other_transactions_and_reports_errors() -> None:
    client, _, _ = udp_pair()
    client.start(now=0.0)
    assert client.receive(b"\x00\x00\x00\x00\xff\xff\xff\xff" + bytes(8), 0.0) is None
    assert client.connection is None  # the forged connect reply was not taken
    transaction = client._transaction
    client.receive(b"\x00\x00\x00\x03" + transaction.to_bytes(4, "big") + b"banned", 0.0)
    assert client.state is UdpState.FAILED
    assert client.error == "tracker says: banned"


def test_tiers_are_shuffled_within_and_a_working_tracker_moves_first() -> None:
    tiers = TrackerTiers((("a", "b", "c"), ("d",)), random.Random(3))
    assert sorted(tiers.in_order()[:3]) == ["a", "b", "c"]
    assert tiers.in_order()[3] == "d"
    tiers.succeeded("c")
    assert tiers.in_order()[0] == "c"


def test_tracker_kinds() -> None:
    assert tracker_kind("HTTPS://t/announce") == "http"
    assert tracker_kind("udp://t:80") == "udp"
    with pytest.raises(TrackerError):
        tracker_kind("wss://t")


def test_a_trackers_external_ip_is_read_and_a_malformed_one_left_out() -> None:
    """BEP 24: the tracker says which address it saw us at, 4 or 16 bytes."""
    v4 = decode_http_announce(b"d11:external ip4:\x08\x08\x04\x048:intervali900e5:peers0:e")
    assert v4.external_ip == "8.8.4.4"
    v6 = decode_http_announce(b"d11:external ip16:" + bytes(15) + b"\x05" + b"8:intervali900e5:peers0:e")
    assert v6.external_ip == "::5"
    assert decode_http_announce(b"d11:external ip3:abc8:intervali900e5:peers0:e").external_ip is None
