"""The uTP packet codec (BEP 29): round trips, and every malformed header refused."""

from __future__ import annotations

import contextlib
import struct

import pytest

from bitswarm.errors import UTPError
from bitswarm.wire.utp_packet import (
    HEADER_BYTES,
    Packet,
    PacketType,
    decode,
    encode_sack,
    looks_like_utp,
    sack_offsets,
    seq_less,
)


def header(kind: int = 0, version: int = 1, extension: int = 0) -> bytes:
    return struct.pack(">BBHIIIHH", (kind << 4) | version, extension, 7, 1, 2, 3, 4, 5)


@pytest.mark.parametrize("kind", list(PacketType))
def test_every_packet_type_round_trips(kind: PacketType) -> None:
    payload = b"data" if kind is PacketType.DATA else b""
    packet = Packet(kind, 0xBEEF, 0xFFFFFFFF, 12345, 1 << 20, 0xFFFF, 0, None, payload)
    assert decode(packet.encode()) == packet
    assert len(packet.encode()) == HEADER_BYTES + len(payload)


def test_a_selective_ack_round_trips_with_its_bit_order() -> None:
    sack = encode_sack([0, 9, 33])
    assert sack == bytes([0b1, 0b10, 0, 0, 0b10, 0, 0, 0])
    packet = Packet(PacketType.STATE, 1, 2, 3, 4, 5, 6, sack)
    assert decode(packet.encode()) == packet
    assert sack_offsets(sack) == [0, 9, 33]


def test_a_selective_ack_of_any_whole_number_of_bytes_is_taken() -> None:
    """BEP 29 asks for multiples of 4 bytes; libtorrent 2.0 sends 1 to 86 bytes, and
    dropping those ACKs stalled transfers from bitswarm to it."""
    packet = decode(header(kind=2, extension=1) + b"\0\x03\x01\0\x80")
    assert packet.sack == b"\x01\0\x80"
    assert sack_offsets(packet.sack) == [0, 23]


def test_an_unknown_extension_is_skipped() -> None:
    datagram = header(kind=0, extension=2) + bytes([1, 8]) + b"\0" * 8 + bytes([0, 4]) + b"\x01\0\0\0" + b"xy"
    packet = decode(datagram)
    assert packet.sack == b"\x01\0\0\0"
    assert packet.payload == b"xy"


@pytest.mark.parametrize(
    ("datagram", "complaint"),
    [
        pytest.param(b"", "shorter than a header", id="empty"),
        pytest.param(header()[:19], "shorter than a header", id="short-header"),
        pytest.param(header(version=0) + b"x", "version 0", id="version-0"),
        pytest.param(header(version=2) + b"x", "version 2", id="version-2"),
        pytest.param(header(kind=5) + b"x", "type 5", id="type-5"),
        pytest.param(header(kind=15), "type 15", id="type-15"),
        pytest.param(header(extension=1), "past the end", id="extension-header-missing"),
        pytest.param(header(extension=1) + b"\0", "past the end", id="extension-header-cut"),
        pytest.param(header(extension=1) + b"\0\x08\0\0\0\0", "runs past the end", id="sack-longer-than-datagram"),
        pytest.param(header(extension=1) + b"\0\x00x", "0 bytes", id="sack-empty"),
        pytest.param(header(extension=1) + b"\x01\x04\0\0\0\0\0\x04\0\0\0\0x", "two selective", id="two-sacks"),
        pytest.param(header(extension=9) + b"\x09\0" * 5 + b"x", "more than 4", id="endless-chain"),
        pytest.param(header(kind=2) + b"x", "STATE packet with a payload", id="state-with-payload"),
        pytest.param(header(kind=4) + b"x", "SYN packet with a payload", id="syn-with-payload"),
        pytest.param(header(kind=0), "without a payload", id="data-without-payload"),
    ],
)
def test_a_malformed_datagram_is_a_utp_error(datagram: bytes, complaint: str) -> None:
    with pytest.raises(UTPError, match=complaint):
        decode(datagram)


def test_a_datagram_cut_anywhere_never_raises_anything_but_utp_error() -> None:
    full = Packet(PacketType.DATA, 1, 2, 3, 4, 5, 6, encode_sack([3, 40]), b"payload").encode()
    for end in range(len(full)):
        with contextlib.suppress(UTPError):
            decode(full[:end])


def test_utp_and_krpc_datagrams_are_told_apart_by_their_first_byte() -> None:
    assert all(looks_like_utp(bytes([first]) + b"\0" * 19) for first in (0x01, 0x11, 0x21, 0x31, 0x41))
    assert not looks_like_utp(b"d1:ad2:id20:")
    assert not looks_like_utp(b"")
    assert not looks_like_utp(b"\x51")


def test_sequence_numbers_compare_across_the_wrap() -> None:
    assert seq_less(0xFFFF, 0)
    assert seq_less(1, 2)
    assert not seq_less(2, 1)
    assert not seq_less(5, 5)
    assert not seq_less(0, 0xFFFF)
