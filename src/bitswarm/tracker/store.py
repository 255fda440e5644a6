"""What the tracker server needs of a place to keep swarms.

``MemoryStore`` keeps them in the process; ``RedisStore`` in a Redis server several
tracker processes share. Both answer the same calls with the same results.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bitswarm.tracker.swarm import AnnounceRequest, SwarmCounts, SwarmView


class TrackerStore(Protocol):
    async def announce(self, request: AnnounceRequest, now: float) -> SwarmView: ...

    async def scrape(self, info_hashes: Iterable[bytes]) -> dict[bytes, SwarmCounts]: ...

    async def full_scrape(self) -> dict[bytes, SwarmCounts]: ...

    async def expire(self, now: float, *, max_swarms: int) -> int: ...

    async def user_totals(self) -> dict[str, tuple[int, int]]:
        """Private mode: (uploaded, downloaded) bytes per passkey, from the growth of what peers report."""
        ...

    async def close(self) -> None: ...
