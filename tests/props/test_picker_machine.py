"""The piece picker as a state machine: whatever peers come, go, send or refuse, its books balance."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bitswarm.engine.picker import BLOCK_SIZE, BlockRequest, PiecePicker

NUM_PIECES = 12
PIECE = 3 * BLOCK_SIZE
LAST = BLOCK_SIZE + 7
PEERS = ["a", "b", "c"]


def piece_size(index: int) -> int:
    return LAST if index == NUM_PIECES - 1 else PIECE


class PickerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.picker = PiecePicker(NUM_PIECES, piece_size, random.Random(0), priorities=[1] * (NUM_PIECES - 1) + [0])
        self.peer_pieces: dict[str, set[int]] = {peer: set() for peer in PEERS}
        self.outstanding: dict[str, set[BlockRequest]] = {peer: set() for peer in PEERS}
        self.received: dict[int, set[int]] = {}

    @rule(peer=st.sampled_from(PEERS), index=st.integers(0, NUM_PIECES - 1))
    def peer_gets_a_piece(self, peer: str, index: int) -> None:
        if index not in self.peer_pieces[peer]:
            self.peer_pieces[peer].add(index)
            self.picker.peer_has(index)

    @rule(peer=st.sampled_from(PEERS), count=st.integers(1, 10))
    def pick(self, peer: str, count: int) -> None:
        picked = self.picker.pick(peer, self.peer_pieces[peer].__contains__, count)
        assert len(picked) <= count
        for block in picked:
            assert block.index in self.peer_pieces[peer], "only pieces the peer has"
            assert not self.picker.have[block.index], "never a piece we have"
            assert self.picker.priority[block.index] > 0, "never a skipped piece"
            assert block not in self.outstanding[peer], "never the same block twice to one peer"
            assert 0 < block.length <= BLOCK_SIZE
            assert block.begin + block.length <= piece_size(block.index)
            self.outstanding[peer].add(block)

    @precondition(lambda self: any(self.outstanding.values()))
    @rule(data=st.data())
    def a_block_arrives(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from([peer for peer in PEERS if self.outstanding[peer]]))
        block = data.draw(st.sampled_from(sorted(self.outstanding[peer], key=lambda b: (b.index, b.begin))))
        self.outstanding[peer].discard(block)
        complete, others = self.picker.block_received(block.index, block.begin, peer)
        for other in others:
            assert isinstance(other, str)
            assert block in self.outstanding[other], "cancel only whoever was asked"
            self.outstanding[other].discard(block)
        self.received.setdefault(block.index, set()).add(block.begin)
        blocks = -(-piece_size(block.index) // BLOCK_SIZE)
        if complete:
            assert len(self.received[block.index]) == blocks
            del self.received[block.index]
            self.picker.piece_verified(block.index)

    @precondition(lambda self: any(self.outstanding.values()))
    @rule(data=st.data())
    def a_request_is_refused(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from([peer for peer in PEERS if self.outstanding[peer]]))
        block = data.draw(st.sampled_from(sorted(self.outstanding[peer], key=lambda b: (b.index, b.begin))))
        self.outstanding[peer].discard(block)
        self.picker.request_dropped(block, peer)

    @rule(peer=st.sampled_from(PEERS))
    def a_peer_leaves(self, peer: str) -> None:
        for block in self.picker.requests_of(peer):
            self.picker.request_dropped(block, peer)
        assert self.picker.requests_of(peer) == []
        self.outstanding[peer].clear()
        for index in self.peer_pieces[peer]:
            self.picker.peer_lost(index)
        self.peer_pieces[peer] = set()

    @invariant()
    def availability_matches_the_peers(self) -> None:
        for index in range(NUM_PIECES):
            assert self.picker.availability[index] == sum(index in pieces for pieces in self.peer_pieces.values())

    @invariant()
    def the_picker_knows_exactly_the_outstanding_requests(self) -> None:
        for peer in PEERS:
            assert set(self.picker.requests_of(peer)) == self.outstanding[peer]

    @invariant()
    def skipped_pieces_are_never_needed_for_completion(self) -> None:
        wanted = [index for index in range(NUM_PIECES) if self.picker.priority[index] > 0]
        assert self.picker.is_complete == all(self.picker.have[index] for index in wanted)


PickerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)
test_picker_state_machine = PickerMachine.TestCase
