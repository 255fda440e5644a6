"""Magnet entries' metadata, fetched from their swarms by the engine (BEP 9).

A pasted magnet link is listed at once, "waiting for metadata"; this service asks the
swarm for the info dictionary (through the link's trackers and peers, and the DHT when the
site runs one), bounded in time and in how many run at once, and completes the entry.
Entries waiting from before a restart, or added by ``bitswarm index add`` while the site
runs, are found by a periodic look at the database. An entry whose swarm does not answer is
tried again later, less and less often.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bitswarm import magnet as magnet_links
from bitswarm.errors import BitswarmError

if TYPE_CHECKING:
    from bitswarm.net.session import Session

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 120.0
MAX_PARALLEL = 8
RESCAN_S = 30.0
RETRY_AFTER_S = (60.0, 300.0, 1800.0, 3600.0)
# Waiting entries looked at per scan (and failures remembered: those of entries still in it).
MAX_WAITING_SCANNED = 2000

Attach = Callable[[int, bytes], Awaitable[None]]
Waiting = Callable[[int], Awaitable[list[tuple[int, str]]]]


class MetadataFetcher:
    """Fetches info dictionaries for waiting entries; ``attach(entry_id, info)`` stores one,
    ``waiting(limit)`` lists waiting entries as (id, magnet link)."""

    def __init__(
        self,
        attach: Attach,
        waiting: Waiting,
        *,
        timeout_s: float = FETCH_TIMEOUT_S,
        max_parallel: int = MAX_PARALLEL,
        port: int = 0,
        dht: bool = False,
        dht_bootstrap: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attach = attach
        self._waiting = waiting
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_parallel)
        self._max_parallel = max_parallel
        self._port, self._dht, self._dht_bootstrap = port, dht, dht_bootstrap
        self._clock = clock
        self._session: Session | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._failures: dict[int, tuple[int, float]] = {}  # entry -> (attempts, not before)
        self._scanner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._scanner = asyncio.get_running_loop().create_task(self._scan_forever())

    def request(self, entry_id: int, _link: magnet_links.Magnet | None = None) -> None:
        """Fetch soon (the next scan, at once): a new magnet entry was listed."""
        self._failures.pop(entry_id, None)
        self._wake.set()

    async def _scan_forever(self) -> None:
        while True:
            with contextlib.suppress(BitswarmError):  # the database away for a while: next time
                await self._scan()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RESCAN_S)

    async def _scan(self) -> None:
        # A window wider than the fetches started, so that entries waiting out a backoff do
        # not keep the newer ones from ever being tried.
        now = self._clock()
        waiting = await self._waiting(MAX_WAITING_SCANNED)
        listed = {entry_id for entry_id, _link in waiting}
        self._failures = {entry_id: failure for entry_id, failure in self._failures.items() if entry_id in listed}
        for entry_id, link_text in waiting:
            if len(self._tasks) >= self._max_parallel * 4:
                break
            if entry_id in self._tasks or self._failures.get(entry_id, (0, 0.0))[1] > now:
                continue
            try:
                link = magnet_links.parse(link_text)
            except BitswarmError:
                self._failures[entry_id] = (len(RETRY_AFTER_S), now + RETRY_AFTER_S[-1])
                continue
            self._tasks[entry_id] = asyncio.get_running_loop().create_task(self._fetch(entry_id, link))

    async def _fetch(self, entry_id: int, link: magnet_links.Magnet) -> None:
        try:
            async with self._slots:
                info = await asyncio.wait_for(self._info_of(link), self._timeout_s)
            await self._attach(entry_id, info)
            self._failures.pop(entry_id, None)
        except (TimeoutError, BitswarmError, OSError) as error:
            attempts = self._failures.get(entry_id, (0, 0.0))[0] + 1
            delay = RETRY_AFTER_S[min(attempts, len(RETRY_AFTER_S)) - 1]
            self._failures[entry_id] = (attempts, self._clock() + delay)
            log.info("entry %d: no metadata yet (%s); trying again in %.0f s", entry_id, error or "timeout", delay)
        finally:
            self._tasks.pop(entry_id, None)

    async def _info_of(self, link: magnet_links.Magnet) -> bytes:
        from bitswarm.net.session import Session, TorrentOptions  # noqa: PLC0415 - the engine only when needed

        if self._session is None:
            session = Session(port=self._port, dht=self._dht, dht_bootstrap=self._dht_bootstrap)
            await session.start()
            self._session = session
            self._folder = tempfile.TemporaryDirectory(prefix="bitswarm-index-metadata-")
        session = self._session
        assert self._folder is not None
        # Nothing wanted: the info dictionary is all the index needs, never the content.
        metadata_only = dataclasses.replace(link, select_only=())
        runtime = await session.add_magnet(metadata_only, Path(self._folder.name), TorrentOptions(wanted_files=set()))
        try:
            await runtime.ready.wait()
            torrent_runtime = await runtime.wait_for_torrent()
            return torrent_runtime.torrent.info
        finally:
            with contextlib.suppress(BitswarmError):
                await session.remove(runtime.info_hash)

    async def close(self) -> None:
        tasks = [task for task in (self._scanner, *self._tasks.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
        if self._folder is not None:
            self._folder.cleanup()
