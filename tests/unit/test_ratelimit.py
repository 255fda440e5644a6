from __future__ import annotations

from bitswarm.ratelimit import RateLimiter


def test_a_burst_is_allowed_then_the_rate() -> None:
    limiter = RateLimiter(rate_per_s=2, burst=3)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a", 0.5)  # one token earned back
    assert not limiter.allow("a", 0.5)
    assert limiter.allow("b", 0.5)  # every address has its own bucket


def test_the_table_of_addresses_is_bounded() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, max_keys=100)
    for n in range(10_000):
        limiter.allow(n, 0.0)
    assert len(limiter._buckets) == 100
