"""PostgreSQL's search documents gain a lexeme per pair of neighbouring words.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Phrases are searched by these pairs (``bitswarm.index.query.to_tsquery``): ``'a' <-> 'b'``
read and compared the positions of every document holding both words, 200 ms for a phrase
of two common words at 150,000 entries. Every document is built again from the stored
entry, as the site indexes one. SQLite's FTS5 finds phrases itself: nothing changes there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The indexing code of today builds the documents (words and pairs: 0008 parts them).
from bitswarm.index.search import SearchDocument, document_literals

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Entries rebuilt per statement: bounded memory whatever the database's size.
BATCH = 2000


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    last = 0
    for _batch in range(1 << 40):  # bounded by the ids: each batch starts above the last
        rows = connection.execute(
            sa.text(
                "SELECT id, title, tags, description FROM entries WHERE id > :last AND id IN "
                "(SELECT entry_id FROM entry_search) ORDER BY id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        if not rows:
            break
        paths: dict[int, list[str]] = {row.id: [] for row in rows}
        files = connection.execute(
            sa.text(
                "SELECT entry_id, path FROM entry_files WHERE entry_id >= :first AND entry_id <= :last "
                "ORDER BY entry_id, position"
            ),
            {"first": rows[0].id, "last": rows[-1].id},
        )
        for entry_id, path in files:
            if entry_id in paths:
                paths[entry_id].append(path)
        documents = []
        for row in rows:
            document = SearchDocument.of(row.id, row.title, row.tags.split(), paths[row.id], row.description)
            documents.append({"entry_id": row.id, "literal": " ".join(filter(None, document_literals(document)))})
        connection.execute(
            sa.text("UPDATE entry_search SET document = CAST(:literal AS tsvector) WHERE entry_id = :entry_id"),
            documents,
        )
        last = rows[-1].id


def downgrade() -> None:
    # The pair lexemes do no harm to searches of the words alone: they stay.
    pass
