"""One peer connection as a sans-IO core (BEP 3, BEP 6 fast extension, BEP 10 handshake bit).

The machine: AWAITING_HANDSHAKE until 68 bytes of handshake arrive (the right info-hash,
not our own peer id), then AWAITING_BITFIELD for exactly one message (extension messages
aside, see ``_check``), where a bitfield, have-all or have-none may appear (BEP 6 says
only there; one that comes later is taken as the haves it stands for, as aria2 sends
them, see ``_late_bitfield``), then OPEN until a rule is
broken or the layer above closes it: CLOSED, after which every call is a UsageError.

Metadata phase (a magnet link, BEP 9): with ``num_pieces=None`` the piece count is not
known yet, so nothing about pieces can be checked. The core then accepts the handshake,
extension messages, keep-alives, choke and interest, ignores the peer's bitfield, haves,
suggestions and allowed-fast (it cannot validate them), rejects requests (we have nothing)
and treats a piece as a protocol error (we never request one). Such a connection exists only
to fetch the info dictionary: once it is in, the layer above closes it and dials the peer
again with a full core. A reconnect costs one round trip per peer, and keeps every piece
check in this core exact rather than deferred.

The core checks every index, offset and length against the torrent and keeps the state
both sides rely on: choke and interest in each direction, the peer's pieces, the requests
we have outstanding and the requests the peer is waiting on (bounded: a flood ends the
connection). With the fast extension it rejects, on its own, requests it cannot serve.

BEP 52 hash messages: a hash request goes up to be answered (the layer above knows the
files' trees; in the metadata phase the core rejects it); a ``hashes`` or ``hash reject``
message must answer a hash request we sent and have not had answered, or it breaks the
rules.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bitswarm.errors import PeerProtocolError, UsageError
from bitswarm.wire.messages import (
    BLOCK_SIZE,
    DHT_PORT,
    EXTENSION_PROTOCOL,
    FAST_EXTENSION,
    HANDSHAKE_BYTES,
    AllowedFast,
    Bitfield,
    Cancel,
    Choke,
    Extended,
    FrameDecoder,
    Handshake,
    Hashes,
    HashReject,
    HashRequest,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    NotInterested,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
    encode,
    encode_requests,
    piece_header,
    reserved_bits,
)

# Extension messages (metadata pieces of 16 KiB plus a header) are the largest we accept
# besides a bitfield; 1 MiB covers every real one.
MAX_EXTENDED_BYTES = 1 << 20
# libtorrent's default for requests a peer may have waiting on us.
MAX_PEER_REQUESTS = 500
# Requests we may have outstanding with one peer; the engine sizes its queue below this.
MAX_OUR_REQUESTS = 2000
# BEP 3: a connection silent for two minutes is dead; we speak every 90 seconds.
IDLE_TIMEOUT_S = 120.0
KEEPALIVE_INTERVAL_S = 90.0
# Cancelled requests whose pieces may still arrive (BEP 6: every request gets an answer).
MAX_CANCELLED = 2000
# BEP 52 hash requests we may have unanswered with one peer.
MAX_OUR_HASH_REQUESTS = 64


class PeerState(enum.Enum):
    AWAITING_HANDSHAKE = "awaiting handshake"
    AWAITING_BITFIELD = "awaiting bitfield"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    peer_id: bytes
    supports_fast: bool
    supports_extensions: bool
    # BEP 5: the peer runs a DHT node; a PORT message tells it where ours listens.
    supports_dht: bool = False


@dataclass(frozen=True, slots=True)
class PeerTimedOut:
    idle_s: float


Event = HandshakeCompleted | Message


class PeerProtocol:
    """One peer connection after TCP (or an encrypted stream) is up."""

    def __init__(
        self,
        *,
        info_hash: bytes,
        peer_id: bytes,
        num_pieces: int | None,
        piece_size: Callable[[int], int],
        have_piece: Callable[[int], bool],
        now: float,
        fast: bool = True,
        extensions: bool = True,
        max_peer_requests: int = MAX_PEER_REQUESTS,
        dht: bool = False,
    ) -> None:
        self.info_hash = info_hash
        self.our_peer_id = peer_id
        # None: the metadata phase of a magnet link (see the module docstring).
        self.metadata_only = num_pieces is None
        self.num_pieces = num_pieces or 0
        self.piece_size = piece_size
        self.have_piece = have_piece
        self.max_peer_requests = max_peer_requests
        self.state = PeerState.AWAITING_HANDSHAKE
        self.remote_peer_id: bytes | None = None
        self.fast = False
        self.extensions = False
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.peer_pieces = bytearray((self.num_pieces + 7) // 8)
        self.peer_piece_count = 0
        # The lowest piece the peer lacks (num_pieces: none): where a player reading the
        # file in order would be waiting.
        self.peer_first_missing = 0
        self.our_requests: set[tuple[int, int, int]] = set()
        self.peer_requests: dict[tuple[int, int, int], None] = {}
        self.our_hash_requests: set[HashRequest] = set()
        self.allowed_fast_for_us: set[int] = set()
        self.allowed_fast_for_peer: set[int] = set()
        # Cancelled requests whose answers may still come, with how many: a block asked,
        # cancelled and asked again (a player seeking back and forth) may be answered twice.
        self._cancelled: dict[tuple[int, int, int], int] = {}
        bitfield_bytes = len(self.peer_pieces)
        self._frames = FrameDecoder(max(MAX_EXTENDED_BYTES, bitfield_bytes + 1, BLOCK_SIZE + 9))
        self._handshake_buffer = bytearray()
        # What is owed to the peer, in order: small messages gathered in _small, each
        # block as the chunk it was read into (never copied into a message).
        self._outbox: list[bytes | memoryview] = []
        self._small = bytearray()
        self._last_received = now
        self._last_sent = now
        self._wants_fast = fast
        self._wants_extensions = extensions
        self._wants_dht = dht

    # -- bytes in ------------------------------------------------------------------------

    def handshake(self) -> bytes:
        """Our handshake, to send first (or in answer to theirs)."""
        flags = [
            flag
            for flag, wanted in (
                (FAST_EXTENSION, self._wants_fast),
                (EXTENSION_PROTOCOL, self._wants_extensions),
                (DHT_PORT, self._wants_dht),
            )
            if wanted
        ]
        return Handshake(self.info_hash, self.our_peer_id, reserved_bits(*flags)).encode()

    def receive(self, data: bytes | memoryview, now: float, *, lend: bool = False) -> list[Event]:
        """Events from ``data``: the handshake, then messages that passed every check.

        ``lend``: blocks may be views of ``data``, which the caller then keeps unchanged
        until it has handled the events (``bytes`` never change: their blocks are views).
        Raises ``PeerProtocolError`` for a broken rule; the core is CLOSED after that.
        """
        self._require_open()
        self._last_received = now
        try:
            return self._receive(data, lend)
        except PeerProtocolError:
            self.state = PeerState.CLOSED
            raise

    def _receive(self, data: bytes | memoryview, lend: bool) -> list[Event]:
        events: list[Event] = []
        if self.state is PeerState.AWAITING_HANDSHAKE:
            self._handshake_buffer += data
            if len(self._handshake_buffer) < HANDSHAKE_BYTES:
                return events
            handshake = Handshake.decode(bytes(self._handshake_buffer[:HANDSHAKE_BYTES]))
            data = bytes(self._handshake_buffer[HANDSHAKE_BYTES:])
            self._handshake_buffer.clear()
            events.append(self._accept_handshake(handshake))
        downloading = self.state is PeerState.OPEN and not self.metadata_only
        for message in self._frames.feed(data, lend=lend):
            if downloading and type(message) is Piece:
                if self._check_piece(message):  # the common case first, without the dispatch
                    events.append(message)
                continue
            if downloading and type(message) is Request:  # a seed's common case
                if self._check_request(message):
                    events.append(message)
                continue
            if self.metadata_only:
                if self._check_metadata_phase(message):
                    events.append(message)
            elif self.state is PeerState.OPEN and isinstance(message, Bitfield | HaveAll | HaveNone):
                events += self._late_bitfield(message)
            elif self._check(message):
                events.append(message)
            downloading = self.state is PeerState.OPEN and not self.metadata_only  # it may have changed
        return events

    def _check_metadata_phase(self, message: Message) -> bool:
        """Before the piece count is known: only what needs no piece count gets through."""
        if self.state is PeerState.AWAITING_BITFIELD and not isinstance(message, KeepAlive | Extended):
            self.state = PeerState.OPEN
        if isinstance(message, Extended):
            if not self.extensions:
                raise PeerProtocolError("extension message without the extension protocol")
            return True
        if isinstance(message, Piece):
            raise PeerProtocolError(f"piece {message.index}+{message.begin} was never requested")
        if isinstance(message, HashRequest):
            self._queue(HashReject(*_hash_fields(message)))  # BEP 52: every request is answered
            return False
        if isinstance(message, Hashes | HashReject):
            raise PeerProtocolError(f"{_hash_name(message)} for a hash request never sent")
        if isinstance(message, Request):
            if self.fast:
                self._queue(Reject(message.index, message.begin, message.length))
            return False  # we have no piece yet; without BEP 6 a request is dropped
        if isinstance(message, Choke | Unchoke | Interested | NotInterested):
            return self._check(message)
        if isinstance(message, HaveAll | HaveNone | Reject | Suggest | AllowedFast) and not self.fast:
            raise PeerProtocolError(f"{type(message).__name__.lower()} without the fast extension")
        return False  # bitfield, have, have-all, suggest, allowed-fast, port: unverifiable now

    def _late_bitfield(self, message: Bitfield | HaveAll | HaveNone) -> list[Event]:
        """A bitfield or have-all after the first message, as the haves it stands for.

        BEP 3 and BEP 6 allow them only first, but aria2 sends one later in place of a
        batch of haves. Pieces only ever join the peer's set: a late message cannot take
        pieces away, so the layer above sees one ``Have`` per piece that is new.
        """
        if isinstance(message, HaveAll | HaveNone) and not self.fast:
            raise PeerProtocolError("have-all/have-none without the fast extension")
        if isinstance(message, HaveNone):
            return []
        bits = message.bits if isinstance(message, Bitfield) else _full_bitfield(self.num_pieces)
        self._check_bitfield(bits)
        new: list[Event] = []
        for index in range(self.num_pieces):
            if bits[index >> 3] & (0x80 >> (index & 7)) and not self.peer_has(index):
                self._set_peer_piece(index)
                new.append(Have(index))
        return new

    def _accept_handshake(self, handshake: Handshake) -> HandshakeCompleted:
        if handshake.info_hash != self.info_hash:
            raise PeerProtocolError("handshake for another torrent")
        if handshake.peer_id == self.our_peer_id:
            raise PeerProtocolError("connected to ourselves")
        self.remote_peer_id = handshake.peer_id
        self.fast = self._wants_fast and handshake.supports(FAST_EXTENSION)
        self.extensions = self._wants_extensions and handshake.supports(EXTENSION_PROTOCOL)
        self.state = PeerState.AWAITING_BITFIELD
        return HandshakeCompleted(handshake.peer_id, self.fast, self.extensions, handshake.supports(DHT_PORT))

    def _check(self, message: Message) -> bool:
        """Apply ``message`` to the state; False to keep it from the layer above."""
        first = self.state is PeerState.AWAITING_BITFIELD
        # BEP 10 sends the extension handshake right after the BitTorrent handshake, and
        # libtorrent and Transmission send it before their bitfield or have-all: it does
        # not use up the one message where those may come.
        if first and not isinstance(message, KeepAlive | Extended):
            self.state = PeerState.OPEN
        if isinstance(message, Piece):
            return self._check_piece(message)
        if isinstance(message, Request):
            return self._check_request(message)
        if isinstance(message, Have):
            self._index(message.index, "have")
            self._set_peer_piece(message.index)
        elif isinstance(message, Bitfield):
            self._accept_bitfield(message.bits)  # the first message: later ones are haves
        elif isinstance(message, HaveAll | HaveNone):
            if not self.fast:
                raise PeerProtocolError("have-all/have-none without the fast extension")
            if isinstance(message, HaveAll):
                self._accept_bitfield(_full_bitfield(self.num_pieces))
        elif isinstance(message, Choke):
            self.peer_choking = True
            if not self.fast:
                self.our_requests.clear()  # BEP 3: a choke discards every request
        elif isinstance(message, Unchoke):
            self.peer_choking = False
        elif isinstance(message, Interested):
            self.peer_interested = True
        elif isinstance(message, NotInterested):
            self.peer_interested = False
        elif isinstance(message, Cancel):
            self.peer_requests.pop((message.index, message.begin, message.length), None)
        elif isinstance(message, Reject | Suggest | AllowedFast):
            return self._check_fast(message)
        elif isinstance(message, Hashes | HashReject):
            if message.request not in self.our_hash_requests:
                raise PeerProtocolError(f"{_hash_name(message)} for a hash request never sent")
            self.our_hash_requests.discard(message.request)
        elif isinstance(message, Extended) and not self.extensions:
            raise PeerProtocolError("extension message without the extension protocol")
        return not isinstance(message, Port) or message.port != 0

    def _check_fast(self, message: Reject | Suggest | AllowedFast) -> bool:
        if not self.fast:
            raise PeerProtocolError(f"{type(message).__name__.lower()} without the fast extension")
        if isinstance(message, Reject):
            key = (message.index, message.begin, message.length)
            if key in self.our_requests:
                self.our_requests.discard(key)
                return True
            self._forget_cancelled(key)  # a reject of what we cancelled is expected; others are noise
            return False
        self._index(message.index, type(message).__name__.lower())
        if isinstance(message, AllowedFast):
            self.allowed_fast_for_us.add(message.index)
        return True

    def _check_piece(self, message: Piece) -> bool:
        key = (message.index, message.begin, len(message.block))
        if key in self.our_requests:
            # Only blocks that passed _block were requested: this one passes it too.
            self.our_requests.discard(key)
            return True
        self._block(message.index, message.begin, len(message.block), "piece")
        if key in self._cancelled:
            self._forget_cancelled(key)
            return False  # arrived after our cancel: not needed
        raise PeerProtocolError(f"piece {message.index}+{message.begin} was never requested")

    def _forget_cancelled(self, key: tuple[int, int, int]) -> None:
        count = self._cancelled.pop(key, 0)
        if count > 1:
            self._cancelled[key] = count - 1

    def _check_request(self, message: Request) -> bool:
        self._block(message.index, message.begin, message.length, "request")
        key = (message.index, message.begin, message.length)
        if key in self.peer_requests:
            return False  # a duplicate: one answer will do
        servable = self.have_piece(message.index) and (
            not self.am_choking or message.index in self.allowed_fast_for_peer
        )
        if not servable:
            if not self.fast:
                if not self.have_piece(message.index):
                    raise PeerProtocolError(f"request for piece {message.index}, which we do not have")
                return False  # BEP 3: requests while choked are dropped
            self._queue(Reject(*key))
            return False
        if len(self.peer_requests) >= self.max_peer_requests:
            raise PeerProtocolError(f"more than {self.max_peer_requests} requests waiting")
        self.peer_requests[key] = None
        return True

    def _index(self, index: int, what: str) -> None:
        if not 0 <= index < self.num_pieces:
            raise PeerProtocolError(f"{what} for piece {index}, beyond the last piece {self.num_pieces - 1}")

    def _block(self, index: int, begin: int, length: int, what: str) -> None:
        self._index(index, what)
        if not 0 < length <= BLOCK_SIZE:
            raise PeerProtocolError(f"{what} of {length} bytes; a block is at most {BLOCK_SIZE}")
        if begin + length > self.piece_size(index):
            raise PeerProtocolError(f"{what} {index}+{begin}+{length} runs past the end of the piece")

    def _check_bitfield(self, bits: bytes) -> None:
        if len(bits) != len(self.peer_pieces):
            raise PeerProtocolError(f"bitfield of {len(bits)} bytes for {self.num_pieces} pieces")
        spare = len(bits) * 8 - self.num_pieces
        if spare and bits[-1] & ((1 << spare) - 1):
            raise PeerProtocolError("bitfield with spare bits set")

    def _accept_bitfield(self, bits: bytes) -> None:
        self._check_bitfield(bits)
        self.peer_pieces[:] = bits
        self.peer_piece_count = sum(byte.bit_count() for byte in bits)
        self.peer_first_missing = 8 * (len(bits) - len(bits.lstrip(b"\xff")))
        self._find_first_missing()

    def _set_peer_piece(self, index: int) -> None:
        mask = 0x80 >> (index & 7)
        if not self.peer_pieces[index >> 3] & mask:
            self.peer_pieces[index >> 3] |= mask
            self.peer_piece_count += 1
            if index == self.peer_first_missing:
                self._find_first_missing()

    def _find_first_missing(self) -> None:
        at = self.peer_first_missing
        while at < self.num_pieces and self.peer_has(at):
            at += 1
        self.peer_first_missing = at

    def peer_has(self, index: int) -> bool:
        return bool(self.peer_pieces[index >> 3] & (0x80 >> (index & 7)))

    @property
    def peer_is_seed(self) -> bool:
        return not self.metadata_only and self.peer_piece_count == self.num_pieces

    # -- bytes out -----------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Queue ``message`` and record what it changes; raises UsageError for a bad send."""
        self._require_open()
        if type(message) is Piece:  # a seed's every block: first
            self.peer_requests.pop((message.index, message.begin, len(message.block)), None)
            self._queue(message)
            return
        if isinstance(message, Request):
            if len(self.our_requests) >= MAX_OUR_REQUESTS:
                raise UsageError("too many requests outstanding")
            self.our_requests.add((message.index, message.begin, message.length))
        elif isinstance(message, HashRequest):
            if len(self.our_hash_requests) >= MAX_OUR_HASH_REQUESTS:
                raise UsageError("too many hash requests outstanding")
            self.our_hash_requests.add(message)
        elif isinstance(message, Cancel):
            key = (message.index, message.begin, message.length)
            if key in self.our_requests:
                self.our_requests.discard(key)
                self._cancelled[key] = self._cancelled.get(key, 0) + 1
                if len(self._cancelled) > MAX_CANCELLED:
                    del self._cancelled[next(iter(self._cancelled))]
        elif isinstance(message, Choke):
            self.am_choking = True
            self._queue(message)
            self._drop_peer_requests_on_choke()
            return
        elif isinstance(message, Unchoke):
            self.am_choking = False
        elif isinstance(message, Interested):
            self.am_interested = True
        elif isinstance(message, NotInterested):
            self.am_interested = False
        elif isinstance(message, AllowedFast):
            self.allowed_fast_for_peer.add(message.index)
        self._queue(message)

    def send_requests(self, blocks: Sequence[tuple[int, int, int]]) -> None:
        """``send(Request(index, begin, length))`` for each block, in one call."""
        self._require_open()
        if len(self.our_requests) + len(blocks) > MAX_OUR_REQUESTS:
            raise UsageError("too many requests outstanding")
        self.our_requests.update(blocks)
        self._small += encode_requests(blocks)

    def _drop_peer_requests_on_choke(self) -> None:
        keep = {key: None for key in self.peer_requests if key[0] in self.allowed_fast_for_peer}
        if self.fast:
            for key in self.peer_requests:
                if key not in keep:
                    self._queue(Reject(*key))  # BEP 6: every request gets exactly one answer
        self.peer_requests = keep

    def _queue(self, message: Message) -> None:
        if type(message) is Piece:
            self._small += piece_header(message)
            self._end_small()
            self._outbox.append(message.block)
        else:
            self._small += encode(message)

    def _end_small(self) -> None:
        if self._small:
            self._outbox.append(bytes(self._small))
            self._small.clear()

    def data_to_send(self) -> bytes:
        """The bytes owed to the peer since the last call."""
        return b"".join(self.chunks_to_send())

    def chunks_to_send(self) -> list[bytes | memoryview]:
        """``data_to_send`` as the chunks it is made of, for a transport's ``writelines``."""
        self._end_small()
        chunks, self._outbox = self._outbox, []
        return chunks

    def note_sent(self, now: float) -> None:
        """The I/O layer wrote something at ``now``: the keep-alive clock restarts."""
        self._last_sent = now

    # -- time ----------------------------------------------------------------------------

    def tick(self, now: float) -> list[PeerTimedOut]:
        """Keep-alives and the idle timeout. Returns PeerTimedOut when the peer went silent."""
        self._require_open()
        if now - self._last_received >= IDLE_TIMEOUT_S:
            self.state = PeerState.CLOSED
            return [PeerTimedOut(now - self._last_received)]
        if self.state is not PeerState.AWAITING_HANDSHAKE and now - self._last_sent >= KEEPALIVE_INTERVAL_S:
            self._queue(KeepAlive())
            self._last_sent = now
        return []

    def next_deadline(self) -> float | None:
        if self.state is PeerState.CLOSED:
            return None
        return min(self._last_received + IDLE_TIMEOUT_S, self._last_sent + KEEPALIVE_INTERVAL_S)

    def close(self) -> None:
        self.state = PeerState.CLOSED

    def _require_open(self) -> None:
        if self.state is PeerState.CLOSED:
            raise UsageError("the peer connection is closed")


def _full_bitfield(num_pieces: int) -> bytes:
    bits = bytearray(b"\xff" * ((num_pieces + 7) // 8))
    spare = len(bits) * 8 - num_pieces
    if spare:
        bits[-1] &= 0xFF << spare & 0xFF
    return bytes(bits)


def _hash_fields(message: HashRequest) -> tuple[bytes, int, int, int, int]:
    return message.pieces_root, message.base_layer, message.index, message.length, message.proof_layers


def _hash_name(message: Hashes | HashReject) -> str:
    return "hashes" if isinstance(message, Hashes) else "hash reject"
