"""Entries, their files and the full-text index.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than imported from ``schema.py``: a migration is history and
must not change when the current schema does. The full-text table depends on the engine:
an FTS5 table on SQLite, a tsvector with a GIN index on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("info_hash_v1", sa.String(40), unique=True),
        sa.Column("info_hash_v2", sa.String(64), unique=True),
        sa.Column("info_hash_v2_short", sa.String(40), index=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", sa.String(64), index=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("total_size", sa.BigInteger, index=True),
        sa.Column("file_count", sa.Integer),
        sa.Column("piece_length", sa.BigInteger),
        sa.Column("torrent", sa.LargeBinary),
        sa.Column("magnet", sa.Text, nullable=False),
        sa.Column("trackers", sa.JSON, nullable=False),
        sa.Column("web_seeds", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("is_hidden", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_entries_created_at_id", "entries", ["created_at", "id"])
    op.create_table(
        "entry_files",
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_table(
            "entry_search",
            sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("document", postgresql.TSVECTOR, nullable=False),
        )
        op.create_index("ix_entry_search_document", "entry_search", ["document"], postgresql_using="gin")
    else:
        # Words arrive normalised by bitswarm.index.query.search_words; the tokenizer only
        # splits on spaces (no accent folding of its own, so both engines agree). Prefix
        # indexes make 'ab*' and 'abc*' lookups cheap.
        op.execute(
            "CREATE VIRTUAL TABLE entry_search USING fts5("
            "title, tags, files, description, tokenize='unicode61 remove_diacritics 0', prefix='2 3')"
        )


def downgrade() -> None:
    op.drop_table("entry_search")
    op.drop_table("entry_files")
    op.drop_table("entries")
