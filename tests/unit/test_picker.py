from __future__ import annotations

import random
from collections.abc import Iterable

from bitswarm.engine.picker import BLOCK_SIZE, RANDOM_FIRST_PIECES, BlockRequest, PiecePicker

PIECE = 4 * BLOCK_SIZE


def picker(num_pieces: int = 8, *, have: Iterable[int] = (), priorities: list[int] | None = None) -> PiecePicker:
    def piece_size(index: int) -> int:
        return PIECE if index < num_pieces - 1 else BLOCK_SIZE + 10

    return PiecePicker(num_pieces, piece_size, random.Random(1), have=have, priorities=priorities)


def everything(index: int) -> bool:
    return True


def test_rarest_piece_is_started_first_once_past_the_random_start() -> None:
    p = picker(have=range(RANDOM_FIRST_PIECES))
    for index in range(8):
        for _ in range(3 if index != 6 else 1):
            p.peer_has(index)
    blocks = p.pick("a", everything, 4)
    assert {block.index for block in blocks} == {6}
    assert [block.begin for block in blocks] == [0, BLOCK_SIZE, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE]


def test_partial_pieces_are_finished_before_new_ones_start() -> None:
    p = picker(have=range(RANDOM_FIRST_PIECES))
    first = p.pick("a", everything, 2)
    second = p.pick("b", everything, 2)
    assert {block.index for block in first} == {block.index for block in second}
    assert {block.begin for block in first + second} == {0, BLOCK_SIZE, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE}


def test_only_pieces_the_peer_has_and_never_skipped_ones() -> None:
    p = picker(priorities=[1, 0, 1, 1, 1, 1, 1, 1])
    blocks = p.pick("a", lambda index: index in (1, 2), 100)
    assert {block.index for block in blocks} == {2}


def test_the_last_piece_has_a_short_last_block() -> None:
    p = picker(num_pieces=2, have=[0])
    assert p.pick("a", everything, 10) == [BlockRequest(1, 0, BLOCK_SIZE), BlockRequest(1, BLOCK_SIZE, 10)]


def test_blocks_received_complete_a_piece_and_verification_records_it() -> None:
    p = picker(num_pieces=2, have=[0])
    for block in p.pick("a", everything, 10):
        complete, others = p.block_received(block.index, block.begin, "a")
        assert others == []
    assert complete
    p.piece_verified(1)
    assert p.is_complete
    assert p.pick("a", everything, 10) == []


def test_failed_piece_is_wanted_again() -> None:
    p = picker(num_pieces=2, have=[0])
    for block in p.pick("a", everything, 10):
        p.block_received(block.index, block.begin, "a")
    p.piece_failed(1)
    assert len(p.pick("b", everything, 10)) == 2


def test_dropped_requests_go_to_another_peer() -> None:
    p = picker(num_pieces=2, have=[0])
    blocks = p.pick("a", everything, 1)
    assert p.requests_of("a") == blocks
    p.request_dropped(blocks[0], "a")
    assert p.pick("b", everything, 1) == blocks
    assert p.requests_of("a") == []


def test_endgame_asks_a_second_peer_and_names_whom_to_cancel() -> None:
    p = picker(num_pieces=2, have=[0])
    blocks = p.pick("a", everything, 10)
    duplicate = p.pick("b", everything, 10)
    assert duplicate == blocks  # nothing else left: endgame
    assert p.pick("c", everything, 10) == []  # at most two peers per block
    complete, others = p.block_received(1, 0, "b")
    assert others == ["a"]
    assert not complete


def test_sequential_mode_takes_the_lowest_wanted_piece() -> None:
    p = picker(have=[0, 1, 2, 3])
    p.sequential = True
    for index in range(8):
        p.peer_has(index)
    assert {block.index for block in p.pick("a", everything, 4)} == {4}


def test_random_first_pieces_spread_over_the_torrent() -> None:
    starts = set()
    for seed in range(20):
        p = PiecePicker(64, lambda index: PIECE, random.Random(seed))
        for index in range(64):
            p.peer_has(index)
            if index == 5:
                p.peer_lost(index)  # piece 5 is the rarest ... but we start at random
        starts.add(p.pick("a", everything, 1)[0].index)
    assert len(starts) > 5


def test_a_seed_hint_picks_exactly_what_asking_about_every_piece_picks() -> None:
    for sequential in (False, True):
        for have in ((), range(RANDOM_FIRST_PIECES + 2)):
            asked, hinted = picker(40, have=have), picker(40, have=have)
            for p in (asked, hinted):
                p.sequential = sequential
                for index in range(0, 40, 3):
                    p.peer_has(index)
            for _ in range(12):
                assert asked.pick("a", everything, 5) == hinted.pick("a", everything, 5, has_all=True)


def test_a_web_seed_takes_a_piece_a_peer_started_and_left_and_never_a_held_one() -> None:
    p = picker(num_pieces=3, priorities=[1, 1, 0])  # piece 2 held back (its hashes not in)
    blocks = p.pick("peer", everything, 8)
    assert {block.index for block in blocks} == {0, 1}
    p.block_received(0, 0, "peer")
    for block in blocks:
        p.request_dropped(block, "peer")  # the peer went
    taken = {p.start_piece_for_webseed("seed"), p.start_piece_for_webseed("seed")}
    assert taken == {0, 1}
    assert p.start_piece_for_webseed("seed") is None
    p.piece_abandoned(0, "seed")  # the seed failed: the piece is free again, its block 0 kept
    assert p.start_piece_for_webseed("other seed") == 0
    assert not p.is_block_missing(0, 0)


def test_a_web_seed_run_extends_the_picked_piece_with_the_free_pieces_after_it() -> None:
    p = picker(num_pieces=10, have=[5], priorities=[1, 1, 1, 1, 1, 1, 1, 1, 0, 1])
    p.sequential = True  # the first piece is 0, so the run is predictable
    p.pick("peer", lambda index: index == 3, 1)  # a peer started piece 3
    assert p.start_run_for_webseed("seed", 8) == [0, 1, 2]  # up to the piece a peer holds
    assert p.start_run_for_webseed("seed", 8) == [4]  # piece 5 is had
    assert p.start_run_for_webseed("seed", 1) == [6]  # the limit
    assert p.start_run_for_webseed("seed", 8) == [7]  # piece 8 is held back (priority 0)
    assert p.start_run_for_webseed("seed", 8) == [9]
    assert p.start_run_for_webseed("seed", 8) == []
    for index in (0, 1, 2, 4, 6, 7, 9):  # every block of the run is the seed's
        assert {block.index for block in p.requests_of("seed")} >= {index}
        assert p.is_block_missing(index, 0)
    assert {block.index for block in p.requests_of("peer")} == {3}


def test_a_web_seed_run_given_back_leaves_its_pieces_free_again() -> None:
    p = picker(num_pieces=6)
    p.sequential = True
    run = p.start_run_for_webseed("seed", 4)
    assert run == [0, 1, 2, 3]
    for index in run:
        p.piece_abandoned(index, "seed")
    assert p.requests_of("seed") == []
    assert p.start_run_for_webseed("other seed", 8) == [0, 1, 2, 3, 4, 5]
