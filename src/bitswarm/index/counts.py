"""Swarm counts other trackers gave the site's scrapes: stored per (swarm, tracker), read
per entry.

An entry's counts are those of the tracker that reported the most seeders (then
leechers) for any of its info-hashes, with the time of that answer. Max, not sum: the
trackers of one torrent hand out the same peers (clients announce to every tier), so a
sum counts one seeder once per tracker. ``ScrapeSources`` pages through the entries the
scraper should look at: visible entries, with the announce URLs they name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bitswarm.index.schema import entries, swarm_counts
from bitswarm.index.scrape_plan import ScrapeResult
from bitswarm.index.sqlite_reads import compile_positional, fetch_all
from bitswarm.index.transaction import writing

# Rows written per statement (SQLite allows 32,766 bound values; six per row).
_WRITE_BATCH = 500
# Swarms read per statement (a page of 50 hybrid entries asks for 100).
_READ_BATCH = 500
# Answers older than this are deleted by ``prune``: a week-old count is no live count.
STALE_AFTER_S = 7 * 86400


@dataclass(frozen=True, slots=True)
class ScrapedCounts:
    """The best answer about one entry: counts and when they were given (Unix seconds)."""

    seeders: int
    leechers: int
    completed: int
    checked_at: int


@dataclass(frozen=True, slots=True)
class ScrapeSource:
    """An entry as the scraper needs it: id, info-hashes (hex) and announce URLs."""

    entry_id: int
    info_hash_v1: str | None
    info_hash_v2: str | None
    announce_urls: tuple[str, ...]


def tracker_key(tracker: str) -> str:
    """The stored name of a tracker: the SHA-256 (hex) of its scrape target URL."""
    return hashlib.sha256(tracker.encode("utf-8")).hexdigest()


class CountsStore:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._clock = clock
        self.version = 0
        # The compiled read of n swarms (n <= _READ_BATCH), by n.
        self._sqlite_sql: dict[int, str] = {}

    async def record(self, results: Sequence[ScrapeResult]) -> None:
        """Store answers, replacing what the same tracker said of the same swarm before
        (``version`` counts the writes: what was read before one is older)."""
        rows = {
            (result.info_hash.hex(), tracker_key(result.tracker)): {
                "info_hash": result.info_hash.hex(),
                "tracker": tracker_key(result.tracker),
                "seeders": result.counts.seeders,
                "leechers": result.counts.leechers,
                "completed": result.counts.completed,
                "checked_at": int(result.checked_at),
            }
            for result in results
        }
        values = list(rows.values())
        if not values:
            return
        async with writing(self._engine) as connection:
            insert: Any = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            for start in range(0, len(values), _WRITE_BATCH):
                statement = insert(swarm_counts).values(values[start : start + _WRITE_BATCH])
                statement = statement.on_conflict_do_update(
                    index_elements=[swarm_counts.c.info_hash, swarm_counts.c.tracker],
                    set_={
                        name: statement.excluded[name] for name in ("seeders", "leechers", "completed", "checked_at")
                    },
                )
                await connection.execute(statement)
        self.version += 1

    async def best(self, hashes_of: Mapping[int, Iterable[bytes]]) -> dict[int, ScrapedCounts]:
        """Per entry id (mapped to its 20-byte scrape info-hashes) the answer with the most
        seeders, then leechers, then the newest; entries nobody answered for are missing."""
        wanted = {entry_id: [info_hash.hex() for info_hash in hashes] for entry_id, hashes in hashes_of.items()}
        all_hashes = sorted({info_hash for hashes in wanted.values() for info_hash in hashes})
        by_hash: dict[str, ScrapedCounts] = {}
        async with self._engine.connect() as connection:
            for start in range(0, len(all_hashes), _READ_BATCH):
                batch = all_hashes[start : start + _READ_BATCH]
                for info_hash, *numbers in await self._read(connection, batch):
                    counts = ScrapedCounts(*numbers)
                    known = by_hash.get(info_hash)
                    if known is None or _rank(counts) > _rank(known):
                        by_hash[info_hash] = counts
        best: dict[int, ScrapedCounts] = {}
        for entry_id, hashes in wanted.items():
            known_counts = [by_hash[info_hash] for info_hash in hashes if info_hash in by_hash]
            if known_counts:
                best[entry_id] = max(known_counts, key=_rank)
        return best

    async def _read(self, connection: AsyncConnection, hashes: Sequence[str]) -> Sequence[Sequence[Any]]:
        """(info_hash, seeders, leechers, completed, checked_at) of every answer about these
        swarms; on SQLite in one trip to aiosqlite's thread (an entry page reads this)."""
        names = [f"hash_{index}" for index in range(len(hashes))]
        statement = sa.select(*_COUNT_COLUMNS).where(
            swarm_counts.c.info_hash.in_([sa.bindparam(name) for name in names])
        )
        if connection.dialect.name != "sqlite":
            return (await connection.execute(statement, dict(zip(names, hashes, strict=True)))).all()
        sql = self._sqlite_sql.get(len(hashes))
        if sql is None:
            sql = self._sqlite_sql[len(hashes)] = compile_positional(self._engine, statement, names)
        return await fetch_all(connection, sql, hashes)

    async def prune(self, *, older_than_s: float = STALE_AFTER_S) -> int:
        """Delete answers older than ``older_than_s``; returns how many."""
        cutoff = int(self._clock() - older_than_s)
        async with writing(self._engine) as connection:
            result = await connection.execute(swarm_counts.delete().where(swarm_counts.c.checked_at < cutoff))
        return int(result.rowcount or 0)

    async def sources(self, *, after_id: int = 0, limit: int = 500) -> list[ScrapeSource]:
        """A page of visible entries by id after ``after_id`` (a short page: the last);
        entries that name no tracker come with no announce URLs."""
        statement = (
            sa.select(entries.c.id, entries.c.info_hash_v1, entries.c.info_hash_v2, entries.c.trackers)
            .where(entries.c.id > after_id, entries.c.is_hidden == sa.false())
            .order_by(entries.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [
            ScrapeSource(
                row.id,
                row.info_hash_v1,
                row.info_hash_v2,
                tuple(url for tier in row.trackers for url in tier if isinstance(url, str)),
            )
            for row in rows
        ]


_COUNT_COLUMNS = (
    swarm_counts.c.info_hash,
    swarm_counts.c.seeders,
    swarm_counts.c.leechers,
    swarm_counts.c.completed,
    swarm_counts.c.checked_at,
)


def _rank(counts: ScrapedCounts) -> tuple[int, int, int]:
    return (counts.seeders, counts.leechers, counts.checked_at)
