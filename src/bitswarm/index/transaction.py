"""Write transactions of the index's database.

On SQLite a writer takes the write lock when its transaction begins (``BEGIN IMMEDIATE``,
issued by ``bitswarm.index.db`` for connections marked with ``WRITE_OPTION``), so that
two writers (two processes migrating at once, a duplicate check and its insert) queue on
the busy timeout instead of failing when a read lock would have to become a write lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

WRITE_OPTION = "bitswarm_write"


@contextlib.asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction meant to write: committed at the end, rolled back on
    an exception."""
    async with engine.connect() as plain:
        connection = await plain.execution_options(**{WRITE_OPTION: True})
        async with connection.begin():
            yield connection
