"""One peer connection on the event loop: bytes to the core, events to the swarm, bytes back.

An ``asyncio.Protocol`` rather than a task per peer: data is handled in the callback
that delivers it, so a connection costs no coroutine and no extra buffering. An
incoming connection does not know its torrent until the handshake names it; the
session routes it then. Download limits pause reading for as long as the bucket says.

Protocol encryption (MSE, ``bitswarm.wire.mse``) goes in front of the BitTorrent
handshake: a connection we dial under ``prefer`` or ``require`` starts with it, and an
incoming one is plain if it opens with 19 "BitTorrent protocol", MSE otherwise; the
session's policy decides which of those it takes. Until the MSE handshake is over the
peer core's bytes wait; then, with RC4 selected, every byte in and out goes through the
two RC4 streams the handshake left. An outgoing MSE attempt that the other side drops is
dialled once more in plain text under ``prefer``, and the address is remembered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, cast

from bitswarm.errors import PeerProtocolError, UsageError
from bitswarm.net.utp import UTPTransport
from bitswarm.wire.messages import HANDSHAKE_BYTES, Handshake
from bitswarm.wire.mse import CryptoMethod, EncryptionPolicy, MseHandshake, RC4Stream, looks_plaintext
from bitswarm.wire.peer import HandshakeCompleted, PeerProtocol

if TYPE_CHECKING:
    from bitswarm.net.magnet import MagnetRuntime
    from bitswarm.net.session import Session, TorrentRuntime

log = logging.getLogger("bitswarm.peer")

# Incoming connections that have not named their torrent yet, per session.
MAX_UNROUTED = 256
# Private keys and padding come from the system's generator, not a seedable one.
_SYSTEM_RANDOM = random.SystemRandom()


class PeerConnection(asyncio.BufferedProtocol):
    def __init__(
        self,
        session: Session,
        runtime: TorrentRuntime | MagnetRuntime | None,
        address: tuple[str, int] | None = None,
        *,
        encrypt: bool = False,
    ) -> None:
        self.session = session
        self.runtime = runtime
        self.outgoing = runtime is not None
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.core: PeerProtocol | None = None
        # None: a plain BitTorrent handshake; else what the MSE handshake selected.
        self.crypto: CryptoMethod | None = None
        self._encrypt_outgoing = encrypt
        self._mse: MseHandshake | None = None
        self._encryptor: RC4Stream | None = None
        self._decryptor: RC4Stream | None = None
        self._pending = bytearray()
        self._paused_until = 0.0

    # -- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.address is None:
            peer = self.transport.get_extra_info("peername")
            self.address = (peer[0], peer[1]) if peer else ("", 0)
        loop = asyncio.get_running_loop()
        if self.runtime is not None:
            self._attach(self.runtime)
            assert self.core is not None
            if not self._encrypt_outgoing:
                self.transport.write(self.core.handshake())
                return
            # Our BitTorrent handshake rides in the initial payload, as libtorrent's does.
            self._mse = MseHandshake.initiate(
                info_hash=self.runtime.info_hash,
                policy=self.session.encryption,
                rng=_SYSTEM_RANDOM,
                initial_payload=self.core.handshake(),
            )
            self.transport.write(self._mse.data_to_send())
            loop.call_later(self.session.handshake_timeout_s, self._handshake_deadline)
        else:
            if len(self.session.unrouted) >= MAX_UNROUTED:
                self.transport.abort()  # a connection flood: refuse rather than queue
                return
            self.session.unrouted.add(self)
            # Until a handshake names a torrent no core's idle timer runs: this one does.
            loop.call_later(self.session.handshake_timeout_s, self._handshake_deadline)

    def _handshake_deadline(self) -> None:
        if self._mse is not None:
            self._give_up("encryption: handshake not finished in time")
        elif self.core is None:
            self._give_up("no handshake in time")

    def get_buffer(self, sizehint: int) -> memoryview:
        # The session's one read buffer: each read is handled whole (every block copied
        # out) before the loop reads again, so a connection holds no buffer of its own.
        return self.session.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        with self.session.read_buffer[:nbytes] as data:
            if self.core is None or self._mse is not None:
                self.data_received(bytes(data))  # the handshakes, which keep what they get
                return
            if self._decryptor is not None:
                self._decryptor.apply_in_place(data)
            self._feed(data, lend=True)

    def data_received(self, data: bytes) -> None:
        """Bytes from a transport that does not lend its buffer (uTP's, a raced TCP dial's)."""
        if self._decryptor is not None:
            data = self._decryptor.apply(data)
        elif self._mse is not None:
            self._negotiate(data)
            return
        if self.core is None:
            self._route_incoming(data)
            return
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.unrouted.discard(self)
        if self._mse is not None and self.outgoing:
            self._fall_back_to_plaintext()
        if self.runtime is not None and self.core is not None:
            self.runtime.peer_gone(self)

    # -- plumbing ----------------------------------------------------------------------

    def _attach(self, runtime: TorrentRuntime | MagnetRuntime, info_hash: bytes | None = None) -> None:
        """Join ``runtime``; ``info_hash`` is the one an incoming peer asked for."""
        self.session.unrouted.discard(self)
        self.runtime = runtime
        self.core = runtime.new_core(info_hash)
        runtime.peer_joined(self)

    def _route_incoming(self, data: bytes) -> None:
        self._pending += data
        plaintext = looks_plaintext(bytes(self._pending[:HANDSHAKE_BYTES]))
        if plaintext is None:
            return
        policy = self.session.encryption
        if not plaintext:
            if policy is EncryptionPolicy.DISABLE:
                self._give_up("encryption: refused, the policy is 'disable'")
                return
            self._mse = MseHandshake.accept(info_hashes=self.session.info_hashes, policy=policy, rng=_SYSTEM_RANDOM)
            data, self._pending = bytes(self._pending), bytearray()
            self._negotiate(data)
            return
        if policy is EncryptionPolicy.REQUIRE:
            self._give_up("plaintext: refused, the policy is 'require'")
            return
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
        runtime = self.session.route(handshake.info_hash)
        if runtime is None or not runtime.accepts(self):
            self.close("no such torrent here, or no room")
            return
        self._attach(runtime, handshake.info_hash)
        data, self._pending = bytes(self._pending), bytearray()
        self._feed(data)

    def _negotiate(self, data: bytes) -> None:
        """Bytes for the MSE handshake; once it is over, route (incoming) and start feeding the core."""
        assert self._mse is not None
        if self.transport is None or self.transport.is_closing():
            return  # given up already; what was in flight means nothing
        try:
            outcome = self._mse.receive(data)
        except PeerProtocolError as error:
            self._give_up(str(error))
            return
        self._write_raw(self._mse.data_to_send())
        if outcome is None:
            return
        self._mse = None
        self.crypto = outcome.method
        self._encryptor, self._decryptor = outcome.encryptor, outcome.decryptor
        if self.runtime is None:
            runtime = self.session.route(outcome.info_hash)
            if runtime is None or not runtime.accepts(self):
                self.close("no such torrent here, or no room")
                return
            self._attach(runtime, outcome.info_hash)
        payload = outcome.initial_payload + outcome.payload
        if payload:
            self._feed(payload)
        self.flush()

    def _give_up(self, reason: str) -> None:
        """Close a connection that broke or missed its handshake, counting why."""
        if self.runtime is not None:
            self.runtime.count_close(reason)
        else:
            self.session.count_close(reason)
        self.close(reason)

    def _fall_back_to_plaintext(self) -> None:
        """Dial once more without MSE when the policy allows plaintext (and remember the address)."""
        runtime, address = self.runtime, self.address
        if self.session.encryption is not EncryptionPolicy.PREFER or runtime is None or address is None:
            return
        if runtime.paused:
            return  # we hung up ourselves; the other side said nothing about MSE
        if self.session.remember_plaintext_peer(address):
            runtime.spawn(runtime.connect(address))

    def _feed(self, data: bytes | memoryview, *, lend: bool = False) -> None:
        """``lend``: ``data`` is the session's read buffer, which the next read overwrites:
        the events (blocks that are views of it) are handled here and kept by no one."""
        core, runtime = self.core, self.runtime
        assert core is not None  # attached before feeding
        assert runtime is not None
        now = time.monotonic()
        try:
            events = core.receive(data, now, lend=lend)
        except (PeerProtocolError, UsageError) as error:
            runtime.count_close(str(error))
            self.close(str(error))
            return
        if not self.outgoing and any(isinstance(event, HandshakeCompleted) for event in events):
            self.write(core.handshake())
            if isinstance(self.transport, UTPTransport):
                # Transmission 3.00 reads nothing more from the packet that ends the
                # handshake until another arrives: the messages after it go in their own.
                self.transport.end_packet()
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
            self.transport.write(data if self._encryptor is None else self._encryptor.apply(data))

    def _write_raw(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def flush(self) -> None:
        """Send whatever the core owes the peer (once any MSE handshake is over)."""
        if self.core is None or self._mse is not None:
            return
        chunks = self.core.chunks_to_send()
        if not chunks:
            return
        if self.transport is not None and not self.transport.is_closing():
            # Blocks go out as they were read (one vectored write), not copied into a message.
            encryptor = self._encryptor
            self.transport.writelines(chunks if encryptor is None else [encryptor.apply(chunk) for chunk in chunks])
        self.core.note_sent(time.monotonic())

    def close(self, reason: str) -> None:
        log.debug("closing a peer connection: %s", reason)
        if self.core is not None:
            self.core.close()
        if self.transport is not None:
            self.transport.close()
