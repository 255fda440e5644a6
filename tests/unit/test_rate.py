"""The engine's rate meter and token bucket, on a virtual clock."""

from __future__ import annotations

import pytest

from bitswarm.engine.rate import RateMeter, TokenBucket

BLOCK = 16 * 1024


@pytest.mark.parametrize("rate", [50_000.0, 2 * 1024 * 1024.0, 40 * 1024 * 1024.0])
def test_a_sender_obeying_the_bucket_stays_within_rate_times_time_plus_burst(rate: float) -> None:
    bucket = TokenBucket(rate, now=0.0)
    now, sent = 0.0, 0
    while now < 30.0:
        # The I/O layer sends, then waits the delay the bucket asked for before the next block.
        now += bucket.delay_for(BLOCK, now)
        sent += BLOCK
        assert sent <= rate * now + bucket.burst + BLOCK
    assert sent >= rate * now  # and it does not hold the sender back below the rate


def test_an_idle_bucket_saves_no_more_than_its_burst() -> None:
    bucket = TokenBucket(100_000.0, now=0.0)
    assert bucket.delay_for(BLOCK, 0.0) == 0.0
    # An hour idle buys one burst, not an hour's worth of bytes.
    free = 0
    while bucket.delay_for(BLOCK, 3600.0) == 0.0:
        free += BLOCK
        assert free <= bucket.burst + BLOCK
    assert free >= bucket.burst - BLOCK


def test_zero_means_unlimited() -> None:
    bucket = TokenBucket(0.0, now=0.0)
    assert all(bucket.delay_for(1 << 30, 0.0) == 0.0 for _ in range(100))


def test_the_meter_reports_the_rate_over_its_window() -> None:
    meter = RateMeter(now=0.0, window_s=5.0)
    for tenth in range(100):  # 10 s at 100 kB/s, in 10 kB pieces
        meter.add(10_000, tenth / 10)
    assert meter.total == 1_000_000
    assert meter.rate(10.0) == pytest.approx(100_000, rel=0.05)
    assert meter.rate(30.0) == 0.0  # long silent: nothing in the window
