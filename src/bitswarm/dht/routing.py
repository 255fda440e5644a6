"""The DHT routing table: k-buckets over the 160-bit ID space (BEP 5), one per address
family (BEP 32).

The table starts as one bucket covering the whole space. A full bucket that covers our
own ID is split in two; any other full bucket keeps its nodes and remembers the newcomer
in a small replacement cache. Only nodes that have answered one of our queries enter
the table or its caches: a node that merely sent us a query may be anyone, so the node
core pings it first (``would_accept`` says whether that is worth a datagram).

A node is *good* when it answered within ``GOOD_FOR_S`` (or answered once and has queried
us since then), *bad* after ``MAX_FAILURES`` queries in a row went unanswered, and
*questionable* otherwise (BEP 5 "Routing Table"). A bad node gives its place to the
freshest replacement; when a newcomer meets a full bucket of questionable nodes, the
table names the stalest one so that the core pings it.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field

from bitswarm.dht.krpc import Address, NodeInfo
from bitswarm.dht.node_id import distance

K = 8
ID_BITS = 160
# BEP 5: a node is good for 15 minutes after its last answer.
GOOD_FOR_S = 15 * 60.0
# Unanswered queries in a row before a node counts as bad.
MAX_FAILURES = 2
MAX_REPLACEMENTS = 8


class NodeState(enum.Enum):
    GOOD = "good"
    QUESTIONABLE = "questionable"
    BAD = "bad"


@dataclass(slots=True)
class RoutingEntry:
    node_id: bytes
    address: Address
    last_response: float
    last_query: float | None = None
    failures: int = 0

    def state(self, now: float) -> NodeState:
        if self.failures >= MAX_FAILURES:
            return NodeState.BAD
        if now - self.last_response < GOOD_FOR_S:
            return NodeState.GOOD
        if self.last_query is not None and now - self.last_query < GOOD_FOR_S:
            return NodeState.GOOD
        return NodeState.QUESTIONABLE

    @property
    def info(self) -> NodeInfo:
        return NodeInfo(self.node_id, self.address)


@dataclass(slots=True)
class Bucket:
    low: int  # the IDs this bucket covers: low <= id < high
    high: int
    last_changed: float
    nodes: dict[bytes, RoutingEntry] = field(default_factory=dict)
    # Newest last; each answered us, so any of them may take a bad node's place.
    replacements: dict[bytes, RoutingEntry] = field(default_factory=dict)

    def covers(self, value: int) -> bool:
        return self.low <= value < self.high


class RoutingTable:
    """k-buckets for one address family, split along our own ID."""

    def __init__(self, own_id: bytes, *, k: int = K, max_replacements: int = MAX_REPLACEMENTS, now: float = 0.0):
        self.own_id = own_id
        self.k = k
        self.max_replacements = max_replacements
        self._own = int.from_bytes(own_id, "big")
        self.buckets: list[Bucket] = [Bucket(0, 1 << ID_BITS, now)]
        self._lows = [0]

    def __len__(self) -> int:
        return sum(len(bucket.nodes) for bucket in self.buckets)

    def _bucket_for(self, node_id: bytes) -> Bucket:
        value = int.from_bytes(node_id, "big")
        return self.buckets[bisect.bisect_right(self._lows, value) - 1]

    def get(self, node_id: bytes) -> RoutingEntry | None:
        return self._bucket_for(node_id).nodes.get(node_id)

    def nodes(self) -> list[NodeInfo]:
        return [entry.info for bucket in self.buckets for entry in bucket.nodes.values()]

    def _splittable(self, bucket: Bucket) -> bool:
        return bucket.covers(self._own) and bucket.high - bucket.low > 1

    def _split(self, bucket: Bucket) -> None:
        index = self.buckets.index(bucket)
        middle = (bucket.low + bucket.high) // 2
        lower = Bucket(bucket.low, middle, bucket.last_changed)
        upper = Bucket(middle, bucket.high, bucket.last_changed)
        for source, target in ((bucket.nodes, "nodes"), (bucket.replacements, "replacements")):
            for node_id, entry in source.items():
                half = lower if int.from_bytes(node_id, "big") < middle else upper
                getattr(half, target)[node_id] = entry
        self.buckets[index : index + 1] = [lower, upper]
        self._lows[index : index + 1] = [lower.low, upper.low]

    def would_accept(self, node_id: bytes, now: float) -> bool:
        """True when an answer from ``node_id`` would put it in the table (not only a cache)."""
        if node_id == self.own_id:
            return False
        bucket = self._bucket_for(node_id)
        if node_id in bucket.nodes or len(bucket.nodes) < self.k or self._splittable(bucket):
            return True
        return any(entry.state(now) is NodeState.BAD for entry in bucket.nodes.values())

    def heard_from(self, node: NodeInfo, now: float) -> NodeInfo | None:
        """Record that ``node`` answered one of our queries.

        Returns a questionable node of the full bucket that the caller should ping (the
        newcomer waits in the replacement cache), or None.
        """
        if node.node_id == self.own_id:
            return None
        bucket = self._bucket_for(node.node_id)
        known = bucket.nodes.get(node.node_id)
        if known is not None:
            # An ID that moves to another address is more likely a spoof than a move.
            if known.address == node.address:
                known.last_response = now
                known.failures = 0
                bucket.last_changed = now
            return None
        while len(bucket.nodes) >= self.k and self._splittable(bucket):
            self._split(bucket)
            bucket = self._bucket_for(node.node_id)
        entry = RoutingEntry(node.node_id, node.address, now)
        if len(bucket.nodes) < self.k:
            bucket.nodes[node.node_id] = entry
            bucket.replacements.pop(node.node_id, None)
            bucket.last_changed = now
            return None
        for old in list(bucket.nodes.values()):
            if old.state(now) is NodeState.BAD:
                del bucket.nodes[old.node_id]
                bucket.nodes[node.node_id] = entry
                bucket.last_changed = now
                return None
        bucket.replacements.pop(node.node_id, None)
        bucket.replacements[node.node_id] = entry
        while len(bucket.replacements) > self.max_replacements:
            del bucket.replacements[next(iter(bucket.replacements))]
        questionable = [old for old in bucket.nodes.values() if old.state(now) is NodeState.QUESTIONABLE]
        if questionable:
            return min(questionable, key=lambda old: old.last_response).info
        return None

    def queried_by(self, node_id: bytes, address: Address, now: float) -> None:
        """Record a query from a node already in the table (it keeps it good, BEP 5)."""
        entry = self.get(node_id)
        if entry is not None and entry.address == address:
            entry.last_query = now

    def failed(self, node_id: bytes, now: float) -> None:
        """Record that ``node_id`` left a query unanswered; a bad node gives way to a replacement."""
        bucket = self._bucket_for(node_id)
        entry = bucket.nodes.get(node_id)
        if entry is None:
            bucket.replacements.pop(node_id, None)
            return
        entry.failures += 1
        if entry.state(now) is NodeState.BAD and bucket.replacements:
            del bucket.nodes[node_id]
            newest = bucket.replacements.popitem()[1]
            bucket.nodes[newest.node_id] = newest
            bucket.last_changed = now

    def closest(self, target: bytes, count: int | None = None) -> list[NodeInfo]:
        """Up to ``count`` (default k) nodes that are not bad, nearest to ``target`` first."""
        usable = [entry for bucket in self.buckets for entry in bucket.nodes.values() if entry.failures < MAX_FAILURES]
        usable.sort(key=lambda entry: distance(entry.node_id, target))
        return [entry.info for entry in usable[: count or self.k]]

    def stale_ranges(self, now: float, interval_s: float) -> list[tuple[int, int]]:
        """(low, high) of each bucket unchanged for ``interval_s``: refresh them (BEP 5)."""
        return [(b.low, b.high) for b in self.buckets if now - b.last_changed >= interval_s]

    def touch_range(self, low: int, now: float) -> None:
        """Mark the bucket starting at ``low`` as refreshed, so it is not refreshed again at once."""
        index = bisect.bisect_right(self._lows, low) - 1
        self.buckets[index].last_changed = now
