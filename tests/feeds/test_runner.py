"""poll_once against feeds served by aiohttp from a temporary folder, good and hostile:
each hostile feed costs that feed one poll and one log line, and the good feed in the same
poll is still read and its torrents handed to the watch folder."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from bitswarm.feeds.fetch import FetchLimits
from bitswarm.feeds.rules import Subscription
from bitswarm.feeds.runner import PollReport, SubscriptionRunner
from bitswarm.feeds.sinks import WatchFolderSink
from bitswarm.feeds.store import SeenDatabase
from bitswarm.metainfo import read_torrent_file
from feeds.support import BILLION_LAUGHS, rss, static_server, torrent_file

LIMITS = FetchLimits(feed_bytes=256 << 10, torrent_bytes=1 << 20, timeout_s=10.0, redirects=5)
MAGNET_HASH = "e" * 40


def write_feeds(folder: Path, base: str) -> dict[str, str]:
    """The feeds' files; their names to their URLs."""
    data, info_hash = torrent_file(folder / "work", "Show.Name.S01E01.720p.HDTV.x264-A")
    (folder / "a.torrent").write_bytes(data)
    (folder / "not-a-torrent.torrent").write_bytes(b"<html>login first</html>")
    good = [
        {
            "title": "Show.Name.S01E01.720p.HDTV.x264-A",
            "guid": "g-1",
            "enclosure": f"{base}/files/a.torrent",
            "hash": info_hash,
        },
        {
            "title": "Show.Name.S01E02.720p.HDTV.x264-A",
            "guid": "g-2",
            "magnet": f"magnet:?xt=urn:btih:{MAGNET_HASH}&dn=x",
        },
        {"title": "Other.Show.S01E01.720p", "guid": "g-3", "magnet": f"magnet:?xt=urn:btih:{'f' * 40}"},
    ]
    (folder / "good.xml").write_bytes(rss(good, ttl_min=120))
    (folder / "bomb.xml").write_bytes(BILLION_LAUGHS)
    (folder / "malformed.xml").write_bytes(rss(good)[:-40] + b"<item><title>oops</channel>")
    not_torrent = [
        {"title": "Show.Name.S01E09.720p", "guid": "g-9", "enclosure": f"{base}/files/not-a-torrent.torrent"}
    ]
    (folder / "not-torrent.xml").write_bytes(rss(not_torrent))
    return {
        "good": f"{base}/files/good.xml",
        "bomb": f"{base}/files/bomb.xml",
        "malformed": f"{base}/files/malformed.xml",
        "not-torrent": f"{base}/files/not-torrent.xml",
        "endless": f"{base}/endless",
        "enormous": f"{base}/enormous",
        "loop": f"{base}/loop?passkey=secret",
    }


async def poll(
    state: Path, watch: Path, subscriptions: list[Subscription], now: float, force: bool = False
) -> PollReport:
    with SeenDatabase(state) as seen:
        async with aiohttp.ClientSession() as http:
            runner = SubscriptionRunner(subscriptions, seen, WatchFolderSink(watch), http, limits=LIMITS)
            return await runner.poll_once(now, force=force)


def test_hostile_feeds_cost_one_poll_and_one_log_line_each_while_the_good_feed_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served, state, watch = tmp_path / "served", tmp_path / "state", tmp_path / "watch"
    served.mkdir()

    async def main() -> None:
        async with static_server(served) as base:
            urls = write_feeds(served, base)
            subscriptions = [Subscription(id=n, url=url, match="Show.Name") for n, url in enumerate(urls.values(), 1)]
            caplog.set_level(logging.INFO, "bitswarm.feeds")
            report = await asyncio.wait_for(poll(state, watch, subscriptions, now=1000.0), timeout=30)

            shown = {name: url.split("?")[0] for name, url in urls.items()}
            assert sorted(report.feeds_read) == sorted([shown["good"], shown["not-torrent"]])
            assert set(report.feeds_failed) == {shown[n] for n in ("bomb", "malformed", "endless", "enormous", "loop")}
            assert "declares XML entities" in report.feeds_failed[shown["bomb"]]
            assert "malformed XML" in report.feeds_failed[shown["malformed"]]
            assert "cut off" in report.feeds_failed[shown["endless"]]
            assert f"over {LIMITS.feed_bytes}" in report.feeds_failed[shown["enormous"]]
            assert "more than 5 redirects" in report.feeds_failed[shown["loop"]]
            assert list(report.items_failed) == ["Show.Name.S01E09.720p"]
            assert "not a torrent" in report.items_failed["Show.Name.S01E09.720p"]
            assert sorted(report.added) == ["Show.Name.S01E01.720p.HDTV.x264-A", "Show.Name.S01E02.720p.HDTV.x264-A"]
            assert (watch / f"{MAGNET_HASH}.magnet").read_text().startswith("magnet:?xt=urn:btih:" + MAGNET_HASH)
            torrent = read_torrent_file((served / "a.torrent").read_bytes())
            assert torrent.info_hash_v1 is not None
            torrent_name = f"{torrent.info_hash_v1.hex()}.torrent"
            assert {p.name for p in watch.iterdir()} == {torrent_name, f"{MAGNET_HASH}.magnet"}
            assert (watch / torrent_name).read_bytes() == (served / "a.torrent").read_bytes()

            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 6, warnings
            assert not any("secret" in line for line in warnings), "a passkey never reaches the log"

            # The next poll at the same time: every feed waits for its interval (the good one
            # for its ttl of two hours), and nothing is added again.
            again = await poll(state, watch, subscriptions, now=1001.0)
            assert again.feeds_read == []
            assert again.feeds_failed == {}
            assert again.added == []
            # Forced: the static server answers 304 to the good feed's ETag; nothing twice.
            forced = await poll(state, watch, subscriptions[:1], now=1002.0, force=True)
            assert forced.feeds_not_modified == [shown["good"]]
            assert forced.added == []

    asyncio.run(main())


def test_the_seen_database_survives_a_restart_and_dedups_across_feeds(tmp_path: Path) -> None:
    served, state, watch = tmp_path / "served", tmp_path / "state", tmp_path / "watch"
    served.mkdir()
    item = {
        "title": "Show.Name.S02E01.1080p.WEB.x264-B",
        "guid": "urn:btih:" + "1" * 40,
        "magnet": f"magnet:?xt=urn:btih:{'1' * 40}",
    }
    (served / "one.xml").write_bytes(rss([item]))
    # The same torrent on another feed under another GUID: the info-hash finds it.
    (served / "two.xml").write_bytes(rss([{**item, "guid": "elsewhere-7"}]))

    async def main() -> None:
        async with static_server(served) as base:
            first = [Subscription(id=1, url=f"{base}/files/one.xml", series=("Show Name",))]
            assert (await poll(state, watch, first, now=0.0)).added == [item["title"]]
            second = [Subscription(id=2, url=f"{base}/files/two.xml", series=("Show Name",))]
            report = await poll(state, watch, second, now=10.0)
            assert report.feeds_read
            assert report.added == []
        with SeenDatabase(state) as seen:
            assert seen.seen_count() == 2  # its GUID and its info-hash

    asyncio.run(main())
