"""One stream reader's window: which pieces it needs, and by when. Sans-IO.

A reader plays a file of the torrent from a play head (its position). The pieces under
the play head are due now; those after it are due when the player will reach them at the
rate it has been reading (measured over ``RATE_WINDOW_S``), up to ``READAHEAD_S`` of
playback ahead (at least ``MIN_READAHEAD_BYTES``, at most ``MAX_READAHEAD_BYTES``). When
a file is opened for playing, the pieces holding its first and last ``HEAD_TAIL_FRACTION``
(at least one piece each) come first too: an MP4 keeps its index (``moov``) at either end,
an AVI its index at the end, and a player reads both before the first frame. A seek moves
the window at once; what it no longer covers has no deadline any more.

A player reads ahead of what it shows: a browser or mpv keeps tens of seconds. When the
media's bitrate is known (``set_media_rate``: its container says how long it plays), the
player is modelled: it shows media at that rate from the first byte read, never past what
was read, and pieces are due when it will reach them, not when the reader will. Without
it, every viewer of a swarm whose client has read up to the newest pieces asks for them as
if its player were about to stall, all from the one peer that has them (a seed).

``deadlines(now)`` gives the set for ``Swarm.set_deadlines``; the layer above calls it
again when the play head enters another piece, after a seek, and now and then as time
passes.
"""

from __future__ import annotations

from bitswarm.engine.rate import RateMeter

# The window ahead of the play head, in seconds of playback at the measured read rate.
READAHEAD_S = 20.0
# ...and when the player is modelled (its media rate known). Shorter: in a swarm of viewers
# whose uploads are barely enough, every viewer asking 20 s ahead kept the uploads' queues
# full of pieces due in 15 s, ahead of the pieces due now of the others; with 8 s, the
# viewers of tests/sim/test_viewer_swarm_sim.py stalled 4 times instead of 8-9 (6 s: 6,
# 10 s: 3-5, 40 s: 14-18). Beyond the window, rarest first goes on fetching the file.
MEDIA_READAHEAD_S = 8.0
MIN_READAHEAD_BYTES = 2 << 20
MAX_READAHEAD_BYTES = 64 << 20
# Until a rate is measured (and as a floor: a paused player's rate is no guide), the
# reader is taken to read this fast (4 Mbit/s, a high-definition web video).
ASSUMED_READ_RATE = 512 * 1024
RATE_WINDOW_S = 5.0
HEAD_TAIL_FRACTION = 0.01
# The file's last pieces are due this soon after the open: right after its first ones.
TAIL_DUE_S = 0.5


class ReadAhead:
    """The window of a reader of ``length`` bytes at ``start`` in the torrent's piece stream."""

    def __init__(self, start: int, length: int, piece_length: int, now: float, *, head_and_tail: bool = True) -> None:
        if length < 0 or start < 0 or piece_length <= 0:
            raise ValueError("a file needs a start, a length and a piece length")
        self.start = start
        self.length = length
        self.piece_length = piece_length
        self.position = 0
        self.reading = RateMeter(now, RATE_WINDOW_S)
        self._pinned: dict[int, float] = {}  # the first and last pieces, until they are in
        self.media_rate: float | None = None  # bytes a second the player shows, when known
        self._player = 0  # the modelled player's position (media_rate known), as of _player_at
        self._player_at = now
        if head_and_tail and length:
            edge = max(1, int(length * HEAD_TAIL_FRACTION))
            for index in self._pieces(0, edge):
                self._pinned[index] = now
            for index in self._pieces(length - edge, length):
                self._pinned.setdefault(index, now + TAIL_DUE_S)

    def _pieces(self, first: int, end: int) -> range:
        """Pieces holding bytes ``first`` to ``end`` (exclusive) of the file."""
        if end <= first:
            return range(0)
        return range((self.start + first) // self.piece_length, (self.start + end - 1) // self.piece_length + 1)

    def piece_at(self, position: int) -> int:
        return (self.start + position) // self.piece_length

    def seek(self, position: int) -> None:
        position = max(0, min(position, self.length))
        if position != self.position:
            self._player = position  # a new play position: the player waits for it
        self.position = position

    def consumed(self, amount: int, now: float) -> None:
        """The reader got ``amount`` bytes from the play head on."""
        self._advance_player(now)
        self.position = min(self.length, self.position + amount)
        self.reading.add(amount, now)

    def set_media_rate(self, bytes_per_s: float, now: float) -> None:
        """The media plays at ``bytes_per_s`` (its length over its duration)."""
        if bytes_per_s > 0 and self.media_rate is None:
            self._player_at = now  # from here on it is modelled (earlier, it was the reader)
            self._player = self.position
            self.media_rate = bytes_per_s

    def player_position(self, now: float) -> int:
        """Where the player is taken to be: the reader's position unless modelled."""
        self._advance_player(now)
        return self._player if self.media_rate is not None else self.position

    def _advance_player(self, now: float) -> None:
        if self.media_rate is not None:
            shown = int(self.media_rate * max(0.0, now - self._player_at))
            self._player = min(self.position, self._player + shown)
        self._player_at = now

    @property
    def pinned(self) -> dict[int, float]:
        return self._pinned

    def piece_arrived(self, index: int) -> None:
        self._pinned.pop(index, None)

    def rate(self, now: float) -> float:
        return max(self.reading.rate(now), ASSUMED_READ_RATE)

    def deadlines(self, now: float) -> dict[int, float]:
        """Each piece of the window and the head and tail, with the time it is due."""
        rate = self.media_rate or self.rate(now)
        window_s = READAHEAD_S if self.media_rate is None else MEDIA_READAHEAD_S
        ahead = min(max(int(rate * window_s), MIN_READAHEAD_BYTES), MAX_READAHEAD_BYTES)
        player = self.player_position(now)
        due = dict(self._pinned)
        for index in self._pieces(self.position, min(self.length, player + ahead)):
            piece_start_in_file = index * self.piece_length - self.start
            at = now + max(0, piece_start_in_file - player) / rate
            due[index] = min(at, due.get(index, at))
        return due
