"""One reader's window (``ReadAhead``): head and tail first, then the pieces under and
ahead of the play head, due when a player reading at the measured rate reaches them."""

from __future__ import annotations

import pytest

from bitswarm.engine.readahead import (
    ASSUMED_READ_RATE,
    MAX_READAHEAD_BYTES,
    MEDIA_READAHEAD_S,
    MIN_READAHEAD_BYTES,
    READAHEAD_S,
    TAIL_DUE_S,
    ReadAhead,
)

MIB = 1 << 20
PIECE = MIB  # one piece a mebibyte: window sizes read as piece counts


def window(reader: ReadAhead, now: float) -> list[int]:
    """The pieces of the window (pins aside), in order."""
    return sorted(index for index in reader.deadlines(now) if index not in reader.pinned)


def read_steadily(reader: ReadAhead, bytes_per_s: int, seconds: int) -> float:
    """The player reads ``bytes_per_s`` once a second for ``seconds`` seconds; returns the time after."""
    for second in range(1, seconds + 1):
        reader.consumed(bytes_per_s, float(second))
    return float(seconds)


# -- head and tail ----------------------------------------------------------------------------


def test_opening_pins_the_first_and_last_piece_the_head_due_now_and_the_tail_just_after() -> None:
    reader = ReadAhead(0, 100 * PIECE, PIECE, now=10.0)
    assert reader.pinned == {0: 10.0, 99: 10.0 + TAIL_DUE_S}
    due = reader.deadlines(10.0)
    assert due[0] == 10.0
    assert due[99] == 10.0 + TAIL_DUE_S


def test_a_large_file_pins_one_percent_at_each_end() -> None:
    reader = ReadAhead(0, 1000 * PIECE, PIECE, now=0.0)
    assert sorted(reader.pinned) == [*range(10), *range(990, 1000)]
    assert {reader.pinned[index] for index in range(10)} == {0.0}
    assert {reader.pinned[index] for index in range(990, 1000)} == {TAIL_DUE_S}


def test_a_file_smaller_than_a_hundred_bytes_still_pins_its_piece_due_at_once() -> None:
    reader = ReadAhead(3 * PIECE + 7, 50, PIECE, now=4.0)
    assert reader.pinned == {3: 4.0}  # head and tail are one piece: the earlier time wins


def test_a_file_that_starts_mid_piece_pins_the_pieces_holding_its_ends() -> None:
    start = 5 * PIECE + PIECE // 2
    reader = ReadAhead(start, 300 * PIECE, PIECE, now=0.0)  # 1% is three pieces' worth
    assert sorted(reader.pinned) == [5, 6, 7, 8, 302, 303, 304, 305]
    assert reader.piece_at(0) == 5
    assert reader.piece_at(300 * PIECE - 1) == 305


def test_without_head_and_tail_nothing_is_pinned() -> None:
    reader = ReadAhead(0, 100 * PIECE, PIECE, now=0.0, head_and_tail=False)
    assert reader.pinned == {}
    assert min(reader.deadlines(0.0)) == 0


def test_an_empty_file_needs_nothing() -> None:
    reader = ReadAhead(7 * PIECE, 0, PIECE, now=0.0)
    assert reader.pinned == {}
    assert reader.deadlines(0.0) == {}


def test_a_piece_that_arrived_is_unpinned_and_leaves_the_deadlines_when_outside_the_window() -> None:
    reader = ReadAhead(0, 100 * PIECE, PIECE, now=0.0)
    reader.piece_arrived(99)
    reader.piece_arrived(42)  # never pinned: nothing happens
    assert reader.pinned == {0: 0.0}
    assert 99 not in reader.deadlines(1.0)
    reader.piece_arrived(0)
    assert reader.pinned == {}
    assert 0 in reader.deadlines(1.0)  # still under the play head: the window has it


def test_pins_stay_across_a_seek_until_their_pieces_arrive_and_come_before_the_window() -> None:
    reader = ReadAhead(0, 200 * PIECE, PIECE, now=0.0)
    reader.seek(100 * PIECE)
    due = reader.deadlines(30.0)
    assert due[0] == 0.0  # due since the open: more urgent than anything in the window
    assert due[199] == TAIL_DUE_S
    assert due[100] == 30.0
    assert max(due[0], due[199]) < min(due[index] for index in window(reader, 30.0))


# -- the window's size -------------------------------------------------------------------------


def test_before_any_read_the_window_is_twenty_seconds_at_the_assumed_rate() -> None:
    reader = ReadAhead(0, 200 * PIECE, PIECE, now=0.0, head_and_tail=False)
    assert ASSUMED_READ_RATE * READAHEAD_S == 10 * MIB  # (the numbers below depend on it)
    assert window(reader, 0.0) == list(range(10))
    assert 10 * MIB >= MIN_READAHEAD_BYTES


def test_the_window_grows_with_the_measured_read_rate() -> None:
    reader = ReadAhead(0, 200 * PIECE, PIECE, now=0.0, head_and_tail=False)
    now = read_steadily(reader, 2 * MIB, seconds=5)
    assert reader.rate(now) == 2 * MIB
    assert reader.position == 10 * MIB
    assert window(reader, now) == list(range(10, 50))  # 20 s at 2 MiB/s


def test_the_window_is_capped_for_a_very_fast_reader() -> None:
    reader = ReadAhead(0, 400 * PIECE, PIECE, now=0.0, head_and_tail=False)
    now = read_steadily(reader, 20 * MIB, seconds=5)
    assert window(reader, now) == list(range(100, 100 + MAX_READAHEAD_BYTES // PIECE))


def test_a_slow_or_paused_reader_keeps_the_assumed_rate_as_a_floor() -> None:
    reader = ReadAhead(0, 200 * PIECE, PIECE, now=0.0, head_and_tail=False)
    now = read_steadily(reader, 64 * 1024, seconds=5)
    assert reader.rate(now) == ASSUMED_READ_RATE
    assert reader.position == 5 * 64 * 1024
    assert window(reader, now) == list(range(11))  # 10 MiB from mid piece 0 to mid piece 10
    assert reader.rate(60.0) == ASSUMED_READ_RATE  # paused for a minute


def test_the_window_ends_at_the_end_of_the_file() -> None:
    reader = ReadAhead(0, 100 * PIECE, PIECE, now=0.0, head_and_tail=False)
    reader.seek(95 * PIECE)
    assert window(reader, 0.0) == [95, 96, 97, 98, 99]


def test_the_window_ends_with_the_files_last_piece_when_it_shares_it_with_the_next_file() -> None:
    reader = ReadAhead(PIECE // 2, 3 * PIECE, PIECE, now=0.0, head_and_tail=False)
    assert window(reader, 0.0) == [0, 1, 2, 3]  # half of 0, 1 and 2 whole, half of 3


# -- deadlines ----------------------------------------------------------------------------------


def test_deadlines_grow_with_the_distance_from_the_play_head() -> None:
    reader = ReadAhead(0, 200 * PIECE, PIECE, now=0.0, head_and_tail=False)
    reader.seek(PIECE // 2)  # halfway through piece 0
    due = reader.deadlines(100.0)
    assert sorted(due) == list(range(11))
    # Under the play head: due now. The next piece starts half a MiB on: a second at 512 KiB/s.
    assert due[0] == 100.0
    assert due[1] == 101.0
    assert due[2] == 103.0
    assert due[10] == 119.0
    assert [due[index] for index in sorted(due)] == sorted(due.values())
    assert len(set(due.values())) == len(due)


def test_deadlines_follow_the_measured_rate() -> None:
    reader = ReadAhead(0, 200 * PIECE, PIECE, now=0.0, head_and_tail=False)
    now = read_steadily(reader, 2 * MIB, seconds=5)  # play head at piece 10, rate 2 MiB/s
    due = reader.deadlines(now)
    assert due[10] == now
    assert due[11] == now + 0.5
    assert due[20] == now + 5.0


def test_a_file_that_starts_mid_piece_counts_distances_from_its_own_start() -> None:
    reader = ReadAhead(5 * PIECE + PIECE // 2, 100 * PIECE, PIECE, now=0.0, head_and_tail=False)
    due = reader.deadlines(0.0)
    assert min(due) == 5
    assert due[5] == 0.0
    assert due[6] == 1.0  # half a MiB of the file before it, at 512 KiB/s


# -- seeking and reading ----------------------------------------------------------------------


def test_a_seek_moves_the_window_and_drops_the_pieces_behind() -> None:
    reader = ReadAhead(0, 200 * PIECE, PIECE, now=0.0, head_and_tail=False)
    assert window(reader, 0.0) == list(range(10))
    reader.seek(50 * PIECE + 123)
    assert reader.position == 50 * PIECE + 123
    assert window(reader, 0.0) == list(range(50, 61))
    reader.seek(20 * PIECE)  # back: what was ahead is no longer needed
    assert window(reader, 0.0) == list(range(20, 30))


def test_a_seek_outside_the_file_is_clamped() -> None:
    reader = ReadAhead(0, 100 * PIECE, PIECE, now=0.0, head_and_tail=False)
    reader.seek(-5)
    assert reader.position == 0
    reader.seek(100 * PIECE + 5)
    assert reader.position == 100 * PIECE
    assert reader.deadlines(0.0) == {}  # at the end: nothing more to read


def test_reading_advances_the_play_head_and_the_window_with_it() -> None:
    reader = ReadAhead(0, 200 * PIECE, PIECE, now=0.0, head_and_tail=False)
    reader.consumed(3 * PIECE, 1.0)  # 3 MiB in the first second: a 60 MiB window
    assert reader.position == 3 * PIECE
    assert window(reader, 1.0) == list(range(3, 63))
    reader.consumed(1, 1.5)
    assert reader.position == 3 * PIECE + 1
    assert window(reader, 1.5)[0] == 3  # still within piece 3


def test_reading_stops_at_the_end_of_the_file() -> None:
    reader = ReadAhead(0, 2 * PIECE, PIECE, now=0.0, head_and_tail=False)
    reader.consumed(5 * PIECE, 1.0)
    assert reader.position == 2 * PIECE


@pytest.mark.parametrize(("start", "length", "piece_length"), [(-1, 10, PIECE), (0, -1, PIECE), (0, 10, 0)])
def test_a_window_needs_a_start_a_length_and_a_piece_length(start: int, length: int, piece_length: int) -> None:
    with pytest.raises(ValueError, match="a file needs"):
        ReadAhead(start, length, piece_length, now=0.0)


def test_a_modelled_player_reads_media_readahead_seconds_ahead_of_where_it_plays() -> None:
    # 4 MiB a second of media: the window is MEDIA_READAHEAD_S of it from the player (at 0,
    # nothing shown yet), not READAHEAD_S of the measured read rate.
    reader = ReadAhead(0, 200 * MIB, PIECE, 0.0, head_and_tail=False)
    reader.set_media_rate(4 * MIB, 0.0)
    assert MEDIA_READAHEAD_S < READAHEAD_S
    assert window(reader, 0.0) == list(range(int(4 * MEDIA_READAHEAD_S)))
    assert reader.deadlines(0.0)[3] == pytest.approx(0.75)
