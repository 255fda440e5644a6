"""Alembic's entry point: runs on the connection ``bitswarm.index.db`` hands over (there is
no alembic.ini; the schema is migrated by the program on start)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
