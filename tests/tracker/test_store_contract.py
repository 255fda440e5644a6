"""One contract for every tracker store: the memory store and the Redis store answer alike.

Each test runs against both (``store`` is parametrized), so a difference between them is
a failing test. The Redis store runs on a real redis-server, a flushed database per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bitswarm.tracker.memory import TICKS_PER_TIMEOUT
from bitswarm.tracker.swarm import Event, SwarmCounts
from tracker.conftest import RedisServer
from tracker.stores import HASH_A, HASH_B, PEER_TIMEOUT_S, START, SyncStore, open_sync_store, v4, v6

CONTRACT_DB = 0


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[SyncStore]:
    url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.db_url(CONTRACT_DB)
    sync_store = open_sync_store(request.param, url)
    try:
        yield sync_store
    finally:
        sync_store.close()


def seed_swarm(store: SyncStore, seeders: list[bytes], leechers: list[bytes], **options: object) -> None:
    for address in seeders:
        store.announce(address, left=0, **options)  # type: ignore[arg-type]
    for address in leechers:
        store.announce(address, **options)  # type: ignore[arg-type]


# -- counts, replacement, scrape ------------------------------------------------------------


def test_first_announce_creates_the_swarm_and_gets_no_peers(store: SyncStore) -> None:
    view = store.announce(v4(1), event=Event.STARTED)
    assert view.counts == SwarmCounts(seeders=0, leechers=1, completed=0)
    assert view.peers == []
    assert store.full_scrape() == {HASH_A: SwarmCounts(0, 1, 0)}


def test_counts_are_exact(store: SyncStore) -> None:
    seed_swarm(store, [v4(1), v4(2), v4(3)], [v4(4), v4(5), v6(6), v6(7)])
    assert store.announce(v4(5)).counts == SwarmCounts(seeders=3, leechers=4, completed=0)
    assert store.scrape([HASH_A]) == {HASH_A: SwarmCounts(3, 4, 0)}


def test_a_re_announce_replaces_the_peer(store: SyncStore) -> None:
    store.announce(v4(1))
    assert store.announce(v4(1)).counts == SwarmCounts(0, 1, 0)
    # Finishing without saying so moves it to the seeders, uncounted as a completion.
    assert store.announce(v4(1), left=0).counts == SwarmCounts(1, 0, 0)
    assert store.announce(v4(1), left=0).counts == SwarmCounts(1, 0, 0)
    # A seeder that lost data is a leecher again.
    assert store.announce(v4(1), left=5).counts == SwarmCounts(0, 1, 0)


def test_peers_are_keyed_by_address_so_the_same_host_on_two_ports_is_two_peers(store: SyncStore) -> None:
    store.announce(v4(1, port=1000))
    view = store.announce(v4(1, port=2000))
    assert view.counts == SwarmCounts(0, 2, 0)
    assert view.peers == [v4(1, port=1000)]


def test_scrape_of_an_unknown_swarm_counts_zero_and_creates_nothing(store: SyncStore) -> None:
    store.announce(v4(1), left=0)
    assert store.scrape([HASH_B, HASH_A]) == {HASH_B: SwarmCounts(0, 0, 0), HASH_A: SwarmCounts(1, 0, 0)}
    assert store.full_scrape() == {HASH_A: SwarmCounts(1, 0, 0)}


def test_full_scrape_lists_every_swarm(store: SyncStore) -> None:
    hashes = [bytes([number]) * 20 for number in range(1, 8)]
    for number, info_hash in enumerate(hashes, 1):
        seed_swarm(store, [v4(n) for n in range(number)], [v6(n) for n in range(2)], info_hash=info_hash)
    assert store.full_scrape() == {info_hash: SwarmCounts(n, 2, 0) for n, info_hash in enumerate(hashes, 1)}


def test_swarms_are_independent(store: SyncStore) -> None:
    seed_swarm(store, [v4(1)], [v4(2)], info_hash=HASH_A)
    view = store.announce(v4(3), info_hash=HASH_B)
    assert view.counts == SwarmCounts(0, 1, 0)
    assert view.peers == []


# -- which peers an asker gets -------------------------------------------------------------


def test_a_leecher_gets_seeders_first_then_leechers(store: SyncStore) -> None:
    seeders = [v4(n) for n in range(1, 4)]
    leechers = [v4(n) for n in range(10, 15)]
    seed_swarm(store, seeders, leechers)
    view = store.announce(v4(10))
    assert set(view.peers[:3]) == set(seeders)
    assert set(view.peers[3:]) == set(leechers) - {v4(10)}
    assert len(view.peers) == 7
    # With room for only some peers, the seeders fill it.
    assert set(store.announce(v4(10), numwant=2).peers) <= set(seeders)
    four = store.announce(v4(10), numwant=4).peers
    assert set(four[:3]) == set(seeders)
    assert four[3] in set(leechers) - {v4(10)}


def test_a_seeder_gets_only_leechers(store: SyncStore) -> None:
    seeders = [v4(n) for n in range(1, 6)]
    leechers = [v4(n) for n in range(10, 13)]
    seed_swarm(store, seeders, leechers)
    view = store.announce(v4(1), left=0)
    assert sorted(view.peers) == sorted(leechers)


def test_a_lone_seeder_gets_no_peers_even_with_other_seeders(store: SyncStore) -> None:
    seed_swarm(store, [v4(1), v4(2), v4(3)], [])
    assert store.announce(v4(2), left=0).peers == []


def test_the_asker_never_gets_itself(store: SyncStore) -> None:
    seed_swarm(store, [v4(1), v4(2)], [v4(3), v4(4)])
    for address, left in ((v4(1), 0), (v4(3), 10)):
        for numwant in (1, 2, 3, 50):
            for _ in range(10):
                assert address not in store.announce(address, left=left, numwant=numwant).peers
    assert sorted(store.announce(v4(3), numwant=50).peers) == sorted([v4(1), v4(2), v4(4)])


def test_only_peers_of_the_askers_family_are_given(store: SyncStore) -> None:
    ipv4 = [v4(n) for n in range(1, 5)]
    ipv6 = [v6(n) for n in range(1, 4)]
    seed_swarm(store, [ipv4[0], ipv6[0]], [*ipv4[1:], *ipv6[1:]])
    view4 = store.announce(v4(1000))
    assert view4.counts == SwarmCounts(2, 6, 0)
    assert sorted(view4.peers) == sorted(ipv4)
    view6 = store.announce(v6(1000))
    assert view6.counts == SwarmCounts(2, 7, 0)
    assert view6.peers[0] == ipv6[0]
    assert sorted(view6.peers) == sorted(ipv6)
    # A seeder of either family gets its family's leechers only.
    assert sorted(store.announce(v6(1), left=0).peers) == sorted([*ipv6[1:], v6(1000)])


def test_numwant_caps_the_peers(store: SyncStore) -> None:
    seed_swarm(store, [v4(n) for n in range(1, 11)], [v4(n) for n in range(100, 130)])
    for numwant in (0, 1, 5, 10, 11, 25, 39):
        peers = store.announce(v4(100), numwant=numwant).peers
        assert len(peers) == numwant
        assert len(set(peers)) == numwant
    assert len(store.announce(v4(100), numwant=200).peers) == 39
    assert len(store.announce(v4(1), left=0, numwant=12).peers) == 12


def test_peers_are_chosen_at_random_so_every_peer_is_eventually_given(store: SyncStore) -> None:
    seeders = [v4(n) for n in range(1, 21)]
    leechers = [v6(n) for n in range(1, 21)]
    seed_swarm(store, seeders, leechers)
    seen_seeders: set[bytes] = set()
    seen_leechers: set[bytes] = set()
    # (17/20)^200: the chance that a fair draw misses a given peer is below 1e-14.
    for _ in range(200):
        seen_seeders |= set(store.announce(v4(500), numwant=3).peers)
        seen_leechers |= set(store.announce(v6(1), left=0, numwant=3).peers)
    assert seen_seeders == set(seeders)
    assert seen_leechers == set(leechers[1:]) | set()


# -- completed, stopped --------------------------------------------------------------------


def test_completed_counts_a_leecher_that_finished_once(store: SyncStore) -> None:
    store.announce(v4(1), event=Event.STARTED)
    assert store.announce(v4(1), left=0, event=Event.COMPLETED).counts == SwarmCounts(1, 0, 1)
    # Saying it twice, or while already seeding, finishes nothing more.
    assert store.announce(v4(1), left=0, event=Event.COMPLETED).counts == SwarmCounts(1, 0, 1)
    # "completed" with bytes left is not a seeder and not a completion.
    assert store.announce(v4(2), left=10, event=Event.COMPLETED).counts == SwarmCounts(1, 1, 1)
    # A peer new to the swarm that arrives complete counts, as the memory store counts it.
    assert store.announce(v4(3), left=0, event=Event.COMPLETED).counts == SwarmCounts(2, 1, 2)
    assert store.scrape([HASH_A])[HASH_A].completed == 2


def test_stopped_removes_the_peer_and_returns_no_peers(store: SyncStore) -> None:
    seed_swarm(store, [v4(1)], [v4(2), v4(3)])
    view = store.announce(v4(2), event=Event.STOPPED)
    assert view.counts == SwarmCounts(1, 1, 0)
    assert view.peers == []
    assert v4(2) not in store.announce(v4(3)).peers
    seeder_stop = store.announce(v4(1), left=0, event=Event.STOPPED)
    assert seeder_stop.counts == SwarmCounts(0, 1, 0)
    # A stop from a peer the swarm does not know changes nothing.
    assert store.announce(v4(9), event=Event.STOPPED).counts == SwarmCounts(0, 1, 0)


def test_a_swarm_emptied_by_stops_keeps_its_completed_count_until_silent_for_the_timeout(store: SyncStore) -> None:
    store.announce(v4(1), left=0, event=Event.COMPLETED, now=START)
    assert store.announce(v4(1), left=0, event=Event.STOPPED, now=START).counts == SwarmCounts(0, 0, 1)
    # Like opentracker: the emptied swarm still scrapes as 0 seeders, 0 leechers, 1 completed.
    assert store.full_scrape() == {HASH_A: SwarmCounts(0, 0, 1)}
    assert store.scrape([HASH_A]) == {HASH_A: SwarmCounts(0, 0, 1)}
    assert store.expire(START + PEER_TIMEOUT_S) == 0
    assert store.scrape([HASH_A]) == {HASH_A: SwarmCounts(0, 0, 1)}
    assert store.expire(START + PEER_TIMEOUT_S + 1) == 0
    assert store.full_scrape() == {}
    assert store.announce(v4(1), left=0, now=START + PEER_TIMEOUT_S + 1).counts == SwarmCounts(1, 0, 0)


def test_a_peer_joining_an_emptied_swarm_continues_its_completed_count(store: SyncStore) -> None:
    store.announce(v4(1), left=0, event=Event.COMPLETED, now=START)
    store.announce(v4(1), left=0, event=Event.STOPPED, now=START)
    assert store.announce(v4(2), now=START + 50).counts == SwarmCounts(0, 1, 1)
    # It had peers again, so it is no longer an empty swarm waiting to go.
    assert store.expire(START + PEER_TIMEOUT_S + 10) == 0
    assert store.scrape([HASH_A]) == {HASH_A: SwarmCounts(0, 1, 1)}
    assert store.announce(v4(2), event=Event.STOPPED, now=START + 60).counts == SwarmCounts(0, 0, 1)
    assert store.expire(START + 60 + PEER_TIMEOUT_S) == 0
    assert store.scrape([HASH_A]) == {HASH_A: SwarmCounts(0, 0, 1)}
    assert store.expire(START + 61 + PEER_TIMEOUT_S) == 0
    assert store.full_scrape() == {}


def test_a_stop_into_an_emptied_swarm_keeps_it_another_timeout(store: SyncStore) -> None:
    store.announce(v4(1), left=0, event=Event.COMPLETED, now=START)
    store.announce(v4(1), left=0, event=Event.STOPPED, now=START)
    assert store.announce(v4(1), left=0, event=Event.STOPPED, now=START + 50).counts == SwarmCounts(0, 0, 1)
    assert store.expire(START + 50 + PEER_TIMEOUT_S) == 0
    assert store.full_scrape() == {HASH_A: SwarmCounts(0, 0, 1)}
    assert store.expire(START + 51 + PEER_TIMEOUT_S) == 0
    assert store.full_scrape() == {}


def test_a_swarm_emptied_without_completions_goes_at_once(store: SyncStore) -> None:
    store.announce(v4(1), left=0, now=START)
    store.announce(v4(2), info_hash=HASH_B, now=START)
    assert store.announce(v4(1), left=0, event=Event.STOPPED).counts == SwarmCounts(0, 0, 0)
    assert store.full_scrape() == {HASH_B: SwarmCounts(0, 1, 0)}
    assert store.expire(START + PEER_TIMEOUT_S + 1) == 1
    assert store.full_scrape() == {}


def test_a_stop_for_an_unknown_swarm_creates_nothing(store: SyncStore) -> None:
    view = store.announce(v4(1), event=Event.STOPPED)
    assert view == type(view)(SwarmCounts(), [])
    assert store.full_scrape() == {}


# -- expiry --------------------------------------------------------------------------------


def test_expire_drops_peers_silent_longer_than_the_timeout(store: SyncStore) -> None:
    seed_swarm(store, [v4(1)], [v4(2), v6(3)], now=START)
    seed_swarm(store, [v4(4)], [v4(5)], now=START + 60)
    # Silent for exactly the timeout is not yet longer than it.
    assert store.expire(START + PEER_TIMEOUT_S) == 0
    assert store.expire(START + PEER_TIMEOUT_S + 1) == 3
    assert store.scrape([HASH_A]) == {HASH_A: SwarmCounts(1, 1, 0)}
    view = store.announce(v4(5), now=START + 61 + PEER_TIMEOUT_S - 1)
    assert view.peers == [v4(4)]
    assert store.expire(START + 61 + PEER_TIMEOUT_S) == 1
    assert store.scrape([HASH_A]) == {HASH_A: SwarmCounts(0, 1, 0)}


def test_a_re_announce_keeps_a_peer_alive(store: SyncStore) -> None:
    store.announce(v4(1), now=START)
    store.announce(v4(1), now=START + 90)
    assert store.expire(START + 150) == 0
    assert store.scrape([HASH_A])[HASH_A].leechers == 1


def test_a_swarm_emptied_by_expiry_keeps_its_completed_count_for_another_timeout(store: SyncStore) -> None:
    store.announce(v4(1), left=0, event=Event.COMPLETED, info_hash=HASH_B, now=START)
    store.announce(v4(2), info_hash=HASH_A, now=START + 200)
    assert store.expire(START + 250) == 1
    assert store.full_scrape() == {HASH_A: SwarmCounts(0, 1, 0), HASH_B: SwarmCounts(0, 0, 1)}
    # Empty since second START + 250: kept through a timeout of silence, then gone.
    # (HASH_A's peer expires meanwhile; that swarm had no completions and goes at once.)
    assert store.expire(START + 250 + PEER_TIMEOUT_S) == 1
    assert store.full_scrape() == {HASH_B: SwarmCounts(0, 0, 1)}
    assert store.expire(START + 251 + PEER_TIMEOUT_S) == 0
    assert store.full_scrape() == {}
    assert store.scrape([HASH_B]) == {HASH_B: SwarmCounts()}
    assert store.announce(v4(1), left=0, info_hash=HASH_B, now=START + 400).counts == SwarmCounts(1, 0, 0)


def test_a_silent_peer_is_counted_and_given_until_expiry_runs(store: SyncStore) -> None:
    # Expiry happens in expire() only, never as a side effect of an announce.
    store.announce(v4(1), left=0, passkey="alice", uploaded=100, now=START)
    view = store.announce(v4(2), now=START + PEER_TIMEOUT_S + 50)
    assert view.counts == SwarmCounts(1, 1, 0)
    assert view.peers == [v4(1)]
    assert store.expire(START + PEER_TIMEOUT_S + 50) == 1
    assert store.scrape([HASH_A]) == {HASH_A: SwarmCounts(0, 1, 0)}
    store.announce(v4(1), left=0, passkey="alice", uploaded=150, now=START + PEER_TIMEOUT_S + 50)
    assert store.user_totals() == {"alice": (250, 0)}


@pytest.mark.parametrize("offset", [0.2, 10.0, 63.9])
def test_a_silent_peer_goes_after_the_timeout_never_before_and_at_most_a_64th_late(
    store: SyncStore, offset: float
) -> None:
    """Last-seen times are rounded up (the memory store keeps them in ticks of a 64th of
    the timeout, Redis in seconds): never dropped early, and late by at most that tick."""
    store.announce(v4(1), now=START + offset)
    assert store.expire(START + offset + PEER_TIMEOUT_S) == 0
    late = max(1.0, PEER_TIMEOUT_S / TICKS_PER_TIMEOUT)
    assert store.expire(START + offset + PEER_TIMEOUT_S + late + 0.01) == 1


def test_expire_walks_a_bounded_number_of_swarms_per_call_and_resumes(store: SyncStore) -> None:
    hashes = [bytes([number]) * 20 for number in range(1, 8)]
    for info_hash in hashes:
        store.announce(v4(1), info_hash=info_hash, now=START)
    dropped = []
    for _ in range(2 * len(hashes)):
        dropped.append(store.expire(START + 1000, max_swarms=2))
        if sum(dropped) == len(hashes):
            break
    assert max(dropped) <= 2
    assert sum(dropped) == len(hashes)
    assert store.full_scrape() == {}  # no completions: nothing kept
    # A new round after the last swarm starts over and finds the new stale peers.
    store.announce(v4(1), info_hash=HASH_A, now=START + 1000)
    total = sum(store.expire(START + 2000, max_swarms=2) for _ in range(4))
    assert total == 1


# -- private mode: per-user totals ---------------------------------------------------------


def test_user_totals_sum_the_growth_of_reported_totals(store: SyncStore) -> None:
    store.announce(v4(1), passkey="alice", event=Event.STARTED, uploaded=100, downloaded=50)
    assert store.user_totals() == {"alice": (100, 50)}
    store.announce(v4(1), passkey="alice", uploaded=300, downloaded=50)
    assert store.user_totals() == {"alice": (300, 50)}
    # A second peer of the same user, and another user.
    store.announce(v6(1), passkey="alice", event=Event.STARTED, uploaded=5, downloaded=7)
    store.announce(v4(2), passkey="bob", event=Event.STARTED, uploaded=0, downloaded=1000)
    assert store.user_totals() == {"alice": (305, 57), "bob": (0, 1000)}


def test_user_totals_that_went_down_count_as_a_restart(store: SyncStore) -> None:
    store.announce(v4(1), passkey="alice", event=Event.STARTED, uploaded=1000, downloaded=1000)
    store.announce(v4(1), passkey="alice", uploaded=20, downloaded=1500)
    assert store.user_totals() == {"alice": (1020, 1500)}
    store.announce(v4(1), passkey="alice", uploaded=25, downloaded=1500)
    assert store.user_totals() == {"alice": (1025, 1500)}


def test_started_resets_what_the_peer_reported(store: SyncStore) -> None:
    store.announce(v4(1), passkey="alice", event=Event.STARTED, uploaded=100, downloaded=100)
    store.announce(v4(1), passkey="alice", event=Event.STARTED, uploaded=500, downloaded=100)
    assert store.user_totals() == {"alice": (600, 200)}


def test_stopped_counts_the_last_growth_then_forgets_the_peer(store: SyncStore) -> None:
    store.announce(v4(1), passkey="alice", event=Event.STARTED, uploaded=100, downloaded=0)
    store.announce(v4(2), left=0)  # keeps the swarm alive after the stop
    store.announce(v4(1), passkey="alice", event=Event.STOPPED, uploaded=150, downloaded=0)
    assert store.user_totals() == {"alice": (150, 0)}
    store.announce(v4(1), passkey="alice", uploaded=160, downloaded=0)
    assert store.user_totals() == {"alice": (310, 0)}


def test_expiry_forgets_what_an_expired_peer_reported(store: SyncStore) -> None:
    store.announce(v4(1), passkey="alice", event=Event.STARTED, uploaded=100, downloaded=0, now=START)
    store.announce(v4(2), now=START + 50)  # keeps the swarm alive
    assert store.expire(START + PEER_TIMEOUT_S + 20) == 1
    store.announce(v4(1), passkey="alice", uploaded=120, downloaded=0, now=START + PEER_TIMEOUT_S + 20)
    assert store.user_totals() == {"alice": (220, 0)}


def test_user_totals_are_exact_for_the_largest_numbers_a_client_can_send(store: SyncStore) -> None:
    huge = 10**19 - 1  # 19 digits, the longest an HTTP announce may carry
    store.announce(v4(1), passkey="alice", event=Event.STARTED, uploaded=huge, downloaded=2**64 - 1)
    store.announce(v4(1), passkey="alice", uploaded=huge, downloaded=2**64 - 1)
    store.announce(v4(2), passkey="alice", event=Event.STARTED, uploaded=huge, downloaded=1)
    store.announce(v4(1), passkey="alice", uploaded=huge - 1, downloaded=2**64)
    assert store.user_totals() == {"alice": (3 * huge - 1, 2**64 - 1 + 1 + 1)}


def test_a_public_announce_keeps_no_user_totals(store: SyncStore) -> None:
    store.announce(v4(1), uploaded=100, downloaded=100)
    assert store.user_totals() == {}


def test_addresses_are_kept_as_raw_bytes(store: SyncStore) -> None:
    # NUL, space, newline, 0xff and a percent sign: nothing may be decoded or split.
    awkward = [b"\x00\x00\x00\x00\x00\x00", b" \n\r\t% ", b"\xff" * 6, bytes(range(18))]
    for address in awkward:
        store.announce(address, left=0, passkey="alice", uploaded=1)
    view = store.announce(b"\x00\x00\x00\x00\x00\x01")
    assert view.counts == SwarmCounts(4, 1, 0)
    assert sorted(view.peers) == sorted(awkward[:3])
    assert store.announce(bytes(range(1, 19))).peers == [bytes(range(18))]
    assert store.announce(b" \n\r\t% ", left=0, event=Event.STOPPED).counts == SwarmCounts(3, 2, 0)
    assert store.user_totals() == {"alice": (4, 0)}
