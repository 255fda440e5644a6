"""Per-address request budgets: a token bucket per key in a table of bounded size.

Each key earns ``rate_per_s`` tokens a second up to ``burst``; a request spends one.
When the table is full the least recently seen key is forgotten, so a flood of source
addresses costs a fixed amount of memory (and at worst gives a forgotten address a fresh
bucket). Sans-IO: the caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def allow(self, key: Hashable, now: float) -> bool:
        """Spend one token of ``key``'s bucket; False when it has none left."""
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate_per_s)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
