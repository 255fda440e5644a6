"""A subscription to the real ``bitswarm index`` site's /rss feed (ezRSS namespace,
enclosures): the entry with a .torrent arrives as its checked .torrent, the entry still
waiting for metadata as its magnet link, and an entry of another show not at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bitswarm.feeds.rules import Subscription
from bitswarm.feeds.runner import SubscriptionRunner
from bitswarm.feeds.sinks import WatchFolderSink
from bitswarm.feeds.store import SeenDatabase
from bitswarm.index.config import IndexConfig
from bitswarm.index.db import open_database
from bitswarm.metainfo import read_torrent_file
from feeds.support import torrent_file
from index.test_site import SECRET, serving

MAGNET_HASH = "ab" * 20


def test_the_index_sites_feed_delivers_its_torrent_and_its_magnet_link(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    data, info_hash = torrent_file(tmp_path / "work", "Show.Name.S03E04.1080p.WEB.H264-GRP")
    other, _ = torrent_file(tmp_path / "work", "Another.Show.S03E04.1080p.WEB.H264-GRP")
    watch = tmp_path / "watch"

    async def main() -> None:
        database = await open_database(url)
        async with database:
            await database.entries.add_torrent(data)
            await database.entries.add_torrent(other)
            await database.entries.add_magnet(
                f"magnet:?xt=urn:btih:{MAGNET_HASH}&dn=Show.Name.S03E05.1080p.WEB.H264-GRP"
            )
        config = IndexConfig(bind="127.0.0.1:0", db=url, secret_key=SECRET, tracker=False)
        async with serving(config) as base, aiohttp.ClientSession() as http:
            subscription = Subscription(id=1, url=f"{base}/rss", series=("Show Name",), quality="1080p web")
            with SeenDatabase(tmp_path / "state") as seen:
                runner = SubscriptionRunner([subscription], seen, WatchFolderSink(watch), http)
                report = await asyncio.wait_for(runner.poll_once(0.0), timeout=30)
        assert report.feeds_failed == {}
        assert report.items_failed == {}
        assert sorted(report.added) == ["Show.Name.S03E04.1080p.WEB.H264-GRP", "Show.Name.S03E05.1080p.WEB.H264-GRP"]
        assert {p.name for p in watch.iterdir()} == {f"{info_hash}.torrent", f"{MAGNET_HASH}.magnet"}
        assert read_torrent_file((watch / f"{info_hash}.torrent").read_bytes()).info == read_torrent_file(data).info

    asyncio.run(main())
