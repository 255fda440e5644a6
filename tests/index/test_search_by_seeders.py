"""Searches filtered and sorted by seeders, from the counts trackers reported lately (the
site's own, written every minute, and the scrapes of the others): fresh counts only,
unknown last; on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from bitswarm.index import SearchFilters, SearchSort, open_database
from bitswarm.index.scrape_plan import ScrapeResult
from bitswarm.index.search import FRESH_COUNTS_S
from bitswarm.tracker.swarm import SwarmCounts
from index.support import make_torrent, run

NOW = 1_800_000_000.0


def test_filters_and_sorts_by_the_seeders_reported_lately(index_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await open_database(index_url, clock=lambda: NOW)
        async with db:
            names = ("Few Seeds", "Many Seeds", "Stale Seeds", "Unknown Seeds")
            added = {}
            for name in names:
                data = make_torrent(tmp_path, name, {"seeds.bin": name.encode() * 100})
                added[name] = await db.entries.add_torrent(data)

            def result(name: str, seeders: int, at: float, tracker: str = "udp://t.example:6969") -> ScrapeResult:
                info_hash = added[name].info_hash_v1
                assert info_hash is not None
                return ScrapeResult(tracker, bytes.fromhex(info_hash), SwarmCounts(seeders, 1, 0), at)

            await db.counts.record([
                result("Few Seeds", 2, NOW - 60),
                result("Many Seeds", 40, NOW - 60),
                result("Many Seeds", 7, NOW - 30, "http://other.example/announce"),  # the most counts
                result("Stale Seeds", 500, NOW - FRESH_COUNTS_S - 1),  # a swarm gone
            ])  # fmt: skip
            page = await db.search("seeds", sort=SearchSort.SEEDERS)
            assert [entry.title for entry in page.entries][:2] == ["Many Seeds", "Few Seeds"]
            assert {entry.title for entry in page.entries[2:]} == {"Stale Seeds", "Unknown Seeds"}
            page = await db.search("seeds", filters=SearchFilters(min_seeders=3))
            assert [entry.title for entry in page.entries] == ["Many Seeds"]
            page = await db.search("", filters=SearchFilters(min_seeders=1), sort=SearchSort.SEEDERS)
            assert [entry.title for entry in page.entries] == ["Many Seeds", "Few Seeds"]

    run(scenario())
