"""SQLite's full-text table gains a token per pair of neighbouring words.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Phrases are searched by these pairs (``bitswarm.index.query.to_fts5``), as PostgreSQL's
are since 0005: FTS5's ``bm25`` counted the documents holding a phrase by comparing the
positions in every document holding its words (42 ms for a phrase of a common word at a
million entries). The pair tokens join two words with ``_``, which the tokenizer must keep
inside a token: the table is made again with ``tokenchars '_'`` and every row copied with
its pairs added (the rows hold the words themselves). PostgreSQL: nothing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bitswarm.index.search import fts5_field

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Rows copied per statement: bounded memory whatever the database's size.
BATCH = 2000
COLUMNS = ("title", "tags", "files", "description")


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    op.execute(
        "CREATE VIRTUAL TABLE entry_search_pairs USING fts5("
        "title, tags, files, description, tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\", prefix='2 3')"
    )
    last = -1
    for _batch in range(1 << 40):  # bounded by the rowids: each batch starts above the last
        rows = connection.execute(
            sa.text(
                "SELECT rowid, title, tags, files, description FROM entry_search "
                "WHERE rowid > :last ORDER BY rowid LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        if not rows:
            break
        connection.execute(
            sa.text(
                "INSERT INTO entry_search_pairs (rowid, title, tags, files, description) "
                "VALUES (:rowid, :title, :tags, :files, :description)"
            ),
            [
                {
                    "rowid": row[0],
                    **{column: fts5_field((text or "").split()) for column, text in zip(COLUMNS, row[1:], strict=True)},
                }
                for row in rows
            ],
        )
        last = rows[-1][0]
    op.execute("DROP TABLE entry_search")
    op.execute("ALTER TABLE entry_search_pairs RENAME TO entry_search")


def downgrade() -> None:
    # The pair tokens do no harm to searches of the words alone: they stay.
    pass
