"""NAT-PMP (RFC 6886) and PCP (RFC 6887) messages: encode the requests, decode the answers.

Both protocols are one UDP datagram each way between a host and its default gateway's
port 5351, every field big-endian.

NAT-PMP (version 0, RFC 6886 section 3): an external-address request is 2 bytes and its
answer 12; a mapping request is 12 bytes (opcode 1 for UDP, 2 for TCP; internal port,
suggested external port, requested lifetime; a lifetime of 0 deletes) and its answer 16
(the port granted and the lifetime granted). Answers carry opcode + 128 and a 16-bit
result code.

PCP (version 2, RFC 6887 sections 7 and 11): a MAP request is a 24-byte header (opcode 1,
requested lifetime, our own address as the gateway sees it, as an IPv4-mapped IPv6
address) and 36 bytes of MAP data (a 96-bit nonce that ties answers to requests, the IP
protocol number, internal port, suggested external port and address). The answer has the
same MAP data with the port and address assigned, after a header with an 8-bit result
code and the lifetime granted. Options may follow; we send none and skip any that come
back, within the datagram's bounds.

A gateway that speaks only NAT-PMP answers a PCP request with a version-0 "unsupported
version" answer (RFC 6887 section 9), which ``decode_answer`` reports as
``UnsupportedVersion`` so the caller falls back to NAT-PMP.

Answers are untrusted input: every length is checked before a field is read, a datagram
longer than PCP's 1100-byte maximum is refused, and a PCP answer whose nonce or protocol
is not the request's is ignored by the caller (``PcpMapped.nonce``).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import Enum

from bitswarm.errors import PortMappingError

SERVER_PORT = 5351
PMP_VERSION = 0
PCP_VERSION = 2
# RFC 6887 section 7: a PCP message is at most 1100 bytes.
MAX_DATAGRAM_BYTES = 1100
PCP_NONCE_BYTES = 12
# RFC 6886 section 3.3: the lifetime to ask for is 7200 s (two hours).
DEFAULT_LIFETIME_S = 7200

_PMP_ADDRESS_OPCODE = 0
_PMP_ANSWER_BIT = 128
_PMP_ADDRESS_ANSWER = struct.Struct("!BBHI4s")  # version, opcode, result, epoch, address
_PMP_MAP_REQUEST = struct.Struct("!BBHHHI")  # version, opcode, reserved, internal, external, lifetime
_PMP_MAP_ANSWER = struct.Struct("!BBHIHHI")  # version, opcode, result, epoch, internal, external, lifetime
_PMP_SHORT_ANSWER = struct.Struct("!BBHI")  # an error answer may stop after the epoch

_PCP_MAP_OPCODE = 1
_PCP_ANSWER_BIT = 0x80
_PCP_REQUEST_HEADER = struct.Struct("!BBHI16s")  # version, opcode, reserved, lifetime, client address
_PCP_ANSWER_HEADER = struct.Struct("!BBBBII12s")  # version, R|opcode, reserved, result, lifetime, epoch, reserved
_PCP_MAP = struct.Struct("!12sB3sHH16s")  # nonce, protocol, reserved, internal, external, external address
_PCP_OPTION_HEADER = struct.Struct("!BBH")  # code, reserved, length

# RFC 6886 section 3.5 and RFC 6887 section 7.4: what each result code means.
PMP_RESULTS = {
    1: "unsupported version",
    2: "not authorized or refused",
    3: "network failure",
    4: "out of resources",
    5: "unsupported opcode",
}
PCP_RESULTS = {
    1: "unsupported version",
    2: "not authorized",
    3: "malformed request",
    4: "unsupported opcode",
    5: "unsupported option",
    6: "malformed option",
    7: "network failure",
    8: "no resources",
    9: "unsupported protocol",
    10: "user exceeded quota",
    11: "cannot provide external",
    12: "address mismatch",
    13: "excessive remote peers",
}
UNSUPPORTED_VERSION = 1


class MappingProtocol(Enum):
    """The transport of a mapping, valued by its IP protocol number (PCP's field)."""

    TCP = 6
    UDP = 17

    @property
    def pmp_opcode(self) -> int:
        # RFC 6886 section 3.3: 1 maps UDP, 2 maps TCP.
        return 2 if self is MappingProtocol.TCP else 1


class UnsupportedVersion(PortMappingError):
    """The gateway does not speak the version we sent; ``version`` is the one it answered in."""

    def __init__(self, version: int) -> None:
        super().__init__(f"port mapping: the gateway answered in version {version}", UNSUPPORTED_VERSION)
        self.version = version


@dataclass(frozen=True, slots=True)
class PmpAddress:
    """A NAT-PMP external-address answer."""

    epoch_s: int
    external_address: str


@dataclass(frozen=True, slots=True)
class Mapped:
    """A granted (or, with lifetime 0, deleted) mapping, from NAT-PMP or PCP.

    ``external_address`` is None for NAT-PMP, whose mapping answer does not carry it;
    ``nonce`` is PCP's (empty for NAT-PMP).
    """

    protocol: MappingProtocol
    internal_port: int
    external_port: int
    lifetime_s: int
    epoch_s: int
    external_address: str | None = None
    nonce: bytes = b""


def _check_port(port: int, what: str, *, allow_zero: bool) -> None:
    if not (0 if allow_zero else 1) <= port <= 0xFFFF:
        raise PortMappingError(f"port mapping: {what} {port} is not a port")


def _check_lifetime(lifetime_s: int) -> None:
    if not 0 <= lifetime_s <= 0xFFFFFFFF:
        raise PortMappingError(f"port mapping: lifetime {lifetime_s} s does not fit 32 bits")


def encode_pmp_address_request() -> bytes:
    """The 2-byte NAT-PMP request for the gateway's external address (RFC 6886 section 3.2)."""
    return bytes((PMP_VERSION, _PMP_ADDRESS_OPCODE))


def encode_pmp_map_request(protocol: MappingProtocol, internal_port: int, external_port: int, lifetime_s: int) -> bytes:
    """A NAT-PMP mapping request (RFC 6886 section 3.3); lifetime 0 and external port 0
    delete the mapping of ``internal_port``. Raises PortMappingError for values that do
    not fit their fields."""
    _check_port(internal_port, "internal port", allow_zero=False)
    _check_port(external_port, "external port", allow_zero=True)
    _check_lifetime(lifetime_s)
    return _PMP_MAP_REQUEST.pack(PMP_VERSION, protocol.pmp_opcode, 0, internal_port, external_port, lifetime_s)


def _ipv6_form(address: str) -> bytes:
    """An address as PCP's 128-bit field: IPv4 as an IPv4-mapped IPv6 address (RFC 6887 section 5)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise PortMappingError(f"port mapping: {address!r} is not an IP address") from None
    if isinstance(parsed, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{parsed}").packed
    return parsed.packed


def _from_ipv6_form(packed: bytes) -> str:
    address = ipaddress.IPv6Address(packed)
    return str(address.ipv4_mapped) if address.ipv4_mapped is not None else str(address)


def encode_pcp_map_request(
    nonce: bytes,
    protocol: MappingProtocol,
    internal_port: int,
    external_port: int,
    lifetime_s: int,
    client_address: str,
    external_address: str | None = None,
) -> bytes:
    """A PCP MAP request (RFC 6887 sections 7.1 and 11.1) with no options.

    ``client_address`` is our own address on the link to the gateway (the source address
    of the datagram: the gateway refuses a mismatch); ``external_port`` and
    ``external_address`` are suggestions (0 and None: any). Lifetime 0 deletes the
    mapping that ``nonce`` made. Raises PortMappingError for values that do not fit.
    """
    if len(nonce) != PCP_NONCE_BYTES:
        raise PortMappingError(f"port mapping: a PCP nonce is {PCP_NONCE_BYTES} bytes, not {len(nonce)}")
    _check_port(internal_port, "internal port", allow_zero=False)
    _check_port(external_port, "external port", allow_zero=True)
    _check_lifetime(lifetime_s)
    suggested = _ipv6_form(external_address) if external_address else _ipv6_form("0.0.0.0")  # noqa: S104
    header = _PCP_REQUEST_HEADER.pack(PCP_VERSION, _PCP_MAP_OPCODE, 0, lifetime_s, _ipv6_form(client_address))
    body = _PCP_MAP.pack(nonce, protocol.value, bytes(3), internal_port, external_port, suggested)
    return header + body


def decode_answer(datagram: bytes) -> PmpAddress | Mapped:
    """One answer from the gateway's port 5351, NAT-PMP or PCP by its version byte.

    Returns the external address or the mapping it grants. Raises ``UnsupportedVersion``
    when the gateway does not speak the version we asked in, and PortMappingError (with
    the result ``code``) when it refuses, or when the datagram is malformed, too short,
    too long or not an answer.
    """
    if not datagram:
        raise PortMappingError("port mapping: an empty datagram")
    if len(datagram) > MAX_DATAGRAM_BYTES:
        raise PortMappingError(f"port mapping: a {len(datagram)}-byte datagram, more than {MAX_DATAGRAM_BYTES}")
    version = datagram[0]
    if version == PMP_VERSION:
        return _decode_pmp(datagram)
    if version == PCP_VERSION:
        return _decode_pcp(datagram)
    raise PortMappingError(f"port mapping: unknown version {version}")


def _decode_pmp(datagram: bytes) -> PmpAddress | Mapped:
    if len(datagram) < _PMP_SHORT_ANSWER.size:
        raise PortMappingError(f"port mapping: a {len(datagram)}-byte NAT-PMP answer is too short")
    _version, opcode, result, epoch_s = _PMP_SHORT_ANSWER.unpack_from(datagram)
    if not opcode & _PMP_ANSWER_BIT:
        raise PortMappingError(f"port mapping: NAT-PMP opcode {opcode} is a request, not an answer")
    if result == UNSUPPORTED_VERSION:
        raise UnsupportedVersion(PMP_VERSION)
    if result != 0:
        meaning = PMP_RESULTS.get(result, "unknown result")
        raise PortMappingError(f"port mapping: NAT-PMP refused: {meaning} ({result})", result)
    request = opcode & ~_PMP_ANSWER_BIT
    if request == _PMP_ADDRESS_OPCODE:
        if len(datagram) != _PMP_ADDRESS_ANSWER.size:
            raise PortMappingError(f"port mapping: a NAT-PMP address answer of {len(datagram)} bytes, not 12")
        address = _PMP_ADDRESS_ANSWER.unpack(datagram)[4]
        return PmpAddress(epoch_s, str(ipaddress.IPv4Address(address)))
    protocols = {protocol.pmp_opcode: protocol for protocol in MappingProtocol}
    if request not in protocols:
        raise PortMappingError(f"port mapping: NAT-PMP answer to unknown opcode {request}")
    if len(datagram) != _PMP_MAP_ANSWER.size:
        raise PortMappingError(f"port mapping: a NAT-PMP mapping answer of {len(datagram)} bytes, not 16")
    *_, internal_port, external_port, lifetime_s = _PMP_MAP_ANSWER.unpack(datagram)
    if lifetime_s and not external_port:
        raise PortMappingError("port mapping: NAT-PMP granted external port 0")
    return Mapped(protocols[request], internal_port, external_port, lifetime_s, epoch_s)


def _decode_pcp(datagram: bytes) -> Mapped:
    # RFC 6887 section 7: at least the header, and a whole number of 32-bit words.
    if len(datagram) < _PCP_ANSWER_HEADER.size or len(datagram) % 4:
        raise PortMappingError(f"port mapping: a PCP answer of {len(datagram)} bytes")
    _version, r_opcode, _reserved, result, lifetime_s, epoch_s, _ = _PCP_ANSWER_HEADER.unpack_from(datagram)
    if not r_opcode & _PCP_ANSWER_BIT:
        raise PortMappingError("port mapping: a PCP request, not an answer")
    if result == UNSUPPORTED_VERSION:
        raise UnsupportedVersion(PCP_VERSION)
    if result != 0:
        meaning = PCP_RESULTS.get(result, "unknown result")
        raise PortMappingError(f"port mapping: PCP refused: {meaning} ({result})", result)
    opcode = r_opcode & ~_PCP_ANSWER_BIT
    if opcode != _PCP_MAP_OPCODE:
        raise PortMappingError(f"port mapping: PCP answer to opcode {opcode}, not MAP")
    end = _PCP_ANSWER_HEADER.size + _PCP_MAP.size
    if len(datagram) < end:
        raise PortMappingError(f"port mapping: a PCP MAP answer of {len(datagram)} bytes")
    nonce, protocol_number, _, internal_port, external_port, external = _PCP_MAP.unpack_from(
        datagram, _PCP_ANSWER_HEADER.size
    )
    _skip_options(datagram, end)
    try:
        protocol = MappingProtocol(protocol_number)
    except ValueError:
        raise PortMappingError(f"port mapping: PCP answer for IP protocol {protocol_number}") from None
    if lifetime_s and not external_port:
        raise PortMappingError("port mapping: PCP granted external port 0")
    return Mapped(protocol, internal_port, external_port, lifetime_s, epoch_s, _from_ipv6_form(external), nonce)


def _skip_options(datagram: bytes, offset: int) -> None:
    """Walk the options after the MAP data; raises PortMappingError if one overruns the datagram."""
    while offset < len(datagram):
        if offset + _PCP_OPTION_HEADER.size > len(datagram):
            raise PortMappingError("port mapping: a truncated PCP option")
        _code, _reserved, length = _PCP_OPTION_HEADER.unpack_from(datagram, offset)
        # RFC 6887 section 7.3: the data is padded to a multiple of 4 bytes.
        offset += _PCP_OPTION_HEADER.size + (length + 3) // 4 * 4
        if offset > len(datagram):
            raise PortMappingError("port mapping: a PCP option longer than the datagram")
