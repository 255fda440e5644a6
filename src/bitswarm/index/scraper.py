"""The index's scraper: the ``ScrapePlan`` run on the network, answers into the database.

These scrapes are the only requests the site makes to URLs taken from torrents (issue 12,
point 7): they go only to trackers' announce URLs turned into scrape URLs (BEP 48) or to
udp:// trackers (BEP 15), each with a timeout (``timeout_s``) and a bound on the reply
(``MAX_HTTP_SCRAPE_REPLY_BYTES``; a UDP reply must be exactly as long as BEP 15 says), no
redirect is followed, and ``IndexConfig.scrape_other_trackers`` turns them all off.

``Scraper.reload()`` reads the visible entries from the database in pages and gives the
plan their info-hashes and announce URLs; ``scrape_due()`` sends every request due now
(bounded concurrency comes from the plan) and stores the answers; ``run(stop)`` does both
on a schedule until ``stop`` is set, and cancels what is in flight when it ends. A
tracker that fails costs its own request: the reason is counted, the plan backs it off.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bitswarm.errors import ProtocolError, TrackerError
from bitswarm.index.counts import CountsStore, ScrapeSource
from bitswarm.index.scrape_plan import (
    ScrapeFailed,
    ScrapePlan,
    ScrapeProtocol,
    ScrapeRequest,
    ScrapeTarget,
    scrape_hashes,
    scrape_target,
)
from bitswarm.net.http_client import http_get
from bitswarm.tracker.scrape import MAX_HTTP_SCRAPE_REPLY_BYTES, UdpScrapeExchange, decode_http_scrape
from bitswarm.tracker.swarm import SwarmCounts

log = logging.getLogger(__name__)

# A whole scrape (UDP: connect and scrape, resends included) gets this long.
SCRAPE_TIMEOUT_S = 15.0
# BEP 15 resends after silence; a scrape is cheap to repeat, so sooner than its 15 s.
UDP_RESEND_S = 5.0
# Datagrams queued from one tracker socket before more are dropped (a reply needs one).
MAX_QUEUED_DATAGRAMS = 8
# The entries are read again this often (new uploads, deleted entries).
RELOAD_INTERVAL_S = 300.0
SOURCE_PAGE_SIZE = 500
# Entries read per reload; the plan's own caps bound what is held.
MAX_SOURCES = 100_000
# The scheduler wakes at least this often, and never spins faster than MIN_WAIT_S.
MAX_WAIT_S = 60.0
MIN_WAIT_S = 0.5


async def http_scrape(
    url: str, asked: Iterable[bytes], *, timeout_s: float = SCRAPE_TIMEOUT_S
) -> dict[bytes, SwarmCounts]:
    """One BEP 48 scrape GET of ``url`` (built by the plan): the counts of the ``asked``
    swarms the tracker reported. Raises ``TrackerError`` for any failure."""
    status, body = await http_get(url, timeout_s=timeout_s, max_bytes=MAX_HTTP_SCRAPE_REPLY_BYTES)
    if status != 200:  # redirects included: a scrape is never sent anywhere else
        raise TrackerError(f"scrape answered with HTTP status {status}")
    return decode_http_scrape(body, list(asked))


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | OSError] = asyncio.Queue(MAX_QUEUED_DATAGRAMS)

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if not self.queue.full() and isinstance(exc, OSError):
            self.queue.put_nowait(exc)


async def udp_scrape(
    address: tuple[str, int],
    info_hashes: Iterable[bytes],
    *,
    timeout_s: float = SCRAPE_TIMEOUT_S,
    resend_s: float = UDP_RESEND_S,
    rng: random.Random | None = None,
) -> dict[bytes, SwarmCounts]:
    """One BEP 15 scrape (connect, then scrape) of ``address``; raises ``TrackerError``."""
    exchange = UdpScrapeExchange(list(info_hashes), rng or random.SystemRandom())
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            transport, protocol = await loop.create_datagram_endpoint(_Datagrams, remote_addr=address)
            try:
                transport.sendto(exchange.start())
                while True:
                    try:
                        item = await asyncio.wait_for(protocol.queue.get(), resend_s)
                    except TimeoutError:
                        transport.sendto(exchange.resend())
                        continue
                    if isinstance(item, OSError):
                        raise item
                    reply = exchange.receive(item)
                    if reply is not None:
                        transport.sendto(reply)
                    elif exchange.counts:
                        return exchange.counts
            finally:
                transport.close()
    except TimeoutError:
        raise TrackerError(f"no reply within {timeout_s:.0f} s") from None
    except OSError as error:
        raise TrackerError(str(error) or type(error).__name__) from None


@dataclass
class ScraperStats:
    requests: int = 0
    answers: int = 0
    results: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)


class Scraper:
    """Runs ``plan`` against the trackers and stores the answers in ``counts``.

    With ``enabled`` false (``scrape_other_trackers = false``) it sends nothing at all.
    Trackers in ``skip`` (the site's own) are never scraped."""

    def __init__(
        self,
        counts: CountsStore,
        plan: ScrapePlan | None = None,
        *,
        enabled: bool = True,
        timeout_s: float = SCRAPE_TIMEOUT_S,
        udp_resend_s: float = UDP_RESEND_S,
        reload_interval_s: float = RELOAD_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        skip: frozenset[ScrapeTarget] = frozenset(),
    ) -> None:
        self.counts = counts
        self.skip = skip
        self.plan = plan or ScrapePlan()
        self.enabled = enabled
        self.timeout_s = timeout_s
        self.udp_resend_s = udp_resend_s
        self.reload_interval_s = reload_interval_s
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.stats = ScraperStats()
        self.last_failures: list[ScrapeFailed] = []
        self._tracked: set[bytes] = set()

    def track(self, sources: Iterable[ScrapeSource]) -> set[bytes]:
        """Hand entries to the plan; returns the info-hashes they scrape under."""
        hashes: set[bytes] = set()
        for source in sources:
            if not source.announce_urls:
                continue
            entry_hashes = scrape_hashes(source.info_hash_v1, source.info_hash_v2)
            urls = [url for url in source.announce_urls if scrape_target(url) not in self.skip]
            self.plan.track(entry_hashes, urls)
            hashes.update(entry_hashes)
        return hashes

    async def reload(self) -> None:
        """Read the visible entries (in pages, at most ``MAX_SOURCES``) into the plan, stop
        scraping swarms no entry names any more, and delete stale answers."""
        seen: set[bytes] = set()
        after_id, read = 0, 0
        while read < MAX_SOURCES:
            page = await self.counts.sources(after_id=after_id, limit=SOURCE_PAGE_SIZE)
            seen |= self.track(page)
            read += len(page)
            if len(page) < SOURCE_PAGE_SIZE:
                break
            after_id = page[-1].entry_id
        self.plan.untrack(self._tracked - seen)
        self._tracked = seen
        await self.counts.prune()

    async def _send(self, request: ScrapeRequest) -> dict[bytes, SwarmCounts]:
        try:
            if request.target.protocol is ScrapeProtocol.HTTP:
                return await http_scrape(request.url, request.info_hashes, timeout_s=self.timeout_s)
            return await udp_scrape(
                request.target.udp_address, request.info_hashes, timeout_s=self.timeout_s,
                resend_s=self.udp_resend_s, rng=self.rng,
            )  # fmt: skip
        except ValueError as error:
            # A host name the resolver refuses (IDNA: empty or over-long labels) is the
            # torrent's fault, not ours.
            raise TrackerError(f"bad tracker host: {error}") from None

    def _launch(self, pending: dict[asyncio.Task[dict[bytes, SwarmCounts]], ScrapeRequest]) -> None:
        if not self.enabled:
            return
        for request in self.plan.next_requests(self.clock()):
            self.stats.requests += 1
            pending[asyncio.create_task(self._send(request))] = request

    async def _settle(
        self,
        done: Iterable[asyncio.Task[dict[bytes, SwarmCounts]]],
        pending: dict[asyncio.Task[dict[bytes, SwarmCounts]], ScrapeRequest],
    ) -> None:
        for task in done:
            request = pending.pop(task)
            try:
                counts = task.result()
            except Exception as error:
                if not isinstance(error, ProtocolError):
                    # Our bug: logged once with its traceback; the site goes on serving.
                    log.exception("scrape of %s: internal error", request.target.url)
                failure = self.plan.failed(request.request_id, str(error), self.clock())
                self.stats.failures[type(error).__name__] += 1
                self.last_failures = [*self.last_failures[-99:], failure]
                log.debug("scrape of %s failed (%d in a row): %s", failure.target.url, failure.failures, error)
                continue
            results = self.plan.answered(request.request_id, counts, self.clock())
            self.stats.answers += 1
            self.stats.results += len(results)
            await self.counts.record(results)

    async def scrape_due(self) -> None:
        """Send every request due now, and the ones that fall due as answers free slots,
        until none is due or in flight; store the answers."""
        pending: dict[asyncio.Task[dict[bytes, SwarmCounts]], ScrapeRequest] = {}
        try:
            self._launch(pending)
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                await self._settle(done, pending)
                self._launch(pending)
        finally:
            await _cancel(pending)

    async def run(self, stop: asyncio.Event) -> None:
        """Reload and scrape on the plan's schedule until ``stop`` is set."""
        if not self.enabled:
            return
        pending: dict[asyncio.Task[dict[bytes, SwarmCounts]], ScrapeRequest] = {}
        stopping = asyncio.create_task(stop.wait())
        next_reload = 0.0
        try:
            while not stop.is_set():
                now = self.clock()
                if now >= next_reload:
                    next_reload = now + self.reload_interval_s
                    try:
                        await self.reload()
                    except (SQLAlchemyError, OSError) as error:
                        # The database is away for a moment: the next reload tries again.
                        log.warning("scraper: cannot read the entries: %s", error)
                self._launch(pending)
                now = self.clock()
                wake = next_reload
                if self.plan.in_flight < self.plan.max_in_flight:
                    deadline = self.plan.next_deadline()
                    if deadline is not None:
                        wake = min(wake, max(deadline, now + MIN_WAIT_S))
                timeout = min(max(wake - now, 0.0), MAX_WAIT_S)
                done, _ = await asyncio.wait({*pending, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                await self._settle([task for task in pending if task in done], pending)
        finally:
            stopping.cancel()
            await _cancel([stopping, *pending])


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
