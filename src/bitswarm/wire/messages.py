"""Peer wire messages (BEP 3, BEP 6 fast extension, BEP 10 extension protocol, BEP 52
hash messages): the codec.

A message on the wire is a 4-byte big-endian length, then (unless it is a keep-alive)
a 1-byte id and its fields. ``FrameDecoder`` takes bytes as they arrive, in any split,
and returns whole messages; it checks each length against a limit before buffering it,
so a peer announcing a 4 GB frame costs us nothing but the connection. Field values
are checked against the torrent by the connection core (peer.py), which knows it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from bitswarm.errors import PeerProtocolError

PROTOCOL = b"BitTorrent protocol"
HANDSHAKE_BYTES = 1 + len(PROTOCOL) + 8 + 20 + 20
BLOCK_SIZE = 16 * 1024
# Reserved-bit flags (byte index, mask).
EXTENSION_PROTOCOL = (5, 0x10)  # BEP 10
FAST_EXTENSION = (7, 0x04)  # BEP 6
DHT_PORT = (7, 0x01)  # BEP 5

CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL, PORT = range(10)
SUGGEST, HAVE_ALL, HAVE_NONE, REJECT, ALLOWED_FAST = 0x0D, 0x0E, 0x0F, 0x10, 0x11
EXTENDED = 20
HASH_REQUEST, HASHES, HASH_REJECT = 21, 22, 23
HASH_SIZE = 32
# BEP 52 hash messages: a request names up to this many hashes of one layer (BEP 52 says
# "should not" exceed 512; libtorrent accepts up to 8192, a piece layer 128 MiB pieces wide).
MAX_HASH_COUNT = 8192
# Proof layers of a request: a tree over 2^63 blocks is 63 layers high, more than any file.
MAX_PROOF_LAYERS = 63


@dataclass(frozen=True, slots=True)
class Handshake:
    info_hash: bytes
    peer_id: bytes
    reserved: bytes = bytes(8)

    def supports(self, flag: tuple[int, int]) -> bool:
        byte, mask = flag
        return bool(self.reserved[byte] & mask)

    def encode(self) -> bytes:
        return bytes([len(PROTOCOL)]) + PROTOCOL + self.reserved + self.info_hash + self.peer_id

    @staticmethod
    def decode(data: bytes) -> Handshake:
        """The 68 bytes a connection starts with; raises ``PeerProtocolError`` otherwise."""
        if len(data) != HANDSHAKE_BYTES or data[0] != len(PROTOCOL) or data[1:20] != PROTOCOL:
            raise PeerProtocolError("not a BitTorrent handshake")
        return Handshake(info_hash=data[28:48], peer_id=data[48:68], reserved=data[20:28])


def reserved_bits(*flags: tuple[int, int]) -> bytes:
    reserved = bytearray(8)
    for byte, mask in flags:
        reserved[byte] |= mask
    return bytes(reserved)


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class Choke:
    pass


@dataclass(frozen=True, slots=True)
class Unchoke:
    pass


@dataclass(frozen=True, slots=True)
class Interested:
    pass


@dataclass(frozen=True, slots=True)
class NotInterested:
    pass


@dataclass(frozen=True, slots=True)
class Have:
    index: int


@dataclass(frozen=True, slots=True)
class Bitfield:
    bits: bytes


@dataclass(frozen=True, slots=True)
class Request:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Piece:
    index: int
    begin: int
    # A received block is a view of the read it came in: kept longer, it keeps the whole read.
    block: bytes | memoryview


@dataclass(frozen=True, slots=True)
class Cancel:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Port:
    port: int


@dataclass(frozen=True, slots=True)
class Suggest:
    index: int


@dataclass(frozen=True, slots=True)
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class AllowedFast:
    index: int


@dataclass(frozen=True, slots=True)
class Extended:
    extension_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class HashRequest:
    """BEP 52: ``length`` hashes of ``base_layer`` (0: the blocks) of a file's tree from
    ``index``, with the uncle hashes of ``proof_layers`` layers above them."""

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int


@dataclass(frozen=True, slots=True)
class Hashes:
    """BEP 52: the answer to a ``HashRequest``: its fields, then the requested hashes and
    the uncle hashes, lowest layer first."""

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int
    hashes: bytes

    @property
    def request(self) -> HashRequest:
        return HashRequest(self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers)


@dataclass(frozen=True, slots=True)
class HashReject:
    """BEP 52: the peer will not answer the ``HashRequest`` with these fields."""

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int

    @property
    def request(self) -> HashRequest:
        return HashRequest(self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers)


def uncle_count(length: int, proof_layers: int) -> int:
    """Uncle hashes in the answer to a request for ``length`` (a power of two) hashes: BEP 52
    leaves out the proof layers the requested hashes make up themselves."""
    return max(0, proof_layers + 1 - (length.bit_length() - 1))


Message = (
    KeepAlive
    | Choke
    | Unchoke
    | Interested
    | NotInterested
    | Have
    | Bitfield
    | Request
    | Piece
    | Cancel
    | Port
    | Suggest
    | HaveAll
    | HaveNone
    | Reject
    | AllowedFast
    | Extended
    | HashRequest
    | Hashes
    | HashReject
)

_INDEX = struct.Struct(">I")
_PAIR = struct.Struct(">II")
_TRIPLE = struct.Struct(">III")
_PIECE_HEAD = struct.Struct(">IBII")  # length, id, index, begin
_REQUEST_FRAME = struct.Struct(">IBIII")  # length, id, index, begin, block length
_HASH_FIELDS = struct.Struct(">32sIIII")
_HASH_BODY = 1 + _HASH_FIELDS.size
_SIMPLE: dict[int, Message] = {
    CHOKE: Choke(),
    UNCHOKE: Unchoke(),
    INTERESTED: Interested(),
    NOT_INTERESTED: NotInterested(),
    HAVE_ALL: HaveAll(),
    HAVE_NONE: HaveNone(),
}
_SIMPLE_IDS = {type(message): message_id for message_id, message in _SIMPLE.items()}
_INDEX_MESSAGES: dict[int, type[Have] | type[Suggest] | type[AllowedFast]] = {
    HAVE: Have,
    SUGGEST: Suggest,
    ALLOWED_FAST: AllowedFast,
}
_INDEX_IDS = {kind: message_id for message_id, kind in _INDEX_MESSAGES.items()}
_TRIPLE_MESSAGES: dict[int, type[Request] | type[Cancel] | type[Reject]] = {
    REQUEST: Request,
    CANCEL: Cancel,
    REJECT: Reject,
}
_TRIPLE_IDS = {kind: message_id for message_id, kind in _TRIPLE_MESSAGES.items()}


def piece_header(message: Piece) -> bytes:
    """The frame of a piece message up to its block (which can then be sent without a copy)."""
    return _PIECE_HEAD.pack(9 + len(message.block), PIECE, message.index, message.begin)


def encode_requests(blocks: Iterable[tuple[int, int, int]]) -> bytes:
    """The framed request messages for ``(index, begin, length)`` blocks, one after another
    (``encode(Request(...))`` of each: a download sends one per block it receives)."""
    pack = _REQUEST_FRAME.pack
    return b"".join([pack(13, REQUEST, index, begin, length) for index, begin, length in blocks])


def encode(message: Message) -> bytes:
    """The framed bytes of one message."""
    kind = type(message)
    if kind in _SIMPLE_IDS:
        return b"\x00\x00\x00\x01" + bytes([_SIMPLE_IDS[kind]])
    if isinstance(message, Piece):
        return piece_header(message) + message.block
    if isinstance(message, Request | Cancel | Reject):
        return (
            b"\x00\x00\x00\x0d"
            + bytes([_TRIPLE_IDS[type(message)]])
            + _TRIPLE.pack(message.index, message.begin, message.length)
        )
    if isinstance(message, Have | Suggest | AllowedFast):
        return b"\x00\x00\x00\x05" + bytes([_INDEX_IDS[type(message)]]) + _INDEX.pack(message.index)
    if isinstance(message, Bitfield):
        return _INDEX.pack(1 + len(message.bits)) + bytes([BITFIELD]) + message.bits
    if isinstance(message, Extended):
        return _INDEX.pack(2 + len(message.payload)) + bytes([EXTENDED, message.extension_id]) + message.payload
    if isinstance(message, Port):
        return b"\x00\x00\x00\x03" + bytes([PORT]) + message.port.to_bytes(2, "big")
    if isinstance(message, HashRequest | HashReject | Hashes):
        fields = _HASH_FIELDS.pack(
            message.pieces_root, message.base_layer, message.index, message.length, message.proof_layers
        )
        if isinstance(message, Hashes):
            return _INDEX.pack(_HASH_BODY + len(message.hashes)) + bytes([HASHES]) + fields + message.hashes
        message_id = HASH_REQUEST if isinstance(message, HashRequest) else HASH_REJECT
        return _INDEX.pack(_HASH_BODY) + bytes([message_id]) + fields
    return b"\x00\x00\x00\x00"  # KeepAlive


def decode_body(body: bytes | memoryview) -> Message:
    """One message from its id and fields (the frame without its length prefix)."""
    if not body:
        return KeepAlive()
    message_id = body[0]
    size = len(body)
    if message_id in _SIMPLE:
        if size != 1:
            raise PeerProtocolError(f"message {message_id} has {size - 1} bytes of payload, expected none")
        return _SIMPLE[message_id]
    if message_id == PIECE:
        if size < 9:
            raise PeerProtocolError("piece message too short")
        index, begin = _PAIR.unpack_from(body, 1)
        return Piece(index, begin, bytes(body[9:]))
    if message_id in _TRIPLE_MESSAGES:
        if size != 13:
            raise PeerProtocolError(f"message {message_id} has {size} bytes, expected 13")
        return _TRIPLE_MESSAGES[message_id](*_TRIPLE.unpack_from(body, 1))
    if message_id in _INDEX_MESSAGES:
        if size != 5:
            raise PeerProtocolError(f"message {message_id} has {size} bytes, expected 5")
        return _INDEX_MESSAGES[message_id](_INDEX.unpack_from(body, 1)[0])
    if message_id == BITFIELD:
        return Bitfield(bytes(body[1:]))
    if message_id == EXTENDED:
        if size < 2:
            raise PeerProtocolError("extended message without an extension id")
        return Extended(body[1], bytes(body[2:]))
    if message_id == PORT:
        if size != 3:
            raise PeerProtocolError(f"port message has {size} bytes, expected 3")
        return Port(int.from_bytes(body[1:3], "big"))
    if message_id in (HASH_REQUEST, HASHES, HASH_REJECT):
        return _decode_hash_message(body)
    raise PeerProtocolError(f"unknown message id {message_id}")


def _decode_hash_message(body: bytes | memoryview) -> HashRequest | Hashes | HashReject:
    """BEP 52 messages 21 to 23; the fields are checked against the limits here, against
    the torrent's files by the layer that knows them."""
    message_id, size = body[0], len(body)
    if size < _HASH_BODY or (message_id != HASHES and size != _HASH_BODY):
        raise PeerProtocolError(f"hash message {message_id} has {size} bytes, expected {_HASH_BODY}")
    root, base_layer, index, length, proof_layers = _HASH_FIELDS.unpack_from(body, 1)
    if not 0 < length <= MAX_HASH_COUNT or length & (length - 1):
        raise PeerProtocolError(f"hash message for {length} hashes; a power of two up to {MAX_HASH_COUNT}")
    if index % length:
        raise PeerProtocolError(f"hash message at index {index}, not a multiple of its length {length}")
    if proof_layers > MAX_PROOF_LAYERS or base_layer > MAX_PROOF_LAYERS:
        raise PeerProtocolError(f"hash message with {base_layer} base and {proof_layers} proof layers")
    if message_id == HASH_REQUEST:
        return HashRequest(root, base_layer, index, length, proof_layers)
    if message_id == HASH_REJECT:
        return HashReject(root, base_layer, index, length, proof_layers)
    hashes = bytes(body[_HASH_BODY:])
    expected = length + uncle_count(length, proof_layers)
    if len(hashes) != expected * HASH_SIZE:
        raise PeerProtocolError(f"hashes message with {len(hashes)} bytes of hashes, expected {expected} hashes")
    return Hashes(root, base_layer, index, length, proof_layers, hashes)


class FrameDecoder:
    """Splits a byte stream into messages, buffering at most one frame of at most ``max_frame_bytes``."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes | memoryview, *, lend: bool = False) -> list[Message]:
        """Messages completed by ``data``; raises ``PeerProtocolError`` for an oversized frame.

        Blocks of whole frames are views of ``data`` when it is ``bytes`` or ``lend`` says
        the caller keeps it unchanged until it has handled them; else copies."""
        messages: list[Message] = []
        buffer = self._buffer
        at, end = 0, len(data)
        # A block is handed on as a view of the read, not a copy: the layer above copies
        # it once, into its piece.
        zero_copy = lend or type(data) is bytes
        with memoryview(data) as view:
            if buffer:
                # Finish the pending frame with just the bytes it lacks; whole frames after
                # it are decoded from ``data`` itself, so a block is copied once (into its
                # message) unless it straddles two reads.
                if len(buffer) < 4:
                    at = min(4 - len(buffer), end)
                    buffer += view[:at]
                    if len(buffer) < 4:
                        return messages
                length = self._frame_length(buffer, 0)
                taken = min(4 + length - len(buffer), end - at)
                buffer += view[at : at + taken]
                at += taken
                if len(buffer) < 4 + length:
                    return messages
                with memoryview(buffer) as pending:
                    messages.append(decode_body(pending[4:]))
                del buffer[:]
            limit = self.max_frame_bytes
            while end - at >= 4:
                if end - at >= _PIECE_HEAD.size:
                    # Nearly every frame of a download is a block: its fields in one unpack.
                    length, message_id, index, begin = _PIECE_HEAD.unpack_from(view, at)
                    if message_id == PIECE and 9 <= length <= limit:
                        if end - at - 4 < length:
                            break
                        block = view[at + 13 : at + 4 + length]
                        messages.append(Piece(index, begin, block if zero_copy else bytes(block)))
                        at += 4 + length
                        continue
                    # A seed's frames: requests, read whole the same way.
                    if message_id == REQUEST and length == 13 and end - at >= 17:
                        messages.append(Request(index, begin, _INDEX.unpack_from(view, at + 13)[0]))
                        at += 17
                        continue
                length = self._frame_length(view, at)
                if end - at - 4 < length:
                    break
                messages.append(decode_body(view[at + 4 : at + 4 + length]))
                at += 4 + length
            if at < end:
                buffer += view[at:]
        return messages

    def _frame_length(self, data: bytes | bytearray | memoryview, at: int) -> int:
        length = int.from_bytes(data[at : at + 4], "big")
        if length > self.max_frame_bytes:
            raise PeerProtocolError(f"frame of {length} bytes is over the {self.max_frame_bytes} allowed")
        return length
