"""The magnet-metadata fetcher's choice of entries: ones waiting out a backoff never keep
newer ones from being tried."""

from __future__ import annotations

import asyncio

from bitswarm.index import metadata
from bitswarm.index.metadata import MetadataFetcher
from index.support import run

LINK = "magnet:?xt=urn:btih:{:040x}"


def test_entries_in_backoff_do_not_starve_the_newer_ones() -> None:
    waiting = [(entry_id, LINK.format(entry_id)) for entry_id in range(1, 101)]
    tried: list[int] = []

    async def scenario() -> None:
        async def attach(entry_id: int, info: bytes) -> None:
            raise AssertionError("no metadata is fetched here")

        async def listed(limit: int) -> list[tuple[int, str]]:
            return waiting[:limit]

        fetcher = MetadataFetcher(attach, listed, max_parallel=2)
        # The 90 oldest failed a moment ago: they wait out their backoff.
        for entry_id in range(1, 91):
            fetcher._failures[entry_id] = (1, fetcher._clock() + 3600)

        async def fetch(entry_id: int, link: object) -> None:
            tried.append(entry_id)

        fetcher._fetch = fetch  # type: ignore[method-assign]
        await fetcher._scan()
        await asyncio.gather(*fetcher._tasks.values())

    run(scenario())
    assert sorted(tried) == list(range(91, 99))  # 8 at once (max_parallel x 4), the newest waiting
    assert metadata.MAX_WAITING_SCANNED >= 100
