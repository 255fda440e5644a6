"""Deadlines in the swarm: the blocks a reader needs go to the fastest peers first, a peer's
queue of ordinary requests is cancelled when it would make them late, and once the reader
is gone the download goes on rarest first. Real peer cores, virtual time."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest

from bitswarm.engine.picker import BLOCK_SIZE, LATE_GRACE_S
from bitswarm.engine.swarm import (
    DEADLINE_MIN_BLOCKS,
    INITIAL_QUEUE,
    SEED_SPARING_S,
    STREAMING_LINGER_S,
    Action,
    CheckPiece,
    PieceVerified,
    Swarm,
)
from bitswarm.wire.extension import BS_DUE, decode_due, encode_handshake
from bitswarm.wire.messages import (
    EXTENSION_PROTOCOL,
    FAST_EXTENSION,
    Bitfield,
    Cancel,
    Extended,
    FrameDecoder,
    Handshake,
    Have,
    HaveAll,
    Message,
    Piece,
    Request,
    Unchoke,
    encode,
    reserved_bits,
)
from bitswarm.wire.peer import PeerProtocol

BLOCKS = 4
PIECE = BLOCKS * BLOCK_SIZE
INFO_HASH = b"d" * 20
OURS = b"-SW0100-viewer000000"

Block = tuple[int, int, int]


@dataclass
class Remote:
    """The far end of one connection: it serves what it is asked, in the order asked."""

    core: PeerProtocol
    decoder: FrameDecoder = field(default_factory=lambda: FrameDecoder(1 << 21))
    queue: list[Block] = field(default_factory=list)
    requested: list[Block] = field(default_factory=list)  # every request, in order
    cancelled: list[Block] = field(default_factory=list)
    received: list[Message] = field(default_factory=list)  # everything we sent it


class Viewer:
    """Our side: a swarm and the cores of its connections, fed by hand."""

    def __init__(
        self, num_pieces: int, *, have: Iterable[int] = (), sequential: bool = False, bytewise: bool = False
    ) -> None:
        """``bytewise``: a new peer's first messages come one byte at a time."""
        self.num_pieces = num_pieces
        self.bytewise = bytewise
        self.swarm = Swarm(
            num_pieces=num_pieces, piece_size=lambda _index: PIECE, have=have, rng=random.Random(7), now=0.0
        )
        self.swarm.picker.sequential = sequential
        self.remotes: dict[str, Remote] = {}
        self.verified: list[int] = []

    def connect(self, name: str, now: float, *, pieces: Iterable[int] | None = None, unchoke: bool = True) -> Remote:
        """A peer with ``pieces`` (None: every piece) that unchokes us at once when ``unchoke``."""
        core = PeerProtocol(
            info_hash=INFO_HASH, peer_id=OURS, num_pieces=self.num_pieces, piece_size=lambda _index: PIECE,
            have_piece=self.swarm.has_piece, now=now,
        )  # fmt: skip
        self.swarm.add_peer(name, core, now)
        remote = self.remotes[name] = Remote(core)
        if pieces is None:
            what: Message = HaveAll()
        else:
            bits = bytearray((self.num_pieces + 7) // 8)
            for index in pieces:
                bits[index >> 3] |= 0x80 >> (index & 7)
            what = Bitfield(bytes(bits))
        hello = Handshake(INFO_HASH, name.encode().ljust(20, b"-"), reserved_bits(FAST_EXTENSION, EXTENSION_PROTOCOL))
        data = hello.encode() + encode(what) + (encode(Unchoke()) if unchoke else b"")
        for at in range(0, len(data), 1 if self.bytewise else len(data)):
            self.receive(name, data[at : at + 1] if self.bytewise else data, now)
        return remote

    def receive(self, name: str, data: bytes, now: float) -> None:
        events = self.remotes[name].core.receive(data, now)
        self.run(self.swarm.handle(name, events, now), now)
        self.flush()

    def run(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, CheckPiece):  # the disk finds every piece good
                self.run(self.swarm.piece_checked(action.index, True, [], now), now)
            elif isinstance(action, PieceVerified):
                self.verified.append(action.index)

    def flush(self) -> None:
        """What the swarm sent each peer reaches it."""
        for remote in self.remotes.values():
            for message in remote.decoder.feed(remote.core.data_to_send()):
                remote.received.append(message)
                if isinstance(message, Request):
                    block = (message.index, message.begin, message.length)
                    remote.queue.append(block)
                    remote.requested.append(block)
                elif isinstance(message, Cancel):
                    block = (message.index, message.begin, message.length)
                    remote.cancelled.append(block)
                    if block in remote.queue:
                        remote.queue.remove(block)

    def serve(self, name: str, count: int, now: float) -> None:
        """``name`` sends the first ``count`` blocks of its queue."""
        remote = self.remotes[name]
        for _ in range(count):
            if not remote.queue:
                return
            index, begin, length = remote.queue.pop(0)
            self.receive(name, encode(Piece(index, begin, bytes(length))), now)


def pieces_of(blocks: Iterable[Block]) -> list[int]:
    """Each block's piece, in order, each piece once."""
    seen: list[int] = []
    for index, _begin, _length in blocks:
        if index not in seen:
            seen.append(index)
    return seen


def test_deadline_blocks_go_to_the_faster_peer_first() -> None:
    viewer = Viewer(64, sequential=True)  # ordinary picking takes the low pieces
    slow = viewer.connect("slow", 0.0)  # connected first: dict order alone would favour it
    fast = viewer.connect("fast", 0.0)
    for second in (1.0, 2.0, 3.0):
        viewer.serve("slow", 1, second)
        viewer.serve("fast", 16, second)
    assert viewer.swarm.peers["fast"].download.rate(3.0) > viewer.swarm.peers["slow"].download.rate(3.0)
    slow_before, fast_before = len(slow.requested), len(fast.requested)
    viewer.swarm.set_deadlines("reader", {60: 30.0, 61: 31.0}, 3.0)
    viewer.flush()
    assert pieces_of(fast.requested[fast_before:]) == [60, 61]
    assert slow.requested[slow_before:] == []


def test_the_fastest_peer_takes_the_earliest_blocks_up_to_its_share_and_the_next_the_rest() -> None:
    viewer = Viewer(64, sequential=True)
    slow = viewer.connect("slow", 0.0)
    fast = viewer.connect("fast", 0.0)
    viewer.serve("fast", 1, 0.5)  # measured a little faster
    fast_before, slow_before = len(fast.requested), len(slow.requested)
    deadlines = {index: 10.0 + index for index in range(40, 48)}  # 32 blocks
    viewer.swarm.set_deadlines("reader", deadlines, 1.0)
    viewer.flush()
    to_fast, to_slow = fast.requested[fast_before:], slow.requested[slow_before:]
    assert len(to_fast) == DEADLINE_MIN_BLOCKS
    assert len(to_slow) == DEADLINE_MIN_BLOCKS
    assert pieces_of(to_fast) == [40, 41, 42, 43]  # the earliest four pieces
    assert pieces_of(to_slow) == [44, 45, 46, 47]


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_a_full_queue_of_ordinary_requests_is_cancelled_for_an_urgent_deadline(bytewise: bool) -> None:
    viewer = Viewer(64, sequential=True, bytewise=bytewise)
    peer = viewer.connect("peer", 0.0)
    ordinary = list(peer.queue)
    assert len(ordinary) == INITIAL_QUEUE
    assert pieces_of(ordinary) == [0, 1, 2, 3]
    # A second of requests at the assumed rate, and the player needs piece 40 within 0.1 s.
    viewer.swarm.set_deadlines("reader", {40: 1.1}, 1.0)
    viewer.flush()
    assert sorted(peer.cancelled) == sorted(ordinary)
    assert pieces_of(peer.queue) == [40]  # all the peer still owes is the urgent piece
    assert set(peer.core.our_requests) == set(peer.queue)
    # The cancelled blocks are free again: the next ordinary requests take them.
    viewer.serve("peer", 1, 1.2)
    assert pieces_of(peer.queue)[:2] == [40, 0]


def test_ordinary_requests_stay_when_the_deadline_leaves_time_for_them() -> None:
    viewer = Viewer(64, sequential=True)
    peer = viewer.connect("peer", 0.0)
    ordinary = list(peer.queue)
    viewer.swarm.set_deadlines("reader", {40: 30.0}, 1.0)
    viewer.flush()
    assert peer.cancelled == []
    assert peer.queue[: len(ordinary)] == ordinary
    assert pieces_of(peer.queue[len(ordinary) :]) == [40]


def test_a_late_deadline_piece_is_asked_of_a_second_peer_at_the_next_tick_and_cancelled_there() -> None:
    viewer = Viewer(64, sequential=True)
    stalled = viewer.connect("stalled", 0.0)
    other = viewer.connect("other", 0.0, unchoke=False)  # choked us: it cannot help yet
    viewer.swarm.set_deadlines("reader", {40: 2.0}, 1.0)
    viewer.flush()
    assert pieces_of(stalled.queue)[-1] == 40
    viewer.receive("other", encode(Unchoke()), 1.5)
    assert 40 not in pieces_of(other.queue)  # not late yet: the stalled peer may still send it
    viewer.swarm.tick(2.0 + LATE_GRACE_S)
    viewer.flush()
    assert 40 in pieces_of(other.queue)
    while 40 in pieces_of(other.queue):
        viewer.serve("other", 1, 3.0)
    assert 40 in viewer.verified
    assert {block for block in stalled.cancelled if block[0] == 40} == {
        (40, begin, BLOCK_SIZE) for begin in range(0, PIECE, BLOCK_SIZE)
    }


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_after_the_reader_leaves_the_download_goes_on_rarest_first_and_finishes(bytewise: bool) -> None:
    # Pieces 10 and 11 only the seed "rare" has; the reader wanted 4 and 5 (common), then left.
    viewer = Viewer(12, have=range(4), bytewise=bytewise)  # past the random first pieces
    viewer.connect("common", 0.0, pieces=range(4, 10), unchoke=False)
    rare = viewer.connect("rare", 0.0, pieces=range(12), unchoke=False)
    viewer.swarm.set_deadlines("reader", {4: 1.0, 5: 1.0}, 0.0)
    viewer.swarm.clear_deadlines("reader", 0.5)
    viewer.receive("rare", encode(Unchoke()), 1.0)
    # The rarest, not the reader's 4 and 5 (one piece at first: queues stay short a while).
    assert set(pieces_of(rare.queue)) <= {10, 11}
    while rare.queue:
        viewer.serve("rare", 1, 2.0)
    assert sorted(viewer.verified[:2]) == [10, 11]
    assert sorted(viewer.verified) == list(range(4, 12))
    assert viewer.swarm.is_seeding


def test_while_the_reader_stays_its_pieces_come_first_even_from_a_rarer_choice() -> None:
    viewer = Viewer(12, have=range(4))
    viewer.connect("common", 0.0, pieces=range(4, 10), unchoke=False)
    rare = viewer.connect("rare", 0.0, pieces=range(12), unchoke=False)
    viewer.swarm.set_deadlines("reader", {4: 1.0, 5: 1.0}, 0.0)
    viewer.receive("rare", encode(Unchoke()), 1.0)
    assert pieces_of(rare.queue)[:2] == [4, 5]
    while rare.queue:
        viewer.serve("rare", 1, 2.0)
    assert viewer.verified[:2] == [4, 5]
    assert viewer.swarm.is_seeding


def test_a_seed_is_spared_deadline_pieces_until_they_are_urgent() -> None:
    """In a swarm of viewers the seed is everyone's fastest peer: a viewer whose player has
    time asks the viewer ahead for what it holds, or waits until it does, and the seed only
    for what is due within SEED_SPARING_S, or what no other peer has."""
    viewer = Viewer(64, sequential=True)
    seed = viewer.connect("seed", 0.0)
    ahead = viewer.connect("ahead", 0.0, pieces=range(40, 44), unchoke=False)
    viewer.serve("seed", 16, 0.5)  # the seed is measured the faster
    seed_before = len(seed.requested)
    later = 1.0 + SEED_SPARING_S + 5.0
    due = {index: later + index for index in range(40, 46)}
    viewer.swarm.set_deadlines("reader", due, 1.0)
    viewer.flush()
    # 44 and 45 only the seed has: asked at once; the rest wait for the viewer ahead.
    assert set(pieces_of(seed.requested[seed_before:])) & set(range(40, 46)) == {44, 45}
    # It keeps choking us: once 40 is due within SEED_SPARING_S, the seed is asked.
    viewer.swarm.tick(later + 40 - SEED_SPARING_S)
    viewer.flush()
    assert 40 in pieces_of(seed.requested[seed_before:])
    assert not ahead.requested


def test_a_spared_seed_is_asked_for_no_piece_rarest_first_while_we_stream() -> None:
    # The reader's piece is due in a while and the other viewer has it: the seed, asked
    # for nothing, keeps its upload for the players that need it now.
    viewer = Viewer(64)
    viewer.connect("other", 0.0, pieces=range(8), unchoke=False)
    viewer.swarm.set_deadlines("reader", {5: 100.0}, 1.0)
    seed = viewer.connect("seed", 1.0)
    assert viewer.swarm.peers["seed"].core.am_interested
    assert not seed.requested


def test_seeds_are_not_spared_when_every_peer_is_one() -> None:
    viewer = Viewer(64, sequential=True)
    first = viewer.connect("first", 0.0)
    viewer.connect("second", 0.0)
    before = len(first.requested)
    viewer.swarm.set_deadlines("reader", {50: 1.0 + SEED_SPARING_S * 4}, 1.0)
    viewer.flush()
    assert 50 in pieces_of(first.requested[before:])


def test_queues_stay_short_for_a_while_after_the_last_reader_goes() -> None:
    """A seeking player closes one request before it opens the next: in between, the peers'
    queues must not fill with ordinary requests the new play head would wait behind."""
    viewer = Viewer(1024, sequential=True)
    peer = viewer.connect("peer", 0.0)
    for second in (0.5, 1.0, 1.5, 2.0):
        viewer.serve("peer", 64, second)  # about 2 MiB/s
    viewer.swarm.set_deadlines("reader", {1000: 2.1}, 2.0)
    viewer.swarm.clear_deadlines("reader", 2.05)
    viewer.flush()
    usual = viewer.swarm.peers["peer"].queue_target
    viewer.serve("peer", 200, 2.1)  # refills come while the reader is gone
    assert len(peer.core.our_requests) <= usual // 3
    viewer.swarm.tick(2.05 + STREAMING_LINGER_S)
    viewer.flush()
    assert len(peer.core.our_requests) > usual // 2  # then the usual queue again


def test_a_piece_verified_before_a_peers_first_message_is_announced_to_it() -> None:
    """Our bitfield goes out at the peer's handshake; a piece verified before its own bitfield
    arrives must still reach it as a HAVE (it once stalled a viewer whose only source we were)."""
    viewer = Viewer(8, have=[0])
    source = viewer.connect("source", 0.0)
    core = PeerProtocol(info_hash=INFO_HASH, peer_id=OURS, num_pieces=8, piece_size=lambda _index: PIECE,
                        have_piece=viewer.swarm.has_piece, now=0.0)  # fmt: skip
    viewer.swarm.add_peer("newcomer", core, 0.0)
    newcomer = viewer.remotes["newcomer"] = Remote(core)
    hello = Handshake(INFO_HASH, b"newcomer".ljust(20, b"-"), reserved_bits(FAST_EXTENSION)).encode()
    viewer.receive("newcomer", hello, 0.0)  # the handshake only: our bitfield went out
    assert any(isinstance(message, Bitfield) for message in newcomer.received)
    viewer.serve("source", len(source.queue), 1.0)  # pieces arrive and are verified meanwhile
    assert viewer.verified
    announced = sorted(message.index for message in newcomer.received if isinstance(message, Have))
    assert announced == sorted(viewer.verified)


def hinting_peer(viewer: Viewer, name: str, now: float, *, pieces: Iterable[int] | None = None) -> Remote:
    """A peer (a seed unless ``pieces``) that offers ``bs_due`` and unchokes us."""
    remote = viewer.connect(name, now, pieces=pieces, unchoke=False)
    said = encode(Extended(0, encode_handshake(extensions={BS_DUE: THEIR_DUE_ID}))) + encode(Unchoke())
    viewer.receive(name, said, now)
    return remote


THEIR_DUE_ID = 5


def due_told(remote: Remote) -> list[tuple[int, int]]:
    told: list[tuple[int, int]] = []
    for message in remote.received:
        if isinstance(message, Extended) and message.extension_id == THEIR_DUE_ID:
            told += decode_due(message.payload).due_ms
    return told


def test_a_peer_that_takes_hints_is_told_when_each_requested_piece_is_due() -> None:
    viewer = Viewer(64, sequential=True)
    told = hinting_peer(viewer, "told", 0.0)
    plain = viewer.connect("plain", 0.0)  # offered no bs_due: hears nothing of it
    viewer.swarm.set_deadlines("reader", {10: 1.5, 11: 3.0}, 1.0)
    viewer.flush()
    asked = set(pieces_of(told.requested))
    assert {10, 11} & asked
    assert due_told(told) == [(index, {10: 500, 11: 2000}[index]) for index in (10, 11) if index in asked]
    assert not [message for message in plain.received if isinstance(message, Extended) and message.extension_id]
    # The window refreshed with the same due times: nothing is told twice.
    viewer.swarm.set_deadlines("reader", {10: 1.5, 11: 3.0}, 1.2)
    viewer.flush()
    assert len(due_told(told)) == len(asked & {10, 11})


def test_a_piece_asked_for_before_it_had_a_deadline_is_told_once_it_has_one() -> None:
    # Asked rarest first, it would wait at the peer behind every deadline piece of the
    # others: the player's front stalled while the pieces after it came.
    viewer = Viewer(64, sequential=True)
    told = hinting_peer(viewer, "told", 0.0)
    ordinary = pieces_of(told.requested)
    assert ordinary
    assert not due_told(told)
    viewer.swarm.set_deadlines("reader", {ordinary[0]: 2.0}, 1.0)
    viewer.flush()
    assert due_told(told) == [(ordinary[0], 1000)]
    # Due sooner after a seek: told again.
    viewer.swarm.set_deadlines("reader", {ordinary[0]: 1.4}, 1.0)
    viewer.flush()
    assert due_told(told)[-1] == (ordinary[0], 400)


def test_a_seed_that_takes_hints_is_asked_for_the_whole_window() -> None:
    """It serves the earliest due first itself: sparing it only left viewers with a few
    seconds of video in hand (bench/stream_bench.py swarm)."""
    viewer = Viewer(64, sequential=True)
    seed = hinting_peer(viewer, "seed", 0.0)
    viewer.connect("ahead", 0.0, pieces=range(40, 44))
    before = len(seed.requested)
    viewer.swarm.set_deadlines("reader", {50: 1.0 + SEED_SPARING_S * 4}, 1.0)
    viewer.flush()
    assert 50 in pieces_of(seed.requested[before:])
