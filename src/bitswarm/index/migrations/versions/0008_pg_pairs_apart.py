"""PostgreSQL keeps the pairs of neighbouring words apart from the words; hidden entries get
an index of their own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Since 0005 each ``entry_search`` document held an entry's words and the pairs that phrases
are searched by, which made the rows that a word's search reads about 1.75 times larger, a
fifth of them in the TOAST table. The pairs move to ``entry_search_pairs`` (same shape, its
own GIN index), and ``entry_search`` is made again with the words alone (copied rather than
updated in place, which would leave every row's old version behind). A search by relevance
with no filter but "not hidden" finds the hidden entries through a partial index on
``entries`` instead of reading every candidate's entry row. SQLite: only that index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entries_hidden", "entries", ["id"], postgresql_where=sa.text("is_hidden"),
                    sqlite_where=sa.text("is_hidden"))  # fmt: skip
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE entry_search_pairs (entry_id integer NOT NULL, document tsvector NOT NULL, "
        "CONSTRAINT entry_search_pairs_pkey PRIMARY KEY (entry_id), "
        "CONSTRAINT entry_search_pairs_entry_id_fkey FOREIGN KEY (entry_id) REFERENCES entries (id) ON DELETE CASCADE)"
    )
    # A pair is two words and a space (``query.word_pair``); no word holds a space.
    op.execute(
        "INSERT INTO entry_search_pairs SELECT entry_id, ts_delete(document, "
        "ARRAY(SELECT lexeme FROM unnest(document) WHERE strpos(lexeme, ' ') = 0)) FROM entry_search"
    )
    op.execute("CREATE INDEX ix_entry_search_pairs_document ON entry_search_pairs USING gin (document)")
    op.execute("CREATE TABLE entry_search_words (entry_id integer NOT NULL, document tsvector NOT NULL)")
    op.execute(
        "INSERT INTO entry_search_words SELECT entry_id, ts_delete(document, "
        "ARRAY(SELECT lexeme FROM unnest(document) WHERE strpos(lexeme, ' ') > 0)) FROM entry_search"
    )
    op.execute("DROP TABLE entry_search")
    op.execute("ALTER TABLE entry_search_words RENAME TO entry_search")
    op.execute("ALTER TABLE entry_search ADD CONSTRAINT entry_search_pkey PRIMARY KEY (entry_id)")
    op.execute(
        "ALTER TABLE entry_search ADD CONSTRAINT entry_search_entry_id_fkey "
        "FOREIGN KEY (entry_id) REFERENCES entries (id) ON DELETE CASCADE"
    )
    op.execute("CREATE INDEX ix_entry_search_document ON entry_search USING gin (document)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE entry_search SET document = entry_search.document || pairs.document "
            "FROM entry_search_pairs AS pairs WHERE pairs.entry_id = entry_search.entry_id"
        )
        op.execute("DROP TABLE entry_search_pairs")
    op.drop_index("ix_entries_hidden", "entries")
