"""What a tracker knows and answers, independent of how requests arrive or where state lives.

An announce (BEP 3, BEP 15) names a swarm by a 20-byte info-hash (a v2 swarm by its
truncated SHA-256, BEP 52) and a peer by its compact address, the key a re-announce
replaces: the address is what the tracker saw, so one peer cannot evict another by
repeating its peer id. Stores answer with a ``SwarmView``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

INFO_HASH_BYTES = 20
PEER_ID_BYTES = 20
COMPACT_V4_BYTES = 6
COMPACT_V6_BYTES = 18


class Event(enum.IntEnum):
    """Announce events, numbered as in BEP 15 so UDP needs no table."""

    NONE = 0
    COMPLETED = 1
    STARTED = 2
    STOPPED = 3


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    info_hash: bytes
    peer_id: bytes
    # Compact address: 4-byte IPv4 or 16-byte IPv6, then the 2-byte port, network order.
    address: bytes
    event: Event
    left: int
    uploaded: int
    downloaded: int
    numwant: int
    passkey: str | None = None

    @property
    def is_seed(self) -> bool:
        return self.left == 0

    @property
    def is_ipv6(self) -> bool:
        return len(self.address) == COMPACT_V6_BYTES


@dataclass(frozen=True, slots=True)
class SwarmCounts:
    seeders: int = 0
    leechers: int = 0
    completed: int = 0


@dataclass(frozen=True, slots=True)
class SwarmView:
    """A store's answer to an announce: counts after it, and peers for the asker.

    ``peers`` holds compact addresses of the asker's family, seeders first for a leecher,
    never the asker itself, never seeders for a seeder.
    """

    counts: SwarmCounts
    peers: list[bytes]
