"""The renewal schedule of a port mapping (RFC 6887 section 11.2.1), on a virtual clock."""

from __future__ import annotations

import itertools
import random

import pytest

from bitswarm.errors import UsageError
from bitswarm.portmap.lease import Lease, LeaseState


@pytest.mark.parametrize("seed", range(20))
def test_a_lease_is_renewed_between_a_half_and_five_eighths_of_its_lifetime(seed: int) -> None:
    lease = Lease(random.Random(seed))
    lease.granted(7200, now=1000.0)
    due = lease.next_deadline()
    assert due is not None
    assert 1000.0 + 3600 <= due <= 1000.0 + 4500
    assert not lease.tick(due - 0.001)
    assert lease.tick(due)
    lease.granted(7200, now=due)  # renewed: the next one is a lifetime further on
    assert lease.next_deadline() is not None
    assert lease.state is LeaseState.HELD


def test_a_failed_renewal_is_retried_until_the_lease_runs_out() -> None:
    lease = Lease(random.Random(1), min_retry_s=30.0)
    lease.granted(600, now=0.0)
    now = lease.next_deadline()
    tries = []
    while now is not None:
        assert lease.tick(now)
        tries.append(now)
        lease.failed(now)
        now = lease.next_deadline()
    # Half of what is left each time, never sooner than 30 s, never at or past expiry.
    assert all(later - earlier >= 30.0 for earlier, later in itertools.pairwise(tries))
    assert all(at < 600.0 for at in tries)
    assert lease.state is LeaseState.EXPIRED
    assert not lease.tick(1e9)


def test_a_lease_expires_when_its_time_is_up_even_without_a_failure() -> None:
    lease = Lease(random.Random(2))
    lease.granted(100, now=0.0)
    assert not lease.tick(100.0)
    assert lease.state is LeaseState.EXPIRED
    assert lease.next_deadline() is None


def test_a_permanent_mapping_has_nothing_due() -> None:
    lease = Lease(random.Random(3))
    lease.granted(0, now=5.0)
    assert lease.next_deadline() is None
    assert not lease.tick(1e12)
    lease.failed(10.0)
    assert lease.state is LeaseState.HELD


def test_misuse_is_a_usage_error() -> None:
    lease = Lease(random.Random(4))
    with pytest.raises(UsageError):
        lease.failed(0.0)
    with pytest.raises(UsageError):
        lease.granted(-1, now=0.0)
