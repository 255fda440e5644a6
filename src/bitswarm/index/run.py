"""``bitswarm index``: the site, its database and its tracker in one process.

With the tracker on, the site answers ``/announce`` and ``/scrape`` at its own address and
UDP announces on the same port number, and its pages read the live counts straight from
the tracker's store. With ``scrape_other_trackers`` on, a ``Scraper`` fetches the counts of
the other trackers entries name (``bitswarm.index.scraper``). No access log is written (it
would hold visitors' addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any

from aiohttp import web

from bitswarm.errors import BitswarmError, UsageError
from bitswarm.index.bundles import SiteKeys
from bitswarm.index.config import IndexConfig
from bitswarm.index.db import IndexDatabase, open_database
from bitswarm.index.metadata import MetadataFetcher
from bitswarm.index.scrape_plan import ScrapeResult, ScrapeTarget, scrape_target
from bitswarm.index.scraper import Scraper
from bitswarm.index.site import Site, add_tracker_routes, create_index_app, random_secret
from bitswarm.tracker.config import TrackerConfig, split_host_port
from bitswarm.tracker.memory import MemoryStore
from bitswarm.web.hosts import listening_socket, url_host

log = logging.getLogger(__name__)
# The own tracker's counts go to the database this often, for searches by seeders, under
# this name (never a URL, so the scraper never mistakes it for a tracker to ask).
OWN_COUNTS_EVERY_S = 60.0
# Other processes' grants reach this process's tracker within this long.
PRIVATE_SWARMS_S = 10.0
OWN_TRACKER = "bitswarm-index:own-tracker"
MAX_OWN_COUNTS_RECORDED = 200_000


def own_trackers(config: IndexConfig, host: str, port: int) -> frozenset[ScrapeTarget]:
    """The site's own tracker as uploads name it (by its public URL, or the bound address
    and loopback names), over HTTP and UDP: shown live from the store, never scraped."""
    hosts = {url_host(host), "127.0.0.1", "localhost", "[::1]"} - {""}
    urls = [f"{scheme}://{name}:{port}/announce" for name in hosts for scheme in ("http", "udp")]
    if config.public_url:
        urls.append(config.public_url.rstrip("/") + "/announce")
    return frozenset(target for url in urls if (target := scrape_target(url)) is not None)


async def serve_index(
    config: IndexConfig, *, ready: Callable[[str], None], stop: asyncio.Event, fetch_metadata: bool = True
) -> None:
    """Serve until ``stop`` is set; ``ready(url)`` once the site answers."""
    from bitswarm.net.tracker import TrackerServer, TrackerService  # noqa: PLC0415 - with the event loop

    host, port = split_host_port(config.bind)
    try:
        sock = listening_socket(host, port)
    except OSError as error:
        raise UsageError(f"index: cannot listen on {config.bind}: {error.strerror}") from None
    bound_port = sock.getsockname()[1]
    tracker_server: TrackerServer | None = None
    fetcher: MetadataFetcher | None = None
    runner: web.AppRunner | None = None
    db: IndexDatabase | None = None
    scraping: asyncio.Task[None] | None = None
    recording: asyncio.Task[None] | None = None
    private_swarms: asyncio.Task[None] | None = None
    stop_scraping = asyncio.Event()
    try:
        db = await open_database(config.db)
        store = None
        if config.tracker:
            store = MemoryStore(peer_timeout_s=TrackerConfig().peer_timeout_s, rng=random.SystemRandom())
        site = Site(
            config, db, store.scrape if store is not None else None,
            config.secret_key.encode() if config.secret_key else random_secret(),
        )  # fmt: skip
        site.own_trackers = own_trackers(config, host, bound_port) if store is not None else frozenset()
        keys_folder = config.bundle_keys_folder()
        if keys_folder is not None:
            site.bundle_keys = await asyncio.to_thread(SiteKeys.load_or_create, keys_folder)
        # A release of keys to backers that a stop interrupted goes on now.
        await db.bundles.resume_releases()
        app = create_index_app(site)
        if store is not None:
            tracker_config = TrackerConfig(
                http=(), udp=(f"{url_host(host)}:{bound_port}",), trusted_proxies=config.trusted_proxies
            ).validate()
            service = TrackerService(tracker_config, store)
            add_tracker_routes(app, service)
            site.private_swarms_changed = partial(_load_private_swarms, db, service)
            await site.private_swarms_changed()
            private_swarms = asyncio.create_task(_refresh_private_swarms(site.private_swarms_changed, stop_scraping))
            tracker_server = TrackerServer(service)
            await tracker_server.start()
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        if fetch_metadata:
            database = db
            fetcher = MetadataFetcher(
                lambda entry_id, info: _attach(database, site, entry_id, info), db.entries.waiting_for_metadata
            )
            site.waiting_metadata = fetcher.request
            fetcher.start()
        if store is not None:
            recording = asyncio.create_task(_record_own_counts(store, db, stop_scraping))
        if config.scrape_other_trackers:
            # The only requests to URLs from torrents: scrapes of their announce URLs.
            scraping = asyncio.create_task(Scraper(db.counts, skip=site.own_trackers).run(stop_scraping))
        ready(f"http://{url_host(host) or 'localhost'}:{bound_port}/")
        await stop.wait()
    finally:
        stop_scraping.set()
        if recording is not None:
            await asyncio.gather(recording, return_exceptions=True)
        if private_swarms is not None:
            await asyncio.gather(private_swarms, return_exceptions=True)
        if scraping is not None:
            (outcome,) = await asyncio.gather(scraping, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.error("the scraper had stopped: %r", outcome)
        if fetcher is not None:
            await fetcher.close()
        if runner is not None:
            await runner.cleanup()
        if tracker_server is not None:
            await tracker_server.close()
        if db is not None:
            await db.close()
        sock.close()


async def _load_private_swarms(db: IndexDatabase, service: Any) -> None:
    """The gated bundles' swarms and their passkeys into the tracker's policy."""
    swarms, passkeys = await db.bundles.private_swarms()
    service.set_policy(replace(service.policy, private_swarms=swarms, swarm_passkeys=passkeys))


async def _refresh_private_swarms(load: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Grants made by other processes of the site reach this one's tracker in time."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PRIVATE_SWARMS_S)
        if stop.is_set():
            return
        try:
            await load()
        except BitswarmError as error:  # the database away for a while: next time
            log.warning("the private swarms were not reloaded: %s", error)


async def _record_own_counts(store: MemoryStore, db: IndexDatabase, stop: asyncio.Event) -> None:
    """Write the own tracker's counts beside the scrapes' every ``OWN_COUNTS_EVERY_S``, so
    that searches can filter and sort by seeders in the database (pages read the store)."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), OWN_COUNTS_EVERY_S)
        if stop.is_set():
            return
        now = time.time()
        swarms = itertools.islice(store.full_scrape_now().items(), MAX_OWN_COUNTS_RECORDED)
        results = [ScrapeResult(OWN_TRACKER, info_hash, counts, now) for info_hash, counts in swarms]
        try:
            await db.counts.record(results)
        except BitswarmError as error:  # the database away for a while: next time
            log.warning("the own tracker's counts were not recorded: %s", error)


async def _attach(db: IndexDatabase, site: Site, entry_id: int, info: bytes) -> None:
    with contextlib.suppress(BitswarmError):  # the entry was deleted or completed meanwhile
        await db.entries.attach_metadata(entry_id, info)
    site.entry_parts.forget(entry_id)  # its page shows the files now, not "waiting for metadata"
