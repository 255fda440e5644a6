"""The website's foundation (``bitswarm index``): the database of entries, migrations and
full-text search on SQLite or PostgreSQL.

Start with ``db = await open_database(url)``; then ``db.entries`` (``EntryStore``) adds
and changes entries and ``db.search(text, ...)`` finds them.
"""

from __future__ import annotations

from bitswarm.index.db import DEFAULT_DATABASE_URL, IndexDatabase, database_url, open_database
from bitswarm.index.entries import EntryStore
from bitswarm.index.model import Entry, EntryFile, EntryState
from bitswarm.index.search import SearchFilters, SearchPage, SearchSort

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Entry",
    "EntryFile",
    "EntryState",
    "EntryStore",
    "IndexDatabase",
    "SearchFilters",
    "SearchPage",
    "SearchSort",
    "database_url",
    "open_database",
]
