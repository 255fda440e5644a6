"""A web seed's piece in the swarm: checked once by the caller, written whole, counted
only once its write is reported (``piece_checked``)."""

from __future__ import annotations

import random

from bitswarm.engine.picker import BLOCK_SIZE
from bitswarm.engine.swarm import DownloadFinished, PieceVerified, Swarm, WriteCheckedPiece
from bitswarm.wire.messages import Piece
from bitswarm.wire.peer import PeerProtocol

PIECE = 2 * BLOCK_SIZE


def swarm(num_pieces: int) -> Swarm:
    return Swarm(num_pieces=num_pieces, piece_size=lambda _index: PIECE, have=(), rng=random.Random(1), now=0.0)


def test_a_checked_web_seed_piece_is_written_whole_and_counted_only_when_written() -> None:
    s = swarm(2)
    seed = "web seed"
    s.picker.sequential = True
    assert s.picker.start_run_for_webseed(seed, 8) == [0, 1]
    data = bytes(range(256)) * (PIECE // 256)
    assert s.webseed_piece(seed, 0, data, 1.0) == [WriteCheckedPiece(0, data)]  # no CheckPiece: hashed once
    assert not s.picker.have[0]  # not counted before it is on disk
    assert PieceVerified(0) in s.piece_checked(0, True, [], 2.0)
    assert s.picker.have[0]
    assert s.webseed_piece(seed, 0, data, 3.0) == []  # had already: nothing written again
    assert s.webseed_piece(seed, 1, data, 3.0) == [WriteCheckedPiece(1, data)]
    actions = s.piece_checked(1, True, [], 4.0)
    assert PieceVerified(1) in actions
    assert DownloadFinished() in actions
    assert s.downloaded == 2 * PIECE


def test_a_web_seed_piece_of_the_wrong_size_is_not_taken() -> None:
    s = swarm(1)
    seed = "web seed"
    assert s.picker.start_run_for_webseed(seed, 1) == [0]
    assert s.webseed_piece(seed, 0, bytes(PIECE - 1), 1.0) == []
    assert s.picker.is_block_missing(0, 0)


def test_a_second_copy_of_a_block_is_not_written() -> None:
    # Endgame asks two sources for a block; the copy that comes second must not be written,
    # whether the piece is still open or already checked.
    s = swarm(1)
    core = PeerProtocol(
        info_hash=bytes(20), peer_id=b"-XX0000-000000000000", num_pieces=1, piece_size=lambda _index: PIECE,
        have_piece=s.has_piece, now=0.0,
    )  # fmt: skip
    s.add_peer("peer", core, 0.0)
    seed = "web seed"
    assert s.picker.start_run_for_webseed(seed, 1) == [0]
    first = bytes(PIECE)
    assert s.webseed_piece(seed, 0, first, 1.0) == [WriteCheckedPiece(0, first)]
    late = Piece(0, 0, b"\xff" * BLOCK_SIZE)
    assert s.handle("peer", [late], 1.5) == []
    s.piece_checked(0, True, [], 2.0)
    assert s.has_piece(0)
    assert s.handle("peer", [late], 2.5) == []


def test_a_web_seed_run_goes_on_where_its_last_run_ended() -> None:
    s = swarm(64)
    seed = "web seed"
    first = s.picker.start_run_for_webseed(seed, 8)
    assert first == list(range(first[0], min(64, first[0] + 8)))  # consecutive from where it was picked
    after = first[-1] + 1
    if after < 64:
        assert s.picker.start_run_for_webseed(seed, 8, after) == list(range(after, min(64, after + 8)))


def test_a_web_seed_run_goes_elsewhere_when_the_piece_after_its_last_is_taken_or_held() -> None:
    s = swarm(16)
    one, other = "web seed 1", "web seed 2"
    taken = s.picker.start_run_for_webseed(one, 4, 4)
    assert taken == [4, 5, 6, 7]
    again = s.picker.start_run_for_webseed(other, 4, 4)  # piece 4 is the other seed's
    assert again
    assert not set(again) & set(taken)
    s.picker.piece_verified(12)
    run = s.picker.start_run_for_webseed(other, 4, 12)  # piece 12 is here already
    assert run
    assert 12 not in run
    assert not set(run) & (set(taken) | set(again))


def test_a_piece_with_a_deadline_comes_before_the_piece_after_the_last_run() -> None:
    s = swarm(16)
    seed = "web seed"
    s.set_deadlines("player", {10: 1.0}, 0.0)
    assert s.picker.start_run_for_webseed(seed, 1, 3) == [10]  # a reader waits for 10
