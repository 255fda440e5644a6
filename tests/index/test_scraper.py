"""The scraper against real trackers on loopback: bitswarm's own (HTTP and UDP, in this
process) and Debian's opentracker; a tracker that never answers and ones that answer
garbage; the switch that turns scrapes off; the counts on the site's entry page."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote_from_bytes

import aiohttp
from aiohttp import web

from bitswarm.index import open_database
from bitswarm.index.config import IndexConfig
from bitswarm.index.counts import ScrapeSource
from bitswarm.index.db import IndexDatabase
from bitswarm.index.run import own_trackers
from bitswarm.index.scrape_plan import ScrapePlan, ScrapeResult, scrape_target
from bitswarm.index.scraper import Scraper
from bitswarm.index.site import COUNTS_CACHED_S, Site
from bitswarm.metainfo import TorrentVersion, read_torrent_file
from bitswarm.net.http_client import http_get
from bitswarm.net.tracker import TrackerServer, TrackerService
from bitswarm.tracker.config import TrackerConfig
from bitswarm.tracker.memory import MemoryStore
from bitswarm.tracker.swarm import SwarmCounts
from index.support import make_torrent, run
from index.test_site import SECRET, Browser, serving
from interop.trackers import http_announce, run_opentracker

FAST = {"timeout_s": 1.0, "udp_resend_s": 0.3}
V1 = TorrentVersion.V1


@asynccontextmanager
async def bitswarm_tracker() -> AsyncIterator[TrackerServer]:
    config = TrackerConfig(http=("127.0.0.1:0",), udp=("127.0.0.1:0",))
    server = TrackerServer(TrackerService(config, MemoryStore(peer_timeout_s=1800, rng=random.Random(1))))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def urls_of(server: TrackerServer) -> tuple[str, str]:
    (http_host, http_port), (udp_host, udp_port) = server.http_addresses[0], server.udp_addresses[0]
    return f"http://{http_host}:{http_port}/announce", f"udp://{udp_host}:{udp_port}/announce"


async def announce(url: str, info_hash: bytes, port: int, *, left: int) -> None:
    query = (
        f"info_hash={quote_from_bytes(info_hash, safe='')}&peer_id={str(port).ljust(20, '-')}&port={port}"
        f"&uploaded=0&downloaded=0&left={left}&compact=1"
    )
    status, _body = await http_get(f"{url}?{query}", timeout_s=5)
    assert status == 200


def source(entry_id: int, info_hash: bytes, *urls: str) -> ScrapeSource:
    return ScrapeSource(entry_id, info_hash.hex(), None, urls)


async def best_counts(db: IndexDatabase, info_hash: bytes) -> tuple[int, int, int] | None:
    found = (await db.counts.best({1: [info_hash]})).get(1)
    return (found.seeders, found.leechers, found.completed) if found is not None else None


def test_scrapes_of_bitswarms_tracker_over_http_and_udp_are_stored(tmp_path: Path) -> None:
    swarms = [bytes([number]) * 20 for number in range(1, 81)]

    async def scenario() -> None:
        async with bitswarm_tracker() as tracker, await open_database(f"sqlite:///{tmp_path / 'i.db'}") as db:
            http_url, udp_url = urls_of(tracker)
            for port, left in ((7001, 0), (7002, 0), (7003, 50)):
                await announce(http_url, swarms[0], port, left=left)
            await announce(http_url, swarms[-1], 7004, left=0)
            scraper = Scraper(db.counts, **FAST)  # type: ignore[arg-type]
            scraper.track([source(1, swarms[0], http_url)])
            scraper.track([source(n + 2, info_hash, udp_url) for n, info_hash in enumerate(swarms)])
            await scraper.scrape_due()
            # 80 swarms at the UDP tracker: two packets (74 + 6); one HTTP request.
            assert scraper.stats.requests == 3
            assert scraper.stats.answers == 3
            assert not scraper.stats.failures
            assert await best_counts(db, swarms[0]) == (2, 1, 0)
            assert await best_counts(db, swarms[-1]) == (1, 0, 0)
            assert await best_counts(db, swarms[5]) == (0, 0, 0)  # asked, and nobody is there
            await scraper.scrape_due()  # nothing is due again yet
            assert scraper.stats.requests == 3

    run(scenario())


def test_scrapes_of_opentracker_over_http_and_udp(tmp_path: Path) -> None:
    swarms = [bytes([0xA0 + number]) * 20 for number in range(3)]
    with run_opentracker(tmp_path / "opentracker", swarms, b"\x99" * 20) as urls:
        http_announce(urls.announce, swarms[0], port=7101, left=0)
        http_announce(urls.announce, swarms[0], port=7102, left=10)
        http_announce(urls.announce, swarms[1], port=7103, left=0)

        async def scenario(announce_url: str) -> None:
            async with await open_database(f"sqlite:///{tmp_path / 'i.db'}") as db:
                scraper = Scraper(db.counts, **FAST)  # type: ignore[arg-type]
                scraper.track([source(n, info_hash, announce_url) for n, info_hash in enumerate(swarms)])
                await scraper.scrape_due()
                assert not scraper.stats.failures, scraper.last_failures
                assert await best_counts(db, swarms[0]) == (1, 1, 0)
                assert await best_counts(db, swarms[1]) == (1, 0, 0)
                assert scraper.stats.requests == 1

        run(scenario(urls.announce))
        run(scenario(urls.udp))


class Silent(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.datagrams += 1


@asynccontextmanager
async def garbage_trackers() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP server whose /garbage/scrape answers HTML, /big/scrape an oversized body and
    /moved/scrape a redirect; yields its base URL and the paths asked, in order."""
    asked: list[str] = []

    async def garbage(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(text="<html>no bencode here</html>")

    async def big(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=b"d5:filesd" + b"x" * 200_000 + b"ee")

    async def moved(request: web.Request) -> web.Response:
        asked.append(request.path)
        raise web.HTTPFound("http://127.0.0.1:1/elsewhere")

    app = web.Application()
    app.add_routes([web.get("/garbage/scrape", garbage), web.get("/big/scrape", big), web.get("/moved/scrape", moved)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        await runner.cleanup()


def test_silent_and_garbage_trackers_fail_and_back_off_without_harm(tmp_path: Path) -> None:
    info_hash = b"\x42" * 20

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        silent = Silent()
        transport, _ = await loop.create_datagram_endpoint(lambda: silent, local_addr=("127.0.0.1", 0))
        silent_url = "udp://127.0.0.1:{}/announce".format(transport.get_extra_info("sockname")[1])
        try:
            async with garbage_trackers() as (base, asked), bitswarm_tracker() as tracker:
                good_url, _udp = urls_of(tracker)
                await announce(good_url, info_hash, 7201, left=0)
                bad = [f"{base}/garbage/announce", f"{base}/big/announce", f"{base}/moved/announce", silent_url]
                async with await open_database(f"sqlite:///{tmp_path / 'i.db'}") as db:
                    scraper = Scraper(db.counts, ScrapePlan(max_in_flight=2), **FAST)  # type: ignore[arg-type]
                    scraper.track([source(1, info_hash, *bad, good_url, "udp://a..b:1/announce")])
                    await scraper.scrape_due()
                    assert sorted(asked) == ["/big/scrape", "/garbage/scrape", "/moved/scrape"]
                    assert silent.datagrams >= 2  # the connect, resent after silence
                    reasons = {failure.target.url: failure.reason for failure in scraper.last_failures}
                    assert "no reply" in reasons["udp://127.0.0.1:{}".format(silent_url.split(":")[2].split("/")[0])]
                    assert "bencode" in reasons[f"{base}/garbage/scrape"]
                    # http_get stops reading past its bound (httptools words the reason as a
                    # callback error).
                    assert f"{base}/big/scrape" in reasons
                    assert "302" in reasons[f"{base}/moved/scrape"]
                    assert "bad tracker host" in reasons["udp://a..b:1"]
                    for url in [*bad, "udp://a..b:1/announce"]:
                        target = scrape_target(url)
                        assert target is not None
                        assert scraper.plan.failures_of(target) == 1
                    # The good tracker answered all the same; the entry shows its counts.
                    assert await best_counts(db, info_hash) == (1, 0, 0)
                    # Backing off: another round asks nobody.
                    requests = scraper.stats.requests
                    await scraper.scrape_due()
                    assert scraper.stats.requests == requests
                    assert len(asked) == 3
        finally:
            transport.close()

    run(scenario())


def test_with_the_switch_off_no_request_is_made(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with garbage_trackers() as (base, asked), await open_database(f"sqlite:///{tmp_path / 'i.db'}") as db:
            scraper = Scraper(db.counts, enabled=False)
            scraper.track([source(1, b"\x01" * 20, f"{base}/garbage/announce")])
            await scraper.scrape_due()
            await scraper.run(asyncio.Event())  # returns at once: nothing to do
            assert scraper.stats.requests == 0
            assert asked == []

    run(scenario())


def test_the_counts_store_keeps_the_best_answer_per_entry(index_url: str) -> None:
    one, two = b"\x01" * 20, b"\x02" * 20

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            await db.counts.record(
                [
                    ScrapeResult("udp://a:1", one, SwarmCounts(3, 4, 5), 100.0),
                    ScrapeResult("http://b/scrape", one, SwarmCounts(7, 1, 2), 110.0),
                    ScrapeResult("udp://a:1", two, SwarmCounts(1, 0, 0), 120.0),
                ]
            )
            await db.counts.record([ScrapeResult("udp://a:1", one, SwarmCounts(9, 9, 9), 130.0)])  # replaces
            best = await db.counts.best({10: [one, two], 11: [two], 12: [b"\x03" * 20]})
            assert (best[10].seeders, best[10].leechers, best[10].checked_at) == (9, 9, 130)
            assert (best[11].seeders, best[11].checked_at) == (1, 120)
            assert 12 not in best
            assert await db.counts.prune(older_than_s=0) == 3

    run(scenario())


def test_the_sites_counts_are_read_again_after_a_minute_or_after_this_process_records(
    index_url: str, tmp_path: Path
) -> None:
    """An entry's scraped counts (and "unknown") are kept a minute: another process's new
    answer shows after it, this process's own at once."""
    tracker = "udp://127.0.0.1:9/announce"
    data = make_torrent(tmp_path, "Cached", {"": b"c" * 5000}, V1, trackers=[tracker])
    info_hash = read_torrent_file(data).info_hash_v1
    assert info_hash is not None
    now = [1000.0]

    async def scenario() -> None:
        async with await open_database(index_url) as db, await open_database(index_url) as other_process:
            entry = await db.entries.add_torrent(data)
            config = IndexConfig(bind="127.0.0.1:0", db=index_url, secret_key=SECRET)
            site = Site(config, db, None, SECRET.encode(), clock=lambda: now[0])
            assert await site.health([entry]) == {}  # unknown
            await other_process.counts.record([ScrapeResult(tracker, info_hash, SwarmCounts(4, 2, 1), now[0])])
            assert await site.health([entry]) == {}  # "unknown" kept for the minute
            now[0] += COUNTS_CACHED_S + 1
            assert (await site.health([entry]))[entry.id].seeders == 4
            await other_process.counts.record([ScrapeResult(tracker, info_hash, SwarmCounts(6, 0, 1), now[0])])
            assert (await site.health([entry]))[entry.id].seeders == 4  # kept
            await db.counts.record([ScrapeResult(tracker, info_hash, SwarmCounts(8, 0, 1), now[0])])
            assert (await site.health([entry]))[entry.id].seeders == 8  # this process's write: at once

    run(scenario())


def test_the_entry_page_shows_other_trackers_counts_with_their_age_or_unknown(index_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        silent = Silent()
        transport, _ = await loop.create_datagram_endpoint(lambda: silent, local_addr=("127.0.0.1", 0))
        silent_url = "udp://127.0.0.1:{}/announce".format(transport.get_extra_info("sockname")[1])
        config = IndexConfig(bind="127.0.0.1:0", db=index_url, secret_key=SECRET, scrape_other_trackers=False)
        try:
            async with bitswarm_tracker() as tracker, serving(config) as base:
                _http_url, udp_url = urls_of(tracker)
                scraped = make_torrent(tmp_path / "a", "Scraped", {"": b"s" * 5000}, V1, trackers=[udp_url])
                lonely = make_torrent(tmp_path / "b", "Lonely", {"": b"l" * 5000}, V1, trackers=[silent_url])
                info_hash = read_torrent_file(scraped).info_hash_v1
                assert info_hash is not None
                for port, left in ((7301, 0), (7302, 0), (7303, 0), (7304, 9)):
                    await announce(_http_url, info_hash, port, left=left)
                jar = aiohttp.CookieJar(unsafe=True)
                async with aiohttp.ClientSession(cookie_jar=jar) as http:
                    browser = Browser(base, http)
                    # Not followed to the entry pages: what a page reads is kept a minute, and
                    # this scraper's answers come from outside the site's process.
                    upload: dict[str, object] = {"torrent": ("s.torrent", scraped)}
                    _s, scraped_path, _p = await browser.form("/upload", upload, follow=False)
                    upload = {"torrent": ("l.torrent", lonely)}
                    _s, lonely_path, _p = await browser.form("/upload", upload, follow=False)
                    # One scrape round, as the site's scraper runs it (the site's own tracker,
                    # first in the uploads' announce lists, is never scraped).
                    own = own_trackers(config, "127.0.0.1", int(base.rsplit(":", 1)[1]))
                    async with await open_database(index_url) as db:
                        scraper = Scraper(db.counts, skip=own, **FAST)  # type: ignore[arg-type]
                        await scraper.reload()
                        await scraper.scrape_due()
                        assert scraper.stats.answers == 1
                    _status, page = await browser.get(scraped_path)
                    assert '<span class="seeders">3</span> seeders, 1 leecher,' in page
                    assert re.search(r"as of \d+ s ago", page)
                    _status, page = await browser.get(lonely_path)
                    swarm = page.split("<dt>Swarm</dt>", 1)[1][:200]
                    assert "unknown" in swarm
                    assert "seeders" not in swarm
        finally:
            transport.close()

    run(scenario())


def test_the_site_scrapes_on_its_own_when_the_switch_is_on_and_never_when_off(index_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with garbage_trackers() as (base, asked):
            tracker = f"{base}/garbage/announce"
            data = make_torrent(tmp_path, "Pre", {"": b"p" * 5000}, TorrentVersion.V1, trackers=[tracker])
            async with await open_database(index_url) as db:
                await db.entries.add_torrent(data)
            off = IndexConfig(bind="127.0.0.1:0", db=index_url, secret_key=SECRET, scrape_other_trackers=False)
            async with serving(off) as url:
                status, _body = await http_get(url + "/", timeout_s=5)
                assert status == 200
            assert asked == []
            on = IndexConfig(bind="127.0.0.1:0", db=index_url, secret_key=SECRET)
            async with serving(on):
                async with asyncio.timeout(20):
                    while not asked:  # the scraper's first round, observed at the tracker
                        await asyncio.sleep(0.05)
            assert asked == ["/garbage/scrape"]

    run(scenario())
