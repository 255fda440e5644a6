"""Reads on SQLite in one call to aiosqlite's thread per statement.

Each statement SQLAlchemy runs through aiosqlite is four round trips to the connection's
thread (cursor, execute, fetch, close), and the event loop and that thread pass the GIL
back and forth for each: an entry page spent most of its time there
(bench/index_bench.py). The hot reads therefore compile SQLAlchemy's own statements once
for the dialect, with bound parameters, and run them with aiosqlite's
``execute_fetchall``: one trip each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def compile_positional(engine: AsyncEngine, statement: sa.Select[Any], parameters: Sequence[str]) -> str:
    """The statement's SQL for this engine; its ``?`` stand for ``parameters`` in this order
    (checked: the order is what callers pass their tuples in)."""
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    if list(compiled.positiontup or ()) != list(parameters):
        raise AssertionError(f"bound parameters {compiled.positiontup} are not {list(parameters)}")
    return str(compiled)


async def fetch_all(connection: AsyncConnection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """The rows (tuples) of one compiled statement, on the connection's aiosqlite thread."""
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection  # an aiosqlite.Connection
    return list(await driver.execute_fetchall(sql, tuple(parameters)))
