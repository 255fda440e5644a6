"""The piece picker with deadlines as a state machine: readers come, move and go, pieces
are late, verified or fail, and the books still balance: a piece waits in exactly one
place, deadlines are the earliest any reader set, and blocks are duplicated only when late."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bitswarm.engine.picker import (
    BLOCK_SIZE,
    ENDGAME_DUPLICATES,
    LATE_DUPLICATES,
    LATE_GRACE_S,
    BlockRequest,
    PiecePicker,
)

NUM_PIECES = 6
PIECE = 3 * BLOCK_SIZE
LAST = BLOCK_SIZE + 7
PEERS = ["a", "b", "c"]
WEB_SEED = "w"
OWNERS = ["r1", "r2"]
STEP_S = 0.25
# When a reader's pieces are due, from now: some past, some about to be late, most ahead.
DUE_IN_S = [-2.0, -LATE_GRACE_S, -0.25, 0.0, 0.25, 1.0, 3.0]


def piece_size(index: int) -> int:
    return LAST if index == NUM_PIECES - 1 else PIECE


def blocks_in(index: int) -> int:
    return -(-piece_size(index) // BLOCK_SIZE)


def by_place(block: BlockRequest) -> tuple[int, int]:
    return (block.index, block.begin)


class DeadlinePickerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # The last piece is skipped (priority 0): a deadline may still ask for it.
        self.picker = PiecePicker(NUM_PIECES, piece_size, random.Random(0), priorities=[1] * (NUM_PIECES - 1) + [0])
        self.now = 0.0
        self.peer_pieces: dict[str, set[int]] = {peer: set() for peer in PEERS}
        for index in range(NUM_PIECES):  # "c" starts with every piece: there is always a source
            self.peer_pieces["c"].add(index)
            self.picker.peer_has(index)
        self.outstanding: dict[str, set[BlockRequest]] = {peer: set() for peer in [*PEERS, WEB_SEED]}
        self.received: dict[int, set[int]] = {}
        self.owners: dict[str, dict[int, float]] = {}

    def _requesters(self, block: BlockRequest) -> int:
        return sum(block in blocks for blocks in self.outstanding.values())

    # -- peers ------------------------------------------------------------------------------

    @rule(peer=st.sampled_from(PEERS), index=st.integers(0, NUM_PIECES - 1))
    def peer_gets_a_piece(self, peer: str, index: int) -> None:
        if index not in self.peer_pieces[peer]:
            self.peer_pieces[peer].add(index)
            self.picker.peer_has(index)

    @rule(peer=st.sampled_from(PEERS), count=st.integers(1, 8))
    def pick(self, peer: str, count: int) -> None:
        started = set(self.picker._partial)
        picked = self.picker.pick(peer, self.peer_pieces[peer].__contains__, count)
        assert len(picked) <= count
        for block in picked:
            assert self.picker.deadline_of(block.index) is None, "ordinary pick never touches a deadline piece"
            assert block.index in self.peer_pieces[peer]
            assert not self.picker.have[block.index]
            # A piece skipped once started is still finished (the picker does not check).
            assert self.picker.priority[block.index] > 0 or block.index in started
            assert block not in self.outstanding[peer]
            self.outstanding[peer].add(block)
            assert self._requesters(block) <= ENDGAME_DUPLICATES

    @rule(peer=st.sampled_from(PEERS), count=st.integers(1, 8))
    def pick_deadline(self, peer: str, count: int) -> None:
        order = {index: place for place, index in enumerate(self.picker.deadline_pieces())}
        picked = self.picker.pick_deadline(peer, self.peer_pieces[peer].__contains__, count, self.now)
        assert len(picked) <= count
        places = [order[block.index] for block in picked]  # KeyError: not a deadline piece
        assert places == sorted(places), "earliest deadline first"
        for block in picked:
            assert block.index in self.peer_pieces[peer]
            assert not self.picker.have[block.index]
            assert block not in self.outstanding[peer], "never the same block twice to one peer"
            assert 0 < block.length <= BLOCK_SIZE
            assert block.begin + block.length <= piece_size(block.index)
            if self._requesters(block):
                deadline = self.picker.deadline_of(block.index)
                assert deadline is not None
                assert self.now >= deadline + LATE_GRACE_S, "a second peer only for a late piece"
            self.outstanding[peer].add(block)
            assert self._requesters(block) <= max(LATE_DUPLICATES, ENDGAME_DUPLICATES)

    @rule()
    def a_web_seed_starts_a_piece(self) -> None:
        before = set(self.picker.requests_of(WEB_SEED))
        index = self.picker.start_piece_for_webseed(WEB_SEED)
        new = set(self.picker.requests_of(WEB_SEED)) - before
        if index is None:
            assert not new
            return
        assert not self.picker.have[index]
        assert {block.index for block in new} == {index}
        self.outstanding[WEB_SEED] |= new

    @precondition(lambda self: bool(self.outstanding[WEB_SEED]))
    @rule(data=st.data())
    def the_web_seed_gives_a_piece_up(self, data: st.DataObject) -> None:
        index = data.draw(st.sampled_from(sorted({block.index for block in self.outstanding[WEB_SEED]})))
        self.picker.piece_abandoned(index, WEB_SEED)
        self.outstanding[WEB_SEED] = {block for block in self.outstanding[WEB_SEED] if block.index != index}

    @precondition(lambda self: any(self.outstanding.values()))
    @rule(data=st.data())
    def a_block_arrives(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from([peer for peer, blocks in self.outstanding.items() if blocks]))
        block = data.draw(st.sampled_from(sorted(self.outstanding[peer], key=by_place)))
        self.outstanding[peer].discard(block)
        complete, others = self.picker.block_received(block.index, block.begin, peer)
        for other in others:
            assert isinstance(other, str)
            assert block in self.outstanding[other], "cancel only whoever was asked"
            self.outstanding[other].discard(block)
        self.received.setdefault(block.index, set()).add(block.begin)
        if complete:
            assert len(self.received.pop(block.index)) == blocks_in(block.index)
            if data.draw(st.booleans(), label="hash matches"):
                self.picker.piece_verified(block.index)
            else:
                self.picker.piece_failed(block.index)

    @precondition(lambda self: any(self.outstanding.values()))
    @rule(data=st.data())
    def a_request_is_refused(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from([peer for peer, blocks in self.outstanding.items() if blocks]))
        block = data.draw(st.sampled_from(sorted(self.outstanding[peer], key=by_place)))
        self.outstanding[peer].discard(block)
        self.picker.request_dropped(block, peer)

    @rule(peer=st.sampled_from(PEERS))
    def a_peer_leaves(self, peer: str) -> None:
        for block in self.picker.requests_of(peer):
            self.picker.request_dropped(block, peer)
        self.outstanding[peer].clear()
        for index in self.peer_pieces[peer]:
            self.picker.peer_lost(index)
        self.peer_pieces[peer] = set()

    # -- readers and time -------------------------------------------------------------------

    @rule(
        owner=st.sampled_from(OWNERS),
        deadlines=st.dictionaries(st.integers(0, NUM_PIECES - 1), st.sampled_from(DUE_IN_S), max_size=4),
    )
    def a_reader_sets_its_window(self, owner: str, deadlines: dict[int, float]) -> None:
        due = {index: self.now + due_in_s for index, due_in_s in deadlines.items()}
        self.picker.set_deadlines(owner, due)
        if due:
            self.owners[owner] = due
        else:
            self.owners.pop(owner, None)

    @rule(owner=st.sampled_from(OWNERS))
    def a_reader_leaves(self, owner: str) -> None:
        self.picker.clear_deadlines(owner)
        self.owners.pop(owner, None)

    @rule(steps=st.integers(1, 4))
    def time_passes(self, steps: int) -> None:
        self.now += steps * STEP_S

    @rule(index=st.integers(0, NUM_PIECES - 1), priority=st.integers(0, 2))
    def a_priority_changes(self, index: int, priority: int) -> None:
        self.picker.set_priority(index, priority)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def each_waiting_piece_is_in_exactly_its_bucket_and_no_other_piece_is(self) -> None:
        p = self.picker
        filed: dict[int, tuple[int, int]] = {}
        for key, bucket in p._buckets.items():
            assert bucket, "no empty bucket is kept"
            for index in bucket:
                assert index not in filed, "a piece in two buckets"
                filed[index] = key
        for index in range(NUM_PIECES):
            waiting = (
                not p.have[index] and p.priority[index] > 0 and index not in p._partial and p.deadline_of(index) is None
            )
            assert (index in filed) == waiting, f"piece {index}: filed {index in filed}, waiting {waiting}"
            if waiting:
                assert filed[index] == (-p.priority[index], p.availability[index])

    @invariant()
    def deadlines_are_the_earliest_any_reader_set_for_a_piece_not_here(self) -> None:
        for index in range(NUM_PIECES):
            times = [due[index] for due in self.owners.values() if index in due]
            expected = min(times) if times and not self.picker.have[index] else None
            assert self.picker.deadline_of(index) == expected

    @invariant()
    def deadline_pieces_are_sorted_earliest_first_and_none_is_here(self) -> None:
        pieces = self.picker.deadline_pieces()
        assert len(set(pieces)) == len(pieces)
        assert set(pieces) == {index for index in range(NUM_PIECES) if self.picker.deadline_of(index) is not None}
        keys = [(self.picker.deadline_of(index), index) for index in pieces]
        assert keys == sorted(keys)
        assert not any(self.picker.have[index] for index in pieces)
        assert self.picker.has_deadlines == bool(pieces)

    @invariant()
    def the_picker_knows_exactly_the_outstanding_requests(self) -> None:
        for peer, blocks in self.outstanding.items():
            assert set(self.picker.requests_of(peer)) == blocks

    @invariant()
    def availability_matches_the_peers(self) -> None:
        for index in range(NUM_PIECES):
            assert self.picker.availability[index] == sum(index in pieces for pieces in self.peer_pieces.values())


DeadlinePickerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)
test_deadline_picker_state_machine = DeadlinePickerMachine.TestCase
