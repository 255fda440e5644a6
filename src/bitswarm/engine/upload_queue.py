"""The order in which we serve the blocks peers asked us for: one requester's piece at a time.

Peers keep several requests queued with us and refill them block by block, so in arrival
order the blocks of every (peer, piece) pair interleave, and an upload shared by eight
peers finishes each piece only after eight pieces' worth of time. A peer can pass a piece
on only once it has all of it and checked it, so that latency is paid again at every hop
of a piece's way through the swarm. Serving the oldest (peer, piece) pair's blocks first
gets each piece to its requester as fast as our upload allows, at the same total rate,
and no pair waits behind more than the pairs that were asked for before it.

A ``rank`` (``Swarm.upload_rank``) puts some pairs first: in a swarm of video viewers, the
pieces a viewer's player needs soonest (tests/sim/test_viewer_swarm_sim.py), as the viewer
says in its ``bs_due`` hints (``DueTimes``) or as guessed from where its download stands.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Peer = TypeVar("Peer", bound=Hashable)
Request = TypeVar("Request")


# Hints remembered per peer: a viewer's read-ahead is a few hundred pieces at most.
MAX_DUE_TIMES = 1024


class DueTimes:
    """Pieces and the times they are due (on our clock), the oldest entry forgotten first
    beyond ``limit``: what a peer told us in its ``bs_due`` hints, or what we told it."""

    __slots__ = ("_due", "limit")

    def __init__(self, limit: int = MAX_DUE_TIMES) -> None:
        self._due: dict[int, float] = {}
        self.limit = limit

    def __len__(self) -> int:
        return len(self._due)

    def get(self, index: int) -> float | None:
        return self._due.get(index)

    def set(self, index: int, due: float) -> None:
        due_times = self._due
        due_times.pop(index, None)  # the newest entry goes last, to be forgotten last
        due_times[index] = due
        while len(due_times) > self.limit:
            del due_times[next(iter(due_times))]


class UploadQueue(Generic[Peer, Request]):
    def __init__(self) -> None:
        self._groups: OrderedDict[tuple[Peer, int], deque[Request]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, peer: Peer, index: int, request: Request) -> None:
        group = self._groups.get((peer, index))
        if group is None:
            group = self._groups[(peer, index)] = deque()
        group.append(request)
        self._count += 1

    def pop_batch(self, limit: int, rank: Callable[[Peer, int], int] | None = None) -> list[tuple[Peer, Request]]:
        """Up to ``limit`` requests, the oldest pair's first; with ``rank`` (of a peer and
        a piece index), the oldest of the pairs ranked lowest (each pair ranked once per call)."""
        batch: list[tuple[Peer, Request]] = []
        groups = self._groups
        ranks: dict[tuple[Peer, int], int] = {}
        while groups and len(batch) < limit:
            key = next(iter(groups))
            if rank is not None:
                best = None
                for candidate in groups:
                    value = ranks.get(candidate)
                    if value is None:
                        value = ranks[candidate] = rank(*candidate)
                    if best is None or value < best:
                        best, key = value, candidate
            peer = key[0]
            group = groups[key]
            while group and len(batch) < limit:
                batch.append((peer, group.popleft()))
            if not group:
                del groups[key]
        self._count -= len(batch)
        return batch

    def clear(self) -> None:
        self._groups.clear()
        self._count = 0
