"""The peers that announced themselves to us, per info-hash (BEP 5 announce_peer).

Bounded three ways, because every entry comes from a stranger: peers per info-hash,
info-hashes, and an age after which a peer that has not announced again is forgotten.
When a cap is hit the oldest entry goes, so a flood displaces itself rather than failing
every later announce.
"""

from __future__ import annotations

import random

from bitswarm.dht.krpc import Address, family_of

# libtorrent keeps about this many per info-hash; a reply carries at most 50 anyway.
MAX_PEERS_PER_INFO_HASH = 200
MAX_INFO_HASHES = 5000
# BEP 5 leaves it open; clients re-announce every 15 to 30 minutes.
PEER_TTL_S = 30 * 60.0
# Peers per get_peers reply: 50 compact IPv6 peers still fit a 1,500-byte datagram.
PEERS_PER_REPLY = 50


class PeerStore:
    def __init__(
        self,
        *,
        max_peers_per_info_hash: int = MAX_PEERS_PER_INFO_HASH,
        max_info_hashes: int = MAX_INFO_HASHES,
        peer_ttl_s: float = PEER_TTL_S,
    ) -> None:
        self.max_peers_per_info_hash = max_peers_per_info_hash
        self.max_info_hashes = max_info_hashes
        self.peer_ttl_s = peer_ttl_s
        # info_hash -> peer -> time of its last announce; both in insertion (= age) order.
        self._swarms: dict[bytes, dict[Address, float]] = {}

    def __len__(self) -> int:
        return sum(len(peers) for peers in self._swarms.values())

    @property
    def info_hash_count(self) -> int:
        return len(self._swarms)

    def add(self, info_hash: bytes, peer: Address, now: float) -> None:
        peers = self._swarms.get(info_hash)
        if peers is None:
            while len(self._swarms) >= self.max_info_hashes:
                del self._swarms[next(iter(self._swarms))]
            peers = self._swarms[info_hash] = {}
        peers.pop(peer, None)
        peers[peer] = now
        while len(peers) > self.max_peers_per_info_hash:
            del peers[next(iter(peers))]

    def get(
        self, info_hash: bytes, family: int, now: float, rng: random.Random, limit: int = PEERS_PER_REPLY
    ) -> list[Address]:
        """Up to ``limit`` live peers of ``family`` (4 or 6), a random sample when there are more."""
        peers = self._swarms.get(info_hash)
        if peers is None:
            return []
        self._expire(info_hash, peers, now)
        live = [peer for peer in peers if family_of(peer[0]) == family]
        return live if len(live) <= limit else rng.sample(live, limit)

    def _expire(self, info_hash: bytes, peers: dict[Address, float], now: float) -> None:
        for peer, seen in list(peers.items()):
            if now - seen < self.peer_ttl_s:
                break  # the rest are younger
            del peers[peer]
        if not peers:
            del self._swarms[info_hash]

    def expire(self, now: float) -> None:
        """Forget every peer older than the TTL."""
        for info_hash, peers in list(self._swarms.items()):
            self._expire(info_hash, peers, now)
