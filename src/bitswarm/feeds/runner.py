"""One poll of every subscription: ``SubscriptionRunner.poll_once(now)``.

What ``subscribe run`` calls once (from cron) or in a loop, and what the daemon calls on
its own schedule with a sink that adds to its session. A poll fetches the feeds that are
due (all at once, each bounded by ``fetch``), reads them, asks the matching core what to
do, downloads and checks the .torrent of each grab with the strict metainfo reader, and
hands it to the sink; then it records what it handed on.

A failure costs what it touches and nothing else: a feed that does not answer, answers
too much, is not XML or is an XML bomb costs that feed this poll (one log line, its next
poll at its usual interval); an enclosure that is not a torrent, or a sink that refuses,
costs that item this poll (one log line; it is tried again next poll). Anything else is
our bug and propagates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

import aiohttp

from bitswarm import magnet
from bitswarm.errors import BitswarmError, FeedError, SinkError
from bitswarm.feeds.document import Feed, FeedItem, parse_feed
from bitswarm.feeds.fetch import DEFAULT_LIMITS, FetchLimits, display_url, fetch_feed, fetch_torrent
from bitswarm.feeds.matching import Grab, Hold, plan, size_allowed, without_items
from bitswarm.feeds.rules import Subscription, compile_rules
from bitswarm.feeds.sinks import Delivery, TorrentSink
from bitswarm.feeds.store import FeedState, SeenDatabase
from bitswarm.metainfo import read_torrent_file

log = logging.getLogger("bitswarm.feeds")

# Feeds fetched at once: enough to overlap slow trackers, few enough to be polite.
MAX_CONCURRENT_FETCHES = 8


@dataclasses.dataclass
class PollReport:
    """What one poll did: feeds read, not modified or failed (with the reason), and the
    titles handed on, held or failed."""

    feeds_read: list[str] = dataclasses.field(default_factory=list)
    feeds_not_modified: list[str] = dataclasses.field(default_factory=list)
    feeds_failed: dict[str, str] = dataclasses.field(default_factory=dict)
    added: list[str] = dataclasses.field(default_factory=list)
    held: list[str] = dataclasses.field(default_factory=list)
    items_failed: dict[str, str] = dataclasses.field(default_factory=dict)
    # The same titles per subscription id (what the daemon's page shows for each).
    added_by: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    failed_by: dict[int, list[str]] = dataclasses.field(default_factory=dict)


class SubscriptionRunner:
    """Polls ``subscriptions`` into ``sink``, remembering in ``seen``."""

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        seen: SeenDatabase,
        sink: TorrentSink,
        http: aiohttp.ClientSession,
        *,
        limits: FetchLimits = DEFAULT_LIMITS,
    ) -> None:
        self.subscriptions = list(subscriptions)
        self.seen = seen
        self.sink = sink
        self.http = http
        self.limits = limits

    def next_poll_at(self) -> float:
        """When the first feed is due (the daemon's and ``run``'s loop sleep until then)."""
        return min((self.seen.feed_state(s.url).next_poll_at for s in self.subscriptions), default=float("inf"))

    async def poll_once(self, now: float, *, force: bool = False) -> PollReport:
        """Poll every feed due at ``now`` (every feed with ``force``), then hand on what
        the rules pick and held releases whose wait has ended. Raises only for our bugs."""
        report = PollReport()
        urls = list(dict.fromkeys(s.url for s in self.subscriptions))
        due = [url for url in urls if force or self.seen.feed_state(url).next_poll_at <= now]
        gate = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)
        async with asyncio.TaskGroup() as group:
            tasks = {url: group.create_task(self._read_feed(url, now, gate, report)) for url in due}
        feeds = {url: task.result() for url, task in tasks.items()}
        for subscription in self.subscriptions:
            feed = feeds.get(subscription.url)
            await self._apply(subscription, feed.items if feed is not None else (), now, report)
        return report

    async def _read_feed(self, url: str, now: float, gate: asyncio.Semaphore, report: PollReport) -> Feed | None:
        shown = display_url(url)
        state = self.seen.feed_state(url)
        cookies = next((s.cookies for s in self.subscriptions if s.url == url and s.cookies), ())
        min_interval_s = min(s.min_interval_s for s in self.subscriptions if s.url == url)
        next_poll = now + min_interval_s
        try:
            async with gate:
                response = await fetch_feed(
                    self.http,
                    url,
                    etag=state.etag,
                    last_modified=state.last_modified,
                    cookies=cookies,
                    limits=self.limits,
                )
            if response.body is None:
                report.feeds_not_modified.append(shown)
                self.seen.set_feed_state(url, FeedState(state.etag, state.last_modified, next_poll))
                return None
            # feedparser is pure Python: a large feed takes a moment, off the event loop.
            feed = await asyncio.to_thread(parse_feed, response.body, url)
        except FeedError as error:
            message = str(error).removeprefix(f"{shown}: ")
            log.warning("%s: %s", shown, message)
            report.feeds_failed[shown] = message
            # A failing feed keeps its validators (the last good copy) and its interval.
            self.seen.set_feed_state(url, FeedState(state.etag, state.last_modified, next_poll))
            return None
        if feed.ttl_s is not None:
            next_poll = max(next_poll, now + feed.ttl_s)
        self.seen.set_feed_state(url, FeedState(response.etag, response.last_modified, next_poll))
        report.feeds_read.append(shown)
        if feed.items_over_limit:
            log.warning("%s: %d items past the first %d ignored", shown, feed.items_over_limit, len(feed.items))
        return feed

    async def _apply(
        self, subscription: Subscription, items: Sequence[FeedItem], now: float, report: PollReport
    ) -> None:
        fresh = [item for item in items if not self.seen.is_seen(item.dedup_keys())]
        history = without_items(self.seen.history(subscription), fresh)
        for decision in plan(compile_rules(subscription), fresh, history, now):
            if isinstance(decision, Hold):
                if self.seen.hold(subscription.id, decision):
                    report.held.append(decision.item.title)
            elif isinstance(decision, Grab):
                await self._hand_on(subscription, decision, now, report)

    async def _hand_on(self, subscription: Subscription, grab: Grab, now: float, report: PollReport) -> None:
        item = grab.item
        if self.seen.is_seen(item.dedup_keys()):
            return  # another subscription handed it on earlier in this poll
        try:
            delivery = await self._delivery(subscription, grab)
            if self.seen.is_seen((f"btih:{delivery.info_hash}",)):
                return
            await self.sink.add(delivery)
        except (FeedError, SinkError) as error:
            log.warning("%s: %s", item.title, error)
            report.items_failed[item.title] = str(error)
            report.failed_by.setdefault(subscription.id, []).append(item.title)
            return
        keys = {*item.dedup_keys(), f"btih:{delivery.info_hash}"}
        self.seen.record_handed_on(
            sorted(keys),
            item.title,
            now,
            subscription=subscription.id,
            series=grab.series,
            episodes=grab.episodes,
            info_hash=delivery.info_hash,
            is_proper=grab.is_proper,
        )
        log.info("%s: added (%s)", item.title, grab.reason)
        report.added.append(item.title)
        report.added_by.setdefault(subscription.id, []).append(item.title)

    async def _delivery(self, subscription: Subscription, grab: Grab) -> Delivery:
        """The item's .torrent, downloaded and checked, or its magnet link; raises ``FeedError``."""
        item = grab.item
        if item.torrent_url is not None:
            same_host = item.torrent_url.split("/")[2:3] == subscription.url.split("/")[2:3]
            data = await fetch_torrent(
                self.http, item.torrent_url, cookies=subscription.cookies if same_host else (), limits=self.limits
            )
            try:
                torrent = read_torrent_file(data)
            except BitswarmError as error:
                raise FeedError(f"not a torrent ({error})", display_url(item.torrent_url)) from None
            if not size_allowed(compile_rules(subscription), torrent.total_size):
                raise FeedError(f"{torrent.total_size} bytes, outside --min-size/--max-size")
            digest = torrent.info_hash_v1 or torrent.info_hash_v2
            assert digest is not None  # a torrent has a v1 or a v2 part
            return self._with_options(subscription, grab, Delivery(item.title, digest.hex(), metainfo=data))
        assert item.magnet_uri is not None  # the document keeps only items with one of the two
        link = magnet.parse(item.magnet_uri)
        digest = link.info_hash_v1 or link.info_hash_v2
        assert digest is not None
        return self._with_options(subscription, grab, Delivery(item.title, digest.hex(), magnet_uri=item.magnet_uri))

    @staticmethod
    def _with_options(subscription: Subscription, grab: Grab, delivery: Delivery) -> Delivery:
        return dataclasses.replace(
            delivery, download_dir=subscription.download_dir, labels=subscription.labels, replaces=grab.replaces
        )
