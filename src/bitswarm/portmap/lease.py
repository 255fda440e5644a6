"""When to renew a port mapping the router granted for a limited time: a sans-IO schedule.

A mapping granted at ``now`` for ``lifetime_s`` seconds is renewed at a random point
between 1/2 and 5/8 of its lifetime (RFC 6887 section 11.2.1; RFC 6886 section 3.3 asks
for half: the window starts there, and the randomness keeps many hosts behind one router
from renewing in step). A renewal that fails is retried after half of the time left, but
never sooner than ``min_retry_s``; once the lifetime has run out the lease is expired and
the caller maps afresh. A lifetime of 0 means a permanent mapping (UPnP IGD's lease 0):
nothing is due until it is removed.

Time comes in as ``now`` (seconds on any monotonic clock) and chance as ``rng``, so a test
replays a schedule exactly.
"""

from __future__ import annotations

import random
from enum import Enum

from bitswarm.errors import UsageError

# RFC 6887 section 11.2.1: renew between these shares of the lifetime.
RENEW_SHARE_MIN = 0.5
RENEW_SHARE_MAX = 0.625
# After a failed renewal, at most this often (RFC 6887 section 8.1.1 starts retries at 3 s
# and backs off; a lease of minutes does not need more than one try every half minute).
MIN_RETRY_S = 30.0


class LeaseState(Enum):
    NONE = "none"  # nothing granted yet
    HELD = "held"  # granted, renewal not yet due (or permanent)
    RETRYING = "retrying"  # a renewal failed, another is scheduled before expiry
    EXPIRED = "expired"  # the lifetime ran out without a renewal


class Lease:
    """The renewal schedule of one mapping (one protocol, one port)."""

    def __init__(self, rng: random.Random, *, min_retry_s: float = MIN_RETRY_S) -> None:
        self.rng = rng
        self.min_retry_s = min_retry_s
        self.state = LeaseState.NONE
        self.expires_at: float | None = None
        self._due_at: float | None = None

    def granted(self, lifetime_s: float, now: float) -> None:
        """The router granted (or renewed) the mapping for ``lifetime_s`` (0: permanent)."""
        if lifetime_s < 0:
            raise UsageError(f"lease: lifetime {lifetime_s} s is negative")
        self.state = LeaseState.HELD
        if lifetime_s == 0:
            self.expires_at = self._due_at = None
            return
        self.expires_at = now + lifetime_s
        self._due_at = now + lifetime_s * self.rng.uniform(RENEW_SHARE_MIN, RENEW_SHARE_MAX)

    def failed(self, now: float) -> None:
        """A renewal got no grant: retry later, or expire if the lifetime ran out first."""
        if self.state not in (LeaseState.HELD, LeaseState.RETRYING):
            raise UsageError(f"lease: a renewal failed while {self.state.value}")
        if self.expires_at is None:  # permanent: nothing to renew, nothing expires
            return
        retry_at = now + max(self.min_retry_s, (self.expires_at - now) / 2)
        if retry_at >= self.expires_at:
            self.state = LeaseState.EXPIRED
            self._due_at = None
        else:
            self.state = LeaseState.RETRYING
            self._due_at = retry_at

    def tick(self, now: float) -> bool:
        """Is a renewal due at ``now``? Also marks the lease expired once its time is up."""
        if self.expires_at is not None and now >= self.expires_at and self.state is not LeaseState.NONE:
            self.state = LeaseState.EXPIRED
            self._due_at = None
            return False
        return self._due_at is not None and now >= self._due_at

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to say (a renewal or expiry), or None."""
        if self.state in (LeaseState.NONE, LeaseState.EXPIRED):
            return None
        return self._due_at
