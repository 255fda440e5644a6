"""Property tests for the extension messages (BEP 9, 10, 11, bs_due) and LSD announces (BEP 14).

Any bytes into each parser give a value or the typed error (``PeerProtocolError`` for a
peer's extension messages, ``ProtocolError`` for LSD datagrams), never another exception;
every codec round-trips; a metadata fetch fed anything by any peer never raises, never
holds more than its size limit, never asks to be woken in the past, and completes only
with bytes that hash to the info-hash.
PEX diffs stay within the limits and add up to our connections; the LSD schedule
announces every torrent on time and never asks to be woken in the past.
"""

from __future__ import annotations

import contextlib
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from bitswarm import bencode
from bitswarm.errors import PeerProtocolError, ProtocolError
from bitswarm.lsd import IPV4_HOST, IPV6_HOST, Announce, LocalDiscovery, decode_announce, encode_announce
from bitswarm.wire.extension import (
    MAX_DUE_HINTS,
    METADATA_PIECE_BYTES,
    DueHints,
    MetadataCompleted,
    MetadataData,
    MetadataFetch,
    MetadataReject,
    MetadataRequest,
    PeerExtensions,
    PexFlags,
    PexMessage,
    PexPeer,
    PexState,
    decode_due,
    decode_handshake,
    decode_metadata,
    decode_pex,
    encode_due,
    encode_handshake,
    encode_metadata,
    encode_pex,
)
from bitswarm.wire.messages import Extended

# Bencoded values of every shape, for dictionaries whose keys are right and values wrong.
VALUES = st.recursive(
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=8), inner, max_size=4),
    max_leaves=12,
)
HANDSHAKE_KEYS = st.sampled_from([b"m", b"metadata_size", b"p", b"v", b"reqq", b"yourip", b"ipv4", b"ipv6", b"e"])
PEX_KEYS = st.sampled_from([b"added", b"added.f", b"added6", b"added6.f", b"dropped", b"dropped6"])
METADATA_KEYS = st.sampled_from([b"msg_type", b"piece", b"total_size"])
DUE_KEYS = st.sampled_from([b"due"])


def dicts(keys: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.dictionaries(keys | st.binary(max_size=6), VALUES, max_size=6).map(bencode.encode)


@given(st.binary(max_size=512) | dicts(HANDSHAKE_KEYS))
def test_handshake_decoder_only_raises_peer_protocol_error(payload: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        decode_handshake(payload)


@given(st.binary(max_size=512) | dicts(METADATA_KEYS) | st.tuples(dicts(METADATA_KEYS), st.binary()).map(b"".join))
def test_metadata_decoder_only_raises_peer_protocol_error(payload: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        decode_metadata(payload)


@given(st.binary(max_size=512) | dicts(PEX_KEYS))
def test_pex_decoder_only_raises_peer_protocol_error(payload: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        decode_pex(payload)


@given(st.binary(max_size=512) | dicts(DUE_KEYS))
def test_due_decoder_only_raises_peer_protocol_error(payload: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        hints = decode_due(payload)
        assert len(hints.due_ms) <= MAX_DUE_HINTS


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=(1 << 32) - 1), st.integers(min_value=0, max_value=(1 << 32) - 1)),
        max_size=MAX_DUE_HINTS,
    )
)
def test_due_hints_round_trip(due_ms: list[tuple[int, int]]) -> None:
    assert decode_due(encode_due(DueHints(tuple(due_ms)))) == DueHints(tuple(due_ms))


@given(st.integers(min_value=0, max_value=255), st.binary(max_size=256) | dicts(HANDSHAKE_KEYS | PEX_KEYS | DUE_KEYS))
def test_any_extended_message_decodes_or_raises_peer_protocol_error(extension_id: int, payload: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        PeerExtensions().decode(Extended(extension_id, payload))


LSD_LINES = st.sampled_from(
    [
        "BT-SEARCH * HTTP/1.1",
        "Host: 239.192.152.143:6771",
        "Port: 6881",
        "port: 99999",
        "Infohash: " + "ab" * 20,
        "INFOHASH: " + "0" * 39,
        "cookie: x",
        "",
        ":",
        "X: y",
    ]
) | st.text(max_size=30)


@given(st.binary(max_size=3000) | st.lists(LSD_LINES, max_size=10).map(lambda lines: "\r\n".join(lines).encode()))
def test_lsd_decoder_only_raises_protocol_error(datagram: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_announce(datagram)
    lsd = LocalDiscovery(port=1, cookie="ours")
    lsd.add_torrent(bytes.fromhex("ab" * 20), 0.0)
    with contextlib.suppress(ProtocolError):
        found = lsd.receive(datagram, "10.0.0.1", 0.0)
        assert all(peer.info_hash == bytes.fromhex("ab" * 20) for peer in found)


# -- round trips -----------------------------------------------------------------------------

PORTS = st.integers(min_value=1, max_value=65535)
HASHES = st.binary(min_size=20, max_size=20)
V4_PEERS = st.ip_addresses(v=4).filter(
    lambda ip: not (ip.is_unspecified or ip.is_multicast or ip.packed == b"\xff" * 4)
)
V6_PEERS = st.ip_addresses(v=6).filter(lambda ip: not (ip.is_unspecified or ip.is_multicast))
ADDRESSES = st.tuples((V4_PEERS | V6_PEERS).map(str), PORTS)


@given(
    st.lists(st.tuples(ADDRESSES, st.integers(min_value=0, max_value=0x1F)), max_size=60, unique_by=lambda p: p[0]),
    st.lists(ADDRESSES, max_size=60, unique=True),
)
def test_pex_round_trips(added: list[tuple[tuple[str, int], int]], dropped: list[tuple[str, int]]) -> None:
    message = PexMessage(tuple(PexPeer(address, PexFlags(flags)) for address, flags in added), tuple(dropped))
    decoded = decode_pex(encode_pex(message))
    assert sorted(decoded.added, key=repr) == sorted(message.added, key=repr)
    assert sorted(decoded.dropped) == sorted(message.dropped)


@given(
    st.one_of(
        st.builds(MetadataRequest, st.integers(min_value=0, max_value=1 << 40)),
        st.builds(MetadataReject, st.integers(min_value=0, max_value=1 << 40)),
        st.builds(
            MetadataData,
            st.integers(min_value=0, max_value=1 << 20),
            st.integers(min_value=0, max_value=1 << 40),
            st.binary(max_size=METADATA_PIECE_BYTES),
        ),
    )
)
def test_metadata_messages_round_trip(message: MetadataRequest | MetadataReject | MetadataData) -> None:
    assert decode_metadata(encode_metadata(message)) == message


@given(
    st.none() | st.integers(min_value=0, max_value=1 << 40),
    st.none() | st.integers(min_value=1, max_value=65535),
    st.none() | st.text(max_size=100),
    st.none() | st.ip_addresses().map(str),
)
def test_handshakes_round_trip(size: int | None, port: int | None, client: str | None, yourip: str | None) -> None:
    handshake = decode_handshake(encode_handshake(metadata_size=size, listen_port=port, client=client, yourip=yourip))
    assert (handshake.metadata_size, handshake.listen_port, handshake.client) == (size, port, client)
    assert handshake.yourip == yourip


@given(
    PORTS,
    st.lists(HASHES, min_size=1, max_size=20, unique=True),
    st.none() | st.from_regex(r"[!-~]{1,64}", fullmatch=True),
    st.sampled_from([IPV4_HOST, IPV6_HOST]),
)
def test_lsd_announces_round_trip(port: int, hashes: list[bytes], cookie: str | None, host: str) -> None:
    announce = Announce(port, tuple(hashes), cookie, host)
    assert decode_announce(encode_announce(announce)) == announce


# -- the fetch under hostile peers ---------------------------------------------------------

INFO = bencode.encode({"length": 1, "name": "x", "piece length": 16384, "pieces": bytes(range(256)) * 160})
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 3), st.sampled_from([len(INFO), len(INFO) + 1, 1 << 30, 0])),
        st.tuples(st.just("honest"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("forged"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("junk"), st.integers(0, 3), st.binary(max_size=40)),
        st.tuples(st.just("reject"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("tick"), st.integers(0, 3), st.floats(0, 30)),
        st.tuples(st.just("remove"), st.integers(0, 3), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=150)
@given(ACTIONS)
def test_a_fetch_fed_anything_never_raises_and_completes_only_with_the_right_bytes(
    actions: list[tuple[str, int, object]],
) -> None:
    fetch = MetadataFetch(info_hash_v1=hashlib.sha1(INFO).digest(), max_metadata_bytes=1 << 20)
    now = 0.0
    for kind, peer, argument in actions:
        if kind == "add":
            assert isinstance(argument, int)
            events = fetch.add_peer(peer, argument, now)
        elif kind in ("honest", "forged"):
            assert isinstance(argument, int)
            start = argument * METADATA_PIECE_BYTES
            data = INFO[start : start + METADATA_PIECE_BYTES]
            if kind == "forged":
                data = bytes(len(data))
            events = fetch.on_message(peer, MetadataData(argument, len(INFO), data), now)
        elif kind == "junk":
            assert isinstance(argument, bytes)
            events = fetch.on_message(peer, MetadataData(0, len(INFO), argument), now)
        elif kind == "reject":
            assert isinstance(argument, int)
            events = fetch.on_message(peer, MetadataReject(argument), now)
        elif kind == "tick":
            assert isinstance(argument, float)
            now += argument
            events = fetch.tick(now)
        else:
            events = fetch.remove_peer(peer, now)
        assert all(event.info == INFO for event in events if isinstance(event, MetadataCompleted))
        assert (fetch.metadata_size or 0) <= 1 << 20
        # A deadline already past would make the layer above call tick in a busy loop.
        deadline = fetch.next_deadline()
        assert deadline is None or deadline > now


# -- PEX diffs -------------------------------------------------------------------------------

SMALL_ADDRESSES = st.tuples(st.integers(0, 200).map(lambda n: f"10.0.{n >> 8}.{n & 0xFF}"), st.just(6881))


@given(st.lists(st.tuples(st.sets(SMALL_ADDRESSES, max_size=150), st.floats(0, 120)), max_size=12))
def test_pex_messages_add_up_to_our_connections_within_the_limits(
    steps: list[tuple[set[tuple[str, int]], float]],
) -> None:
    remote = ("10.0.0.7", 6881)
    state = PexState(remote=remote)
    told: set[tuple[str, int]] = set()  # what the peer knows of our connections, from our messages
    now = 0.0
    connected: set[tuple[str, int]] = set()
    last_sent: float | None = None
    for connected, elapsed in steps:
        now += elapsed
        message = state.message_due(dict.fromkeys(connected, PexFlags.NONE), now)
        if message is None:
            continue
        assert message.added or message.dropped  # never an empty message
        assert len(message.added) <= 50
        assert len(message.dropped) <= 50
        assert last_sent is None or now >= last_sent + 60.0
        added = {peer.address for peer in message.added}
        assert remote not in added
        assert added <= connected
        assert not added & told
        assert set(message.dropped) <= told
        assert not set(message.dropped) & connected
        told = (told | added) - set(message.dropped)
        last_sent = now
    # Enough quiet minutes later, the peer has been told exactly our connections.
    for _ in range(10):
        now += 60.0
        message = state.message_due(dict.fromkeys(connected, PexFlags.NONE), now)
        if message is not None:
            told = (told | {peer.address for peer in message.added}) - set(message.dropped)
    assert told == connected - {remote}


# -- LSD schedule ----------------------------------------------------------------------------

LSD_STEPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "tick"]), st.integers(0, 5), st.floats(0, 200)), max_size=40
)


@given(LSD_STEPS)
def test_lsd_announces_every_torrent_on_time_and_never_wants_waking_in_the_past(
    steps: list[tuple[str, int, float]],
) -> None:
    interval_s, gap_s = 300.0, 60.0
    lsd = LocalDiscovery(port=1, cookie="c", interval_s=interval_s, min_round_gap_s=gap_s, first_announce_delay_s=2.0)
    now = 0.0
    added_at: dict[bytes, float] = {}
    last_announced: dict[bytes, float] = {}
    for kind, number, elapsed in steps:
        info_hash = bytes([number]) * 20
        if kind == "add":
            lsd.add_torrent(info_hash, now)
            added_at.setdefault(info_hash, now)
        elif kind == "remove":
            lsd.remove_torrent(info_hash)
            added_at.pop(info_hash, None)
            last_announced.pop(info_hash, None)
        else:
            # Run the core as the I/O layer does: tick at every deadline up to the new time.
            target = now + elapsed
            for _ in range(1000):
                deadline = lsd.next_deadline()
                if deadline is None or deadline > target:
                    break
                now = max(now, deadline)
                for datagram in lsd.tick(now):
                    for announced in decode_announce(datagram.payload).info_hashes:
                        last_announced[announced] = now
            else:
                raise AssertionError("the core kept asking to be woken")
            now = target
        deadline = lsd.next_deadline()
        assert deadline is None or deadline > now
        for info_hash, since in added_at.items():
            # Announced within a first delay of being added, then at least every interval plus a gap.
            assert now - last_announced.get(info_hash, since) <= max(2.0, interval_s + gap_s) + 1e-6
