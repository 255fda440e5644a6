"""The order we serve peers' requests in: one (peer, piece) pair at a time, oldest first,
and a peer that just connected first while we still download (``UploadQueue`` with
``Swarm.upload_rank``)."""

from __future__ import annotations

import random

from bitswarm.engine.swarm import NEWCOMER_SERVE_S, Swarm
from bitswarm.engine.upload_queue import UploadQueue
from bitswarm.wire.peer import PeerProtocol

PIECE = 1 << 16


def queue_of(requests: list[tuple[str, int, str]]) -> UploadQueue[str, str]:
    queue: UploadQueue[str, str] = UploadQueue()
    for peer, index, request in requests:
        queue.push(peer, index, request)
    return queue


def test_without_a_rank_the_oldest_pair_goes_first_whole() -> None:
    queue = queue_of([("a", 1, "a1.0"), ("b", 2, "b2.0"), ("a", 1, "a1.1"), ("b", 2, "b2.1")])
    assert queue.pop_batch(3) == [("a", "a1.0"), ("a", "a1.1"), ("b", "b2.0")]
    assert len(queue) == 1


def test_a_peer_ranked_lower_is_served_first_and_the_rest_keep_their_order() -> None:
    queue = queue_of([("old", 1, "o1"), ("old", 2, "o2"), ("new", 3, "n3.0"), ("new", 3, "n3.1"), ("old", 4, "o4")])
    ranks = {"old": 1, "new": 0}
    assert queue.pop_batch(3, ranks.__getitem__) == [("new", "n3.0"), ("new", "n3.1"), ("old", "o1")]
    assert queue.pop_batch(5, ranks.__getitem__) == [("old", "o2"), ("old", "o4")]
    assert len(queue) == 0


def test_among_equal_ranks_the_oldest_pair_goes_first() -> None:
    queue = queue_of([("a", 1, "a1"), ("b", 2, "b2"), ("c", 3, "c3")])
    assert queue.pop_batch(3, lambda peer: 0 if peer != "a" else 1) == [("b", "b2"), ("c", "c3"), ("a", "a1")]


def swarm_with(peers: dict[str, float], *, have: range = range(0)) -> Swarm:
    """A swarm of 8 pieces with ``peers`` connected at the given times."""
    swarm = Swarm(num_pieces=8, piece_size=lambda _index: PIECE, have=have, rng=random.Random(3), now=0.0)
    for name, at in peers.items():
        core = PeerProtocol(
            info_hash=b"u" * 20, peer_id=b"-SW0100-uploader0000", num_pieces=8, piece_size=lambda _index: PIECE,
            have_piece=swarm.has_piece, now=at,
        )  # fmt: skip
        swarm.add_peer(name, core, at)
    return swarm


def test_a_downloader_serves_a_peer_that_just_connected_first_for_a_while() -> None:
    swarm = swarm_with({"viewer": 0.0, "newcomer": 10.0}, have=range(4))
    assert swarm.upload_rank("newcomer", 10.5) < swarm.upload_rank("viewer", 10.5)
    later = 10.0 + NEWCOMER_SERVE_S
    assert swarm.upload_rank("newcomer", later) == swarm.upload_rank("viewer", later)


def test_a_seed_serves_in_the_order_asked_even_a_newcomer() -> None:
    # A seed's upload is the only source of the pieces the front viewer needs next.
    swarm = swarm_with({"viewer": 0.0, "newcomer": 10.0}, have=range(8))
    assert swarm.upload_rank("newcomer", 10.5) == swarm.upload_rank("viewer", 10.5)


def test_a_peer_that_left_is_ranked_with_the_rest() -> None:
    swarm = swarm_with({"newcomer": 10.0}, have=range(4))
    swarm.remove_peer("newcomer")
    assert swarm.upload_rank("newcomer", 10.5) == 1
