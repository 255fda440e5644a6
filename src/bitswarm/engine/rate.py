"""Transfer rates over a sliding window, and the token bucket that caps them. Sans-IO."""

from __future__ import annotations

# Long enough to smooth TCP bursts, short enough that tit-for-tat follows real changes.
RATE_WINDOW_S = 5.0


class RateMeter:
    """Bytes per second over the last ``window_s`` seconds, in one-second slots."""

    __slots__ = ("_slots", "_start", "total", "window_s")

    def __init__(self, now: float, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self.total = 0
        self._start = now
        self._slots: dict[int, int] = {}

    def add(self, amount: int, now: float) -> None:
        self.total += amount
        second = int(now)
        self._slots[second] = self._slots.get(second, 0) + amount
        if len(self._slots) > self.window_s + 2:
            oldest = second - int(self.window_s) - 1
            for key in [key for key in self._slots if key < oldest]:
                del self._slots[key]

    def rate(self, now: float) -> float:
        span = min(self.window_s, max(now - self._start, 1.0))
        since = now - span
        return sum(amount for second, amount in self._slots.items() if second + 1 > since) / span


class TokenBucket:
    """Allows ``rate`` bytes per second with bursts of ``burst`` bytes; 0 means unlimited."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, now: float, *, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 4, 16 * 1024)
        self._tokens = self.burst
        self._last = now

    def set_rate(self, rate: float) -> None:
        """Change the limit in place (0: unlimited); the burst follows as in ``__init__``."""
        self.rate = rate
        self.burst = max(rate / 4, 16 * 1024)
        self._tokens = min(self._tokens, self.burst)

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def wait_s(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` bytes may go without debt (no tokens taken)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        return max(0.0, (min(amount, self.burst) - self._tokens) / self.rate)

    def delay_for(self, amount: int, now: float) -> float:
        """Seconds to wait before ``amount`` bytes may go; takes the tokens (possibly into debt)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
