"""The index's database: URLs, the engine, migrations on start.

``open_database("sqlite:///bitswarm-index.db")`` or ``open_database("postgresql://...")``
connects through SQLAlchemy's async drivers (aiosqlite, asyncpg), brings the schema to the
newest Alembic revision, and returns an ``IndexDatabase`` with the entries API
(``db.entries``), search (``db.search``) and other trackers' scraped counts
(``db.counts``). Several processes may share one database: on PostgreSQL the migration
runs under an advisory lock, and SQLite runs in WAL mode with a busy timeout
so a ``bitswarm index add`` can write while the site reads.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bitswarm.errors import IndexDatabaseError
from bitswarm.index import query as query_language
from bitswarm.index.accounts import AccountStore
from bitswarm.index.bundles import BundleStore
from bitswarm.index.counts import CountsStore
from bitswarm.index.entries import EntryStore
from bitswarm.index.reports import ReportStore
from bitswarm.index.search import SearchBackend, SearchFilters, SearchPage, SearchSort, backend_for
from bitswarm.index.transaction import WRITE_OPTION, writing

DEFAULT_DATABASE_URL = "sqlite:///bitswarm-index.db"
# Alembic finds the migrations inside the installed package (no alembic.ini to ship).
MIGRATIONS = "bitswarm.index:migrations"
# Any fixed number: the key of the PostgreSQL advisory lock that serialises migrations of
# processes starting together.
_MIGRATION_LOCK_KEY = 0x62697473
# Milliseconds a SQLite writer waits for another process's write to finish.
_SQLITE_BUSY_TIMEOUT_MS = 10_000
# Connections a process keeps open, and how many more it opens under a burst (PostgreSQL
# allows 100 by default: a few processes of one site fit).
_POOL_CONNECTIONS = 20
_POOL_OVERFLOW = 10

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def database_url(text: str) -> URL:
    """A user's URL (``sqlite:///PATH``, ``postgresql://USER@HOST/DB``) with its async driver.

    Raises ``IndexDatabaseError`` for anything else."""
    try:
        url = make_url(text)
    except exc.ArgumentError:
        raise IndexDatabaseError(f"{text!r} is not a database URL (sqlite:///PATH or postgresql://...)") from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise IndexDatabaseError(f"{url.drivername}: unsupported database (use sqlite:///PATH or postgresql://...)")
    return url.set(drivername=driver)


def _migration_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration's revision id."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: sa.Connection) -> None:
    command.upgrade(_migration_config(connection), "head")


def _current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _sqlite_pragmas(in_memory: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling begins late (before the first write, not
        # the first read) and never for DDL; SQLAlchemy's recipe: BEGIN ourselves (_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # ON DELETE CASCADE of entry_files needs foreign keys, which SQLite leaves off.
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                # Readers do not block the writer, nor the writer readers. The mode stays
                # with the file; when another process is switching it at this moment, the
                # switch fails here as "locked" without waiting, and that one finishes it.
                with contextlib.suppress(sqlite3.OperationalError):
                    cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    return on_connect


def _sqlite_begin(connection: sa.Connection) -> None:
    # A writer takes the write lock at BEGIN, so that two writers (a migration racing
    # another process's, a duplicate check and its insert) queue on the busy timeout
    # instead of failing when a read lock would have to become a write lock.
    # Every write goes through ``writing()``. A reader issues no BEGIN: each of its
    # statements then reads its own snapshot (WAL), which is all a page needs, and the
    # BEGIN was three of a read's eight round trips to aiosqlite's thread (a torrent page
    # spent most of its time in them; bench/index_bench.py).
    if connection.get_execution_options().get(WRITE_OPTION, False):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class IndexDatabase:
    """An open index database: ``entries`` to add and change entries, ``search`` to find
    them, ``engine`` for the tables later parts of the site add. Close it with ``close()``
    or use it as ``async with``."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.search_backend: SearchBackend = backend_for(engine.dialect.name)
        self.entries = EntryStore(engine, self.search_backend, clock)
        self.accounts = AccountStore(engine, clock)
        self.reports = ReportStore(engine, clock)
        self.counts = CountsStore(engine, clock)
        self.bundles = BundleStore(engine, clock)

    async def search(
        self,
        text: str | query_language.Query,
        *,
        filters: SearchFilters | None = None,
        sort: SearchSort = SearchSort.RELEVANCE,
        limit: int = 50,
        offset: int = 0,
    ) -> SearchPage:
        """A page of entries for what a visitor typed (``bitswarm.index.query`` says what it
        means), or for a ``Query`` built by the caller; no words: every entry the filters
        pass. Any text is a valid search; raises ``UsageError`` only for a ``limit`` or
        ``offset`` out of bounds (``search.MAX_PAGE_SIZE``, ``search.MAX_OFFSET``)."""
        query = query_language.parse(text) if isinstance(text, str) else text
        async with self.engine.connect() as connection:
            return await self.search_backend.search(
                connection, query, filters or SearchFilters(), sort, limit, offset, self.clock()
            )

    async def revision(self) -> str | None:
        """The schema revision the database is at (None: not migrated)."""
        async with self.engine.connect() as connection:
            return await connection.run_sync(_current_revision)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> IndexDatabase:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()


async def migrate(connection: AsyncConnection) -> None:
    """Bring the schema on ``connection`` (in a transaction) to the newest revision."""
    if connection.dialect.name == "postgresql":
        # Two processes starting on one fresh database would both create the tables.
        await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
    await connection.run_sync(_upgrade)


async def open_database(url: str, *, clock: Callable[[], float] = time.time) -> IndexDatabase:
    """Connect to ``url``, create or migrate its schema, and return the database.

    Raises ``IndexDatabaseError`` for an unsupported URL or a database that cannot be
    reached or migrated."""
    parsed = database_url(url)
    options: dict[str, Any] = {}
    in_memory = parsed.database in (None, "", ":memory:")
    if parsed.drivername.startswith("sqlite") and in_memory:
        # One shared connection: each new connection to :memory: would be an empty database.
        options["poolclass"] = StaticPool
    else:
        # A page takes a connection per query: with more requests in flight than the pool
        # keeps, every overflow connection was opened and closed again per use (a thread and
        # the pragmas for SQLite, a backend process for PostgreSQL).
        options["pool_size"] = _POOL_CONNECTIONS
        options["max_overflow"] = _POOL_OVERFLOW
    if parsed.drivername.startswith("postgresql"):
        # asyncpg prepares every statement, and after five runs PostgreSQL plans a prepared
        # statement once for any values: a search window's id bounds then looked narrow, so
        # the plan walked the primary key testing each document (1.2 s for two common words
        # at a million entries, instead of the GIN index's 30 ms). Searches need plans for
        # their values; planning costs under a millisecond.
        # No parallel workers: the site's statements each read a bounded few thousand rows,
        # and starting a worker for one took 30-160 ms of a search at a million entries on a
        # busy 2-core machine (auto_explain: a 10 ms sort behind a 173 ms Gather Merge).
        options["connect_args"] = {
            "server_settings": {"plan_cache_mode": "force_custom_plan", "max_parallel_workers_per_gather": "0"}
        }
    engine = create_async_engine(parsed, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(in_memory))
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    try:
        async with writing(engine) as connection:
            await migrate(connection)
    except (exc.DBAPIError, exc.InterfaceError, OSError) as error:
        await engine.dispose()
        raise IndexDatabaseError(f"cannot open the database: {_reason(error)}") from error
    except BaseException:
        await engine.dispose()
        raise
    return IndexDatabase(engine, clock)


def _reason(error: BaseException) -> str:
    """One line of an error from a driver (their messages span several)."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        error = error.orig
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
