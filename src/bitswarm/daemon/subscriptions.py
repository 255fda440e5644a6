"""Subscriptions polled by the daemon itself (issue 13, point 4).

The same subscriptions and seen-database as ``bitswarm subscribe`` (``bitswarm.feeds``),
kept in the daemon's ``subscriptions_dir`` (by default its state folder's
``subscriptions``: give ``bitswarm subscribe --state`` that folder to edit them from a
shell). One task, owned by the daemon (``Daemon.run_beside``, cancelled at close, so
SIGTERM stops it mid-poll as cleanly as between polls), polls each feed when it is due
(``SubscriptionRunner.poll_once``) and hands what the rules pick to ``SessionSink``, which
adds it to the daemon's own session with the subscription's download folder and labels.
The file is read again before every poll, so a ``subscribe add`` from a shell is seen
within ``MAX_SLEEP_S``; a change made on the web UI's page wakes the loop at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bitswarm.daemon.config import DaemonConfig
from bitswarm.daemon.service import AddRequest, Daemon
from bitswarm.errors import BitswarmError, SinkError, UsageError
from bitswarm.feeds.fetch import DEFAULT_LIMITS, FetchLimits, display_url
from bitswarm.feeds.rules import Subscription
from bitswarm.feeds.runner import PollReport, SubscriptionRunner
from bitswarm.feeds.sinks import Delivery
from bitswarm.feeds.store import SeenDatabase, SubscriptionFile

log = logging.getLogger("bitswarm.daemon")

SUBSCRIPTIONS_FOLDER = "subscriptions"
# The loop's longest sleep: a subscription added from a shell, or the switch turned on by
# SIGHUP, is seen this soon.
MAX_SLEEP_S = 60.0
# Titles remembered per subscription for its page (the latest ones).
MAX_TITLES_SHOWN = 10


def subscriptions_folder(config: DaemonConfig, state_folder: Path) -> Path:
    """Where the daemon keeps its subscriptions: ``subscriptions_dir``, else STATE/subscriptions."""
    if config.subscriptions_dir:
        return Path(config.subscriptions_dir).expanduser()
    return state_folder / SUBSCRIPTIONS_FOLDER


class SessionSink:
    """A ``TorrentSink`` into the daemon's own session (``Daemon.add``), with the
    subscription's download folder and labels. A proper's replacement removes the download
    it replaces, keeping its data, as ``TransmissionSink`` does: the new torrent brings its
    own files, and a user may still want the old ones."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def add(self, delivery: Delivery) -> None:
        if delivery.metainfo is None and delivery.magnet_uri is None:
            raise SinkError(f"{delivery.title}: neither a .torrent nor a magnet link")
        request = AddRequest(
            metainfo=delivery.metainfo,
            link=delivery.magnet_uri if delivery.metainfo is None else None,
            download_dir=delivery.download_dir,
            labels=delivery.labels,
        )
        try:
            entry, _duplicate = await self.daemon.add(request)
        except BitswarmError as error:
            raise SinkError(str(error)) from None
        except OSError as error:
            raise SinkError(f"not added: {error.strerror or error}") from None
        for old in delivery.replaces:
            # The daemon knows a torrent by its v1 hash, or its v2 hash cut to 20 bytes (BEP 52).
            number = self.daemon.id_of_hash(old[:40])
            if number is None or number == entry.id:
                continue  # removed already, by hand, or the same torrent
            try:
                await self.daemon.remove(self.daemon.select([number]), delete_data=False)
            except OSError as error:
                raise SinkError(f"replacing {old}: {error.strerror or error}") from None
            log.info("%s: replaced %s", delivery.title, old)


@dataclass
class SubscriptionStatus:
    """What the page shows of a subscription's last poll in this run of the daemon."""

    polled_at: float | None = None
    result: str = "not polled since the daemon started"
    is_failure: bool = False
    added: list[str] = field(default_factory=list)


class SubscriptionPoller:
    """The daemon's subscriptions: the poll loop (``run``) and what the page changes."""

    def __init__(self, daemon: Daemon, folder: Path, *, limits: FetchLimits = DEFAULT_LIMITS) -> None:
        self.daemon = daemon
        self.folder = folder
        self.file = SubscriptionFile(folder)
        self.limits = limits
        self.sink = SessionSink(daemon)
        self.status: dict[int, SubscriptionStatus] = {}
        # Why the subscriptions file could not be read ("" when it could).
        self.problem = ""
        self.polls = 0
        self._wake = asyncio.Event()
        self._edit = asyncio.Lock()
        self._seen: SeenDatabase | None = None

    @property
    def is_enabled(self) -> bool:
        """``subscriptions_enabled`` of the config in force (SIGHUP may turn it)."""
        return self.daemon.config.subscriptions_enabled

    def wake(self) -> None:
        """Poll now (what is due) rather than at the end of the current sleep."""
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled (the daemon's close). A state folder that cannot be opened
        is one log line and no polling; a feed or item that fails costs that poll only."""
        try:
            # On the loop's thread: the store's calls are made from here (sqlite3 ties a
            # connection to the thread that opened it).
            seen = SeenDatabase(self.folder)
        except (UsageError, OSError) as error:
            self.problem = f"{self.folder}: {error}"
            log.error("subscriptions: %s", self.problem)
            return
        self._seen = seen
        try:
            async with aiohttp.ClientSession() as http:
                while True:
                    delay = await self.poll(http, seen)
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self._seen = None
            seen.close()

    async def poll(self, http: aiohttp.ClientSession, seen: SeenDatabase) -> float:
        """One turn of the loop: the feeds that are due, when polling is on; the seconds
        until the next turn."""
        if not self.is_enabled:
            return MAX_SLEEP_S
        subscriptions = await self.load()
        if not subscriptions:
            return MAX_SLEEP_S
        runner = SubscriptionRunner(subscriptions, seen, self.sink, http, limits=self.limits)
        report = await runner.poll_once(time.time())
        self._record(subscriptions, report, time.time())
        return min(MAX_SLEEP_S, max(1.0, runner.next_poll_at() - time.time()))

    async def load(self) -> list[Subscription]:
        """The subscriptions file now; [] (and ``problem`` says why, logged once) when unreadable."""
        try:
            subscriptions = await asyncio.to_thread(self.file.load)
        except (UsageError, OSError) as error:
            problem = str(error) if isinstance(error, UsageError) else f"{self.file.path}: {error.strerror or error}"
            if problem != self.problem:
                log.error("subscriptions: %s", problem)
            self.problem = problem
            return []
        self.problem = ""
        return subscriptions

    def _record(self, subscriptions: Sequence[Subscription], report: PollReport, now: float) -> None:
        self.polls += 1
        for subscription in subscriptions:
            shown = display_url(subscription.url)
            status = self.status.setdefault(subscription.id, SubscriptionStatus())
            if shown in report.feeds_failed:
                result, failed = f"feed failed: {report.feeds_failed[shown]}", True
            elif shown in report.feeds_not_modified:
                result, failed = "feed not modified", False
            elif shown in report.feeds_read:
                result, failed = "feed read", False
            else:
                continue  # not due in this poll: its last result stands
            added = report.added_by.get(subscription.id, [])
            items_failed = report.failed_by.get(subscription.id, [])
            result += f"; {len(added)} added" if added else "; nothing new"
            if items_failed:
                result += f", {len(items_failed)} failed (see the log)"
                failed = True
            status.polled_at, status.result, status.is_failure = now, result, failed
            status.added = (added + status.added)[:MAX_TITLES_SHOWN]
        known = {subscription.id for subscription in subscriptions}
        for gone in [number for number in self.status if number not in known]:
            del self.status[gone]

    def next_poll_at(self, subscription: Subscription) -> float | None:
        """When its feed is due (epoch seconds); None before the loop opened the database."""
        return self._seen.feed_state(subscription.url).next_poll_at if self._seen is not None else None

    # -- what the page changes ---------------------------------------------------------

    async def add(self, options: dict[str, Any]) -> Subscription:
        """A new subscription with these ``Subscription`` fields (all but ``id``), saved and
        polled at once; raises ``UsageError`` for bad rules, ``OSError`` when not saved."""
        async with self._edit:
            subscriptions = await asyncio.to_thread(self.file.load)
            number = max((s.id for s in subscriptions), default=0) + 1
            subscription = Subscription(id=number, **options)
            await asyncio.to_thread(self.file.save, [*subscriptions, subscription])
        log.info("subscription %d added: %s", subscription.id, display_url(subscription.url))
        self.wake()
        return subscription

    async def remove(self, number: int) -> bool:
        """Remove subscription ``number`` (what it downloaded stays seen, as with
        ``subscribe remove``); False when there is none. Raises ``UsageError``, ``OSError``."""
        async with self._edit:
            subscriptions = await asyncio.to_thread(self.file.load)
            kept = [s for s in subscriptions if s.id != number]
            if len(kept) == len(subscriptions):
                return False
            await asyncio.to_thread(self.file.save, kept)
            if self._seen is not None:
                self._seen.forget_subscription(number)
            else:
                await asyncio.to_thread(_forget, self.folder, number)
        self.status.pop(number, None)
        log.info("subscription %d removed", number)
        return True


def _forget(folder: Path, number: int) -> None:
    with SeenDatabase(folder) as seen:
        seen.forget_subscription(number)
