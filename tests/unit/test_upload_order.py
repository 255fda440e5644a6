"""The order we serve peers' requests in: one (peer, piece) pair at a time, oldest first,
and the pieces a player reading in order needs soonest before them (``UploadQueue`` with
``Swarm.upload_rank``)."""

from __future__ import annotations

import random

from bitswarm.engine.swarm import NEWCOMER_HEAD_START_BYTES, NEWCOMER_SERVE_S, URGENT_SERVE_BYTES, Swarm
from bitswarm.engine.upload_queue import UploadQueue
from bitswarm.wire.messages import Bitfield, Handshake, Have, encode
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


def swarm_with(peers: dict[str, tuple[float, range]], *, have: range = range(0)) -> Swarm:
    """A swarm of ``NUM_PIECES`` pieces with ``peers`` (name: connected at, pieces held)."""
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
        hello = Handshake(INFO_HASH, name.encode().ljust(20, b"-")).encode()
        swarm.handle(name, core.receive(hello + encode(Bitfield(bytes(bits))), at), at)
    return swarm


def test_the_piece_nearest_the_requesters_first_missing_one_goes_first() -> None:
    # "ahead" lacks piece 20 (its player waits there), "behind" lacks piece 4.
    swarm = swarm_with({"ahead": (0.0, range(20)), "behind": (0.0, range(4))}, have=range(NUM_PIECES // 2))
    now = 10.0
    assert swarm.upload_rank("ahead", 20, now) == 0
    assert swarm.upload_rank("behind", 5, now) == PIECE
    assert swarm.upload_rank("ahead", 22, now) == 2 * PIECE
    queue = queue_of([("ahead", 22, "a22"), ("behind", 5, "b5"), ("ahead", 20, "a20")])
    rank = lambda peer, index: swarm.upload_rank(peer, index, now)  # noqa: E731
    assert queue.pop_batch(3, rank) == [("ahead", "a20"), ("behind", "b5"), ("ahead", "a22")]


def test_requests_far_beyond_the_first_missing_piece_keep_the_order_asked() -> None:
    swarm = swarm_with({"a": (0.0, range(0)), "b": (0.0, range(0))}, have=range(NUM_PIECES))
    far = URGENT_SERVE_BYTES // PIECE
    assert swarm.upload_rank("a", far + 9, 10.0) == swarm.upload_rank("b", far, 10.0) == URGENT_SERVE_BYTES
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
    assert swarm.upload_rank("newcomer", 1, 10.5) == swarm.upload_rank("viewer", 1, 10.5) - NEWCOMER_HEAD_START_BYTES
    later = 10.0 + NEWCOMER_SERVE_S
    assert swarm.upload_rank("newcomer", 1, later) == swarm.upload_rank("viewer", 1, later)


def test_a_seed_gives_no_head_start() -> None:
    swarm = swarm_with({"viewer": (0.0, range(0)), "newcomer": (10.0, range(0))}, have=range(NUM_PIECES))
    assert swarm.upload_rank("newcomer", 1, 10.5) == swarm.upload_rank("viewer", 1, 10.5)


def test_a_request_for_a_piece_the_peer_says_it_has_is_not_urgent() -> None:
    # Otherwise a peer could jump the queue by asking for pieces below its first missing one.
    swarm = swarm_with({"greedy": (0.0, range(8))}, have=range(NUM_PIECES))
    assert swarm.upload_rank("greedy", 2, 10.0) == URGENT_SERVE_BYTES
    assert swarm.upload_rank("greedy", 8, 10.0) == 0


def test_a_peer_that_left_is_ranked_with_the_rest() -> None:
    swarm = swarm_with({"newcomer": (10.0, range(0))}, have=range(4))
    swarm.remove_peer("newcomer")
    assert swarm.upload_rank("newcomer", 1, 10.5) == URGENT_SERVE_BYTES
