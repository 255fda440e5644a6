"""File priorities in the picker: high before normal before low, rarest first within a
class, partial pieces of a class before new ones of it, deadlines first all the same."""

from __future__ import annotations

import random
from collections.abc import Callable

from bitswarm.engine.picker import BLOCK_SIZE, RANDOM_FIRST_PIECES, PiecePicker

PIECE = 2 * BLOCK_SIZE
LOW, NORMAL, HIGH = 1, 2, 3


def picker(priorities: list[int], *, have: range = range(0), seed: int = 1) -> PiecePicker:
    return PiecePicker(len(priorities), lambda _index: PIECE, random.Random(seed), have=have, priorities=priorities)


def everything(_index: int) -> bool:
    return True


def started_order(p: PiecePicker, peer_has: Callable[[int], bool] = everything) -> list[int]:
    """The pieces ``pick`` starts, one whole piece per call, until it has none."""
    order = []
    while blocks := p.pick("a", peer_has, PIECE // BLOCK_SIZE):
        indices = {block.index for block in blocks}
        assert len(indices) == 1, blocks
        order.append(indices.pop())
    return order


def test_high_pieces_come_before_normal_before_low_and_rarest_first_within_each() -> None:
    # Pieces 0-3 are had (past the random first pieces); 4-6 low, 7-9 normal, 10-12 high.
    priorities = [NORMAL] * 4 + [LOW] * 3 + [NORMAL] * 3 + [HIGH] * 3
    p = picker(priorities, have=range(RANDOM_FIRST_PIECES))
    # The low pieces are the rarest of all: rarity orders pieces within a class only.
    availability = {4: 3, 5: 1, 6: 2, 7: 6, 8: 4, 9: 5, 10: 5, 11: 7, 12: 4}
    for index, count in availability.items():
        for _ in range(count):
            p.peer_has(index)
    assert p.has_priority_classes
    assert started_order(p) == [12, 10, 11, 8, 9, 7, 5, 6, 4]


def test_a_peer_without_high_pieces_is_asked_for_the_best_it_has() -> None:
    p = picker([HIGH, HIGH, NORMAL, LOW, LOW], have=range(0))
    assert started_order(p, lambda index: index >= 2)[0] == 2
    # The high pieces wait for a peer that has them.
    assert sorted(started_order(p)) == [0, 1]


def test_a_started_low_piece_waits_while_high_pieces_are_wanted() -> None:
    p = picker([LOW] * 6, have=range(RANDOM_FIRST_PIECES))
    first = p.pick("a", everything, 1)  # half of a low piece
    [low] = {block.index for block in first}
    other = next(index for index in (4, 5) if index != low)
    p.set_priority(other, HIGH)
    blocks = p.pick("b", everything, 3)
    assert [block.index for block in blocks] == [other, other, low]


def test_sequential_mode_goes_in_order_within_each_class() -> None:
    p = picker([LOW, LOW, HIGH, NORMAL, HIGH, NORMAL])
    p.sequential = True
    assert started_order(p) == [2, 4, 3, 5, 0, 1]


def test_a_deadline_on_a_low_piece_is_still_handed_out_first() -> None:
    p = picker([LOW, HIGH, HIGH, LOW], have=range(0))
    p.set_deadlines("reader", {3: 10.0})
    blocks = p.pick_deadline("a", everything, 2, now=0.0)
    assert {block.index for block in blocks} == {3}
    assert 3 not in started_order(p)  # pick leaves it to pick_deadline


def test_one_class_picks_exactly_as_the_default_priority() -> None:
    # `bitswarm get` sets no priorities (every wanted piece 1): a torrent whose wanted
    # pieces all share another value must be picked in the very same order, draw for draw.
    for seed in range(5):
        plain = picker([1] * 12, seed=seed)
        lifted = picker([NORMAL] * 12, seed=seed)
        for p in (plain, lifted):
            for index in range(12):
                for _ in range(index % 4):
                    p.peer_has(index)
        assert not lifted.has_priority_classes
        assert started_order(plain) == started_order(lifted)


def test_skipped_pieces_do_not_make_a_class() -> None:
    p = picker([0, 0, NORMAL, NORMAL])
    assert not p.has_priority_classes
    p.set_priority(0, HIGH)
    assert p.has_priority_classes
    p.set_priority(0, 0)
    assert not p.has_priority_classes
