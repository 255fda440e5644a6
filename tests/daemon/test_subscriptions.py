"""Subscriptions polled by the daemon itself (issue 13, point 4): a feed served by a static
aiohttp server, a daemon that picks its matching items up on its own and lists them over
the RPC with the subscription's folder and label; the sink's proper replacement; the
web UI's Subscriptions page in-process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bitswarm.daemon.config import DaemonConfig
from bitswarm.daemon.service import Daemon as DaemonService
from bitswarm.daemon.state import StateStore
from bitswarm.daemon.subscriptions import MAX_SLEEP_S, SessionSink, SubscriptionPoller, subscriptions_folder
from bitswarm.errors import SinkError
from bitswarm.feeds.rules import Subscription
from bitswarm.feeds.sinks import Delivery
from bitswarm.feeds.store import SeenDatabase, SubscriptionFile
from bitswarm.net.session import Session
from feeds.support import rss, static_server, torrent_file
from interop.trackers import wait_for

from .conftest import running_daemon
from .test_web_ui import CSRF, poll, run, serving

MAGNET_HASH = "c" * 40
STEP_TIMEOUT_S = 15.0


@contextmanager
def feed_server(folder: Path) -> Iterator[str]:
    """``feeds.support.static_server`` on its own event loop in a thread, for a test whose
    daemon is another process; its base URL."""
    loop = asyncio.new_event_loop()
    started: asyncio.Future[str] = loop.create_future()
    stop = asyncio.Event()

    async def serve() -> None:
        async with static_server(folder) as base:
            started.set_result(base)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    base = asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(started), STEP_TIMEOUT_S), loop)
    try:
        yield base.result(STEP_TIMEOUT_S)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(STEP_TIMEOUT_S)
        assert not thread.is_alive(), "the feed server did not stop"
        loop.close()


def write_feed(folder: Path, base: str) -> str:
    """A feed with a .torrent enclosure and a magnet link that match, and one that does not."""
    data, _info_hash = torrent_file(folder / "work", "Show.Name.S01E01.720p.HDTV.x264-A")
    (folder / "e1.torrent").write_bytes(data)
    items = [
        {"title": "Show.Name.S01E01.720p.HDTV.x264-A", "guid": "g-1", "enclosure": f"{base}/files/e1.torrent"},
        {"title": "Show.Name.S01E02.720p.HDTV.x264-A", "guid": "g-2", "magnet": f"magnet:?xt=urn:btih:{MAGNET_HASH}"},
        {"title": "Other.Show.S01E01.720p", "guid": "g-3", "magnet": f"magnet:?xt=urn:btih:{'d' * 40}"},
    ]
    (folder / "feed.xml").write_bytes(rss(items))
    return f"{base}/files/feed.xml"


def test_the_daemon_polls_its_subscriptions_on_its_own_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    tv = tmp_path / "tv"
    with feed_server(feeds) as base:
        url = write_feed(feeds, base)
        # Written where `bitswarm subscribe --state STATE/subscriptions add` writes it.
        state = tmp_path / "d" / "state"
        subscription = Subscription(id=1, url=url, match=r"^show\.name", download_dir=str(tv), labels=("tv",))
        SubscriptionFile(subscriptions_folder(DaemonConfig(), state)).save([subscription])
        with running_daemon(tmp_path / "d") as daemon:

            def rows() -> list[dict[str, object]]:
                return daemon.torrents("name", "downloadDir", "labels", "hashString")

            wait_for(lambda: len(rows()) == 2, "both matching items added", STEP_TIMEOUT_S)
            by_name = {str(row["name"]): row for row in rows()}
            assert set(by_name) == {"Show.Name.S01E01.720p.HDTV.x264-A", MAGNET_HASH}
            for row in by_name.values():
                assert row["downloadDir"] == str(tv)
                assert row["labels"] == ["tv"]
            assert by_name[MAGNET_HASH]["hashString"] == MAGNET_HASH

            def both_seen() -> bool:
                with SeenDatabase(subscriptions_folder(DaemonConfig(), state)) as seen:
                    return seen.is_seen(["guid:g-1"]) and seen.is_seen(["guid:g-2"])

            # A torrent is listed while its add is saved, and its item is marked seen after
            # the add returns: a SIGTERM in between would leave it to the next poll.
            wait_for(both_seen, "both items marked seen", STEP_TIMEOUT_S)
        # running_daemon sent SIGTERM by PID and asserted exit status 0.
    # The seen-database the daemon wrote is the one `bitswarm subscribe --state` reads.
    with SeenDatabase(subscriptions_folder(DaemonConfig(), state)) as seen:
        assert seen.is_seen(["guid:g-1"])
        assert seen.is_seen(["guid:g-2"])
        assert not seen.is_seen(["guid:g-3"])
        assert seen.feed_state(url).next_poll_at > 0


@asynccontextmanager
async def open_daemon(tmp: Path, **config: Any) -> AsyncIterator[DaemonService]:
    """The daemon's service in-process (no RPC), on loopback with DHT and discovery off."""
    settings = DaemonConfig(
        download_dir=str(tmp / "downloads"), peer_port=0, dht=False, lsd=False, port_mapping=False, **config
    )
    session = Session(port=0, dht=False, lsd=False)
    await session.start()
    daemon = DaemonService(settings, StateStore(tmp / "state"), session)
    await daemon.open()
    try:
        yield daemon
    finally:
        await daemon.close()


def test_a_propers_replacement_removes_the_earlier_torrent_and_keeps_its_data(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with open_daemon(tmp_path) as daemon:
            sink = SessionSink(daemon)
            first, first_hash = torrent_file(tmp_path / "work", "Show.S01E01.720p-A")
            proper, proper_hash = torrent_file(tmp_path / "work", "Show.S01E01.PROPER.720p-B")
            await sink.add(Delivery("Show.S01E01.720p-A", first_hash, metainfo=first, labels=("tv",)))
            [entry] = daemon.select(None)
            kept = Path(entry.record.data_dir) / "Show.S01E01.720p-A"
            kept.write_bytes(b"what the first download wrote")
            delivery = Delivery("proper", proper_hash, metainfo=proper, labels=("tv",), replaces=(first_hash,))
            await sink.add(delivery)
            assert [e.record.info_hash for e in daemon.select(None)] == [proper_hash]
            assert daemon.select(None)[0].record.labels == ["tv"]
            assert kept.read_bytes() == b"what the first download wrote"
            await sink.add(delivery)  # again: a duplicate, and the replaced one is gone already
            assert len(daemon.select(None)) == 1
            with pytest.raises(SinkError, match="bencode"):
                await sink.add(Delivery("bad", "0" * 40, metainfo=b"not a torrent"))
            with pytest.raises(SinkError, match="not an absolute path"):
                await sink.add(Delivery("rel", MAGNET_HASH, magnet_uri=f"magnet:?xt=urn:btih:{MAGNET_HASH}",
                                        download_dir="relative/tv"))  # fmt: skip

    run(scenario)


def test_the_subscriptions_page_adds_lists_and_removes_and_the_daemon_polls_what_was_added(tmp_path: Path) -> None:
    async def scenario() -> None:
        feeds = tmp_path / "feeds"
        feeds.mkdir()
        async with static_server(feeds) as base, serving(tmp_path / "d") as (visitor, downloads):
            url = write_feed(feeds, base) + "?passkey=secret123"
            status, page = await visitor.get("/subscriptions")
            assert status == 200
            assert "No subscriptions yet" in page
            assert 'href="/subscriptions"' in (await visitor.get("/"))[1]
            # Without its CSRF token a form changes nothing.
            async with visitor.http.post(visitor.base + "subscriptions", data={"url": url}) as response:
                assert response.status == 403
            # Bad rules: the page again, with the reason and what was typed.
            fields = {"url": url, "match": "(unclosed", "labels": "tv"}
            status, _where, body = await visitor.form("/subscriptions", fields, from_page="/subscriptions")
            assert status == 400
            assert "--match" in body
            assert 'value="(unclosed"' in body
            fields = {"url": url, "match": r"^show\.name.*s01e02", "max_size": "2G", "labels": "tv, <b>x</b>",
                      "download_dir": str(downloads / "tv")}  # fmt: skip
            status, where, body = await visitor.form("/subscriptions", fields, from_page="/subscriptions")
            assert (status, where) == (200, "/subscriptions")
            assert "secret123" not in body  # the passkey stays off the screen
            assert "max 2.0 GiB" in body
            assert "&lt;b&gt;x&lt;/b&gt;" in body

            async def added() -> bool:
                torrents = await visitor.rpc("torrent-get", fields=["hashString", "downloadDir", "labels"])
                return bool(torrents["torrents"])

            await poll(added, "the subscription's item added by the daemon on its own")
            [row] = (await visitor.rpc("torrent-get", fields=["hashString", "downloadDir", "labels"]))["torrents"]
            assert row == {
                "hashString": MAGNET_HASH,
                "downloadDir": str(downloads / "tv"),
                "labels": ["tv", "<b>x</b>"],
            }

            async def page_shows_the_poll() -> bool:
                return "1 added" in (await visitor.get("/subscriptions"))[1]

            await poll(page_shows_the_poll, "the last poll's result on the page")
            page = (await visitor.get("/subscriptions"))[1]
            assert "Show.Name.S01E02.720p.HDTV.x264-A" in page
            [stored] = SubscriptionFile(tmp_path / "d" / "state" / "subscriptions").load()
            assert stored.labels == ("tv", "<b>x</b>")
            status, where, body = await visitor.form(
                f"/subscriptions/{stored.id}/remove", {}, from_page="/subscriptions"
            )
            assert (status, where) == (200, "/subscriptions")
            assert "No subscriptions yet" in body
            assert SubscriptionFile(tmp_path / "d" / "state" / "subscriptions").load() == []
            status, _where, _body = await visitor.form("/subscriptions/99/remove", {}, from_page="/subscriptions")
            assert status == 404
            assert CSRF.search(body) is not None

    run(scenario)


def test_with_subscriptions_off_a_turn_of_the_loop_polls_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        feeds = tmp_path / "feeds"
        feeds.mkdir()
        async with static_server(feeds) as base:
            url = write_feed(feeds, base)
            folder = tmp_path / "subs"
            SubscriptionFile(folder).save([Subscription(id=1, url=url)])
            async with open_daemon(tmp_path, subscriptions_enabled=False) as daemon, aiohttp.ClientSession() as http:
                poller = SubscriptionPoller(daemon, folder)
                with SeenDatabase(folder) as seen:
                    assert await poller.poll(http, seen) == MAX_SLEEP_S
                    assert seen.feed_state(url).next_poll_at == 0.0
                    assert daemon.select(None) == []
                    daemon.reload(replace(daemon.config, subscriptions_enabled=True))  # SIGHUP turns it on
                    assert await poller.poll(http, seen) <= MAX_SLEEP_S
                    assert seen.feed_state(url).next_poll_at > 0.0
                    assert len(daemon.select(None)) == 3  # no rules: every item
                    assert poller.status[1].result == "feed read; 3 added"

    run(scenario)


def test_the_subscriptions_folder_defaults_to_the_state_folder_and_follows_the_config(tmp_path: Path) -> None:
    assert subscriptions_folder(DaemonConfig(), tmp_path) == tmp_path / "subscriptions"
    assert subscriptions_folder(DaemonConfig(subscriptions_dir="/srv/subs"), tmp_path) == Path("/srv/subs")
