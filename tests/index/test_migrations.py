"""The schema is created and migrated on start, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from bitswarm.errors import IndexDatabaseError
from bitswarm.index import open_database
from bitswarm.index.db import _migration_config, database_url, head_revision
from bitswarm.index.schema import metadata
from index.support import make_torrent, run


def _schema_differences(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    # The full-text table is the search backend's, outside the metadata (and FTS5 makes
    # shadow tables of its own on SQLite).
    return [
        difference
        for difference in compare_metadata(context, metadata)
        if not (difference[0] == "remove_table" and difference[1].name.startswith("entry_search"))
        and not (difference[0] == "remove_index" and difference[1].table.name.startswith("entry_search"))
    ]


def test_a_fresh_database_gets_the_newest_schema_and_a_second_start_changes_nothing(index_url: str) -> None:
    async def scenario() -> None:
        async with await open_database(index_url) as db:
            assert await db.revision() == head_revision() == "0008"
            entry = await db.entries.add_magnet("magnet:?xt=urn:btih:" + "1" * 40 + "&dn=kept")
            async with db.engine.connect() as connection:
                versions = (await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
                assert [row.version_num for row in versions] == ["0008"]
                assert await connection.run_sync(_schema_differences) == []
        async with await open_database(index_url) as db:
            assert await db.revision() == "0008"
            assert [listed.id for listed in await db.entries.list_newest()] == [entry.id]
            async with db.engine.connect() as connection:
                versions = (await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
                assert [row.version_num for row in versions] == ["0008"]

    run(scenario())


def test_processes_starting_together_migrate_once(index_url: str) -> None:
    async def scenario() -> None:
        databases = await asyncio.gather(*(open_database(index_url) for _ in range(3)))
        try:
            assert [await db.revision() for db in databases] == ["0008"] * 3
        finally:
            for db in databases:
                await db.close()

    run(scenario())


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///index.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///index.db", "sqlite+aiosqlite"),
        ("postgresql://user@localhost/index", "postgresql+asyncpg"),
        ("postgres://user@localhost/index", "postgresql+asyncpg"),
    ],
)
def test_user_urls_get_the_async_drivers(url: str, driver: str) -> None:
    assert database_url(url).drivername == driver


@pytest.mark.parametrize("url", ["mysql://x@y/z", "not a url", "postgresql+psycopg2://x@y/z", ""])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(IndexDatabaseError):
        database_url(url)


def test_a_server_that_does_not_answer_is_one_error() -> None:
    with pytest.raises(IndexDatabaseError, match="cannot open the database"):
        run(open_database("postgresql://nobody@127.0.0.1:1/none"))


def test_the_torrent_bytes_move_out_of_the_entries_rows_and_stay_downloadable(index_url: str, tmp_path: Path) -> None:
    """Revision 0004 on a database of 0003 that holds an entry: its .torrent is the same after."""
    data = make_torrent(tmp_path, "Before 0004", {"b.bin": b"b" * 3000})

    async def scenario() -> None:
        engine = create_async_engine(database_url(index_url))
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_migration_config(sync), "0003"))
            await connection.execute(
                sa.text(
                    "INSERT INTO entries (title, description, tags, torrent, magnet, trackers, web_seeds, state,"
                    " is_hidden, created_at, updated_at) VALUES ('Before 0004', '', '', :torrent, 'magnet:?', '[]',"
                    " '[]', 'ready', false, 1, 1)"
                ),
                {"torrent": data},
            )
        await engine.dispose()
        db = await open_database(index_url)
        async with db:
            assert await db.revision() == "0008"
            (entry,) = await db.entries.list_newest(limit=10)
            assert await db.entries.torrent_bytes(entry.id) == data
            assert await db.entries.torrent_lengths([entry.id]) == {entry.id: len(data)}

    run(scenario())


def test_phrases_find_entries_indexed_before_the_word_pairs(index_url: str, tmp_path: Path) -> None:
    """Revision 0005 rebuilds PostgreSQL's documents with the word pairs phrases are
    searched by (0008 moves the pairs to a table of their own), 0007 SQLite's full-text
    table: an entry indexed before (words only) is found by a phrase after it."""
    data = make_torrent(tmp_path, "Quiet River Tales", {"quiet_river_s01e01.mkv": b"q" * 3000})

    async def scenario() -> None:
        engine = create_async_engine(database_url(index_url))
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_migration_config(sync), "0004"))
        await engine.dispose()
        async with await open_database(index_url) as db:
            entry = await db.entries.add_torrent(data, description="Told by the old river keeper.")
        if index_url.startswith("postgresql"):
            # As 0004 left it: the words and their positions, no pairs.
            engine = create_async_engine(database_url(index_url))
            async with engine.begin() as connection:
                # Back to 0005 first (the later revisions' tables go), then 0005's own change undone.
                await connection.run_sync(lambda sync: command.downgrade(_migration_config(sync), "0005"))
                words_only = (
                    "'quiet':1A,5C 'river':2A,6C,14D 'tales':3A 's01e01':7C 'mkv':8C 'told':10D 'by':11D 'the':12D "
                    "'old':13D 'keeper':15D"
                )
                await connection.execute(
                    sa.text("UPDATE entry_search SET document = CAST(:words AS tsvector)"), {"words": words_only}
                )
                await connection.execute(sa.text("UPDATE alembic_version SET version_num = '0004'"))
            await engine.dispose()
        else:
            # As 0006 left it: the table's first tokenizer, the words alone (and no index of
            # hidden entries: 0008's).
            engine = create_async_engine(database_url(index_url))
            async with engine.begin() as connection:
                await connection.execute(sa.text("DROP INDEX ix_entries_hidden"))
                await connection.execute(sa.text("DROP TABLE entry_search"))
                await connection.execute(
                    sa.text(
                        "CREATE VIRTUAL TABLE entry_search USING fts5(title, tags, files, description, "
                        "tokenize='unicode61 remove_diacritics 0', prefix='2 3')"
                    )
                )
                await connection.execute(
                    sa.text(
                        "INSERT INTO entry_search (rowid, title, tags, files, description) VALUES (:id, "
                        "'quiet river tales', '', 'quiet river s01e01 mkv', 'told by the old river keeper')"
                    ),
                    {"id": entry.id},
                )
                await connection.execute(sa.text("UPDATE alembic_version SET version_num = '0006'"))
            await engine.dispose()
        async with await open_database(index_url) as db:
            assert await db.revision() == "0008"
            for text in ('"quiet river"', '"river tales"', '"quiet river s01e01"', '"old riv"*', '"river s01e01"'):
                assert [found.id for found in (await db.search(text)).entries] == [entry.id], text
            for text in ('"quiet tales"', '"river quiet"', '"tales s01e01"'):  # not neighbours in one field
                assert (await db.search(text)).entries == (), text
            if index_url.startswith("postgresql"):  # 0008: the words and their pairs apart
                async with db.engine.connect() as connection:
                    words = (await connection.execute(sa.text("SELECT document::text FROM entry_search"))).scalar_one()
                    pairs = (
                        await connection.execute(sa.text("SELECT document::text FROM entry_search_pairs"))
                    ).scalar_one()
                assert "'river':" in words
                assert "'river tales':" not in words
                assert "'river tales':" in pairs
                assert "'river':" not in pairs

    run(scenario())
