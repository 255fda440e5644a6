"""Copy an index database made on SQLite (bench/index_bench.py's import) into PostgreSQL.

    PYTHONPATH=src python3 bench/index_copy_to_postgres.py SQLITE_FILE POSTGRESQL_URL

The same rows and ids; the search documents are built from the FTS5 table's words by the
same ``document_literals`` the PostgreSQL backend indexes with (so a copy searches as an
import does; checked for 4,500 entries by the md5 of every document and file row). Much
cheaper than importing a million entries a second time (generation, parsing and the
site's inserts: 1.1 hours on a busy 2-core machine). Incremental: it copies the entries
with ids above the highest already in PostgreSQL, from one snapshot of the SQLite file,
so it can run again while an import still adds to it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import asyncpg  # type: ignore[import-untyped]

from bitswarm.index import open_database
from bitswarm.index.search import SearchDocument, document_literals

CHUNK = 20_000


def log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def _words(text: str | None) -> list[str]:
    return [token for token in (text or "").split() if "_" not in token]


async def copy_table(
    source: sqlite3.Connection,
    target: asyncpg.Connection,
    table: str,
    key: str,
    since: int,
    upto: int,
    convert: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None,
) -> None:
    """Rows of ``table`` with ``since < key <= upto`` (names are this module's constants)."""
    columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
    cursor = source.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE {key} > ? AND {key} <= ? ORDER BY {key}",  # noqa: S608
        (since, upto),
    )
    done = 0
    while rows := cursor.fetchmany(CHUNK):
        records = [convert(row) for row in rows] if convert is not None else [tuple(row) for row in rows]
        await target.copy_records_to_table(table, records=records, columns=columns)
        done += len(rows)
    log(f"{table}: {done:,}")


async def main(sqlite_file: str, url: str) -> None:
    async with await open_database(url):  # the schema, by the migrations
        pass
    source = sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True, isolation_level=None)
    source.execute("BEGIN")  # one snapshot while an import may still be adding rows
    target = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    since = int(await target.fetchval("SELECT coalesce(max(id), 0) FROM entries"))
    upto = int(source.execute("SELECT coalesce(max(id), 0) FROM entries").fetchone()[0])
    log(f"copying ids {since + 1:,} to {upto:,}")
    info = list(source.execute("PRAGMA table_info(entries)"))
    booleans = {index for index, row in enumerate(info) if row[2] == "BOOLEAN"}
    documents = {index for index, row in enumerate(info) if row[1] in ("trackers", "web_seeds")}

    def entry(row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            bool(value) if index in booleans else json.dumps(json.loads(value)) if index in documents else value
            for index, value in enumerate(row)
        )

    await copy_table(source, target, "entries", "id", since, upto, entry)
    await copy_table(source, target, "entry_files", "entry_id", since, upto)
    await copy_table(source, target, "entry_torrents", "entry_id", since, upto)
    # FTS5's content table holds each entry's indexed words per column, joined by spaces,
    # then its pairs of neighbouring words (joined by "_", which no word holds): dropped.
    await target.execute("CREATE TEMP TABLE search_literals (entry_id integer, words text, pairs text)")
    cursor = source.execute(
        "SELECT id, c0, c1, c2, c3 FROM entry_search_content WHERE id > ? AND id <= ? ORDER BY id", (since, upto)
    )
    while rows := cursor.fetchmany(CHUNK):
        literals = [
            (row[0], *document_literals(SearchDocument(row[0], *(_words(text) for text in row[1:5])))) for row in rows
        ]
        await target.copy_records_to_table("search_literals", records=literals)
    await target.execute(
        "INSERT INTO entry_search (entry_id, document) SELECT entry_id, words::tsvector FROM search_literals"
    )
    await target.execute(
        "INSERT INTO entry_search_pairs (entry_id, document) SELECT entry_id, pairs::tsvector FROM search_literals"
    )
    await target.execute("SELECT setval('entries_id_seq', (SELECT max(id) FROM entries))")
    await target.execute("ANALYZE")
    log("search documents and statistics done")
    await target.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
