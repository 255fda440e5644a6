"""Local service discovery (BEP 14): the announce codec and the LocalDiscovery core (lsd.py)."""

from __future__ import annotations

import random

import pytest

from bitswarm.errors import ProtocolError, UsageError
from bitswarm.lsd import (
    IPV4_GROUP,
    IPV4_HOST,
    IPV6_GROUP,
    IPV6_HOST,
    MAX_ANNOUNCE_BYTES,
    MAX_SEND_BYTES,
    Announce,
    LocalDiscovery,
    PeerDiscovered,
    SendDatagram,
    decode_announce,
    encode_announce,
    new_cookie,
)

HASH_A = bytes.fromhex("00112233445566778899aabbccddeeff00112233")
HASH_B = bytes(range(20))

# What libtorrent 2.0 sends (it writes the hash in lower case and a hex cookie).
LIBTORRENT_ANNOUNCE = (
    b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n"
    b"Infohash: 00112233445566778899aabbccddeeff00112233\r\ncookie: 7e2b1c\r\n\r\n\r\n"
)
# What Transmission 3.00 sends: no cookie.
TRANSMISSION_ANNOUNCE = (
    b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n"
    b"Infohash: 00112233445566778899AABBCCDDEEFF00112233\r\n\r\n\r\n"
)


def core(**options: float) -> LocalDiscovery:
    return LocalDiscovery(port=6881, cookie="ours", groups=(IPV4_GROUP,), **options)


# -- the codec -----------------------------------------------------------------------------


def test_an_announce_round_trips() -> None:
    announce = Announce(6881, (HASH_A, HASH_B), "c00k1e", IPV6_HOST)
    datagram = encode_announce(announce)
    assert datagram == (
        b"BT-SEARCH * HTTP/1.1\r\nHost: [ff15::efc0:988f]:6771\r\nPort: 6881\r\n"
        b"Infohash: 00112233445566778899aabbccddeeff00112233\r\n"
        b"Infohash: 000102030405060708090a0b0c0d0e0f10111213\r\ncookie: c00k1e\r\n\r\n\r\n"
    )
    assert decode_announce(datagram) == announce


def test_real_clients_announces_are_read() -> None:
    assert decode_announce(LIBTORRENT_ANNOUNCE) == Announce(6881, (HASH_A,), "7e2b1c", IPV4_HOST)
    assert decode_announce(TRANSMISSION_ANNOUNCE) == Announce(51413, (HASH_A,), None, IPV4_HOST)


def test_header_names_in_any_case_and_unknown_headers_are_accepted() -> None:
    datagram = (
        b"BT-SEARCH * HTTP/1.1\r\nHOST: 239.192.152.143:6771\r\nport:6881\r\nX-Future: whatever\r\n"
        b"INFOHASH: 00112233445566778899aabbccddeeff00112233\r\nCookie: x\r\n\r\n"
    )
    assert decode_announce(datagram) == Announce(6881, (HASH_A,), "x", IPV4_HOST)


def test_a_repeated_info_hash_counts_once() -> None:
    line = b"Infohash: 00112233445566778899aabbccddeeff00112233\r\n"
    datagram = b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n" + line + line + b"\r\n"
    assert decode_announce(datagram).info_hashes == (HASH_A,)


@pytest.mark.parametrize(
    ("datagram", "match"),
    [
        (b"", "header block"),
        (b"garbage\r\n\r\n", "BT-SEARCH"),
        (b"M-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n", "BT-SEARCH"),
        (b"bt-search * HTTP/1.1\r\nPort: 1\r\n\r\n", "BT-SEARCH"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + b"0" * 40 + b"\r\n", "header block"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + b"0" * 40 + b"\r\n\r\nbody", "header block"),
        (b"BT-SEARCH * HTTP/1.1\r\nInfohash: " + b"0" * 40 + b"\r\n\r\n", "without a Port"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n", "without a Port or an Infohash"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: " + b"0" * 40 + b"\r\n\r\n", "Port"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 65536\r\nInfohash: " + b"0" * 40 + b"\r\n\r\n", "Port"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: -1\r\nInfohash: " + b"0" * 40 + b"\r\n\r\n", "Port"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nPort: 2\r\nInfohash: " + b"0" * 40 + b"\r\n\r\n", "Port"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + b"0" * 39 + b"\r\n\r\n", "Infohash"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + b"g" * 40 + b"\r\n\r\n", "Infohash"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + b"0" * 41 + b"\r\n\r\n", "Infohash"),
        (b"BT-SEARCH * HTTP/1.1\r\nHost: 10.0.0.1:6771\r\nPort: 1\r\n\r\n", "Host"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\ncookie: \r\n\r\n", "cookie"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\ncookie: " + b"x" * 65 + b"\r\n\r\n", "cookie"),
        (b"BT-SEARCH * HTTP/1.1\r\nno colon here\r\n\r\n", "Name: value"),
        (b"BT-SEARCH * HTTP/1.1\r\n: empty name\r\n\r\n", "Name: value"),
        (b"BT-SEARCH * HTTP/1.1\r\nPort: \xff\r\n\r\n", "ASCII"),
        (b"BT-SEARCH * HTTP/1.1\nPort: 1\nInfohash: " + b"0" * 40 + b"\n\n", "header block"),
    ],
)
def test_hostile_or_malformed_datagrams_are_protocol_errors(datagram: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_announce(datagram)


def test_an_oversized_datagram_is_refused_before_it_is_read() -> None:
    datagram = LIBTORRENT_ANNOUNCE[:-2] + b"X-Pad: " + b"a" * MAX_ANNOUNCE_BYTES + b"\r\n\r\n"
    with pytest.raises(ProtocolError, match="over 2048"):
        decode_announce(datagram)


def test_encode_refuses_what_no_announce_can_carry() -> None:
    with pytest.raises(UsageError):
        encode_announce(Announce(0, (HASH_A,)))
    with pytest.raises(UsageError):
        encode_announce(Announce(1, ()))
    with pytest.raises(UsageError):
        encode_announce(Announce(1, (bytes(32),)))
    with pytest.raises(UsageError):
        encode_announce(Announce(1, (HASH_A,), "two words"))
    with pytest.raises(UsageError):
        encode_announce(Announce(1, (HASH_A,), None, "example.org:6771"))


def test_cookies_are_hex_and_come_from_the_rng() -> None:
    assert new_cookie(random.Random(1)) == new_cookie(random.Random(1))
    assert len(new_cookie(random.Random(2))) == 16
    with pytest.raises(UsageError):
        LocalDiscovery(port=1, cookie="")
    with pytest.raises(UsageError):
        LocalDiscovery(port=1, cookie="x", groups=("224.0.0.1",))


# -- receiving -----------------------------------------------------------------------------


def test_peers_are_reported_for_our_torrents_only_with_the_source_address() -> None:
    lsd = core()
    lsd.add_torrent(HASH_A, 0.0)
    announce = encode_announce(Announce(7000, (HASH_B, HASH_A), "theirs"))
    assert lsd.receive(announce, "10.251.0.2", 1.0) == [PeerDiscovered(HASH_A, "10.251.0.2", 7000)]
    lsd.remove_torrent(HASH_A)
    assert lsd.receive(announce, "10.251.0.2", 2.0) == []


def test_our_own_announces_are_ignored() -> None:
    lsd = core()
    lsd.add_torrent(HASH_A, 0.0)
    (sent,) = lsd.tick(10.0)
    assert lsd.receive(sent.payload, "10.251.0.1", 10.0) == []
    other = LocalDiscovery(port=6881, cookie="other", groups=(IPV4_GROUP,))
    other.add_torrent(HASH_A, 0.0)
    assert other.receive(sent.payload, "10.251.0.1", 10.0) == [PeerDiscovered(HASH_A, "10.251.0.1", 6881)]


def test_a_flooding_source_is_cut_to_its_budget_and_others_still_heard() -> None:
    lsd = LocalDiscovery(port=1, cookie="ours", source_rate_per_s=1.0, source_burst=5.0)
    lsd.add_torrent(HASH_A, 0.0)
    flood = [lsd.receive(LIBTORRENT_ANNOUNCE, "10.0.0.66", 0.0) for _ in range(1000)]
    assert sum(1 for found in flood if found) == 5
    assert lsd.receive(LIBTORRENT_ANNOUNCE, "10.0.0.7", 0.0) == [PeerDiscovered(HASH_A, "10.0.0.7", 6881)]
    assert lsd.receive(LIBTORRENT_ANNOUNCE, "10.0.0.66", 1.0) == [PeerDiscovered(HASH_A, "10.0.0.66", 6881)]


def test_garbage_from_a_source_spends_its_budget_too() -> None:
    lsd = LocalDiscovery(port=1, cookie="ours", source_rate_per_s=0.1, source_burst=2.0)
    lsd.add_torrent(HASH_A, 0.0)
    for _ in range(2):
        with pytest.raises(ProtocolError):
            lsd.receive(b"\x00" * 100, "10.0.0.66", 0.0)
    assert lsd.receive(LIBTORRENT_ANNOUNCE, "10.0.0.66", 0.0) == []


# -- announcing ----------------------------------------------------------------------------


def test_a_new_torrent_is_announced_soon_then_every_interval() -> None:
    lsd = core(first_announce_delay_s=2.0, interval_s=300.0, min_round_gap_s=60.0)
    assert lsd.next_deadline() is None
    lsd.add_torrent(HASH_A, 0.0)
    assert lsd.next_deadline() == 2.0
    assert lsd.tick(1.9) == []
    (sent,) = lsd.tick(2.0)
    assert sent.group == IPV4_GROUP
    assert decode_announce(sent.payload) == Announce(6881, (HASH_A,), "ours", IPV4_HOST)
    assert lsd.tick(100.0) == []
    assert lsd.next_deadline() == 302.0
    assert len(lsd.tick(302.0)) == 1


def test_torrents_due_together_share_a_datagram() -> None:
    lsd = core(first_announce_delay_s=2.0)
    lsd.add_torrent(HASH_A, 0.0)
    lsd.add_torrent(HASH_B, 1.0)
    (sent,) = lsd.tick(2.0)  # B falls due within the round gap: it goes along
    assert decode_announce(sent.payload).info_hashes == (HASH_A, HASH_B)


def test_rounds_are_at_least_the_gap_apart_but_first_announces_do_not_wait() -> None:
    lsd = core(first_announce_delay_s=0.0, interval_s=300.0, min_round_gap_s=60.0)
    lsd.add_torrent(HASH_A, 0.0)
    assert len(lsd.tick(0.0)) == 1
    lsd.add_torrent(HASH_B, 10.0)
    (first,) = lsd.tick(10.0)
    assert decode_announce(first.payload).info_hashes == (HASH_B,)
    # A's next announce is at 300; B's at 310 is within the gap of A's round: one datagram.
    (both,) = lsd.tick(300.0)
    assert decode_announce(both.payload).info_hashes == (HASH_A, HASH_B)
    assert lsd.tick(310.0) == []


def test_many_torrents_are_split_into_datagrams_under_1400_bytes() -> None:
    lsd = LocalDiscovery(port=65535, cookie="c" * 64, first_announce_delay_s=0.0)
    hashes = [index.to_bytes(20, "big") for index in range(200)]
    for info_hash in hashes:
        lsd.add_torrent(info_hash, 0.0)
    sent = lsd.tick(0.0)
    assert {datagram.group for datagram in sent} == {IPV4_GROUP, IPV6_GROUP}
    assert all(len(datagram.payload) <= MAX_SEND_BYTES for datagram in sent)
    for group, host in ((IPV4_GROUP, IPV4_HOST), (IPV6_GROUP, IPV6_HOST)):
        announces = [decode_announce(datagram.payload) for datagram in sent if datagram.group == group]
        assert all(announce.host == host for announce in announces)
        assert [info_hash for announce in announces for info_hash in announce.info_hashes] == hashes
    assert lsd.tick(1.0) == []


def test_a_new_port_is_announced_again_soon() -> None:
    lsd = core(first_announce_delay_s=1.0)
    lsd.add_torrent(HASH_A, 0.0)
    assert lsd.tick(1.0)
    lsd.set_port(7000, 5.0)
    assert lsd.next_deadline() == 6.0
    (sent,) = lsd.tick(6.0)
    assert decode_announce(sent.payload).port == 7000


def test_add_torrent_refuses_a_v2_hash_it_cannot_announce() -> None:
    with pytest.raises(UsageError):
        core().add_torrent(bytes(32), 0.0)


def test_the_send_instruction_names_the_group() -> None:
    lsd = LocalDiscovery(port=1, cookie="x", first_announce_delay_s=0.0)
    lsd.add_torrent(HASH_A, 0.0)
    assert [type(item) for item in lsd.tick(0.0)] == [SendDatagram, SendDatagram]
