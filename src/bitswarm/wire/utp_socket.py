"""The uTP side of one UDP socket (BEP 29), sans-IO: routes datagrams to connections.

Datagrams come in as ``(address, datagram, now)``. Each is decoded strictly; a packet
is routed by (address, connection id) to its ``UTPConnection``, and a SYN for an
unknown id makes a half-open connection that answers with one STATE and nothing more
(a forged source address gets one packet of 20 bytes for its 20, never a stream).
The half-open connection is confirmed, and reported as ``ConnectionEstablished``, only
when the initiator's next packet acknowledges the random sequence number our STATE
carried. Half-open connections are capped (the oldest makes room), and so are all
connections; a SYN beyond the cap is dropped. Packets for unknown ids are dropped
without a RESET, so the socket never answers what it cannot attribute.

``datagrams_to_send(now)`` collects what the connections touched since the last call
owe; ``tick(now)`` runs their timers at ``next_deadline()``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import TypeAlias

from bitswarm.errors import UsageError, UTPError
from bitswarm.wire import utp_packet
from bitswarm.wire.utp import (
    DEFAULT_RECV_BUFFER_BYTES,
    DEFAULT_SEND_BUFFER_BYTES,
    Address,
    SendDatagram,
    UTPConnection,
    UTPState,
    micros,
)
from bitswarm.wire.utp_packet import SEQ_MASK, U32_MASK, Packet, PacketType

# Connections per socket: a session's peers across its torrents, with room to spare.
MAX_CONNECTIONS = 1000
# SYNs answered but not yet followed up: a flood churns this many and no more.
MAX_HALF_OPEN = 64


@dataclass(frozen=True, slots=True)
class ConnectionEstablished:
    """Fact: ``connection`` is open (ours answered, or an incoming one confirmed)."""

    connection: UTPConnection


@dataclass(frozen=True, slots=True)
class ConnectionUpdated:
    """Fact: a packet for ``connection`` was taken (data, ACKs or the end of the stream)."""

    connection: UTPConnection


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Fact: ``connection`` is over; ``reason`` says why (reset, timeout, closed)."""

    connection: UTPConnection
    reason: str


Fact: TypeAlias = ConnectionEstablished | ConnectionUpdated | ConnectionClosed


class UTPSocket:
    """Every uTP connection on one UDP socket."""

    def __init__(
        self,
        rng: random.Random,
        *,
        accept: bool = True,
        max_connections: int = MAX_CONNECTIONS,
        max_half_open: int = MAX_HALF_OPEN,
        send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES,
        recv_buffer_bytes: int = DEFAULT_RECV_BUFFER_BYTES,
    ) -> None:
        self.rng = rng
        self.accept = accept
        self.max_connections = max_connections
        self.max_half_open = max_half_open
        self.send_buffer_bytes = send_buffer_bytes
        self.recv_buffer_bytes = recv_buffer_bytes
        self.connections: dict[tuple[Address, int], UTPConnection] = {}
        self._half_open: dict[tuple[Address, int], UTPConnection] = {}  # oldest first
        self._touched: dict[UTPConnection, None] = {}
        # Datagrams dropped at the socket, by reason (decoding errors, unknown ids, caps).
        self.dropped: Counter[str] = Counter()

    def connect(self, address: Address, now: float) -> UTPConnection:
        """Start a connection to ``address`` (its SYN goes out with the next
        ``datagrams_to_send``); raises UsageError when the socket is full."""
        if len(self.connections) >= self.max_connections:
            raise UsageError("uTP: too many connections")
        while True:
            recv_id = self.rng.randrange(0x10000)
            taken = (address, recv_id) in self.connections or (address, (recv_id + 1) & SEQ_MASK) in self.connections
            if not taken:
                break
        connection = UTPConnection(
            address,
            recv_id=recv_id,
            send_id=(recv_id + 1) & SEQ_MASK,
            seq_nr=self.rng.randrange(0x10000),
            now=now,
            state=UTPState.SYN_SENT,
            send_buffer_bytes=self.send_buffer_bytes,
            recv_buffer_bytes=self.recv_buffer_bytes,
        )
        self.connections[(address, recv_id)] = connection
        self.touch(connection)
        return connection

    def touch(self, connection: UTPConnection) -> None:
        """Note that ``connection`` may owe datagrams (after a write, read or close)."""
        self._touched[connection] = None

    def receive(self, address: Address, datagram: bytes, now: float) -> list[Fact]:
        """Take one datagram; returns the facts it caused. A datagram that breaks BEP 29
        is dropped (counted in ``dropped``) and raises nothing."""
        try:
            packet = utp_packet.decode(datagram)
        except UTPError as error:
            self.dropped[str(error).removeprefix("uTP: ").split(" ", 1)[0]] += 1
            return []
        if packet.type is PacketType.SYN:
            return self._syn(address, packet, now)
        connection = self.connections.get((address, packet.connection_id))
        if connection is None and packet.type is PacketType.RESET:
            connection = self._by_send_id(address, packet.connection_id)
        if connection is None:
            self.dropped["unknown connection"] += 1
            return []
        before = connection.state
        if not connection.receive(packet, now):
            return []
        self.touch(connection)
        return self._facts(connection, before)

    def _by_send_id(self, address: Address, send_id: int) -> UTPConnection | None:
        """libtorrent sends a RESET with the id it received, which is our send id (so does
        libutp's matching): the connection whose ids are that one and its neighbour."""
        for recv_id in ((send_id + 1) & SEQ_MASK, (send_id - 1) & SEQ_MASK):
            connection = self.connections.get((address, recv_id))
            if connection is not None and connection.send_id == send_id:
                return connection
        return None

    def _facts(self, connection: UTPConnection, before: UTPState) -> list[Fact]:
        if connection.state is UTPState.CLOSED:
            return [ConnectionClosed(connection, connection.close_reason)]
        if before in (UTPState.SYN_SENT, UTPState.SYN_RECEIVED) and connection.state is UTPState.CONNECTED:
            self._half_open.pop((connection.address, connection.recv_id), None)
            return [ConnectionEstablished(connection)]
        return [ConnectionUpdated(connection)]

    def _syn(self, address: Address, packet: Packet, now: float) -> list[Fact]:
        key = (address, (packet.connection_id + 1) & SEQ_MASK)
        existing = self.connections.get(key)
        if existing is not None:
            if existing.receive(packet, now):  # a resent SYN: one STATE more
                self.touch(existing)
            return []
        if not self.accept:
            self.dropped["SYN while not accepting"] += 1
            return []
        if len(self.connections) >= self.max_connections:
            self.dropped["SYN beyond the connection cap"] += 1
            return []
        if len(self._half_open) >= self.max_half_open:
            oldest_key = next(iter(self._half_open))
            self._half_open.pop(oldest_key)
            self.connections.pop(oldest_key).close()
            self.dropped["half-open connection evicted"] += 1
        connection = UTPConnection(
            address,
            recv_id=key[1],
            send_id=packet.connection_id,
            seq_nr=self.rng.randrange(0x10000),
            now=now,
            state=UTPState.SYN_RECEIVED,
            send_buffer_bytes=self.send_buffer_bytes,
            recv_buffer_bytes=self.recv_buffer_bytes,
        )
        connection.accept_syn(packet, (micros(now) - packet.timestamp_us) & U32_MASK)
        self.connections[key] = connection
        self._half_open[key] = connection
        self.touch(connection)
        return []

    def datagrams_to_send(self, now: float) -> list[SendDatagram]:
        """What the connections touched since the last call owe now; closed ones leave."""
        out: list[SendDatagram] = []
        touched, self._touched = self._touched, {}
        for connection in touched:
            out += connection.datagrams_to_send(now)
            if connection.state is UTPState.CLOSED:
                self._forget(connection)
        return out

    def _forget(self, connection: UTPConnection) -> None:
        key = (connection.address, connection.recv_id)
        if self.connections.get(key) is connection:
            del self.connections[key]
        self._half_open.pop(key, None)

    def next_deadline(self) -> float | None:
        """When ``tick`` must run next (None: no connection has a timer)."""
        deadlines = [d for c in self.connections.values() if (d := c.next_deadline()) is not None]
        return min(deadlines, default=None)

    def tick(self, now: float) -> list[Fact]:
        """Run the timers due at ``now``; returns ``ConnectionClosed`` for connections that
        timed out (their resends come from ``datagrams_to_send``)."""
        facts: list[Fact] = []
        for connection in list(self.connections.values()):
            deadline = connection.next_deadline()
            if deadline is None or deadline > now:
                continue
            connection.tick(now)
            self.touch(connection)
            if connection.state is UTPState.CLOSED:
                facts.append(ConnectionClosed(connection, connection.close_reason))
        return facts
