"""Peer wire messages (BEP 3, BEP 6 fast extension, BEP 10 extension protocol): the codec.

A message on the wire is a 4-byte big-endian length, then (unless it is a keep-alive)
a 1-byte id and its fields. ``FrameDecoder`` takes bytes as they arrive, in any split,
and returns whole messages; it checks each length against a limit before buffering it,
so a peer announcing a 4 GB frame costs us nothing but the connection. Field values
are checked against the torrent by the connection core (peer.py), which knows it.
"""

from __future__ import annotations

import struct
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
    block: bytes


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
)

_INDEX = struct.Struct(">I")
_PAIR = struct.Struct(">II")
_TRIPLE = struct.Struct(">III")
_PIECE_HEAD = struct.Struct(">IBII")
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


def encode(message: Message) -> bytes:
    """The framed bytes of one message."""
    kind = type(message)
    if kind in _SIMPLE_IDS:
        return b"\x00\x00\x00\x01" + bytes([_SIMPLE_IDS[kind]])
    if isinstance(message, Piece):
        return _PIECE_HEAD.pack(9 + len(message.block), PIECE, message.index, message.begin) + message.block
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
    raise PeerProtocolError(f"unknown message id {message_id}")


class FrameDecoder:
    """Splits a byte stream into messages, buffering at most one frame of at most ``max_frame_bytes``."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Messages completed by ``data``; raises ``PeerProtocolError`` for an oversized frame."""
        messages: list[Message] = []
        buffer = self._buffer
        at, end = 0, len(data)
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
            while end - at >= 4:
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
