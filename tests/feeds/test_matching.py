"""The matching core: items and the time in, decisions out."""

from __future__ import annotations

from bitswarm.feeds.document import FeedItem
from bitswarm.feeds.matching import Grab, GrabbedEpisode, HeldItem, History, Hold, Skip, plan
from bitswarm.feeds.rules import Subscription, compile_rules

DAY = 86400.0


def item(title: str, size: int | None = None) -> FeedItem:
    return FeedItem(title=title, guid=title, magnet_uri=f"magnet:?xt=urn:btih:{'a' * 40}", size_bytes=size)


def rules(**options: object):  # type: ignore[no-untyped-def]
    return compile_rules(Subscription(id=1, url="http://127.0.0.1/rss", **options))  # type: ignore[arg-type]


def kinds(decisions: list[Grab | Hold | Skip]) -> list[tuple[str, str]]:
    return [(type(decision).__name__, decision.item.title) for decision in decisions]


def test_regex_and_size_rules_pick_items() -> None:
    chosen = rules(match=r"ubuntu", exclude=r"beta", min_size=100, max_size=1000)
    items = [item("ubuntu 24.04", 500), item("ubuntu 24.10 beta", 500), item("debian", 500), item("ubuntu big", 5000)]
    decisions = plan(chosen, items, History(), now=0.0)
    assert kinds(decisions) == [
        ("Grab", "ubuntu 24.04"),
        ("Skip", "ubuntu 24.10 beta"),
        ("Skip", "debian"),
        ("Skip", "ubuntu big"),
    ]


def test_the_best_release_of_a_batch_wins_and_the_episode_is_taken_once() -> None:
    chosen = rules(series=("Show Name",), quality="720p+")
    items = [
        item("Show.Name.S01E02.720p.HDTV.x264-A"),
        item("Show.Name.S01E02.1080p.WEB-DL.x264-B"),
        item("Other.S01E02.1080p"),
    ]
    decisions = plan(chosen, items, History(), now=0.0)
    assert kinds(decisions) == [
        ("Grab", "Show.Name.S01E02.1080p.WEB-DL.x264-B"),
        ("Skip", "Other.S01E02.1080p"),
        ("Skip", "Show.Name.S01E02.720p.HDTV.x264-A"),
    ]
    grab = decisions[0]
    assert isinstance(grab, Grab)
    assert grab.episodes == ("S01E02",)


def test_a_film_and_a_season_pack_are_not_episodes_unless_packs_are_asked_for() -> None:
    film = item("Show.Name.2019.1080p.BluRay.x264-X")
    pack = item("Show.Name.S02.1080p.BluRay.x264-X")
    assert kinds(plan(rules(series=("Show Name",)), [film, pack], History(), 0.0)) == [
        ("Skip", film.title),
        ("Skip", pack.title),
    ]
    decisions = plan(rules(series=("Show Name",), packs=True), [pack, item("Show.Name.S02E05.720p")], History(), 0.0)
    assert kinds(decisions) == [("Grab", pack.title), ("Skip", "Show.Name.S02E05.720p")]


def test_anime_absolute_numbers_are_episodes_of_their_own() -> None:
    chosen = rules(series=("One Piece",))
    history = History(grabbed={("One Piece", "A1070"): GrabbedEpisode("b" * 40, False, 0.0)})
    items = [
        item("[SubsPlease] One Piece - 1070 (1080p) [AB12CD34].mkv"),
        item("[SubsPlease] One Piece - 1071 (1080p) [AB12CD35].mkv"),
    ]
    assert kinds(plan(chosen, items, history, 1.0)) == [("Skip", items[0].title), ("Grab", items[1].title)]


def test_a_proper_replaces_a_download_within_the_window_only() -> None:
    chosen = rules(series=("Show Name",), proper_window_s=2 * DAY)
    history = History(grabbed={("Show Name", "S01E02"): GrabbedEpisode("c" * 40, False, 0.0)})
    proper = item("Show.Name.S01E02.PROPER.720p.HDTV.x264-A")
    inside = plan(chosen, [proper], history, now=DAY)
    assert isinstance(inside[0], Grab)
    assert inside[0].replaces == ("c" * 40,)
    assert inside[0].is_proper
    assert kinds(plan(chosen, [proper], history, now=3 * DAY)) == [("Skip", proper.title)]
    again = History(grabbed={("Show Name", "S01E02"): GrabbedEpisode("d" * 40, True, 0.0)})
    assert kinds(plan(chosen, [item("Show.Name.S01E02.REPACK.720p")], again, now=DAY)) == [
        ("Skip", "Show.Name.S01E02.REPACK.720p")
    ]


def test_a_lower_quality_is_held_for_the_wait_then_the_best_held_is_taken() -> None:
    chosen = rules(series=("Show Name",), quality="1080p", wait_s=DAY)
    low = item("Show.Name.S01E03.480p.HDTV.x264-A")
    mid = item("Show.Name.S01E03.720p.HDTV.x264-B")
    first = plan(chosen, [low], History(), now=0.0)
    assert isinstance(first[0], Hold)
    assert first[0].until == DAY
    held = [HeldItem(low, "Show Name", ("S01E03",), 0.0)]
    second = plan(chosen, [mid], History(held=held), now=DAY / 2)
    assert kinds(second) == [("Hold", mid.title)]
    held.append(HeldItem(mid, "Show Name", ("S01E03",), 0.0))
    third = plan(chosen, [], History(held=held), now=DAY)
    assert kinds(third) == [("Grab", mid.title)]


def test_the_wanted_quality_within_the_wait_is_taken_at_once() -> None:
    chosen = rules(series=("Show Name",), quality="1080p", wait_s=DAY)
    held = [HeldItem(item("Show.Name.S01E03.720p.HDTV.x264-B"), "Show Name", ("S01E03",), 0.0)]
    decisions = plan(chosen, [item("Show.Name.S01E03.1080p.WEB.x264-C")], History(held=held), now=DAY / 2)
    assert kinds(decisions) == [("Grab", "Show.Name.S01E03.1080p.WEB.x264-C")]


def test_without_a_wait_a_lower_quality_is_skipped_with_the_reason() -> None:
    decisions = plan(
        rules(series=("Show Name",), quality="1080p web"), [item("Show.Name.S01E03.1080p.HDTV")], History(), 0.0
    )
    assert isinstance(decisions[0], Skip)
    assert decisions[0].reason == "1080p hdtv is not 1080p web"


def test_a_daily_show_is_matched_by_its_date() -> None:
    chosen = rules(series=("The Daily Show",))
    history = History(grabbed={("The Daily Show", "D2023-10-23"): GrabbedEpisode(None, False, 0.0)})
    items = [
        item("The.Daily.Show.2023.10.23.Guest.720p.WEB.h264-KOGi"),
        item("The.Daily.Show.2023.10.24.Guest.720p.WEB.h264-KOGi"),
    ]
    assert kinds(plan(chosen, items, history, 1.0)) == [("Skip", items[0].title), ("Grab", items[1].title)]
