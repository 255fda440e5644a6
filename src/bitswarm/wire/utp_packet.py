"""The uTP packet format (BEP 29, header version 1): a strict codec, sans-IO.

A packet is a 20-byte header, a chain of extensions and a payload::

    type(4 bits) version(4 bits) | extension | connection_id(16)
    timestamp_microseconds(32) | timestamp_difference_microseconds(32) | wnd_size(32)
    seq_nr(16) | ack_nr(16) | extensions... | payload

Extension 1 is the selective ACK: a bitmask whose bit ``i`` (least significant bit of
each byte first) acknowledges ``ack_nr + 2 + i``. Other extension types are skipped, as
BEP 29 asks of a receiver that does not know them. Decoding is strict: a datagram that
breaks the format raises ``UTPError`` and the caller drops that datagram only.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from bitswarm.errors import UTPError

VERSION = 1
HEADER_BYTES = 20
_HEADER = struct.Struct(">BBHIIIHH")
EXTENSION_SACK = 1
# BEP 29 says the SACK bitmask is a multiple of 32 bits, but libtorrent 2.0 sends any
# whole number of bytes (seen: 1 to 86), so only an empty one is refused; its length is
# one byte, so it is at most 255 bytes (2040 packets) either way.
MAX_SACK_BYTES = 255
# An honest packet carries one or two extensions; a long chain is only work for us.
MAX_EXTENSIONS = 4
# Largest datagram we decode: UDP's own limit; a uTP packet is far smaller in practice.
MAX_DATAGRAM_BYTES = 65507
SEQ_MASK = 0xFFFF
U32_MASK = 0xFFFFFFFF


class PacketType(enum.IntEnum):
    DATA = 0
    FIN = 1
    STATE = 2
    RESET = 3
    SYN = 4


# The first byte of every packet we accept: a datagram starting with one of these is
# uTP, which is how a UDP port shared with the DHT (whose KRPC starts with b"d") tells them apart.
FIRST_BYTES = frozenset((kind << 4) | VERSION for kind in PacketType)


@dataclass(frozen=True, slots=True)
class Packet:
    """One uTP packet; ``sack`` is the selective-ACK bitmask (None: no such extension)."""

    type: PacketType
    connection_id: int
    timestamp_us: int
    timestamp_difference_us: int
    wnd_size: int
    seq_nr: int
    ack_nr: int
    sack: bytes | None = None
    payload: bytes = b""

    def encode(self) -> bytes:
        """The packet as bytes on the wire."""
        first_extension = EXTENSION_SACK if self.sack is not None else 0
        header = _HEADER.pack(
            (self.type << 4) | VERSION,
            first_extension,
            self.connection_id,
            self.timestamp_us,
            self.timestamp_difference_us,
            self.wnd_size,
            self.seq_nr,
            self.ack_nr,
        )
        if self.sack is None:
            return header + self.payload
        return b"".join((header, bytes((0, len(self.sack))), self.sack, self.payload))


def decode(datagram: bytes) -> Packet:
    """Parse one datagram; raises ``UTPError`` for anything BEP 29 does not allow
    (short header, version other than 1, unknown type, extension chain running past the
    end, an empty SACK or two of them, more than ``MAX_EXTENSIONS`` extensions, a
    payload on a packet type that carries none)."""
    if len(datagram) < HEADER_BYTES:
        raise UTPError(f"datagram of {len(datagram)} bytes, shorter than a header")
    if len(datagram) > MAX_DATAGRAM_BYTES:
        raise UTPError("datagram too large")
    first, extension, connection_id, timestamp, difference, wnd_size, seq_nr, ack_nr = _HEADER.unpack_from(datagram)
    if first & 0x0F != VERSION:
        raise UTPError(f"version {first & 0x0F}, expected {VERSION}")
    try:
        kind = PacketType(first >> 4)
    except ValueError:
        raise UTPError(f"packet type {first >> 4} unknown") from None
    offset = HEADER_BYTES
    sack: bytes | None = None
    count = 0
    while extension:
        count += 1
        if count > MAX_EXTENSIONS:
            raise UTPError(f"more than {MAX_EXTENSIONS} extensions")
        if offset + 2 > len(datagram):
            raise UTPError(f"extension header past the end at byte {offset}")
        next_extension, length = datagram[offset], datagram[offset + 1]
        offset += 2
        if offset + length > len(datagram):
            raise UTPError(f"extension {extension} of {length} bytes runs past the end")
        if extension == EXTENSION_SACK:
            if sack is not None:
                raise UTPError("two selective ACKs in one packet")
            if length == 0:
                raise UTPError("selective ACK of 0 bytes")
            sack = bytes(datagram[offset : offset + length])
        offset += length
        extension = next_extension
    payload = bytes(datagram[offset:])
    if payload and kind is not PacketType.DATA:
        raise UTPError(f"{kind.name} packet with a payload")
    if not payload and kind is PacketType.DATA:
        raise UTPError("DATA packet without a payload")
    return Packet(kind, connection_id, timestamp, difference, wnd_size, seq_nr, ack_nr, sack, payload)


def looks_like_utp(datagram: bytes) -> bool:
    """Is this datagram meant for uTP rather than the DHT? (The first byte decides.)"""
    return bool(datagram) and datagram[0] in FIRST_BYTES


def sack_offsets(sack: bytes) -> list[int]:
    """The offsets ``i`` whose bit is set: each acknowledges ``ack_nr + 2 + i``."""
    found: list[int] = []
    for index, byte in enumerate(sack):
        if byte:
            found.extend(index * 8 + bit for bit in range(8) if byte >> bit & 1)
    return found


def encode_sack(offsets: list[int]) -> bytes:
    """A bitmask (padded to a multiple of 4 bytes) with ``offsets`` set; empty for none."""
    if not offsets:
        return b""
    size = (max(offsets) // 32 + 1) * 4
    mask = bytearray(size)
    for offset in offsets:
        mask[offset // 8] |= 1 << (offset % 8)
    return bytes(mask)


def seq_less(a: int, b: int) -> bool:
    """Is sequence number ``a`` before ``b`` (16-bit wrapping)?"""
    return a != b and (b - a) & SEQ_MASK < 0x8000
