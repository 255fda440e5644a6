"""Swarm counts from scrapes of the other trackers named in entries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08

One row per (info-hash, tracker): the tracker's seeders, leechers and completed count of
that swarm and when it answered. The tracker is named by the SHA-256 of its scrape target
(a fixed-width key, whatever the URL's length).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "swarm_counts",
        sa.Column("info_hash", sa.String(40), primary_key=True),
        sa.Column("tracker", sa.String(64), primary_key=True),
        sa.Column("seeders", sa.BigInteger, nullable=False),
        sa.Column("leechers", sa.BigInteger, nullable=False),
        sa.Column("completed", sa.BigInteger, nullable=False),
        sa.Column("checked_at", sa.BigInteger, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("swarm_counts")
