"""The order we serve peers' requests in: one (peer, piece) pair at a time, oldest first,
and the pieces a player needs soonest before them, by the requester's ``bs_due`` hints or
from where its download stands (``UploadQueue`` with ``Swarm.upload_rank``)."""

from __future__ import annotations

import random

from bitswarm.engine.swarm import (
    ASSUMED_PLAY_RATE,
    NEWCOMER_HEAD_START_BYTES,
    NEWCOMER_SERVE_S,
    SERVE_IN_ORDER_MS,
    URGENT_SERVE_BYTES,
    Action,
    ClosePeer,
    Swarm,
)
from bitswarm.engine.upload_queue import DueTimes, UploadQueue
from bitswarm.wire.extension import BS_DUE, OUR_EXTENSION_IDS, DueHints, encode_due, encode_handshake
from bitswarm.wire.messages import (
    EXTENSION_PROTOCOL,
    FAST_EXTENSION,
    Bitfield,
    Extended,
    Handshake,
    Have,
    encode,
    reserved_bits,
)
from bitswarm.wire.peer import PeerProtocol

PIECE = 1 << 16
NUM_PIECES = 64
INFO_HASH = b"u" * 20


def queue_of(requests: list[tuple[str, int, str]]) -> UploadQueue[str, str]:
    queue: UploadQueue[str, str] = UploadQueue()
    for peer, index, request in requests:
        queue.push(peer, index, request)
    return queue


def test_without_a_rank_the_oldest_pair_goes_first_whole() -> None:
    queue = queue_of([("a", 1, "a1.0"), ("b", 2, "b2.0"), ("a", 1, "a1.1"), ("b", 2, "b2.1")])
    assert queue.pop_batch(3) == [("a", "a1.0"), ("a", "a1.1"), ("b", "b2.0")]
    assert len(queue) == 1


def test_a_pair_ranked_lower_is_served_first_and_the_rest_keep_their_order() -> None:
    queue = queue_of([("old", 1, "o1"), ("old", 2, "o2"), ("new", 3, "n3.0"), ("new", 3, "n3.1"), ("old", 4, "o4")])
    ranks = {("old", 1): 5, ("old", 2): 5, ("new", 3): 0, ("old", 4): 5}
    assert queue.pop_batch(3, lambda peer, index: ranks[peer, index]) == [
        ("new", "n3.0"), ("new", "n3.1"), ("old", "o1"),
    ]  # fmt: skip
    assert queue.pop_batch(5, lambda peer, index: ranks[peer, index]) == [("old", "o2"), ("old", "o4")]
    assert len(queue) == 0


def test_among_equal_ranks_the_oldest_pair_goes_first() -> None:
    queue = queue_of([("a", 1, "a1"), ("b", 2, "b2"), ("c", 3, "c3"), ("a", 4, "a4")])
    assert queue.pop_batch(4, lambda peer, index: 1 if index == 1 else 0) == [
        ("b", "b2"), ("c", "c3"), ("a", "a4"), ("a", "a1"),
    ]  # fmt: skip


def swarm_with(peers: dict[str, tuple[float, range]], *, have: range = range(0), hinting: bool = False) -> Swarm:
    """A swarm of ``NUM_PIECES`` pieces with ``peers`` (name: connected at, pieces held);
    ``hinting`` peers offer ``bs_due`` in their extended handshakes."""
    swarm = Swarm(num_pieces=NUM_PIECES, piece_size=lambda _index: PIECE, have=have, rng=random.Random(3), now=0.0)
    for name, (at, held) in peers.items():
        core = PeerProtocol(
            info_hash=INFO_HASH, peer_id=b"-SW0100-uploader0000", num_pieces=NUM_PIECES,
            piece_size=lambda _index: PIECE, have_piece=swarm.has_piece, now=at,
        )  # fmt: skip
        swarm.add_peer(name, core, at)
        bits = bytearray(NUM_PIECES // 8)
        for index in held:
            bits[index >> 3] |= 0x80 >> (index & 7)
        hello = Handshake(INFO_HASH, name.encode().ljust(20, b"-"), reserved_bits(FAST_EXTENSION, EXTENSION_PROTOCOL))
        said = hello.encode() + encode(Bitfield(bytes(bits)))
        if hinting:
            said += encode(Extended(0, encode_handshake(extensions={BS_DUE: THEIR_DUE_ID})))
        swarm.handle(name, core.receive(said, at), at)
    return swarm


THEIR_DUE_ID = 9


def ms_ahead(pieces: int) -> int:
    return pieces * PIECE * 1000 // ASSUMED_PLAY_RATE


def test_the_piece_nearest_the_requesters_first_missing_one_goes_first() -> None:
    # "ahead" lacks piece 20 (its player waits there), "behind" lacks piece 4.
    swarm = swarm_with({"ahead": (0.0, range(20)), "behind": (0.0, range(4))}, have=range(NUM_PIECES // 2))
    now = 10.0
    assert swarm.upload_rank("ahead", 20, now) == 0
    assert swarm.upload_rank("behind", 5, now) == ms_ahead(1)
    assert swarm.upload_rank("ahead", 22, now) == ms_ahead(2)
    queue = queue_of([("ahead", 22, "a22"), ("behind", 5, "b5"), ("ahead", 20, "a20")])
    rank = lambda peer, index: swarm.upload_rank(peer, index, now)  # noqa: E731
    assert queue.pop_batch(3, rank) == [("ahead", "a20"), ("behind", "b5"), ("ahead", "a22")]


def test_requests_far_beyond_the_first_missing_piece_keep_the_order_asked() -> None:
    swarm = swarm_with({"a": (0.0, range(0)), "b": (0.0, range(0))}, have=range(NUM_PIECES))
    far = URGENT_SERVE_BYTES // PIECE
    assert swarm.upload_rank("a", far + 9, 10.0) == swarm.upload_rank("b", far, 10.0) == SERVE_IN_ORDER_MS
    queue = queue_of([("a", far + 9, "a-far"), ("b", far, "b-far"), ("b", 0, "b0")])
    rank = lambda peer, index: swarm.upload_rank(peer, index, 10.0)  # noqa: E731
    assert queue.pop_batch(3, rank) == [("b", "b0"), ("a", "a-far"), ("b", "b-far")]


def test_a_first_missing_piece_follows_the_peers_haves() -> None:
    swarm = swarm_with({"viewer": (0.0, range(3))}, have=range(NUM_PIECES))
    core = swarm.peers["viewer"].core
    assert core.peer_first_missing == 3
    swarm.handle("viewer", core.receive(encode(Have(4)), 1.0), 1.0)  # a gap stays a gap
    assert core.peer_first_missing == 3
    swarm.handle("viewer", core.receive(encode(Have(3)), 1.0), 1.0)
    assert core.peer_first_missing == 5


def test_a_downloader_gives_a_peer_that_just_connected_a_head_start_for_a_while() -> None:
    swarm = swarm_with({"viewer": (0.0, range(0)), "newcomer": (10.0, range(0))}, have=range(4))
    head_start_ms = NEWCOMER_HEAD_START_BYTES * 1000 // ASSUMED_PLAY_RATE
    assert swarm.upload_rank("newcomer", 1, 10.5) == swarm.upload_rank("viewer", 1, 10.5) - head_start_ms
    later = 10.0 + NEWCOMER_SERVE_S
    assert swarm.upload_rank("newcomer", 1, later) == swarm.upload_rank("viewer", 1, later)


def test_a_seed_gives_no_head_start() -> None:
    swarm = swarm_with({"viewer": (0.0, range(0)), "newcomer": (10.0, range(0))}, have=range(NUM_PIECES))
    assert swarm.upload_rank("newcomer", 1, 10.5) == swarm.upload_rank("viewer", 1, 10.5)


def test_a_request_for_a_piece_the_peer_says_it_has_is_not_urgent() -> None:
    # Otherwise a peer could jump the queue by asking for pieces below its first missing one.
    swarm = swarm_with({"greedy": (0.0, range(8))}, have=range(NUM_PIECES))
    assert swarm.upload_rank("greedy", 2, 10.0) == SERVE_IN_ORDER_MS
    assert swarm.upload_rank("greedy", 8, 10.0) == 0


def test_a_peer_that_left_is_ranked_with_the_rest() -> None:
    swarm = swarm_with({"newcomer": (10.0, range(0))}, have=range(4))
    swarm.remove_peer("newcomer")
    assert swarm.upload_rank("newcomer", 1, 10.5) == SERVE_IN_ORDER_MS


# -- bs_due hints --------------------------------------------------------------------------


def hint(swarm: Swarm, peer: str, due_ms: tuple[tuple[int, int], ...], now: float) -> list[Action]:
    core = swarm.peers[peer].core
    message = Extended(OUR_EXTENSION_IDS[BS_DUE], encode_due(DueHints(due_ms)))
    return swarm.handle(peer, core.receive(encode(message), now), now)


def test_hinted_requests_go_earliest_due_first_whatever_the_requesters_download() -> None:
    # "buffered" just joined and asks at its first missing piece, with seconds of video to
    # spare; "stalling" asks further beyond its own, but its player needs the piece now.
    # By distance alone "buffered" went first, and its viewers about to stall waited.
    swarm = swarm_with({"buffered": (9.0, range(0)), "stalling": (0.0, range(4))}, have=range(NUM_PIECES), hinting=True)
    hint(swarm, "buffered", ((0, 6_000),), 10.0)
    hint(swarm, "stalling", ((6, 200),), 10.0)
    assert swarm.upload_rank("buffered", 0, 10.0) == 6_000
    assert swarm.upload_rank("stalling", 6, 10.5) == -300  # overdue: first of all
    queue = queue_of([("buffered", 0, "b0"), ("stalling", 6, "s6")])
    assert queue.pop_batch(2, lambda peer, index: swarm.upload_rank(peer, index, 10.0)) == [
        ("stalling", "s6"), ("buffered", "b0"),
    ]  # fmt: skip


def test_what_a_hinting_peer_asks_without_a_hint_goes_in_the_order_asked() -> None:
    # Its rarest-first requests: spare upload only, after every viewer's deadline pieces.
    swarm = swarm_with({"viewer": (0.0, range(0))}, have=range(NUM_PIECES), hinting=True)
    hint(swarm, "viewer", ((0, 1_000),), 10.0)
    assert swarm.upload_rank("viewer", 1, 10.0) == SERVE_IN_ORDER_MS


def test_a_hint_for_a_piece_the_torrent_does_not_have_costs_the_connection() -> None:
    swarm = swarm_with({"liar": (0.0, range(0))}, have=range(NUM_PIECES), hinting=True)
    closed = [action for action in hint(swarm, "liar", ((NUM_PIECES, 0),), 10.0) if isinstance(action, ClosePeer)]
    assert [action.peer for action in closed] == ["liar"]
    assert "bs_due" in closed[0].reason


def test_due_times_forget_the_oldest_entry_beyond_their_limit() -> None:
    due = DueTimes(limit=3)
    for index in range(3):
        due.set(index, float(index))
    due.set(0, 9.0)  # told again: now the newest
    due.set(5, 5.0)
    assert len(due) == 3
    assert due.get(1) is None
    assert (due.get(0), due.get(2), due.get(5)) == (9.0, 2.0, 5.0)
