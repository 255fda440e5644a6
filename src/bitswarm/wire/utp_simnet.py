"""Two uTP sockets on a simulated path: a virtual clock, a seeded RNG and faults.

Each direction of the path has a propagation delay, random extra delay (which reorders),
loss, duplication, and optionally a bottleneck: a FIFO drained at ``rate_bytes_s`` that
holds at most ``queue_s`` worth of bytes and drops what does not fit, as a DSL modem
does. Each socket sees its own clock offset, as real peers do, so LEDBAT's one-way
delays carry an unknown offset. Every packet's time in the bottleneck queue is kept, so
a test can see what LEDBAT did to the queue. Used by tests/sim and bench.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from bitswarm.wire.utp import Address, UTPConnection
from bitswarm.wire.utp_socket import ConnectionEstablished, UTPSocket


@dataclass
class Direction:
    """One direction of the path and what it does to datagrams."""

    delay_s: float = 0.010
    jitter_s: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    rate_bytes_s: float | None = None
    queue_s: float = 0.5
    busy_until: float = 0.0
    # (time entering the queue, seconds waited) for every datagram the bottleneck took.
    queueing: list[tuple[float, float]] = field(default_factory=list)
    dropped: int = 0


class SimPath:
    """Sockets ``a`` and ``b`` joined by ``forward`` (a to b) and ``backward``."""

    A: Address = ("10.0.0.1", 6881)
    B: Address = ("10.0.0.2", 6881)

    def __init__(
        self, seed: int, forward: Direction | None = None, backward: Direction | None = None, *, offset_s: float = 0.0
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.a = UTPSocket(random.Random(self.rng.random()))
        self.b = UTPSocket(random.Random(self.rng.random()))
        self.forward = forward or Direction()
        self.backward = backward or Direction()
        # Clock offsets: b's clock reads offset_s (or something random) ahead of a's.
        self.offsets = {id(self.a): 0.0, id(self.b): offset_s or self.rng.uniform(1.0, 4000.0)}
        self._events: list[tuple[float, int, UTPSocket, Address, bytes]] = []
        self._counter = 0
        self.accepted: list[UTPConnection] = []

    def clock(self, socket: UTPSocket) -> float:
        return self.now + self.offsets[id(socket)]

    def connect(self) -> UTPConnection:
        """A connection from a to b."""
        connection = self.a.connect(self.B, self.clock(self.a))
        self.flush()
        return connection

    def flush(self) -> None:
        """Put on the path whatever both sockets owe."""
        for socket, source, direction in ((self.a, self.A, self.forward), (self.b, self.B, self.backward)):
            target = self.b if socket is self.a else self.a
            for datagram in socket.datagrams_to_send(self.clock(socket)):
                self._send(direction, target, source, datagram.payload)

    def _send(self, direction: Direction, target: UTPSocket, source: Address, payload: bytes) -> None:
        if self.rng.random() < direction.loss:
            return
        copies = 2 if self.rng.random() < direction.duplicate else 1
        for _ in range(copies):
            leaves = self.now
            if direction.rate_bytes_s is not None:
                start = max(self.now, direction.busy_until)
                if start - self.now > direction.queue_s:
                    direction.dropped += 1
                    continue
                direction.queueing.append((self.now, start - self.now))
                leaves = direction.busy_until = start + (len(payload) + 28) / direction.rate_bytes_s
            arrives = leaves + direction.delay_s + self.rng.uniform(0.0, direction.jitter_s)
            self._counter += 1
            heapq.heappush(self._events, (arrives, self._counter, target, source, payload))

    def next_time(self) -> float | None:
        times = [self._events[0][0]] if self._events else []
        for socket in (self.a, self.b):
            deadline = socket.next_deadline()
            if deadline is not None:
                times.append(deadline - self.offsets[id(socket)])
        return min(times, default=None)

    def step(self, until: float) -> bool:
        """Run the next event (a delivery or a timer) no later than ``until``; returns
        False when nothing is left before then (the clock moves to ``until``)."""
        when = self.next_time()
        if when is None or when > until:
            self.now = until
            return False
        self.now = max(self.now, when)
        if self._events and self._events[0][0] <= self.now:
            _, _, target, source, payload = heapq.heappop(self._events)
            for fact in target.receive(source, payload, self.clock(target)):
                if isinstance(fact, ConnectionEstablished) and fact.connection.is_incoming:
                    self.accepted.append(fact.connection)
        else:
            for socket in (self.a, self.b):
                deadline = socket.next_deadline()
                if deadline is not None and deadline - self.offsets[id(socket)] <= self.now:
                    # Rounding through the offset must not leave the timer just short of due.
                    socket.tick(max(self.clock(socket), deadline))
        self.flush()
        return True
