"""One peer connection on the event loop: bytes to the core, events to the swarm, bytes back.

An ``asyncio.Protocol`` rather than a task per peer: data is handled in the callback
that delivers it, so a connection costs no coroutine and no extra buffering. An
incoming connection does not know its torrent until the handshake names it; the
session routes it then. Download limits pause reading for as long as the bucket says.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, cast

from bitswarm.errors import PeerProtocolError, UsageError
from bitswarm.wire.messages import HANDSHAKE_BYTES, Handshake
from bitswarm.wire.peer import HandshakeCompleted, PeerProtocol

if TYPE_CHECKING:
    from bitswarm.net.session import Session, TorrentRuntime

log = logging.getLogger("bitswarm.peer")

# Incoming connections that have not named their torrent yet, per session.
MAX_UNROUTED = 256


class PeerConnection(asyncio.Protocol):
    def __init__(
        self, session: Session, runtime: TorrentRuntime | None, address: tuple[str, int] | None = None
    ) -> None:
        self.session = session
        self.runtime = runtime
        self.outgoing = runtime is not None
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.core: PeerProtocol | None = None
        self._pending = bytearray()
        self._paused_until = 0.0

    # -- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.address is None:
            peer = self.transport.get_extra_info("peername")
            self.address = (peer[0], peer[1]) if peer else ("", 0)
        if self.runtime is not None:
            self._attach(self.runtime)
            assert self.core is not None
            self.transport.write(self.core.handshake())
        else:
            if len(self.session.unrouted) >= MAX_UNROUTED:
                self.transport.abort()  # a connection flood: refuse rather than queue
                return
            self.session.unrouted.add(self)
            # Until a handshake names a torrent no core's idle timer runs: this one does.
            asyncio.get_running_loop().call_later(self.session.handshake_timeout_s, self._handshake_deadline)

    def _handshake_deadline(self) -> None:
        if self.core is None:
            self.close("no handshake in time")

    def data_received(self, data: bytes) -> None:
        if self.core is None:
            self._route_incoming(data)
            return
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.unrouted.discard(self)
        if self.runtime is not None and self.core is not None:
            self.runtime.peer_gone(self)

    # -- plumbing ----------------------------------------------------------------------

    def _attach(self, runtime: TorrentRuntime) -> None:
        self.session.unrouted.discard(self)
        self.runtime = runtime
        self.core = runtime.new_core()
        runtime.peer_joined(self)

    def _route_incoming(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) > HANDSHAKE_BYTES * 2:
            self.close("handshake too long")
            return
        if len(self._pending) < HANDSHAKE_BYTES:
            return
        try:
            handshake = Handshake.decode(bytes(self._pending[:HANDSHAKE_BYTES]))
        except PeerProtocolError as error:
            self.close(str(error))
            return
        runtime = self.session.runtime_for(handshake.info_hash)
        if runtime is None or not runtime.accepts(self):
            self.close("no such torrent here, or no room")
            return
        self._attach(runtime)
        data, self._pending = bytes(self._pending), bytearray()
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        core, runtime = self.core, self.runtime
        assert core is not None  # attached before feeding
        assert runtime is not None
        now = time.monotonic()
        try:
            events = core.receive(data, now)
        except (PeerProtocolError, UsageError) as error:
            runtime.count_close(str(error))
            self.close(str(error))
            return
        if not self.outgoing and any(isinstance(event, HandshakeCompleted) for event in events):
            self.write(core.handshake())
        runtime.handle(self, events, now)
        self.flush()
        delay = runtime.session.download_delay(len(data), now) + runtime.download_delay(len(data), now)
        if delay > 0 and self.transport is not None:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(delay, self._resume)

    def _resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def flush(self) -> None:
        """Send whatever the core owes the peer."""
        if self.core is None:
            return
        data = self.core.data_to_send()
        if data:
            self.write(data)
            self.core.note_sent(time.monotonic())

    def close(self, reason: str) -> None:
        log.debug("closing a peer connection: %s", reason)
        if self.core is not None:
            self.core.close()
        if self.transport is not None:
            self.transport.close()
