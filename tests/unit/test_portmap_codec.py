"""NAT-PMP (RFC 6886) and PCP (RFC 6887) messages, byte for byte, and hostile answers."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswarm.errors import PortMappingError
from bitswarm.portmap.pcp import (
    MAX_DATAGRAM_BYTES,
    Mapped,
    MappingProtocol,
    PmpAddress,
    UnsupportedVersion,
    decode_answer,
    encode_pcp_map_request,
    encode_pmp_address_request,
    encode_pmp_map_request,
)

NONCE = bytes(range(12))
MAPPED_V4 = bytes(10) + b"\xff\xff"  # the ::ffff:0:0/96 prefix of an IPv4-mapped address


def pcp_answer(
    *, result: int = 0, lifetime: int = 7200, protocol: int = 6, internal: int = 6881, external: int = 6881,
    address: bytes = bytes((11, 77, 0, 1)), nonce: bytes = NONCE, options: bytes = b"",
) -> bytes:  # fmt: skip
    header = struct.pack("!BBBBII12x", 2, 0x81, 0, result, lifetime, 1234)
    body = nonce + struct.pack("!B3xHH", protocol, internal, external) + MAPPED_V4 + address
    return header + body + options


def test_the_nat_pmp_requests_are_the_rfc_layouts() -> None:
    assert encode_pmp_address_request() == b"\x00\x00"
    # Version 0, opcode 2 (TCP), reserved, internal 6881, suggested 6882, lifetime 7200.
    request = encode_pmp_map_request(MappingProtocol.TCP, 6881, 6882, 7200)
    assert request == bytes.fromhex("0002 0000 1ae1 1ae2 00001c20")
    assert encode_pmp_map_request(MappingProtocol.UDP, 6881, 0, 0)[:2] == b"\x00\x01"


def test_a_pcp_map_request_carries_our_address_as_ipv4_mapped_and_the_nonce() -> None:
    request = encode_pcp_map_request(NONCE, MappingProtocol.UDP, 6881, 6881, 7200, "192.168.77.2")
    assert len(request) == 60
    assert request[:8] == bytes.fromhex("02 01 0000 00001c20")
    assert request[8:24] == MAPPED_V4 + bytes((192, 168, 77, 2))
    assert request[24:36] == NONCE
    assert request[36] == 17  # IP protocol number of UDP
    assert request[40:44] == bytes.fromhex("1ae1 1ae1")
    assert request[44:60] == MAPPED_V4 + bytes(4)  # no external address suggested


def test_nat_pmp_answers_decode() -> None:
    address = struct.pack("!BBHI", 0, 128, 0, 99) + bytes((11, 77, 0, 1))
    assert decode_answer(address) == PmpAddress(99, "11.77.0.1")
    mapping = struct.pack("!BBHIHHI", 0, 130, 0, 99, 6881, 40000, 3600)
    assert decode_answer(mapping) == Mapped(MappingProtocol.TCP, 6881, 40000, 3600, 99)


def test_a_pcp_answer_decodes_with_its_external_address_and_nonce_and_options_skipped() -> None:
    option = struct.pack("!BBH", 0x80, 0, 5) + b"abcde" + bytes(3)  # padded to a word
    answer = decode_answer(pcp_answer(external=40001, options=option))
    assert answer == Mapped(MappingProtocol.TCP, 6881, 40001, 7200, 1234, "11.77.0.1", NONCE)


def test_refusals_carry_their_result_code() -> None:
    with pytest.raises(PortMappingError, match="not authorized") as refused:
        decode_answer(pcp_answer(result=2))
    assert refused.value.code == 2
    with pytest.raises(PortMappingError, match="out of resources") as pmp_refused:
        decode_answer(struct.pack("!BBHIHHI", 0, 130, 4, 99, 6881, 0, 0))
    assert pmp_refused.value.code == 4


def test_a_nat_pmp_gateway_answering_a_pcp_request_says_unsupported_version_zero() -> None:
    # RFC 6887 section 9: a NAT-PMP-only server answers in version 0, result 1.
    with pytest.raises(UnsupportedVersion) as error:
        decode_answer(struct.pack("!BBHI", 0, 129, 1, 5))
    assert error.value.version == 0


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "empty"),
        (b"\x00\x80\x00", "too short"),
        (struct.pack("!BBHI", 0, 2, 0, 0) + bytes(8), "request, not an answer"),
        (struct.pack("!BBHI", 0, 128, 0, 0) + bytes(5), "not 12"),
        (struct.pack("!BBHIHHI", 0, 130, 0, 1, 6881, 0, 60), "external port 0"),
        (pcp_answer()[:58], "PCP answer of 58 bytes"),
        (pcp_answer()[:56], "PCP MAP answer of 56 bytes"),
        (pcp_answer(protocol=99), "IP protocol 99"),
        (pcp_answer(options=struct.pack("!BBH", 1, 0, 400)), "option longer"),
        (bytes([2]) + bytes(MAX_DATAGRAM_BYTES), "more than 1100"),
        (bytes([7]) + bytes(23), "unknown version 7"),
    ],
)
def test_malformed_answers_are_protocol_errors(datagram: bytes, reason: str) -> None:
    with pytest.raises(PortMappingError, match=reason) as error:
        decode_answer(datagram)
    assert error.value.code is None  # malformed, not a refusal: the client skips it


def test_requests_refuse_values_that_do_not_fit() -> None:
    with pytest.raises(PortMappingError, match="not a port"):
        encode_pmp_map_request(MappingProtocol.TCP, 0, 0, 60)
    with pytest.raises(PortMappingError, match="32 bits"):
        encode_pmp_map_request(MappingProtocol.TCP, 1, 1, 1 << 32)
    with pytest.raises(PortMappingError, match="nonce"):
        encode_pcp_map_request(b"short", MappingProtocol.TCP, 1, 1, 60, "10.0.0.2")
    with pytest.raises(PortMappingError, match="not an IP address"):
        encode_pcp_map_request(NONCE, MappingProtocol.TCP, 1, 1, 60, "router.lan")


@given(st.binary(max_size=1200))
def test_the_decoder_only_ever_raises_port_mapping_error(datagram: bytes) -> None:
    with contextlib.suppress(PortMappingError):
        decode_answer(datagram)


@given(st.binary(min_size=24, max_size=200).map(lambda tail: bytes([2, 0x81]) + tail))
def test_pcp_shaped_garbage_only_ever_raises_port_mapping_error(datagram: bytes) -> None:
    with contextlib.suppress(PortMappingError):
        decode_answer(datagram)
