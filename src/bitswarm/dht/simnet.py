"""A simulated DHT: real ``DHTNode`` cores, a virtual clock, in-memory datagrams.

For tests/sim/test_dht_sim.py, bench/dht_bench.py and any simulation that needs a DHT. Every node gets a 10.x.y.z
address, a node ID from the seeded RNG and its own seeded RNG, so one seed replays a whole
run. Datagrams take a random latency and may be lost.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bitswarm.dht.krpc import Address
from bitswarm.dht.node import DHTNode, LookupCompleted, Output, SendDatagram
from bitswarm.errors import UsageError

PORT = 6881


@dataclass
class SimDHT:
    seed: int
    latency_s: tuple[float, float] = (0.01, 0.1)
    loss: float = 0.0
    now: float = 0.0
    nodes: dict[Address, DHTNode] = field(default_factory=dict)
    completed: dict[tuple[Address, int], LookupCompleted] = field(default_factory=dict)
    datagrams: int = 0
    _queue: list[tuple[float, int, Address, Address, bytes]] = field(default_factory=list)
    _seq: int = 0
    _timers: list[tuple[float, int, Address]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def add_node(self, *, address: Address | None = None, node_id: bytes | None = None, **options: Any) -> Address:
        """A new node (by default at the next 10.x.y.z address, with a random ID); not joined yet."""
        index = len(self.nodes) + 1
        address = address or (f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}", PORT)
        node_id = node_id or self.rng.randbytes(20)
        self.nodes[address] = DHTNode(node_id, random.Random(self.rng.random()), self.now, **options)
        return address

    def join(self, address: Address, via: Address) -> LookupCompleted:
        """Bootstrap ``address`` through ``via`` and run the network until that search ends."""
        lookup_id, outputs = self.nodes[address].bootstrap([via], self.now)
        self.emit(address, outputs)
        return self.wait_lookup(address, lookup_id)

    def emit(self, source: Address, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, SendDatagram):
                self.datagrams += 1
                if self.rng.random() < self.loss:
                    continue
                self._seq += 1
                arrival = self.now + self.rng.uniform(*self.latency_s)
                heapq.heappush(self._queue, (arrival, self._seq, output.address, source, output.payload))
            else:
                self.completed[(source, output.lookup_id)] = output
        node = self.nodes[source]
        if node.pending_queries:
            # Timeouts only: the 60 s housekeeping is not what these runs are about.
            self._seq += 1
            heapq.heappush(self._timers, (node.next_deadline(), self._seq, source))

    def run_until(self, done: Callable[[], bool] | None, *, max_time_s: float, max_events: int = 10_000_000) -> None:
        """Deliver datagrams and timeouts until ``done()`` holds, time runs out or nothing is left."""
        deadline = self.now + max_time_s
        for _ in range(max_events):
            if done is not None and done():
                return
            next_datagram = self._queue[0][0] if self._queue else None
            next_timer = self._timers[0][0] if self._timers else None
            due = [t for t in (next_datagram, next_timer) if t is not None]
            if not due or min(due) > deadline:
                self.now = deadline if due else self.now
                return
            self.now = max(self.now, min(due))
            if next_datagram is not None and next_datagram <= self.now:
                _, _, destination, source, payload = heapq.heappop(self._queue)
                node = self.nodes.get(destination)
                if node is not None:
                    self.emit(destination, node.receive(source, payload, self.now))
            else:
                _, _, address = heapq.heappop(self._timers)
                if address in self.nodes:  # a node taken out of the network is silent
                    self.emit(address, self.nodes[address].tick(self.now))
        raise UsageError("the simulation did not settle within max_events")

    def wait_lookup(self, address: Address, lookup_id: int, *, max_time_s: float = 60.0) -> LookupCompleted:
        key = (address, lookup_id)
        self.run_until(lambda: key in self.completed, max_time_s=max_time_s)
        if key not in self.completed:
            raise UsageError(f"lookup {lookup_id} of {address} did not complete in {max_time_s} s")
        return self.completed.pop(key)

    def build(self, size: int, **options: Any) -> list[Address]:
        """``size`` nodes, each joining through a random earlier one (the first is alone)."""
        addresses = [self.add_node(**options)]
        for _ in range(size - 1):
            address = self.add_node(**options)
            self.join(address, self.rng.choice(addresses))
            addresses.append(address)
        # Let the pings of the last joins settle.
        self.run_until(None, max_time_s=10.0)
        return addresses
