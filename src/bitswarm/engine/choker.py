"""Choking: who gets our upload (BEP 3's tit-for-tat, as the reference client does it).

Every ``interval_s`` the interested peers are ranked: while leeching by how fast they
send to us (reciprocation), while seeding by how fast we send to them (whoever takes
the data fastest spreads it fastest), and the best ``slots - 1`` are unchoked. One more
slot is the optimistic unchoke: a choked, interested peer picked at random every
``optimistic_interval_s``, newcomers three times as likely, so a peer with nothing yet
to give can start, and we can discover a faster partner. Snubbed peers (who stopped
sending to us) lose their regular slot while leeching.

Sans-IO: the caller passes the time and the measured rates; chance is a random.Random.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

UNCHOKE_INTERVAL_S = 10.0
OPTIMISTIC_INTERVAL_S = 30.0
# A peer connected this recently counts as a newcomer for the optimistic draw.
NEWCOMER_S = 60.0
NEWCOMER_WEIGHT = 3


@dataclass(frozen=True, slots=True)
class PeerRates:
    key: Hashable
    interested: bool
    download_rate: float  # bytes per second, from the peer to us
    upload_rate: float  # bytes per second, from us to the peer
    connected_at: float
    is_snubbed: bool = False


@dataclass(frozen=True, slots=True)
class ChokeDecision:
    unchoke: frozenset[Hashable]
    optimistic: Hashable | None


class Choker:
    def __init__(self, slots: int, rng: random.Random) -> None:
        if slots < 1:
            raise ValueError("at least one upload slot")
        self.slots = slots
        self.rng = rng
        self.optimistic: Hashable | None = None
        self._optimistic_since = float("-inf")
        self._last_decision = float("-inf")

    def is_due(self, now: float) -> bool:
        return now - self._last_decision >= UNCHOKE_INTERVAL_S

    def decide(self, peers: Sequence[PeerRates], *, seeding: bool, now: float) -> ChokeDecision:
        """The peers to have unchoked from now on (everyone else choked)."""
        self._last_decision = now
        interested = [peer for peer in peers if peer.interested]
        if seeding:
            ranked = sorted(interested, key=lambda peer: peer.upload_rate, reverse=True)
        else:
            eligible = [peer for peer in interested if not peer.is_snubbed]
            ranked = sorted(eligible, key=lambda peer: peer.download_rate, reverse=True)
        regular = {peer.key for peer in ranked[: self.slots - 1]}
        self._rotate_optimistic([peer for peer in interested if peer.key not in regular], now)
        unchoke = set(regular)
        if self.optimistic is not None:
            unchoke.add(self.optimistic)
        return ChokeDecision(frozenset(unchoke), self.optimistic)

    def _rotate_optimistic(self, candidates: list[PeerRates], now: float) -> None:
        keys = {peer.key for peer in candidates}
        still_valid = self.optimistic in keys and now - self._optimistic_since < OPTIMISTIC_INTERVAL_S
        if still_valid:
            return
        if not candidates:
            self.optimistic = None
            return
        weights = [NEWCOMER_WEIGHT if now - peer.connected_at < NEWCOMER_S else 1 for peer in candidates]
        self.optimistic = self.rng.choices(candidates, weights=weights)[0].key
        self._optimistic_since = now
