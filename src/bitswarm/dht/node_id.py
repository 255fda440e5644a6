"""Node IDs: the XOR distance (BEP 5) and IDs tied to the node's IP address (BEP 42).

BEP 42 makes the first 21 bits of a node ID a CRC32C of the node's masked IP address
and a 3-bit random number ``r``, which the ID carries in its last byte. A node can still
choose its ID among 8 prefixes per address, but can no longer place itself next to any
info-hash it likes. Local and private addresses are exempt, as BEP 42 says.
"""

from __future__ import annotations

import ipaddress
import random

NODE_ID_BYTES = 20
_V4_MASK = bytes([0x03, 0x0F, 0x3F, 0xFF])
_V6_MASK = bytes([0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF])
_PREFIX_MASK = 0xFFFFF800  # the top 21 bits


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def distance(a: bytes, b: bytes) -> int:
    """The XOR metric of BEP 5 as an unsigned integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def is_exempt(host: str) -> bool:
    """True for addresses BEP 42 does not apply to: loopback, private and link-local."""
    address = ipaddress.ip_address(host)
    return address.is_loopback or address.is_private or address.is_link_local


def _prefix(host: str, r: int) -> int:
    packed = ipaddress.ip_address(host).packed
    mask = _V4_MASK if len(packed) == 4 else _V6_MASK
    masked = bytearray(a & m for a, m in zip(packed, mask, strict=False))
    masked[0] |= (r & 0x07) << 5
    return crc32c(bytes(masked)) & _PREFIX_MASK


def node_id_for(host: str, rng: random.Random) -> bytes:
    """A random node ID that satisfies BEP 42 for our external address ``host``."""
    rand = rng.getrandbits(8)
    prefix = _prefix(host, rand)
    middle = rng.getrandbits(8 * 16).to_bytes(16, "big")
    head = prefix | rng.getrandbits(11)  # the low 11 bits of the 32 are free
    return head.to_bytes(4, "big")[:3] + middle + bytes([rand])


def is_valid_for(node_id: bytes, host: str) -> bool:
    """True when ``node_id`` obeys BEP 42 for ``host`` (exempt addresses always do)."""
    if is_exempt(host):
        return True
    if len(node_id) != NODE_ID_BYTES:
        return False
    expected = _prefix(host, node_id[-1])
    return int.from_bytes(node_id[:4], "big") & _PREFIX_MASK == expected
