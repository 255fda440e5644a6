"""The peer wire core: bytes in, events and bytes out; every input whole and byte by byte."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswarm.errors import PeerProtocolError, UsageError
from bitswarm.wire.messages import (
    BLOCK_SIZE,
    EXTENSION_PROTOCOL,
    FAST_EXTENSION,
    AllowedFast,
    Bitfield,
    Cancel,
    Choke,
    Extended,
    FrameDecoder,
    Handshake,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    NotInterested,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
    decode_body,
    encode,
    reserved_bits,
)
from bitswarm.wire.peer import MAX_OUR_REQUESTS, HandshakeCompleted, PeerProtocol, PeerState, PeerTimedOut

INFO_HASH = b"i" * 20
OURS = b"-BS0100-" + b"o" * 12
THEIRS = b"-LT2080-" + b"t" * 12
PIECE_LENGTH = 32 * 1024
NUM_PIECES = 10  # the last piece is short
LAST_PIECE = 1000

ALL_MESSAGES: list[Message] = [
    KeepAlive(), Choke(), Unchoke(), Interested(), NotInterested(), Have(5), Bitfield(b"\xff\xc0"),
    Request(1, 2, 3), Piece(1, 0, b"abc"), Cancel(1, 2, 3), Port(6881), Suggest(3), HaveAll(), HaveNone(),
    Reject(1, 2, 3), AllowedFast(9), Extended(0, b"d1:md1:ai1eee"),
]  # fmt: skip


def piece_size(index: int) -> int:
    return LAST_PIECE if index == NUM_PIECES - 1 else PIECE_LENGTH


def core(*, fast: bool = True, have: frozenset[int] = frozenset(range(NUM_PIECES))) -> PeerProtocol:
    return PeerProtocol(
        info_hash=INFO_HASH, peer_id=OURS, num_pieces=NUM_PIECES, piece_size=piece_size,
        have_piece=lambda index: index in have, now=0.0, fast=fast,
    )  # fmt: skip


def their_handshake(*, fast: bool = True, peer_id: bytes = THEIRS, info_hash: bytes = INFO_HASH) -> bytes:
    flags = [FAST_EXTENSION, EXTENSION_PROTOCOL] if fast else [EXTENSION_PROTOCOL]
    return Handshake(info_hash, peer_id, reserved_bits(*flags)).encode()


def feed(peer: PeerProtocol, data: bytes, *, bytewise: bool) -> list[object]:
    if not bytewise:
        return list(peer.receive(data, now=1.0))
    events: list[object] = []
    for at in range(len(data)):
        events += peer.receive(data[at : at + 1], now=1.0)
    return events


both_ways = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])


def test_every_message_round_trips_through_the_codec() -> None:
    data = b"".join(encode(message) for message in ALL_MESSAGES)
    assert FrameDecoder(1 << 20).feed(data) == ALL_MESSAGES
    decoder = FrameDecoder(1 << 20)
    assert [m for at in range(len(data)) for m in decoder.feed(data[at : at + 1])] == ALL_MESSAGES


@given(st.lists(st.integers(min_value=0, max_value=4096), max_size=30))
def test_any_split_of_the_stream_gives_the_same_messages(cuts: list[int]) -> None:
    data = b"".join(encode(message) for message in ALL_MESSAGES) * 3
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    decoder = FrameDecoder(1 << 20)
    got = [m for start, stop in itertools.pairwise(points) for m in decoder.feed(data[start:stop])]
    assert got == ALL_MESSAGES * 3


@given(st.lists(st.integers(min_value=0, max_value=4096), max_size=30), st.booleans())
def test_a_reused_read_buffer_gives_the_same_messages(cuts: list[int], lend: bool) -> None:
    """As a peer connection reads: each chunk lands in one buffer that the next overwrites.
    Lent blocks are views of it, handled (here: copied) before the next read; blocks not
    lent are copies that the next read leaves alone."""
    data = b"".join(encode(message) for message in ALL_MESSAGES) * 3
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    decoder = FrameDecoder(1 << 20)
    read_buffer = memoryview(bytearray(len(data)))
    got: list[object] = []
    for start, stop in itertools.pairwise(points):
        read_buffer[: stop - start] = data[start:stop]
        messages = decoder.feed(read_buffer[: stop - start], lend=lend)
        got += [Piece(m.index, m.begin, bytes(m.block)) if lend and isinstance(m, Piece) else m for m in messages]
        read_buffer[:] = bytes(len(data))  # the next read
    assert got == ALL_MESSAGES * 3


@pytest.mark.parametrize(
    "body",
    [b"\x00x", b"\x04\x00\x00", b"\x06" + b"\x00" * 11, b"\x07\x00", b"\x09\x00", b"\x14", b"\x63"],
    ids=["choke-with-payload", "short-have", "short-request", "short-piece", "short-port", "bare-extended", "unknown"],
)
def test_malformed_bodies_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        decode_body(body)


def test_oversized_frame_is_refused_before_it_is_buffered() -> None:
    decoder = FrameDecoder(max_frame_bytes=1000)
    with pytest.raises(PeerProtocolError, match="over the 1000"):
        decoder.feed(b"\xff\xff\xff\xff")


@both_ways
def test_handshake_then_bitfield_then_messages(bytewise: bool) -> None:
    peer = core()
    data = their_handshake() + encode(Bitfield(b"\xff\xc0")) + encode(Unchoke()) + encode(Have(3))
    events = feed(peer, data, bytewise=bytewise)
    assert events == [HandshakeCompleted(THEIRS, True, True), Bitfield(b"\xff\xc0"), Unchoke(), Have(3)]
    assert peer.state is PeerState.OPEN
    assert peer.peer_is_seed
    assert not peer.peer_choking


@both_ways
def test_extension_handshake_may_come_before_have_all(bytewise: bool) -> None:
    # libtorrent 2.0 sends its BEP 10 handshake first, then have-all (issue 4, point 9).
    peer = core()
    extension_handshake = Extended(0, b"d1:md11:lt_donthavei7eee")
    data = their_handshake() + encode(extension_handshake) + encode(HaveAll()) + encode(Unchoke())
    events = feed(peer, data, bytewise=bytewise)
    assert events == [HandshakeCompleted(THEIRS, True, True), extension_handshake, HaveAll(), Unchoke()]
    assert peer.state is PeerState.OPEN
    assert peer.peer_is_seed


@both_ways
def test_a_late_bitfield_or_have_all_becomes_the_haves_it_adds(bytewise: bool) -> None:
    # aria2 sends a bitfield (or have-all) mid-connection in place of a batch of haves.
    peer = core()
    data = their_handshake() + encode(HaveNone()) + encode(Have(1)) + encode(Bitfield(b"\x61\x00"))
    events = feed(peer, data + encode(HaveNone()) + encode(HaveAll()), bytewise=bytewise)
    assert events == [
        HandshakeCompleted(THEIRS, True, True), HaveNone(), Have(1), Have(2), Have(7),
        *[Have(index) for index in (0, 3, 4, 5, 6, 8, 9)],
    ]  # fmt: skip
    assert peer.state is PeerState.OPEN
    assert peer.peer_is_seed


def test_our_handshake_carries_the_fast_and_extension_bits() -> None:
    handshake = Handshake.decode(core().handshake())
    assert handshake.supports(FAST_EXTENSION)
    assert handshake.supports(EXTENSION_PROTOCOL)
    assert (handshake.info_hash, handshake.peer_id) == (INFO_HASH, OURS)


def opened(*, fast: bool = True, have: frozenset[int] = frozenset(range(NUM_PIECES))) -> PeerProtocol:
    peer = core(fast=fast, have=have)
    peer.receive(their_handshake(fast=fast) + encode(HaveNone() if fast else Bitfield(bytes(2))), now=0.0)
    return peer


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (their_handshake(info_hash=b"x" * 20), "another torrent"),
        (their_handshake(peer_id=OURS), "ourselves"),
        (b"\x13BitTorrent protocoX" + bytes(48), "not a BitTorrent handshake"),
        (their_handshake() + encode(Bitfield(b"\xff")), "bitfield of 1 bytes"),
        (their_handshake() + encode(Bitfield(b"\xff\xe0")), "spare bits"),
        (their_handshake() + encode(Have(10)), "beyond the last piece"),
        (their_handshake(fast=False) + encode(HaveAll()), "without the fast extension"),
        (their_handshake(fast=False) + encode(Have(1)) + encode(HaveAll()), "without the fast extension"),
        (their_handshake() + encode(Have(0)) + encode(Bitfield(b"\xff\xe0")), "spare bits"),
        (their_handshake() + encode(Have(0)) + encode(Bitfield(b"\xff")), "bitfield of 1 bytes"),
        (their_handshake() + encode(Request(0, 0, BLOCK_SIZE + 1)), "a block is at most"),
        (their_handshake() + encode(Request(0, 0, 0)), "a block is at most"),
        (their_handshake() + encode(Request(9, 0, 2000)), "runs past the end"),
        (their_handshake() + encode(Request(10, 0, 100)), "beyond the last piece"),
        (their_handshake() + encode(Piece(0, 0, b"unrequested")), "never requested"),
        (their_handshake() + encode(Suggest(99)), "beyond the last piece"),
        (their_handshake(fast=False) + encode(Reject(0, 0, 1)), "without the fast extension"),
        (their_handshake() + b"\x00\x10\x00\x01" + b"x" * 20, "over the"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_rule_breaking_peers_cost_one_connection(data: bytes, reason: str) -> None:
    for bytewise in (False, True):
        peer = core()
        with pytest.raises(PeerProtocolError, match=reason):
            feed(peer, data, bytewise=bytewise)
        assert peer.state is PeerState.CLOSED
        with pytest.raises(UsageError):
            peer.receive(b"", now=2.0)


def test_request_for_a_piece_we_lack_is_rejected_with_fast_and_fatal_without() -> None:
    peer = opened(have=frozenset({1}))
    peer.send(Unchoke())
    peer.data_to_send()
    assert peer.receive(encode(Request(2, 0, 100)), now=1.0) == []
    assert FrameDecoder(100).feed(peer.data_to_send()) == [Reject(2, 0, 100)]
    plain = opened(fast=False, have=frozenset({1}))
    plain.send(Unchoke())
    with pytest.raises(PeerProtocolError, match="do not have"):
        plain.receive(encode(Request(2, 0, 100)), now=1.0)


def test_requests_while_choked_are_rejected_unless_allowed_fast() -> None:
    peer = opened()
    peer.send(AllowedFast(4))
    peer.data_to_send()
    assert peer.receive(encode(Request(3, 0, 100)) + encode(Request(4, 0, 100)), now=1.0) == [Request(4, 0, 100)]
    assert FrameDecoder(100).feed(peer.data_to_send()) == [Reject(3, 0, 100)]


def test_a_request_flood_ends_the_connection() -> None:
    peer = opened()
    peer.send(Unchoke())
    flood = b"".join(encode(Request(index % 9, (index // 9) % 2 * BLOCK_SIZE, 1 + index // 18)) for index in range(600))
    with pytest.raises(PeerProtocolError, match="requests waiting"):
        peer.receive(flood, now=1.0)
    assert peer.state is PeerState.CLOSED


def test_choking_a_peer_rejects_its_waiting_requests() -> None:
    peer = opened()
    peer.send(Unchoke())
    peer.receive(encode(Request(0, 0, 100)) + encode(Request(1, 0, 100)), now=1.0)
    peer.data_to_send()
    peer.send(Choke())
    assert FrameDecoder(100).feed(peer.data_to_send()) == [Choke(), Reject(0, 0, 100), Reject(1, 0, 100)]
    assert peer.peer_requests == {}


def test_our_requests_pieces_cancels_and_rejects() -> None:
    peer = opened()
    peer.send(Request(0, 0, BLOCK_SIZE))
    peer.send(Request(0, BLOCK_SIZE, BLOCK_SIZE))
    peer.send(Request(1, 0, BLOCK_SIZE))
    block = bytes(BLOCK_SIZE)
    assert peer.receive(encode(Piece(0, 0, block)), now=1.0) == [Piece(0, 0, block)]
    peer.send(Cancel(0, BLOCK_SIZE, BLOCK_SIZE))
    # A piece that crosses our cancel is dropped quietly, not an error.
    assert peer.receive(encode(Piece(0, BLOCK_SIZE, block)), now=1.0) == []
    assert peer.receive(encode(Reject(1, 0, BLOCK_SIZE)), now=1.0) == [Reject(1, 0, BLOCK_SIZE)]
    assert peer.our_requests == set()


BLOCKS = st.tuples(st.integers(0, NUM_PIECES - 1), st.integers(0, 2**32 - 1), st.integers(1, BLOCK_SIZE))


@given(st.lists(BLOCKS, max_size=40))
def test_requests_sent_in_one_call_are_those_sent_one_by_one(blocks: list[tuple[int, int, int]]) -> None:
    one_by_one, batched = opened(), opened()
    one_by_one.data_to_send(), batched.data_to_send()
    for index, begin, length in blocks:
        one_by_one.send(Request(index, begin, length))
    batched.send_requests(blocks)
    assert batched.data_to_send() == one_by_one.data_to_send() == b"".join(encode(Request(*block)) for block in blocks)
    assert batched.our_requests == one_by_one.our_requests


def test_a_batch_of_requests_over_the_limit_is_refused_whole() -> None:
    peer = opened()
    peer.data_to_send()
    blocks = [(0, begin * BLOCK_SIZE, BLOCK_SIZE) for begin in range(MAX_OUR_REQUESTS + 1)]
    with pytest.raises(UsageError):
        peer.send_requests(blocks)
    assert peer.our_requests == set()
    assert peer.data_to_send() == b""


def test_without_fast_a_choke_drops_our_requests() -> None:
    peer = opened(fast=False)
    peer.send(Request(0, 0, BLOCK_SIZE))
    peer.receive(encode(Choke()), now=1.0)
    assert peer.our_requests == set()


def test_keepalive_and_idle_timeout() -> None:
    peer = opened()
    assert peer.tick(50.0) == []
    assert peer.data_to_send() == b""
    assert peer.tick(91.0) == []
    assert peer.data_to_send() == encode(KeepAlive())
    assert peer.next_deadline() == pytest.approx(120.0)
    assert peer.tick(121.0) == [PeerTimedOut(121.0)]
    assert peer.state is PeerState.CLOSED


def test_a_block_asked_cancelled_and_asked_again_twice_may_be_answered_three_times() -> None:
    """A player seeking back and forth: request, cancel, request, cancel, request. The peer
    may answer each request (its cancels came too late): three pieces, none a violation."""
    peer = opened()
    block = (3, 0, 16384)
    for _ in range(2):
        peer.send(Request(*block))
        peer.send(Cancel(*block))
    peer.send(Request(*block))
    answers = [peer.receive(encode(Piece(3, 0, bytes(16384))), now=1.0) for _ in range(3)]
    assert [len(events) for events in answers] == [1, 0, 0]  # the first answers the live request
    assert peer.state is PeerState.OPEN
    with pytest.raises(PeerProtocolError, match="never requested"):
        peer.receive(encode(Piece(3, 0, bytes(16384))), now=1.0)
