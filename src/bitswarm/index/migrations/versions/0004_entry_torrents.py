"""The .torrent bytes move out of the entries' rows into a table of their own.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

On SQLite a 12 KB .torrent inside the entry's row put the columns after it (the hidden flag,
the state) behind overflow pages, read for every search candidate: at a million entries,
most of a cold search's time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entry_torrents",
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("torrent", sa.LargeBinary, nullable=False),
    )
    op.execute(
        "INSERT INTO entry_torrents (entry_id, torrent) SELECT id, torrent FROM entries WHERE torrent IS NOT NULL"
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE entries DROP COLUMN torrent")  # SQLite 3.35 and later
    else:
        op.drop_column("entries", "torrent")


def downgrade() -> None:
    op.add_column("entries", sa.Column("torrent", sa.LargeBinary))
    op.execute(
        "UPDATE entries SET torrent = (SELECT torrent FROM entry_torrents WHERE entry_torrents.entry_id = entries.id)"
    )
    op.drop_table("entry_torrents")
