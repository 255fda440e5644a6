"""The scrape scheduler on virtual time: batches, caps, backoff, the rescrape interval."""

from __future__ import annotations

import pytest

from bitswarm.errors import UsageError
from bitswarm.index.scrape_plan import (
    MAX_HTTP_URL_BYTES,
    ScrapePlan,
    ScrapeProtocol,
    ScrapeTarget,
    scrape_hashes,
    scrape_target,
)
from bitswarm.tracker.scrape import decode_http_scrape, scrape_url_for
from bitswarm.tracker.swarm import SwarmCounts

HTTP = "http://tracker.example:6969/announce"
UDP = "udp://tracker.example:1337/announce"


def hashes(count: int, start: int = 0) -> list[bytes]:
    return [(start + number).to_bytes(20, "big") for number in range(count)]


@pytest.mark.parametrize(
    ("announce", "scrape"),
    [
        ("http://t.example/announce", "http://t.example/scrape"),
        ("https://t.example:8443/x/announce.php?passkey=ab", "https://t.example:8443/x/scrape.php?passkey=ab"),
        ("http://t.example/a", None),
        ("http://t.example/announce/x", None),
        ("ftp://t.example/announce", None),
    ],
)
def test_scrape_urls_follow_the_bep_48_convention(announce: str, scrape: str | None) -> None:
    assert scrape_url_for(announce) == scrape


def test_targets_ignore_other_schemes_and_udp_without_a_port() -> None:
    assert scrape_target(UDP) == ScrapeTarget(ScrapeProtocol.UDP, "udp://tracker.example:1337")
    assert scrape_target("udp://tracker.example/announce") is None
    assert scrape_target("wss://tracker.example/announce") is None
    assert scrape_target("http://tracker.example:99999/announce") is None
    assert scrape_target("http://x/" + "a" * 2000 + "/announce") is None


def test_hybrids_scrape_under_both_hashes_and_v2_under_the_cut_hash() -> None:
    assert scrape_hashes("11" * 20, "22" * 32) == (b"\x11" * 20, b"\x22" * 20)
    assert scrape_hashes(None, "22" * 32) == (b"\x22" * 20,)


def test_many_swarms_go_in_one_request_per_tracker_the_http_url_stays_short() -> None:
    plan = ScrapePlan()
    plan.track(hashes(200), [HTTP, UDP, "dht://nothing"])
    requests = plan.next_requests(0.0)
    assert {request.target.protocol for request in requests} == {ScrapeProtocol.HTTP, ScrapeProtocol.UDP}
    by_kind = {request.target.protocol: request for request in requests}
    udp, http = by_kind[ScrapeProtocol.UDP], by_kind[ScrapeProtocol.HTTP]
    assert len(udp.info_hashes) == 74
    assert len(http.url) <= MAX_HTTP_URL_BYTES
    assert 25 <= len(http.info_hashes) <= 64
    assert http.url.count("info_hash=") == len(http.info_hashes)
    assert http.url.startswith("http://tracker.example:6969/scrape?info_hash=")
    # One request per tracker at a time.
    assert plan.next_requests(0.0) == []


def test_concurrency_is_bounded_and_a_freed_slot_goes_to_the_next_tracker() -> None:
    plan = ScrapePlan(max_in_flight=2)
    for number in range(5):
        plan.track(hashes(3), [f"http://t{number}.example/announce"])
    first = plan.next_requests(0.0)
    assert len(first) == 2
    assert plan.next_requests(0.0) == []
    plan.answered(first[0].request_id, {}, 1.0)
    [third] = plan.next_requests(1.0)
    assert third.target not in {request.target for request in first}


def test_swarms_never_answered_go_first_and_each_is_rescraped_after_the_interval() -> None:
    plan = ScrapePlan(rescrape_interval_s=1800, max_udp_hashes=2)
    plan.track(hashes(2), [UDP])
    [first] = plan.next_requests(0.0)
    results = plan.answered(first.request_id, {h: SwarmCounts(1, 2, 3) for h in first.info_hashes}, 10.0)
    assert [(result.info_hash, result.counts, result.checked_at) for result in results] == [
        (h, SwarmCounts(1, 2, 3), 10.0) for h in hashes(2)
    ]
    plan.track(hashes(1, start=100), [UDP])  # a new entry: before the others are due again
    assert plan.next_deadline() == 0.0
    [second] = plan.next_requests(20.0)
    assert second.info_hashes == tuple(hashes(1, start=100))
    plan.answered(second.request_id, {}, 21.0)  # left out by the tracker: no result, asked again later
    assert plan.next_requests(1000.0) == []
    assert plan.next_deadline() == 1800.0
    [third] = plan.next_requests(1800.0)
    assert third.info_hashes == tuple(hashes(2))


def test_answers_only_count_for_swarms_that_were_asked() -> None:
    plan = ScrapePlan()
    plan.track(hashes(1), [HTTP])
    [request] = plan.next_requests(0.0)
    stranger = b"\xff" * 20
    results = plan.answered(request.request_id, {hashes(1)[0]: SwarmCounts(1, 0, 0), stranger: SwarmCounts(9, 9, 9)}, 1)
    assert [result.info_hash for result in results] == hashes(1)
    with pytest.raises(UsageError):
        plan.answered(request.request_id, {}, 2.0)


def test_a_failing_tracker_backs_off_doubling_up_to_the_cap_and_an_answer_resets_it() -> None:
    plan = ScrapePlan(backoff_initial_s=60, backoff_max_s=6 * 3600)
    plan.track(hashes(3), [UDP])
    now = 0.0
    delays = []
    for _ in range(12):
        [request] = plan.next_requests(now)
        failure = plan.failed(request.request_id, "no reply", now)
        delays.append(failure.retry_at - now)
        assert plan.next_requests(failure.retry_at - 1) == []
        assert plan.next_deadline() == failure.retry_at
        now = failure.retry_at
    assert delays[:4] == [60, 120, 240, 480]
    assert delays[-1] == 6 * 3600
    [request] = plan.next_requests(now)
    assert len(request.info_hashes) == 3  # nothing was lost while it failed
    plan.answered(request.request_id, {}, now)
    assert plan.failures_of(request.target) == 0


def test_trackers_and_pairs_held_are_capped() -> None:
    plan = ScrapePlan(max_trackers=3, max_pairs=10)
    refused = sum(plan.track(hashes(2), [f"udp://t{number}.example:1/announce"]) for number in range(5))
    stats = plan.stats()
    assert (stats.trackers, stats.pairs) == (3, 6)
    assert refused == 4
    assert plan.track(hashes(8, start=50), ["udp://t0.example:1/announce"]) == 4
    assert plan.stats().pairs == 10


def test_untracked_swarms_and_empty_trackers_are_dropped() -> None:
    plan = ScrapePlan()
    plan.track(hashes(2), [UDP, HTTP])
    plan.untrack(hashes(1))
    assert plan.stats().pairs == 2
    plan.untrack(hashes(2))
    assert plan.stats().trackers == 0
    assert plan.next_deadline() is None


@pytest.mark.parametrize(
    "body",
    [b"<html>", b"d5:filesle", b"d5:filesd3:abcd8:completei1eeee", b"d14:failure reason4:nopee", b"li1ee"],
    ids=["not-bencode", "files-list", "short-hash", "failure", "not-a-dict"],
)
def test_broken_http_scrape_replies_are_tracker_errors(body: bytes) -> None:
    from bitswarm.errors import TrackerError

    with pytest.raises(TrackerError):
        decode_http_scrape(body, hashes(1))


def test_a_count_that_is_missing_or_negative_is_refused() -> None:
    from bitswarm import bencode
    from bitswarm.errors import TrackerError

    good = {b"complete": 1, b"downloaded": 2, b"incomplete": 3}
    reply = bencode.encode({b"files": {hashes(1)[0]: good}})
    assert decode_http_scrape(reply, hashes(1)) == {hashes(1)[0]: SwarmCounts(1, 3, 2)}
    for broken in ({**good, b"complete": -1}, {b"complete": 1, b"incomplete": 3}):
        with pytest.raises(TrackerError):
            decode_http_scrape(bencode.encode({b"files": {hashes(1)[0]: broken}}), hashes(1))
