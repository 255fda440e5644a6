"""What the index hands its callers: an entry and its files, as frozen values."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bitswarm.index.schema import entries


class EntryState(enum.Enum):
    READY = "ready"
    # A magnet-only entry: no .torrent, sizes and files unknown until attach_metadata.
    WAITING_METADATA = "waiting_metadata"


@dataclass(frozen=True, slots=True)
class Entry:
    """One listed torrent, without its .torrent bytes (``EntryStore.torrent_bytes``).

    Info-hashes are lowercase hex. ``total_size``, ``file_count`` and ``piece_length`` are
    None while the entry waits for metadata. Times are Unix seconds."""

    id: int
    info_hash_v1: str | None
    info_hash_v2: str | None
    title: str
    description: str
    category: str | None
    tags: tuple[str, ...]
    total_size: int | None
    file_count: int | None
    piece_length: int | None
    magnet: str
    trackers: tuple[tuple[str, ...], ...]
    web_seeds: tuple[str, ...]
    state: EntryState
    is_hidden: bool
    created_at: int
    updated_at: int

    @property
    def is_ready(self) -> bool:
        return self.state is EntryState.READY


@dataclass(frozen=True, slots=True)
class EntryFile:
    """A file of an entry: its path's elements (the torrent's name first) and size."""

    position: int
    path: tuple[str, ...]
    size: int


# Every column (the .torrent bytes live in entry_torrents: only a download needs them).
ENTRY_COLUMNS: Sequence[sa.Column[Any]] = list(entries.c)


def entry_from_row(row: sa.Row[Any]) -> Entry:
    """An ``Entry`` from a row selected with ``ENTRY_COLUMNS``."""
    return entry_from_mapping(row._mapping)


def entry_from_mapping(values: Mapping[Any, Any]) -> Entry:
    """An ``Entry`` from ``ENTRY_COLUMNS`` by name (JSON columns decoded)."""
    return Entry(
        id=values["id"],
        info_hash_v1=values["info_hash_v1"],
        info_hash_v2=values["info_hash_v2"],
        title=values["title"],
        description=values["description"],
        category=values["category"],
        tags=tuple(values["tags"].split()),
        total_size=values["total_size"],
        file_count=values["file_count"],
        piece_length=values["piece_length"],
        magnet=values["magnet"],
        trackers=tuple(tuple(tier) for tier in values["trackers"]),
        web_seeds=tuple(values["web_seeds"]),
        state=EntryState(values["state"]),
        is_hidden=bool(values["is_hidden"]),
        created_at=values["created_at"],
        updated_at=values["updated_at"],
    )
