from __future__ import annotations

import random
from collections import Counter

from bitswarm.engine.choker import OPTIMISTIC_INTERVAL_S, Choker, PeerRates


def peer(
    key: str,
    down: float = 0.0,
    up: float = 0.0,
    *,
    interested: bool = True,
    since: float = -1000.0,
    snubbed: bool = False,
) -> PeerRates:
    return PeerRates(key, interested, down, up, since, snubbed)


def test_leeching_unchokes_the_fastest_senders_plus_one_optimistic() -> None:
    choker = Choker(slots=3, rng=random.Random(1))
    peers = [peer("a", 100), peer("b", 300), peer("c", 200), peer("d", 50), peer("e", 0, interested=False)]
    decision = choker.decide(peers, seeding=False, now=0.0)
    assert {"b", "c"} <= decision.unchoke
    assert decision.optimistic in {"a", "d"}
    assert len(decision.unchoke) == 3
    assert "e" not in decision.unchoke


def test_seeding_ranks_by_upload_rate() -> None:
    choker = Choker(slots=2, rng=random.Random(1))
    decision = choker.decide([peer("a", up=10), peer("b", up=500), peer("c", up=40)], seeding=True, now=0.0)
    assert "b" in decision.unchoke
    assert decision.optimistic in {"a", "c"}


def test_snubbing_peers_lose_their_regular_slot_while_leeching() -> None:
    choker = Choker(slots=2, rng=random.Random(1))
    decision = choker.decide([peer("fast", 900, snubbed=True), peer("slow", 10)], seeding=False, now=0.0)
    assert "slow" in decision.unchoke
    assert decision.optimistic == "fast"  # it can still win the optimistic draw


def test_optimistic_unchoke_holds_for_30_s_then_rotates() -> None:
    choker = Choker(slots=1, rng=random.Random(4))
    peers = [peer(str(n)) for n in range(10)]
    first = choker.decide(peers, seeding=False, now=0.0).optimistic
    assert choker.decide(peers, seeding=False, now=10.0).optimistic == first
    seen = {choker.decide(peers, seeding=False, now=OPTIMISTIC_INTERVAL_S * n).optimistic for n in range(1, 30)}
    assert len(seen) > 3


def test_newcomers_are_three_times_as_likely_to_be_picked() -> None:
    wins: Counter[str] = Counter()
    for seed in range(3000):
        choker = Choker(slots=1, rng=random.Random(seed))
        decision = choker.decide([peer("old"), peer("new", since=-5.0)], seeding=False, now=0.0)
        wins[str(decision.optimistic)] += 1
    assert 2.4 < wins["new"] / wins["old"] < 3.7


def test_decisions_come_every_ten_seconds() -> None:
    choker = Choker(slots=4, rng=random.Random())
    assert choker.is_due(0.0)
    choker.decide([], seeding=False, now=0.0)
    assert not choker.is_due(9.9)
    assert choker.is_due(10.0)
