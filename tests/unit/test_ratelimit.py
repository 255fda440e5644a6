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
    assert len(limiter) <= 100
    # The latest keys are remembered: their buckets stay spent.
    assert not limiter.allow(9_999, 0.0)
    assert not limiter.allow(9_990, 0.0)


def test_a_key_in_steady_use_survives_a_flood_of_new_keys() -> None:
    limiter = RateLimiter(rate_per_s=0.001, burst=1, max_keys=100)
    assert limiter.allow("steady", 0.0)
    for n in range(1_000):
        limiter.allow(n, 0.0)
        if n % 20 == 0:
            assert not limiter.allow("steady", 0.0)  # remembered, so still out of tokens
