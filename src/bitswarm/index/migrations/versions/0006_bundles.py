"""Encrypted bundles: their gates and wrapped keys, sales, grants of keys, the e-mail gate, crowdfunding pledges,
provider checkouts,
accounts' master keys.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bundles",
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("gate", sa.String(16), nullable=False),
        sa.Column("price", sa.String(16)),
        sa.Column("goal_count", sa.Integer),
        sa.Column("deadline", sa.BigInteger),
        sa.Column("campaign_state", sa.String(16)),
        sa.Column("share_rate", sa.String(16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("owner_wrapped_key", sa.LargeBinary),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "bundle_sales",
        sa.Column("reference", sa.String(80), primary_key=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("gross", sa.String(16), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("artist", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "bundle_grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(80), nullable=False, unique=True),
        sa.Column("token_digest", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("passkey", sa.String(40), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "bundle_emails",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("address_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("address", sa.String(254)),
        sa.Column("token_digest", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("confirmed_at", sa.BigInteger),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "bundle_pledges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("reference", sa.String(80), nullable=False, unique=True),
        sa.Column("amount", sa.String(16), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "bundle_orders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("order_ref", sa.String(40), nullable=False, unique=True),
        sa.Column("token_digest", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("payment_reference", sa.String(80)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "payment_events",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "account_keys",
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sealed_keys", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_keys")
    op.drop_table("payment_events")
    op.drop_table("bundle_orders")
    op.drop_table("bundle_pledges")
    op.drop_table("bundle_emails")
    op.drop_table("bundle_grants")
    op.drop_table("bundle_sales")
    op.drop_table("bundles")
