"""A video player's playhead, for bench/stream_bench.py: when playback starts, when it stalls.

The player model of the "swarm plays" scenario (issue 11). A player fetches ahead of its
playhead. It starts once ``startup_bytes`` past the playhead are here (or the rest of the
file), then consumes ``rate`` bytes per second. When the playhead reaches the end of the
bytes that are here, playback stalls; it resumes once ``rebuffer_bytes`` past the
playhead are here again (or the rest of the file). A stall is the time consumption was
blocked.

``update(now, available)`` reports that the first ``available`` bytes of the file are
here at time ``now``; between two updates the bytes known at the earlier one are all the
playhead may consume, so a stall is counted from the moment the playhead ran out of
bytes to the update that brought enough new ones. Sans-IO: times come in as arguments.
This module runs under both interpreters of the benchmark (the project's Python, and
Debian's /usr/bin/python3 for libtorrent), so it imports nothing outside the standard
library.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class PlayState(enum.Enum):
    BUFFERING = "buffering"  # before the first frame
    PLAYING = "playing"
    STALLED = "stalled"
    FINISHED = "finished"


@dataclass
class Playhead:
    """One player's consumption of one file of ``size`` bytes at ``rate`` bytes per second."""

    size: int
    rate: float
    startup_bytes: int
    rebuffer_bytes: int
    state: PlayState = PlayState.BUFFERING
    position: float = 0.0  # bytes consumed
    available: int = 0  # bytes from the start that are here, as last reported
    last_s: float | None = None
    started_s: float | None = None
    finished_s: float | None = None
    stalled_since_s: float | None = None
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (began, ended)

    def update(self, now: float, available: int) -> None:
        """The first ``available`` bytes are here at ``now`` (times never go back)."""
        if self.state is PlayState.PLAYING and self.last_s is not None:
            # Consume what was here since the last update, and no more.
            runs_out_s = self.last_s + (self.available - self.position) / self.rate
            if runs_out_s >= now:
                self.position += (now - self.last_s) * self.rate
            else:
                self.position = float(self.available)
                if self.available >= self.size:
                    self.state, self.finished_s = PlayState.FINISHED, runs_out_s
                else:
                    self.state, self.stalled_since_s = PlayState.STALLED, runs_out_s
        self.available = max(self.available, min(available, self.size))
        self.last_s = now
        if self.state is PlayState.BUFFERING:
            if self.buffered() >= min(self.startup_bytes, self.size):
                self.state, self.started_s = PlayState.PLAYING, now
        elif self.state is PlayState.STALLED and self.buffered() >= min(self.rebuffer_bytes, self.size - self.position):
            assert self.stalled_since_s is not None
            self.stalls.append((self.stalled_since_s, now))
            self.state, self.stalled_since_s = PlayState.PLAYING, None

    def buffered(self) -> float:
        """Bytes here past the playhead."""
        return self.available - self.position

    def position_at(self, now: float) -> float:
        """Where the playhead will be at ``now`` (no later than the next update's), from the bytes here."""
        if self.state is not PlayState.PLAYING or self.last_s is None:
            return self.position
        return min(float(self.available), self.position + max(0.0, now - self.last_s) * self.rate)

    def stalled_s(self, now: float) -> float:
        """Total stall time, counting a stall still going on at ``now``."""
        total = sum(end - begin for begin, end in self.stalls)
        if self.stalled_since_s is not None:
            total += max(0.0, now - self.stalled_since_s)
        return total

    def summary(self, now: float) -> dict[str, float | int | str | None]:
        """A JSON-ready record: start time, stalls, and how far the playhead got by ``now``."""
        ongoing = 1 if self.stalled_since_s is not None else 0
        return {
            "state": self.state.value,
            "started_s": self.started_s,
            "finished_s": self.finished_s,
            "stalls": len(self.stalls) + ongoing,
            "stalled_s": self.stalled_s(now),
            "position": self.position_at(now),
            "available": self.available,
        }
