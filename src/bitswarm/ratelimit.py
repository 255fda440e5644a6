"""Per-address request budgets: a token bucket per key in a table of bounded size.

Each key earns ``rate_per_s`` tokens a second up to ``burst``; a request spends one.
The table is two plain dictionaries, a recent and an older generation: a key seen again
while in the older one moves to the recent one, and when the recent one holds half of
``max_keys`` the older generation is forgotten and the recent one takes its place. So a
flood of source addresses costs a fixed amount of memory (and at worst gives a forgotten
address a fresh bucket), and a request costs a dictionary lookup and a store, with no
reordering per request (the ordered table this replaces moved its key on every request,
4% of a UDP announce). Sans-IO: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Hashable


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        # key -> (tokens, time of the last request)
        self._recent: dict[Hashable, tuple[float, float]] = {}
        self._older: dict[Hashable, tuple[float, float]] = {}
        self._generation_keys = max(1, max_keys // 2)

    def __len__(self) -> int:
        """Keys remembered (at most ``max_keys``)."""
        return len(self._recent) + len(self._older)

    def allow(self, key: Hashable, now: float) -> bool:
        """Spend one token of ``key``'s bucket; False when it has none left."""
        recent = self._recent
        bucket = recent.get(key)
        if bucket is None:
            bucket = self._older.pop(key, None)
            if len(recent) >= self._generation_keys:
                self._older = recent
                recent = self._recent = {}
        burst = self.burst
        if bucket is None:
            tokens = burst
        else:
            # A comparison rather than min(): no call per request.
            tokens = bucket[0] + (now - bucket[1]) * self.rate_per_s
            tokens = tokens if tokens < burst else burst
        if tokens >= 1.0:
            recent[key] = (tokens - 1.0, now)
            return True
        recent[key] = (tokens, now)
        return False
