"""Reports visitors file about entries, for the operators: the entry, the reason, the time.
Not who filed it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bitswarm.errors import UsageError
from bitswarm.index.schema import entries, reports
from bitswarm.index.transaction import writing

MAX_REASON_CHARS = 2000
# Open reports kept per entry: a flood of reports on one entry says no more than this many.
MAX_OPEN_REPORTS_PER_ENTRY = 50


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    entry_id: int
    entry_title: str
    reason: str
    filed: str


class ReportStore:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._clock = clock

    async def add(self, entry_id: int, reason: str) -> None:
        reason = "".join(char for char in reason.strip() if char.isprintable() or char in "\n\t")
        if not reason:
            raise UsageError("a report says what is wrong")
        async with writing(self._engine) as connection:
            open_count = (
                await connection.execute(
                    sa.select(sa.func.count()).where(reports.c.entry_id == entry_id, reports.c.is_closed == sa.false())
                )
            ).scalar_one()
            if open_count >= MAX_OPEN_REPORTS_PER_ENTRY:
                return
            await connection.execute(
                reports.insert().values(
                    entry_id=entry_id, reason=reason[:MAX_REASON_CHARS], created_at=int(self._clock()), is_closed=False
                )
            )

    async def open_reports(self, *, limit: int = 200) -> list[Report]:
        statement = (
            sa.select(reports.c.id, reports.c.entry_id, entries.c.title, reports.c.reason, reports.c.created_at)
            .join(entries, entries.c.id == reports.c.entry_id)
            .where(reports.c.is_closed == sa.false())
            .order_by(reports.c.id.desc())
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [Report(row.id, row.entry_id, row.title, row.reason, _when(row.created_at)) for row in rows]


def _when(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
