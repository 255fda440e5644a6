"""The in-memory tracker store: every swarm in dictionaries, answered without waiting.

A swarm keeps seeders and leechers in two dictionaries from compact address to the time
of the last announce, so counts are their sizes and a re-announce replaces its entry.
That time is kept in whole seconds, rounded up, and every announce of the same second
shares one int object: a float per peer was 24 bytes, a sixth of a peer's memory.
Expiry walks a bounded slice of swarms per call, so no single call stalls the loop.

A swarm emptied by stops or expiry that counted completions stays, with no peers, so a
scrape still shows its completed count (as opentracker does), until it has been empty
and silent for the peer timeout; a swarm with nothing to remember goes at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

from bitswarm.tracker.swarm import AnnounceRequest, Event, SwarmCounts, SwarmView


class _Swarm:
    __slots__ = ("completed", "empty_since", "leechers", "seeders")

    def __init__(self) -> None:
        self.seeders: dict[bytes, int] = {}
        self.leechers: dict[bytes, int] = {}
        self.completed = 0
        # The second the swarm last became (or, by a stop, was again) empty; 0 while it has peers.
        self.empty_since = 0

    def counts(self) -> SwarmCounts:
        return SwarmCounts(len(self.seeders), len(self.leechers), self.completed)


class MemoryStore:
    """Swarm state of one process. Sans-IO: time and chance are arguments."""

    def __init__(self, *, peer_timeout_s: float, rng: random.Random) -> None:
        self.peer_timeout_s = peer_timeout_s
        self.rng = rng
        self._swarms: dict[bytes, _Swarm] = {}
        # The last announce's second, shared by every peer seen in it (see the docstring).
        self._stamp = 0
        self._expiry_cursor: list[bytes] = []
        # Private mode: the totals each peer last reported, and each user's sums of growth.
        self._reported: dict[tuple[bytes, bytes], tuple[int, int]] = {}
        self._users: dict[str, tuple[int, int]] = {}

    @property
    def swarm_count(self) -> int:
        return len(self._swarms)

    @property
    def peer_count(self) -> int:
        return sum(len(swarm.seeders) + len(swarm.leechers) for swarm in self._swarms.values())

    def announce_now(self, request: AnnounceRequest, now: float) -> SwarmView:
        swarm = self._swarms.get(request.info_hash)
        if swarm is None:
            if request.event is Event.STOPPED:
                return SwarmView(SwarmCounts(), [])
            swarm = self._swarms[request.info_hash] = _Swarm()
        address = request.address
        if request.passkey is not None:
            self._account(request)
        was_seed = swarm.seeders.pop(address, None) is not None
        swarm.leechers.pop(address, None)
        # Rounded up, so a peer is never dropped before it was silent for the full timeout.
        second = math.ceil(now)
        if second != self._stamp:
            self._stamp = second
        if request.event is Event.STOPPED:
            counts = swarm.counts()
            if not swarm.seeders and not swarm.leechers:
                if swarm.completed:
                    swarm.empty_since = self._stamp
                else:
                    del self._swarms[request.info_hash]
            return SwarmView(counts, [])
        swarm.empty_since = 0
        if request.is_seed:
            swarm.seeders[address] = self._stamp
            # A peer that says "completed" twice, or was already seeding, finished once.
            if request.event is Event.COMPLETED and not was_seed:
                swarm.completed += 1
        else:
            swarm.leechers[address] = self._stamp
        return SwarmView(swarm.counts(), self._pick_peers(swarm, request))

    def _account(self, request: AnnounceRequest) -> None:
        key = (request.info_hash, request.address)
        before_up, before_down = (0, 0) if request.event is Event.STARTED else self._reported.get(key, (0, 0))
        # Totals that went down mean the client restarted counting: all of it is new.
        grown_up = request.uploaded - before_up if request.uploaded >= before_up else request.uploaded
        grown_down = request.downloaded - before_down if request.downloaded >= before_down else request.downloaded
        assert request.passkey is not None  # only called for private announces
        up, down = self._users.get(request.passkey, (0, 0))
        self._users[request.passkey] = (up + grown_up, down + grown_down)
        if request.event is Event.STOPPED:
            self._reported.pop(key, None)
        else:
            self._reported[key] = (request.uploaded, request.downloaded)

    def user_totals_now(self) -> dict[str, tuple[int, int]]:
        """(uploaded, downloaded) bytes per passkey, summed over every announce."""
        return dict(self._users)

    def _pick_peers(self, swarm: _Swarm, request: AnnounceRequest) -> list[bytes]:
        wanted = request.numwant
        size = len(request.address)
        picked: list[bytes] = []
        # Seeders first for a leecher; a seeder only wants leechers.
        groups = (swarm.leechers,) if request.is_seed else (swarm.seeders, swarm.leechers)
        for group in groups:
            if wanted <= len(picked):
                break
            candidates = [address for address in group if len(address) == size and address != request.address]
            room = wanted - len(picked)
            picked += candidates if len(candidates) <= room else self.rng.sample(candidates, room)
        return picked

    def scrape_now(self, info_hashes: Iterable[bytes]) -> dict[bytes, SwarmCounts]:
        """Counts for each asked swarm; an unknown swarm counts zero."""
        result = {}
        for info_hash in info_hashes:
            swarm = self._swarms.get(info_hash)
            result[info_hash] = swarm.counts() if swarm is not None else SwarmCounts()
        return result

    def full_scrape_now(self) -> dict[bytes, SwarmCounts]:
        return {info_hash: swarm.counts() for info_hash, swarm in self._swarms.items()}

    def expire_now(self, now: float, *, max_swarms: int) -> int:
        """Drop peers silent for longer than the timeout in up to ``max_swarms`` swarms.

        Call it repeatedly: it resumes where it stopped and starts over after the last
        swarm. Returns the number of peers dropped.
        """
        if not self._expiry_cursor:
            self._expiry_cursor = list(self._swarms)
        batch = self._expiry_cursor[-max_swarms:]
        del self._expiry_cursor[-max_swarms:]
        deadline = now - self.peer_timeout_s
        dropped = 0
        for info_hash in batch:
            swarm = self._swarms.get(info_hash)
            if swarm is None:
                continue
            if swarm.empty_since:
                if swarm.empty_since < deadline:
                    del self._swarms[info_hash]
                continue
            for group in (swarm.seeders, swarm.leechers):
                stale = [address for address, seen in group.items() if seen < deadline]
                for address in stale:
                    del group[address]
                    self._reported.pop((info_hash, address), None)
                dropped += len(stale)
            if not swarm.seeders and not swarm.leechers:
                if swarm.completed:
                    swarm.empty_since = math.ceil(now)
                else:
                    del self._swarms[info_hash]
        return dropped

    # The asynchronous face shared with stores that wait on a server.

    async def announce(self, request: AnnounceRequest, now: float) -> SwarmView:
        return self.announce_now(request, now)

    async def scrape(self, info_hashes: Iterable[bytes]) -> dict[bytes, SwarmCounts]:
        return self.scrape_now(info_hashes)

    async def full_scrape(self) -> dict[bytes, SwarmCounts]:
        return self.full_scrape_now()

    async def expire(self, now: float, *, max_swarms: int) -> int:
        return self.expire_now(now, max_swarms=max_swarms)

    async def user_totals(self) -> dict[str, tuple[int, int]]:
        return self.user_totals_now()

    async def close(self) -> None:
        return None
