"""Deadline picking in the piece picker (streaming): pieces a reader needs by a time are
handed out by ``pick_deadline`` alone, earliest first; a late one is asked of a second
peer; when nobody needs them any more they go back to rarest first."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from bitswarm.engine.picker import (
    BLOCK_SIZE,
    LATE_DUPLICATES,
    LATE_GRACE_S,
    RANDOM_FIRST_PIECES,
    BlockRequest,
    PiecePicker,
)

BLOCKS = 2
PIECE = BLOCKS * BLOCK_SIZE


def picker(num_pieces: int = 16, *, have: Iterable[int] = (), priorities: list[int] | None = None) -> PiecePicker:
    return PiecePicker(num_pieces, lambda _index: PIECE, random.Random(1), have=have, priorities=priorities)


def past_random_start(num_pieces: int = 16) -> PiecePicker:
    """A picker holding its last RANDOM_FIRST_PIECES pieces: it picks rarest first from now on."""
    return picker(num_pieces, have=range(num_pieces - RANDOM_FIRST_PIECES, num_pieces))


def everything(_index: int) -> bool:
    return True


def indexes(blocks: Iterable[BlockRequest]) -> list[int]:
    """The piece of each block, in order, each piece once."""
    seen: list[int] = []
    for block in blocks:
        if block.index not in seen:
            seen.append(block.index)
    return seen


def receive_all(p: PiecePicker, peer: str, blocks: Iterable[BlockRequest]) -> bool:
    """``peer`` sends every one of ``blocks``; whether that completed the (last) piece."""
    complete = False
    for block in blocks:
        complete, _others = p.block_received(block.index, block.begin, peer)
    return complete


def with_rarest(p: PiecePicker, rarest: int, pieces: int = 12) -> PiecePicker:
    """Three peers have each of the first ``pieces`` pieces, except ``rarest``: one peer."""
    for index in range(pieces):
        for _ in range(1 if index == rarest else 3):
            p.peer_has(index)
    return p


# -- earliest first, apart from rarest first ----------------------------------------------


def test_deadline_pieces_are_picked_earliest_deadline_first_whatever_their_order_given() -> None:
    p = picker()
    p.set_deadlines("reader", {5: 3.0, 2: 1.0, 7: 2.0})
    assert p.has_deadlines
    assert p.deadline_pieces() == [2, 7, 5]
    blocks = p.pick_deadline("a", everything, 100, now=0.0)
    assert indexes(blocks) == [2, 7, 5]
    assert [(block.index, block.begin) for block in blocks[:BLOCKS]] == [(2, 0), (2, BLOCK_SIZE)]
    assert len(blocks) == 3 * BLOCKS
    assert p.pick_deadline("b", everything, 100, now=0.0) == []  # every block asked, none late


def test_equal_deadlines_are_taken_lowest_piece_first() -> None:
    p = picker()
    p.set_deadlines("reader", {9: 1.0, 4: 1.0, 6: 1.0})
    assert p.deadline_pieces() == [4, 6, 9]


def test_pick_deadline_takes_at_most_count_blocks_and_carries_on_where_it_stopped() -> None:
    p = picker()
    p.set_deadlines("reader", {3: 1.0, 4: 2.0})
    first = p.pick_deadline("a", everything, 3, now=0.0)
    assert [(block.index, block.begin) for block in first] == [(3, 0), (3, BLOCK_SIZE), (4, 0)]
    assert [(block.index, block.begin) for block in p.pick_deadline("b", everything, 3, now=0.0)] == [(4, BLOCK_SIZE)]


def test_pick_deadline_skips_pieces_the_peer_lacks_unless_it_has_all() -> None:
    p = picker()
    p.set_deadlines("reader", {1: 1.0, 2: 2.0})
    assert indexes(p.pick_deadline("partial", lambda index: index == 2, 100, now=0.0)) == [2]
    assert indexes(p.pick_deadline("seed", lambda _index: False, 100, now=0.0, has_all=True)) == [1]


def test_a_common_deadline_piece_is_picked_before_a_rarer_ordinary_one() -> None:
    p = with_rarest(past_random_start(), 6)
    p.set_deadlines("reader", {3: 1.0})
    assert indexes(p.pick_deadline("a", everything, 100, now=0.0)) == [3]
    assert indexes(p.pick("a", everything, BLOCKS)) == [6]  # rarest first goes on without piece 3


def test_ordinary_pick_never_starts_a_deadline_piece_even_in_endgame() -> None:
    p = picker(4)
    p.set_deadlines("reader", {2: 5.0})
    picked = p.pick("a", everything, 100)
    assert sorted(indexes(picked)) == [0, 1, 3]
    # Every ordinary block is asked: endgame duplicates them, never the deadline piece.
    assert sorted(indexes(p.pick("b", everything, 100))) == [0, 1, 3]
    assert p.pick("c", everything, 100) == []
    assert indexes(p.pick_deadline("c", everything, 100, now=0.0)) == [2]


def test_a_piece_started_by_ordinary_pick_is_continued_only_by_pick_deadline_once_it_has_a_deadline() -> None:
    p = picker(1)
    started = p.pick("a", everything, 1)
    assert [(block.index, block.begin) for block in started] == [(0, 0)]
    p.set_deadlines("reader", {0: 1.0})
    assert p.pick("b", everything, 100) == []  # neither continued nor duplicated in endgame
    assert [(block.index, block.begin) for block in p.pick_deadline("b", everything, 100, now=0.0)] == [(0, BLOCK_SIZE)]


def test_a_deadline_on_a_skipped_piece_fetches_it_and_without_one_it_stays_skipped() -> None:
    p = picker(3, priorities=[1, 0, 1])
    p.set_deadlines("reader", {1: 1.0})
    assert indexes(p.pick_deadline("a", everything, 100, now=0.0)) == [1]
    p2 = picker(3, priorities=[1, 0, 1])
    p2.set_deadlines("reader", {1: 1.0})
    p2.clear_deadlines("reader")
    assert sorted(indexes(p2.pick("a", everything, 100))) == [0, 2]


# -- late pieces ----------------------------------------------------------------------------


def test_a_late_piece_is_asked_of_a_second_peer_only_once_the_grace_has_passed() -> None:
    p = picker()
    p.set_deadlines("reader", {4: 10.0})
    first = p.pick_deadline("slow", everything, 100, now=9.0)
    assert len(first) == BLOCKS
    assert p.pick_deadline("fast", everything, 100, now=10.0) == []  # due, but not late
    assert p.pick_deadline("fast", everything, 100, now=10.0 + LATE_GRACE_S - 0.01) == []
    second = p.pick_deadline("fast", everything, 100, now=10.0 + LATE_GRACE_S)
    assert second == first
    assert {block.index for block in p.requests_of("fast")} == {4}


def test_a_late_block_is_never_asked_twice_of_the_same_peer_nor_of_more_than_late_duplicates() -> None:
    p = picker()
    p.set_deadlines("reader", {4: 0.0})
    late = 10.0
    assert len(p.pick_deadline("a", everything, 100, now=late)) == BLOCKS
    assert p.pick_deadline("a", everything, 100, now=late) == []  # not a second time of "a"
    for extra in range(1, LATE_DUPLICATES):
        assert len(p.pick_deadline(f"dup{extra}", everything, 100, now=late)) == BLOCKS
    assert p.pick_deadline("one too many", everything, 100, now=late) == []


def test_the_copy_of_a_late_block_that_arrives_second_is_cancelled_with_the_other_peer() -> None:
    p = picker()
    p.set_deadlines("reader", {4: 1.0})
    p.pick_deadline("slow", everything, 100, now=0.0)
    p.pick_deadline("fast", everything, 100, now=5.0)
    complete, others = p.block_received(4, 0, "fast")
    assert (complete, others) == (False, ["slow"])
    assert not p.is_block_missing(4, 0)
    complete, others = p.block_received(4, 0, "slow")  # the late copy came anyway
    assert (complete, others) == (False, [])
    complete, others = p.block_received(4, BLOCK_SIZE, "slow")
    assert (complete, others) == (True, ["fast"])


def test_a_received_block_of_a_late_piece_is_not_asked_again() -> None:
    p = picker()
    p.set_deadlines("reader", {4: 1.0})
    p.pick_deadline("slow", everything, 100, now=0.0)
    p.block_received(4, 0, "slow")
    assert [(block.index, block.begin) for block in p.pick_deadline("fast", everything, 100, now=5.0)] == [
        (4, BLOCK_SIZE)
    ]


def test_a_dropped_deadline_request_goes_to_the_next_peer_at_once() -> None:
    p = picker()
    p.set_deadlines("reader", {4: 100.0})
    blocks = p.pick_deadline("a", everything, 100, now=0.0)
    p.request_dropped(blocks[1], "a")  # rejected
    assert p.pick_deadline("b", everything, 100, now=0.0) == [blocks[1]]


# -- owners, seeks and departures ---------------------------------------------------------


def test_a_seek_drops_the_deadlines_nobody_needs_and_those_pieces_go_back_to_rarest_first() -> None:
    held = with_rarest(past_random_start(), 1)
    held.set_deadlines("reader", {0: 1.0, 1: 2.0, 2: 3.0})
    assert 1 not in indexes(held.pick("a", everything, 100))  # held for the reader
    p = with_rarest(past_random_start(), 1)
    p.set_deadlines("reader", {0: 1.0, 1: 2.0, 2: 3.0})
    p.set_deadlines("reader", {8: 4.0, 9: 5.0})  # the seek
    assert p.deadline_pieces() == [8, 9]
    assert [p.deadline_of(index) for index in (0, 1, 2)] == [None, None, None]
    assert indexes(p.pick("a", everything, BLOCKS)) == [1]  # the rarest again, and first
    assert sorted(indexes(p.pick("a", everything, 100))) == [0, 2, 3, 4, 5, 6, 7, 10, 11]


def test_a_deadline_piece_half_fetched_before_a_seek_is_finished_by_ordinary_pick() -> None:
    p = picker()
    p.set_deadlines("reader", {0: 1.0})
    assert [(block.index, block.begin) for block in p.pick_deadline("a", everything, 1, now=0.0)] == [(0, 0)]
    p.set_deadlines("reader", {9: 2.0})
    # Started pieces are finished first, this one as any other.
    assert p.pick("b", everything, 1) == [BlockRequest(0, BLOCK_SIZE, BLOCK_SIZE)]


def test_two_readers_windows_are_merged_by_the_earliest_deadline() -> None:
    p = picker()
    p.set_deadlines("r1", {3: 5.0, 4: 6.0})
    p.set_deadlines("r2", {4: 2.0, 7: 1.0})
    assert p.deadline_pieces() == [7, 4, 3]
    assert p.deadline_of(4) == 2.0
    p.set_deadlines("r1", {3: 5.0})  # r1 moved on from 4: r2 still needs it
    assert p.deadline_of(4) == 2.0
    p.set_deadlines("r2", {7: 1.0})  # now nobody needs 4
    assert p.deadline_of(4) is None
    assert p.deadline_pieces() == [7, 3]


def test_a_departed_readers_deadlines_go_and_the_other_readers_stay() -> None:
    p = past_random_start()
    p.set_deadlines("r1", {3: 5.0, 4: 6.0})
    p.set_deadlines("r2", {4: 2.0, 7: 1.0})
    p.clear_deadlines("r2")
    assert p.deadline_pieces() == [3, 4]
    assert p.deadline_of(4) == 6.0
    assert 7 in indexes(p.pick("a", everything, 100))  # back to rarest first
    p.clear_deadlines("r1")
    assert not p.has_deadlines
    assert p.deadline_pieces() == []
    assert sorted(indexes(p.pick("a", everything, 100))) == [3, 4]  # the rest were asked already
    p.clear_deadlines("never seen")  # nothing to do, nothing raised


def test_an_empty_set_is_a_departure() -> None:
    p = picker()
    p.set_deadlines("reader", {3: 1.0})
    p.set_deadlines("reader", {})
    assert not p.has_deadlines
    assert p.deadline_of(3) is None


def test_availability_that_changed_while_a_piece_had_a_deadline_counts_once_it_is_back() -> None:
    p = past_random_start()
    for index in range(12):
        for _ in range(3):
            p.peer_has(index)
    p.set_deadlines("reader", {5: 1.0})
    p.peer_lost(5)
    p.peer_lost(5)  # piece 5 became the rarest while it was held for the reader
    p.clear_deadlines("reader")
    assert indexes(p.pick("a", everything, BLOCKS)) == [5]


# -- verified, failed, out of range --------------------------------------------------------


def test_a_verified_piece_loses_its_deadline_and_never_gets_one_again() -> None:
    p = picker()
    p.set_deadlines("reader", {2: 1.0, 3: 2.0})
    assert receive_all(p, "a", p.pick_deadline("a", everything, BLOCKS, now=0.0))
    p.piece_verified(2)
    assert p.deadline_of(2) is None
    assert p.deadline_pieces() == [3]
    p.set_deadlines("reader", {2: 1.0, 3: 2.0})  # a reader that did not look
    p.set_deadlines("other", {2: 0.5})
    assert p.deadline_pieces() == [3]
    p.clear_deadlines("reader")
    assert p.deadline_pieces() == []
    assert 2 not in indexes(p.pick("a", everything, 100))


def test_a_piece_verified_from_disk_while_waiting_for_its_deadline_leaves_it() -> None:
    p = picker()
    p.set_deadlines("reader", {6: 1.0})
    p.piece_verified(6)  # found on disk, never started
    assert not p.has_deadlines
    assert p.pick_deadline("a", everything, 100, now=0.0) == []


def test_a_deadline_piece_that_fails_its_hash_is_picked_again_by_pick_deadline_only() -> None:
    p = picker(2)
    p.set_deadlines("reader", {1: 1.0})
    first = p.pick_deadline("a", everything, 100, now=0.0)
    assert receive_all(p, "a", first)
    p.piece_failed(1)
    assert p.deadline_of(1) == 1.0
    assert indexes(p.pick("b", everything, 100)) == [0]
    assert p.pick_deadline("b", everything, 100, now=0.0) == first
    assert p.is_block_missing(1, 0)


def test_a_failed_piece_whose_deadline_went_goes_back_to_rarest_first() -> None:
    p = picker(2)
    p.set_deadlines("reader", {1: 1.0})
    assert receive_all(p, "a", p.pick_deadline("a", everything, 100, now=0.0))
    p.piece_failed(1)
    p.clear_deadlines("reader")
    assert sorted(indexes(p.pick("b", everything, 100))) == [0, 1]


@pytest.mark.parametrize("index", [-1, 16, 1000])
def test_a_deadline_outside_the_torrent_is_refused_and_the_readers_set_is_kept(index: int) -> None:
    p = picker(16)
    p.set_deadlines("reader", {3: 1.0})
    with pytest.raises(ValueError, match=f"piece {index} outside 0..15"):
        p.set_deadlines("reader", {4: 1.0, index: 2.0})
    assert p.deadline_pieces() == [3]


# -- web seeds ------------------------------------------------------------------------------


def test_a_web_seed_takes_the_earliest_free_deadline_piece_first() -> None:
    p = picker()
    p.sequential = True  # without deadlines it would take piece 0
    p.set_deadlines("reader", {9: 2.0, 5: 1.0, 12: 3.0})
    p.pick_deadline("peer", everything, BLOCKS, now=0.0)  # a peer is on piece 5
    assert p.start_piece_for_webseed("seed") == 9
    assert p.start_piece_for_webseed("seed") == 12
    assert p.start_piece_for_webseed("seed") == 0  # no free deadline piece left
    assert {block.index for block in p.requests_of("seed")} == {9, 12, 0}


def test_a_web_seed_takes_a_deadline_piece_a_peer_gave_back() -> None:
    p = picker()
    p.set_deadlines("reader", {9: 2.0})
    blocks = p.pick_deadline("peer", everything, 100, now=0.0)
    for block in blocks:
        p.request_dropped(block, "peer")  # the peer went
    assert p.start_piece_for_webseed("seed") == 9


def test_a_web_seed_run_starts_at_the_earliest_deadline_piece() -> None:
    p = picker()
    p.set_deadlines("reader", {10: 1.0, 11: 1.5})
    p.pick("peer", lambda index: index == 13, BLOCKS)  # a peer started piece 13
    assert p.start_run_for_webseed("seed", 8) == [10, 11, 12]
    assert p.deadline_pieces() == [10, 11]  # still due: the seed has not delivered
    assert p.pick_deadline("peer", everything, 100, now=0.0) == []  # the seed has them all
