"""Alembic migrations of the index's schema, run by ``bitswarm.index.db.open_database``."""
