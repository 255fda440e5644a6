"""uTP (BEP 29) on the event loop: a thin layer over ``bitswarm.wire.utp_socket.UTPSocket``.

uTP shares the session's UDP port with the DHT: the DHT's endpoint hands over every
datagram that is not a bencoded dictionary (``DHTService.foreign_datagram``), and uTP
sends through the DHT's sockets. Without a DHT, ``UTPService.bind`` opens a socket of
its own on the same port number.

Each connection is given to an ``asyncio.Protocol`` through ``UTPTransport``, which
behaves as a TCP transport does (write, close, abort, pause_reading), so the peer wire
protocol and MSE in ``net/peer.py`` run on it unchanged. Datagrams owed by the core go
out once per loop iteration (``call_soon``), so the ACKs for a burst of datagrams are
one; the core's timers run from one ``call_at`` handle kept at its next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, cast

from bitswarm.errors import UsageError
from bitswarm.wire.utp import Address, UTPConnection, UTPState
from bitswarm.wire.utp_socket import ConnectionClosed, ConnectionEstablished, UTPSocket

log = logging.getLogger("bitswarm.utp")

Sender = Callable[[Address, bytes], None]
# Kernel buffers asked for on the UDP socket: a peer's burst (its whole window at once)
# waits here while the event loop reads one datagram per turn; the default 208 KiB holds
# about 90 full packets, and every one past that is a loss. Linux caps it at rmem_max.
SOCKET_BUFFER_BYTES = 4 << 20
# Received bytes go up to the peer protocol in runs of at least this much, or after
# DELIVER_AFTER_S: the event loop reads one datagram (about 1.4 KB) a turn, and handing each
# one to the peer wire protocol and the swarm on its own cost five times TCP's CPU per MiB.
DELIVER_AT_BYTES = 32 * 1024
DELIVER_AFTER_S = 0.002


def enlarge_buffers(transport: asyncio.BaseTransport) -> None:
    """Ask for ``SOCKET_BUFFER_BYTES`` both ways on the transport's socket (best effort)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)


def sender_for(transport: asyncio.DatagramTransport) -> Sender:
    """A ``Sender`` writing through ``transport`` (ours, or the DHT's)."""

    def send(address: Address, payload: bytes) -> None:
        transport.sendto(payload, address)

    return send


class ByteStreamProtocol(Protocol):
    """What a uTP connection hands its bytes to: an ``asyncio.Protocol``, or a peer
    connection (an ``asyncio.BufferedProtocol`` over TCP that takes bytes pushed to it too)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> bool | None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class UTPTransport(asyncio.Transport):
    """One uTP connection as an asyncio transport: bytes written wait here until the
    core's send buffer has room; bytes received wait in the core (shrinking the window
    we advertise) while reading is paused."""

    def __init__(self, service: UTPService, connection: UTPConnection, protocol: ByteStreamProtocol) -> None:
        super().__init__()
        self._service = service
        self._connection = connection
        self._protocol = protocol
        self._pending = bytearray()
        # Offsets into _pending where a packet must end, waiting for the core's room.
        self._pending_packet_ends: list[int] = []
        self._paused = False
        self._closing = False
        self._lost = False
        self._eof_told = False
        self._deliver_handle: asyncio.TimerHandle | None = None

    # -- the asyncio Transport interface -----------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._connection.address
        if name == "sockname":
            return self._service.sockname()
        return default

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert hasattr(protocol, "data_received")
        self._protocol = cast(ByteStreamProtocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return cast(asyncio.BaseProtocol, self._protocol)

    def is_reading(self) -> bool:
        return not self._paused and not self.is_closing()

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._service.loop.call_soon(self.update)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.is_closing() or not data:
            return
        self._pending += data
        self._push()

    def end_packet(self) -> None:
        """The bytes written so far end a uTP packet; see ``UTPConnection.end_packet``."""
        if self.is_closing():
            return
        self._push()
        if self._pending:
            self._pending_packet_ends.append(len(self._pending))
        else:
            self._connection.end_packet()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("uTP has no half-close")

    def get_write_buffer_size(self) -> int:
        return len(self._pending) + self._connection.buffered_bytes

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, self._connection.send_buffer_bytes)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # the core's send buffer is the limit that matters

    def close(self) -> None:
        """Send what is buffered, then a FIN; the protocol hears connection_lost soon."""
        if self.is_closing():
            return
        self._closing = True
        self._finish_if_drained()
        self._service.loop.call_soon(self._tell_lost, None)

    def abort(self) -> None:
        """Close at once with a RESET."""
        if self._lost:
            return
        self._closing = True
        self._pending.clear()
        self._pending_packet_ends.clear()
        self._service.send_all(self._connection.abort())
        self._service.transports.pop(self._connection, None)
        self._tell_lost(None)

    # -- driven by the service ---------------------------------------------------------

    def _push(self) -> None:
        if self._pending and self._connection.state is not UTPState.CLOSED:
            taken = 0
            # Up to each packet end in turn, so the core ends its packet where we were asked.
            while self._pending_packet_ends:
                end = self._pending_packet_ends[0]
                taken += self._connection.write(bytes(self._pending[taken:end]))
                if taken < end:
                    break
                self._connection.end_packet()
                self._pending_packet_ends.pop(0)
            else:
                taken += self._connection.write(bytes(self._pending[taken : taken + self._connection.write_room]))
            del self._pending[:taken]
            self._pending_packet_ends = [end - taken for end in self._pending_packet_ends]
            self._service.touch(self._connection)

    def _finish_if_drained(self) -> None:
        if self._closing and not self._pending and self._connection.state is not UTPState.CLOSED:
            self._connection.close()
            self._service.touch(self._connection)

    def update(self) -> None:
        """The core took a packet or a timer ran: move bytes both ways, pass on the end."""
        if self._connection.state is not UTPState.CLOSED:
            self._push()
            self._finish_if_drained()
        if self._lost or self._closing:
            return
        if not self._paused and self._connection.readable_bytes:
            if self._connection.readable_bytes >= DELIVER_AT_BYTES or self._connection.at_eof:
                self._deliver()
            elif self._deliver_handle is None:
                self._deliver_handle = self._service.loop.call_later(DELIVER_AFTER_S, self._deliver)
        if (
            self._connection.at_eof
            and not self._connection.readable_bytes
            and not self._eof_told
            and not self._lost
            and not self._paused
        ):
            self._eof_told = True
            keep_open = self._protocol.eof_received()
            if not keep_open:
                self.close()

    def _deliver(self) -> None:
        """Hand what the core holds in order to the protocol."""
        if self._deliver_handle is not None:
            self._deliver_handle.cancel()
            self._deliver_handle = None
        if self._lost or self._closing or self._paused or not self._connection.readable_bytes:
            return
        data = self._connection.read()
        self._service.touch(self._connection)
        self._protocol.data_received(data)

    def closed(self, reason: str) -> None:
        """The core is closed (a RESET, a timeout, or the end of a clean close)."""
        self._deliver()  # bytes that arrived in order before the end are the peer's last words
        self._service.transports.pop(self._connection, None)
        self._tell_lost(None if reason == "closed" else ConnectionResetError(f"uTP: {reason}"))

    def _tell_lost(self, error: Exception | None) -> None:
        # The transport stays with the service after this until the core is closed: bytes
        # written before close() still go out, and the FIN after them.
        if self._lost:
            return
        if self._deliver_handle is not None:
            self._deliver_handle.cancel()
            self._deliver_handle = None
        self._lost = True
        self._protocol.connection_lost(error)


class UTPService:
    """Every uTP connection of a session, on one UDP port (shared with the DHT or not)."""

    def __init__(
        self,
        accept: Callable[[], ByteStreamProtocol] | None,
        *,
        rng: random.Random | None = None,
        strict: bool = False,
    ) -> None:
        """``accept`` makes the protocol for an incoming connection (None: refuse them)."""
        self.loop = asyncio.get_running_loop()
        self.socket = UTPSocket(rng or random.Random(), accept=accept is not None)
        self._accept = accept
        self.strict = strict
        self.transports: dict[UTPConnection, UTPTransport] = {}
        self._dialling: dict[UTPConnection, asyncio.Future[None]] = {}
        self._senders: dict[int, Sender] = {}
        self._own: list[asyncio.DatagramTransport] = []
        self._sockname: Address | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.send_errors = 0
        # Connections opened, by direction ("incoming", "outgoing").
        self.opened: Counter[str] = Counter()
        self.failure: BaseException | None = None

    # -- sockets -----------------------------------------------------------------------

    def attach(self, family: int, sender: Sender, sockname: Address) -> None:
        """Send ``family`` (4 or 6) datagrams through ``sender`` (a socket the DHT owns)."""
        self._senders[family] = sender
        self._sockname = self._sockname or sockname

    async def bind(self, host: str, port: int) -> None:
        """Open a UDP socket of our own at ``host``:``port``; raises OSError."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        service = self

        class Endpoint(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
                service.datagram_received((addr[0], addr[1]), data)

            def error_received(self, exc: Exception) -> None:
                service.send_errors += 1

        transport, _ = await self.loop.create_datagram_endpoint(Endpoint, local_addr=(host, port), family=family)
        self._own.append(transport)
        enlarge_buffers(transport)
        name = transport.get_extra_info("sockname")
        self.attach(6 if family == socket.AF_INET6 else 4, sender_for(transport), (str(name[0]), int(name[1])))

    def sockname(self) -> Address | None:
        return self._sockname

    def send_all(self, datagrams: list[Any]) -> None:
        for datagram in datagrams:
            sender = self._senders.get(6 if ":" in datagram.address[0] else 4)
            if sender is None:
                continue
            try:
                sender(datagram.address, datagram.payload)
            except OSError:
                self.send_errors += 1  # a full send queue is a lost datagram

    # -- datagrams and timers ----------------------------------------------------------

    def datagram_received(self, address: Address, data: bytes) -> None:
        try:
            facts = self.socket.receive(address, data, self.loop.time())
            for fact in facts:
                self._take(fact)
        except Exception as error:  # our bug, not the sender's: the core handles bad input
            self._failed(error)
        self.touch(None)

    def _take(self, fact: Any) -> None:
        connection = fact.connection
        if isinstance(fact, ConnectionEstablished):
            if connection.is_incoming:
                assert self._accept is not None
                self._open(connection, self._accept())
            else:
                waiter = self._dialling.pop(connection, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            return
        if isinstance(fact, ConnectionClosed):
            waiter = self._dialling.pop(connection, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionRefusedError(f"uTP: {fact.reason}"))
            transport = self.transports.get(connection)
            if transport is not None:
                transport.closed(fact.reason)
            return
        transport = self.transports.get(connection)
        if transport is not None:
            transport.update()

    def _open(self, connection: UTPConnection, protocol: ByteStreamProtocol) -> UTPTransport:
        self.opened["incoming" if connection.is_incoming else "outgoing"] += 1
        transport = UTPTransport(self, connection, protocol)
        self.transports[connection] = transport
        protocol.connection_made(transport)
        transport.update()  # data that came with the confirming packet
        return transport

    def touch(self, connection: UTPConnection | None) -> None:
        """Datagrams may be owed: flush once this loop iteration is over."""
        if connection is not None:
            self.socket.touch(connection)
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        try:
            self.send_all(self.socket.datagrams_to_send(self.loop.time()))
        except Exception as error:
            self._failed(error)
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.socket.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        try:
            for fact in self.socket.tick(self.loop.time()):
                self._take(fact)
            # Timers free window room (a resend acked later) and may end connections.
            for transport in list(self.transports.values()):
                transport.update()
        except Exception as error:
            self._failed(error)
        self.touch(None)

    def _failed(self, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
            log.exception("uTP core failed", exc_info=error)
        if self.strict:
            raise error

    # -- connections -------------------------------------------------------------------

    async def open_connection(
        self, address: Address, protocol_factory: Callable[[], ByteStreamProtocol]
    ) -> tuple[UTPTransport, ByteStreamProtocol]:
        """Dial ``address``; returns once it answers. Raises ConnectionRefusedError when it
        does not (after about three seconds of SYNs) and OSError when we cannot send."""
        if (6 if ":" in address[0] else 4) not in self._senders:
            raise OSError(f"uTP: no socket for {address[0]}")
        try:
            connection = self.socket.connect(address, self.loop.time())
        except UsageError as error:
            raise OSError(str(error)) from None
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._dialling[connection] = waiter
        self.touch(connection)
        try:
            await waiter
        except BaseException:
            self._dialling.pop(connection, None)
            if connection.state is not UTPState.CLOSED:
                self.send_all(connection.abort())
                self.touch(connection)
            raise
        protocol = protocol_factory()
        return self._open(connection, protocol), protocol

    def close(self) -> None:
        """Abort every connection (a RESET each) and close our own sockets."""
        for transport in list(self.transports.values()):
            transport.abort()
        for waiter in self._dialling.values():
            if not waiter.done():
                waiter.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        for own in self._own:
            own.close()
        self._senders.clear()
