"""Entries of the index: add from a .torrent or a magnet link, read, page, edit, hide, delete.

Torrents are read only by the strict ``bitswarm.metainfo`` code and magnet links by
``bitswarm.magnet``. An entry is a duplicate when it shares a v1 or a v2 info-hash with a
listed one (a hybrid whose v1 half is listed is the same swarm): ``DuplicateEntry``
names the listed entry. A magnet-only entry waits for its metadata (``attach_metadata``).
``add_torrents`` lists many .torrent files in one transaction (a bulk import): each item
is added or refused on its own, with the same result as ``add_torrent`` one by one.
What uploaders write is bounded and checked here (``InvalidEntry``,
``EntryLimitExceeded``): titles, descriptions (Markdown source, rendered by the site),
categories and tags hold no control characters and no bidirectional overrides.
Peer addresses in a magnet link (``x.pe``) are not stored: the index keeps no IP address.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bitswarm import bencode, magnet
from bitswarm.errors import (
    BitswarmError,
    DuplicateEntry,
    EntryLimitExceeded,
    EntryNotFound,
    EntryStateError,
    InvalidEntry,
    MetainfoError,
    UsageError,
)
from bitswarm.index.model import ENTRY_COLUMNS, Entry, EntryFile, EntryState, entry_from_mapping, entry_from_row
from bitswarm.index.schema import entries, entry_files, entry_torrents
from bitswarm.index.search import MAX_OFFSET, MAX_PAGE_SIZE, SearchBackend, SearchDocument
from bitswarm.index.sqlite_reads import compile_positional, fetch_all
from bitswarm.index.transaction import writing
from bitswarm.metainfo import MAX_TORRENT_BYTES, Torrent, read_torrent_file

# A title is a line in a list; the torrent's own name is cut to this when it is longer.
MAX_TITLE_CHARS = 300
MAX_DESCRIPTION_CHARS = 20_000
MAX_CATEGORY_CHARS = 64
MAX_TAGS = 20
MAX_TAG_CHARS = 32
# File rows kept per entry (a torrent may list 300,000); file_count and total_size stay exact.
MAX_STORED_FILES = 10_000
# One page of a file list (the site shows a tree; a feed never needs more).
MAX_FILES_PAGE = 10_000
# Items of one add_torrents call: one transaction holds the write lock (SQLite) while it
# runs, so a batch stays well under a second of work; an import sends many batches.
MAX_BATCH_ITEMS = 1000

# Categories are slugs ("movies", "tv/hd"): they appear in URLs and feed parameters.
_CATEGORY = re.compile(r"[a-z0-9][a-z0-9._/-]*")
# A tag is one word of letters, digits and - _ . (no spaces: tags are stored space-separated).
_TAG = re.compile(r"[^\W]([\w.-]*)")
# Embeddings, overrides and isolates: they reorder how a name is displayed ("exe.mp4").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MULTILINE_ALLOWED = frozenset("\n\r\t")


def _forbidden(char: str, *, multiline: bool) -> bool:
    if char in _BIDI_CONTROLS:
        return True
    return unicodedata.category(char) == "Cc" and not (multiline and char in _MULTILINE_ALLOWED)


def clean_title(text: str) -> str:
    """An uploader's title, stripped. Raises ``InvalidEntry``/``EntryLimitExceeded``."""
    text = text.strip()
    if not text:
        raise InvalidEntry("empty", "title")
    if len(text) > MAX_TITLE_CHARS:
        raise EntryLimitExceeded(f"longer than {MAX_TITLE_CHARS} characters", "title", MAX_TITLE_CHARS)
    if any(_forbidden(char, multiline=False) for char in text):
        raise InvalidEntry("control characters and bidirectional overrides are not allowed", "title")
    return text


def title_from_name(name: str) -> str:
    """A title from a torrent's name or a magnet's ``dn``, which nobody typed for us:
    forbidden characters are dropped and the rest cut to ``MAX_TITLE_CHARS``."""
    kept = "".join(" " if _forbidden(char, multiline=False) else char for char in name)
    return " ".join(kept.split())[:MAX_TITLE_CHARS]


def clean_description(text: str) -> str:
    """Markdown source: lines allowed, other control characters and bidi overrides not."""
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise EntryLimitExceeded(
            f"longer than {MAX_DESCRIPTION_CHARS} characters", "description", MAX_DESCRIPTION_CHARS
        )
    if any(_forbidden(char, multiline=True) for char in text):
        raise InvalidEntry("control characters and bidirectional overrides are not allowed", "description")
    return text.strip()


def clean_category(text: str | None) -> str | None:
    """A category slug, lowercased; None or '' for none."""
    if not text:
        return None
    slug = text.strip().lower()
    if len(slug) > MAX_CATEGORY_CHARS:
        raise EntryLimitExceeded(f"longer than {MAX_CATEGORY_CHARS} characters", "category", MAX_CATEGORY_CHARS)
    if not _CATEGORY.fullmatch(slug):
        raise InvalidEntry(f"{slug!r} is not a category like 'movies' or 'tv/hd'", "category")
    return slug


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags case-folded, without repeats, in the order given."""
    kept: list[str] = []
    for raw in tags:
        tag = unicodedata.normalize("NFKC", raw.strip()).casefold()
        if not tag or tag in kept:
            continue
        if len(tag) > MAX_TAG_CHARS:
            raise EntryLimitExceeded(f"{tag[:MAX_TAG_CHARS]}...: longer than {MAX_TAG_CHARS}", "tags", MAX_TAG_CHARS)
        if not _TAG.fullmatch(tag):
            raise InvalidEntry(f"{tag!r}: a tag is one word of letters, digits and - _ .", "tags")
        kept.append(tag)
        if len(kept) > MAX_TAGS:
            raise EntryLimitExceeded(f"more than {MAX_TAGS}", "tags", MAX_TAGS)
    return tuple(kept)


def _hex(info_hash: bytes | None) -> str | None:
    return info_hash.hex() if info_hash is not None else None


def torrent_document(info: bytes, trackers: Sequence[Sequence[str]], web_seeds: Sequence[str]) -> bytes:
    """The .torrent bytes for an info dictionary fetched for a magnet link: the info bytes
    exactly as they hash, with the link's trackers and web seeds (keys in sorted order)."""
    parts: list[bytes] = []
    flat = [url for tier in trackers for url in tier]
    if flat:
        parts += [bencode.encode(b"announce"), bencode.encode(flat[0].encode())]
        tiers = [[url.encode() for url in tier] for tier in trackers]
        parts += [bencode.encode(b"announce-list"), bencode.encode(tiers)]
    parts += [bencode.encode(b"info"), info]
    if web_seeds:
        parts += [bencode.encode(b"url-list"), bencode.encode([url.encode() for url in web_seeds])]
    return b"d" + b"".join(parts) + b"e"


def with_first_tracker(data: bytes, torrent: Torrent, url: str) -> bytes:
    """``data`` (a .torrent) with ``url`` as its first tracker tier and its ``announce``.
    Only the top-level dictionary changes, never ``info``, so the info-hashes stay: the
    result is checked, and ``data`` comes back unchanged when anything would differ."""
    if any(url in tier for tier in torrent.trackers):
        return data
    top = bencode.decode(data)
    if not isinstance(top, dict):
        return data
    tiers = [[url], *(list(tier) for tier in torrent.trackers)]
    top[b"announce"] = url.encode()
    top[b"announce-list"] = [[item.encode() for item in tier] for tier in tiers]
    changed = bencode.encode(top)
    try:
        again = read_torrent_file(changed)
    except BitswarmError:
        return data
    same = (again.info_hash_v1, again.info_hash_v2) == (torrent.info_hash_v1, torrent.info_hash_v2)
    return changed if same and len(changed) <= MAX_TORRENT_BYTES else data


def _torrent_values(torrent: Torrent) -> dict[str, Any]:
    """The columns an entry takes from its metainfo."""
    files = list(torrent.data_files())
    v2 = torrent.info_hash_v2
    return {
        "info_hash_v1": _hex(torrent.info_hash_v1),
        "info_hash_v2": _hex(v2),
        "info_hash_v2_short": _hex(v2[:20]) if v2 is not None else None,
        "total_size": torrent.total_size,
        "file_count": len(files),
        "piece_length": torrent.piece_length,
        "magnet": torrent.magnet().format(),
        "trackers": [list(tier) for tier in torrent.trackers],
        "web_seeds": list(torrent.web_seeds),
        "state": EntryState.READY.value,
    }


def _file_rows(entry_id: int, torrent: Torrent) -> list[dict[str, Any]]:
    rows = []
    for position, entry in enumerate(torrent.data_files()):
        if position >= MAX_STORED_FILES:
            break
        rows.append({"entry_id": entry_id, "position": position, "path": "/".join(entry.path), "size": entry.length})
    return rows


@dataclass(frozen=True, slots=True)
class TorrentUpload:
    """One .torrent for ``EntryStore.add_torrents``, with what ``add_torrent`` takes besides."""

    data: bytes
    title: str | None = None
    description: str = ""
    category: str | None = None
    tags: Sequence[str] = ()


@dataclass(slots=True)
class _Prepared:
    """An item of a batch, checked and parsed, waiting for its id."""

    position: int
    values: dict[str, Any]
    torrent: Torrent


# Built once: an entry page runs these on every visit, and building a select costs more
# than SQLAlchemy's cached compilation of it.
_SELECT_ENTRY = sa.select(*ENTRY_COLUMNS).where(entries.c.id == sa.bindparam("entry_id"))
_ENTRY_COLUMN_NAMES = tuple(column.name for column in ENTRY_COLUMNS)
_ENTRY_JSON_COLUMNS = tuple(column.name for column in ENTRY_COLUMNS if isinstance(column.type, sa.JSON))
_SELECT_FILES = (
    sa.select(entry_files.c.position, entry_files.c.path, entry_files.c.size)
    .where(entry_files.c.entry_id == sa.bindparam("entry_id"))
    .order_by(entry_files.c.position)
    .limit(sa.bindparam("limit"))
    .offset(sa.bindparam("offset"))
)


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise UsageError(f"limit {limit} is not between 1 and {MAX_PAGE_SIZE}")
    if not 0 <= offset <= MAX_OFFSET:
        raise UsageError(f"offset {offset} is not between 0 and {MAX_OFFSET}")


class EntryStore:
    """The entries of one database (``IndexDatabase.entries``). Every method runs in its
    own transaction; the full-text index changes in the same transaction as the entry."""

    def __init__(self, engine: AsyncEngine, search: SearchBackend, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._search = search
        self._clock = clock
        self._sqlite_sql: tuple[str, str] | None = None

    # -- adding ---------------------------------------------------------------------------

    async def add_torrent(
        self,
        data: bytes,
        *,
        title: str | None = None,
        description: str = "",
        category: str | None = None,
        tags: Sequence[str] = (),
        first_tracker: str | None = None,
        max_files: int | None = None,
    ) -> Entry:
        """List the .torrent file ``data``; its name is the title unless ``title`` is given;
        ``first_tracker`` (the site's own) becomes its first tracker tier.

        Returns the new entry. Raises ``EntryLimitExceeded`` for more than
        ``MAX_TORRENT_BYTES`` or ``max_files`` files, ``DecodeError``/``MetainfoError`` for
        a torrent the strict reader refuses, ``InvalidEntry`` for bad fields,
        ``DuplicateEntry`` when listed."""
        upload = TorrentUpload(data, title, description, category, tags)
        values, torrent = self._prepare_torrent(upload, first_tracker, max_files, int(self._clock()))
        return await self._insert(values, torrent)

    async def add_torrents(
        self, uploads: Sequence[TorrentUpload], *, first_tracker: str | None = None, max_files: int | None = None
    ) -> list[int | BitswarmError]:
        """List many .torrent files in one transaction: per item, the new entry's id or the
        error ``add_torrent`` would have raised for it (``DuplicateEntry`` for one listed
        before or earlier in ``uploads``, which keeps the first). What is stored is what
        ``add_torrent`` one by one stores, in the same order.

        Raises ``UsageError`` for more than ``MAX_BATCH_ITEMS`` items; database errors
        (nothing of the batch is stored then)."""
        if len(uploads) > MAX_BATCH_ITEMS:
            raise UsageError(f"{len(uploads)} torrents in one batch (at most {MAX_BATCH_ITEMS})")
        results: list[int | BitswarmError] = []
        prepared: list[_Prepared] = []
        now = int(self._clock())
        for position, upload in enumerate(uploads):
            try:
                values, torrent = self._prepare_torrent(upload, first_tracker, max_files, now)
            except BitswarmError as error:
                results.append(error)
                continue
            results.append(0)  # the id, once inserted
            prepared.append(_Prepared(position, values, torrent))
        if not prepared:
            return results
        try:
            async with self._writing() as connection:
                await self._insert_batch(connection, prepared, results)
        except exc.IntegrityError:
            # Another writer listed one of these between our check and our insert (on
            # PostgreSQL; SQLite's writer holds the lock throughout): nothing of the batch
            # was stored, so each item goes in on its own and gets its own answer.
            for item in prepared:
                try:
                    results[item.position] = (await self._insert(item.values, item.torrent)).id
                except BitswarmError as error:
                    results[item.position] = error
        return results

    async def add_magnet(
        self,
        link: str | magnet.Magnet,
        *,
        title: str | None = None,
        description: str = "",
        category: str | None = None,
        tags: Sequence[str] = (),
    ) -> Entry:
        """List a magnet link; the entry waits for metadata (``attach_metadata``). The title
        is ``title``, else the link's ``dn``, else its info-hash.

        Raises ``MetainfoError`` for a bad link, ``InvalidEntry`` for bad fields and
        ``DuplicateEntry`` when a listed entry shares one of its info-hashes."""
        parsed = magnet.parse(link) if isinstance(link, str) else link
        # x.pe holds peers' IP addresses, which the index does not keep; 'so' is a download choice.
        kept = dataclasses.replace(parsed, peers=(), select_only=())
        v1, v2 = parsed.info_hash_v1, parsed.info_hash_v2
        default_title = parsed.display_name or (v1 or v2 or b"").hex()
        values = self._user_fields(title, description, category, tags, default_title=default_title)
        values |= {
            "info_hash_v1": _hex(v1),
            "info_hash_v2": _hex(v2),
            "info_hash_v2_short": _hex(v2[:20]) if v2 is not None else None,
            "total_size": None,
            "file_count": None,
            "piece_length": None,
            "magnet": kept.format(),
            "trackers": [[url] for url in kept.trackers],
            "web_seeds": list(kept.web_seeds),
            "state": EntryState.WAITING_METADATA.value,
        }
        return await self._insert(values, None)

    async def attach_metadata(self, entry_id: int, info: bytes) -> Entry:
        """Complete a waiting magnet entry with its info dictionary (BEP 9 metadata, as
        fetched from peers): the entry becomes ready, with a .torrent made of ``info`` and
        the link's trackers and web seeds.

        Raises ``EntryNotFound``, ``EntryStateError`` when the entry is not waiting,
        ``DecodeError``/``MetainfoError`` for a bad dictionary or one that does not hash to
        the link's info-hash, ``DuplicateEntry`` when its other info-hash (a hybrid's) is
        listed as another entry."""
        if len(info) > MAX_TORRENT_BYTES:
            raise EntryLimitExceeded(f"larger than {MAX_TORRENT_BYTES} bytes", "info", MAX_TORRENT_BYTES)
        entry = await self.get(entry_id)
        if entry.state is not EntryState.WAITING_METADATA:
            raise EntryStateError(f"entry {entry_id} is {entry.state.value}, not waiting for metadata")
        torrent = Torrent.from_info(info, trackers=entry.trackers, web_seeds=entry.web_seeds)
        for wanted, got in ((entry.info_hash_v1, torrent.info_hash_v1), (entry.info_hash_v2, torrent.info_hash_v2)):
            if wanted is not None and wanted != _hex(got):
                raise MetainfoError(f"does not hash to the entry's info-hash {wanted}", "info")
        values = _torrent_values(torrent)
        document = torrent_document(info, entry.trackers, entry.web_seeds)
        values["updated_at"] = int(self._clock())
        async with self._writing() as connection:
            await self._check_duplicate(connection, values["info_hash_v1"], values["info_hash_v2"], entry_id)
            updated = await connection.execute(
                entries.update()
                .where(entries.c.id == entry_id, entries.c.state == EntryState.WAITING_METADATA.value)
                .values(**values)
            )
            if updated.rowcount != 1:
                raise EntryStateError(f"entry {entry_id} is not waiting for metadata any more")
            await connection.execute(entry_torrents.insert().values(entry_id=entry_id, torrent=document))
            await self._store_files(connection, entry_id, torrent)
            await self._reindex(connection, entry_id)
        return await self.get(entry_id)

    # -- reading --------------------------------------------------------------------------

    async def get(self, entry_id: int) -> Entry:
        """The entry ``entry_id`` (hidden ones too). Raises ``EntryNotFound``."""
        if self._engine.dialect.name == "sqlite":
            # One trip to aiosqlite's thread: an entry page reads this on every visit.
            async with self._engine.connect() as connection:
                return await self._sqlite_entry(connection, entry_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(_SELECT_ENTRY, {"entry_id": entry_id})).first()
        if row is None:
            raise EntryNotFound(entry_id)
        return entry_from_row(row)

    async def get_with_files(self, entry_id: int, *, limit: int = 1000) -> tuple[Entry, list[EntryFile]]:
        """The entry (hidden ones too) and the first ``limit`` of its stored files, read on
        one connection (what an entry page shows). Raises ``EntryNotFound``."""
        if not 1 <= limit <= MAX_FILES_PAGE:
            raise UsageError(f"limit {limit} out of bounds")
        if self._engine.dialect.name == "sqlite":
            return await self._sqlite_get_with_files(entry_id, limit)
        async with self._engine.connect() as connection:
            row = (await connection.execute(_SELECT_ENTRY, {"entry_id": entry_id})).first()
            if row is None:
                raise EntryNotFound(entry_id)
            files = (await connection.execute(_SELECT_FILES, {"entry_id": entry_id, "limit": limit, "offset": 0})).all()
        return entry_from_row(row), [EntryFile(file.position, tuple(file.path.split("/")), file.size) for file in files]

    async def find_by_info_hash(self, info_hash: bytes | str) -> Entry | None:
        """The entry with this info-hash: 20 bytes (40 hex) a v1 hash or a v2 hash cut to
        20 bytes as v2 swarms announce it, 32 bytes (64 hex) a v2 hash; None when none
        (or when the text is not a hash)."""
        text = info_hash.hex() if isinstance(info_hash, bytes) else info_hash.lower()
        if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", text):
            return None
        if len(text) == 64:
            condition = entries.c.info_hash_v2 == text
        else:
            condition = sa.or_(entries.c.info_hash_v1 == text, entries.c.info_hash_v2_short == text)
        async with self._engine.connect() as connection:
            row = (await connection.execute(sa.select(*ENTRY_COLUMNS).where(condition).limit(1))).first()
        return entry_from_row(row) if row is not None else None

    async def list_newest(self, *, limit: int = 50, offset: int = 0, include_hidden: bool = False) -> list[Entry]:
        """A page of entries, newest first. Raises ``UsageError`` for a limit above
        ``MAX_PAGE_SIZE`` or an offset above ``MAX_OFFSET``."""
        _check_page(limit, offset)
        statement = sa.select(*ENTRY_COLUMNS)
        if not include_hidden:
            statement = statement.where(entries.c.is_hidden == sa.false())
        statement = statement.order_by(entries.c.created_at.desc(), entries.c.id.desc()).limit(limit).offset(offset)
        async with self._engine.connect() as connection:
            return [entry_from_row(row) for row in (await connection.execute(statement)).all()]

    async def files(self, entry_id: int, *, limit: int = 1000, offset: int = 0) -> list[EntryFile]:
        """A page of the entry's stored files in torrent order (at most ``MAX_STORED_FILES``
        are stored; ``Entry.file_count`` is the true count)."""
        if not 1 <= limit <= MAX_FILES_PAGE or offset < 0:
            raise UsageError(f"limit {limit} / offset {offset} out of bounds")
        async with self._engine.connect() as connection:
            parameters = {"entry_id": entry_id, "limit": limit, "offset": offset}
            rows = (await connection.execute(_SELECT_FILES, parameters)).all()
        return [EntryFile(row.position, tuple(row.path.split("/")), row.size) for row in rows]

    async def torrent_lengths(self, entry_ids: Sequence[int]) -> dict[int, int]:
        """The .torrent file's size of each of these entries that has one (for feeds)."""
        if not entry_ids:
            return {}
        statement = sa.select(entry_torrents.c.entry_id, sa.func.length(entry_torrents.c.torrent).label("length"))
        statement = statement.where(entry_torrents.c.entry_id.in_(list(entry_ids)))
        async with self._engine.connect() as connection:
            return {row.entry_id: int(row.length) for row in (await connection.execute(statement)).all()}

    async def waiting_for_metadata(self, limit: int) -> list[tuple[int, str]]:
        """(id, magnet link) of up to ``limit`` entries waiting for metadata, oldest first."""
        statement = (
            sa.select(entries.c.id, entries.c.magnet)
            .where(entries.c.state == EntryState.WAITING_METADATA.value)
            .order_by(entries.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            return [(row.id, row.magnet) for row in (await connection.execute(statement)).all()]

    async def torrent_bytes(self, entry_id: int) -> bytes | None:
        """The .torrent file of the entry (None while it waits for metadata). Raises ``EntryNotFound``."""
        async with self._engine.connect() as connection:
            statement = sa.select(entries.c.id, entry_torrents.c.torrent).select_from(
                entries.outerjoin(entry_torrents, entry_torrents.c.entry_id == entries.c.id)
            )
            row = (await connection.execute(statement.where(entries.c.id == entry_id))).first()
        if row is None:
            raise EntryNotFound(entry_id)
        return bytes(row.torrent) if row.torrent is not None else None

    async def _sqlite_get_with_files(self, entry_id: int, limit: int) -> tuple[Entry, list[EntryFile]]:
        """``get_with_files`` on SQLite in two calls to aiosqlite's thread instead of nine
        (``bitswarm.index.sqlite_reads``). The JSON columns are decoded as SQLAlchemy would."""
        async with self._engine.connect() as connection:
            entry = await self._sqlite_entry(connection, entry_id)
            files = await fetch_all(connection, self._sqlite_statements()[1], (entry_id, limit, 0))
        return entry, [EntryFile(position, tuple(path.split("/")), size) for position, path, size in files]

    def _sqlite_statements(self) -> tuple[str, str]:
        if self._sqlite_sql is None:
            self._sqlite_sql = (
                compile_positional(self._engine, _SELECT_ENTRY, ["entry_id"]),
                compile_positional(self._engine, _SELECT_FILES, ["entry_id", "limit", "offset"]),
            )
        return self._sqlite_sql

    async def _sqlite_entry(self, connection: AsyncConnection, entry_id: int) -> Entry:
        rows = await fetch_all(connection, self._sqlite_statements()[0], (entry_id,))
        if not rows:
            raise EntryNotFound(entry_id)
        values = dict(zip(_ENTRY_COLUMN_NAMES, rows[0], strict=True))
        for name in _ENTRY_JSON_COLUMNS:
            values[name] = json.loads(values[name])
        return entry_from_mapping(values)

    # -- changing -------------------------------------------------------------------------

    async def edit(
        self,
        entry_id: int,
        *,
        title: str | None = None,
        description: str | None = None,
        category: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> Entry:
        """Change what is given (None leaves a field as it is; ``category=''`` clears it).

        Returns the entry. Raises ``EntryNotFound`` and ``InvalidEntry``."""
        values: dict[str, Any] = {}
        if title is not None:
            values["title"] = clean_title(title)
        if description is not None:
            values["description"] = clean_description(description)
        if category is not None:
            values["category"] = clean_category(category)
        if tags is not None:
            values["tags"] = " ".join(clean_tags(tags))
        await self._update(entry_id, values, reindex=True)
        return await self.get(entry_id)

    async def set_hidden(self, entry_id: int, is_hidden: bool) -> Entry:
        """Hide an entry from lists and searches (an operator's decision), or show it again."""
        await self._update(entry_id, {"is_hidden": is_hidden}, reindex=False)
        return await self.get(entry_id)

    async def delete(self, entry_id: int) -> None:
        """Remove the entry, its files and its index row. Raises ``EntryNotFound``."""
        async with self._writing() as connection:
            await self._search.remove_entry(connection, entry_id)
            await connection.execute(entry_files.delete().where(entry_files.c.entry_id == entry_id))
            deleted = await connection.execute(entries.delete().where(entries.c.id == entry_id))
            if deleted.rowcount != 1:
                raise EntryNotFound(entry_id)

    # -- inside ---------------------------------------------------------------------------

    def _prepare_torrent(
        self, upload: TorrentUpload, first_tracker: str | None, max_files: int | None, now: int
    ) -> tuple[dict[str, Any], Torrent]:
        """An entry's column values and its parsed torrent; raises what ``add_torrent`` does
        before it reaches the database."""
        data = upload.data
        if len(data) > MAX_TORRENT_BYTES:
            raise EntryLimitExceeded(f"larger than {MAX_TORRENT_BYTES} bytes", "torrent", MAX_TORRENT_BYTES)
        torrent = read_torrent_file(data)
        if max_files is not None and sum(1 for _ in torrent.data_files()) > max_files:
            raise EntryLimitExceeded(f"more than {max_files} files", "torrent", max_files)
        if first_tracker is not None:
            data = with_first_tracker(data, torrent, first_tracker)
            torrent = read_torrent_file(data)
        values = self._user_fields(
            upload.title, upload.description, upload.category, upload.tags, default_title=torrent.name, now=now
        )
        values |= _torrent_values(torrent) | {"torrent": data}
        return values, torrent

    def _user_fields(
        self,
        title: str | None,
        description: str,
        category: str | None,
        tags: Sequence[str],
        *,
        default_title: str,
        now: int | None = None,
    ) -> dict[str, Any]:
        now = int(self._clock()) if now is None else now
        chosen = clean_title(title) if title is not None else title_from_name(default_title)
        if not chosen:
            raise InvalidEntry("empty (the torrent's name has no printable character)", "title")
        return {
            "title": chosen,
            "description": clean_description(description),
            "category": clean_category(category),
            "tags": " ".join(clean_tags(tags)),
            "is_hidden": False,
            "created_at": now,
            "updated_at": now,
        }

    def _writing(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return writing(self._engine)

    async def _check_duplicate(
        self, connection: AsyncConnection, v1: str | None, v2: str | None, exclude_id: int | None = None
    ) -> None:
        matches = []
        if v1 is not None:
            matches.append(entries.c.info_hash_v1 == v1)
        if v2 is not None:
            matches.append(entries.c.info_hash_v2 == v2)
        statement = sa.select(entries.c.id).where(sa.or_(*matches))
        if exclude_id is not None:
            statement = statement.where(entries.c.id != exclude_id)
        existing = (await connection.execute(statement.limit(1))).scalar()
        if existing is not None:
            raise DuplicateEntry(existing)

    async def _insert(self, values: dict[str, Any], torrent: Torrent | None) -> Entry:
        try:
            async with self._writing() as connection:
                await self._check_duplicate(connection, values["info_hash_v1"], values["info_hash_v2"])
                columns = {name: value for name, value in values.items() if name != "torrent"}
                result = await connection.execute(entries.insert().values(**columns))
                key = result.inserted_primary_key
                assert key is not None
                entry_id = int(key[0])
                if values.get("torrent") is not None:
                    stored = entry_torrents.insert().values(entry_id=entry_id, torrent=values["torrent"])
                    await connection.execute(stored)
                if torrent is not None:
                    await self._store_files(connection, entry_id, torrent)
                await self._reindex(connection, entry_id)
        except exc.IntegrityError:
            # Another writer listed the same hash between our check and our insert.
            async with self._engine.connect() as connection:
                await self._check_duplicate(connection, values["info_hash_v1"], values["info_hash_v2"])
            raise
        return await self.get(entry_id)

    async def _insert_batch(
        self, connection: AsyncConnection, prepared: list[_Prepared], results: list[int | BitswarmError]
    ) -> None:
        """Insert the new ones of ``prepared`` (their entries, files and index rows, a
        statement per table) and put each item's id or ``DuplicateEntry`` in ``results``."""
        v1s = {item.values["info_hash_v1"] for item in prepared} - {None}
        v2s = {item.values["info_hash_v2"] for item in prepared} - {None}
        listed: dict[tuple[str, str], int] = {}
        if v1s or v2s:
            found = await connection.execute(
                sa.select(entries.c.id, entries.c.info_hash_v1, entries.c.info_hash_v2)
                .where(sa.or_(entries.c.info_hash_v1.in_(sorted(v1s)), entries.c.info_hash_v2.in_(sorted(v2s))))
                .order_by(entries.c.id)
            )
            for row in found:
                for kind, value in (("v1", row.info_hash_v1), ("v2", row.info_hash_v2)):
                    if value is not None:
                        listed.setdefault((kind, value), row.id)
        # Items of this batch that repeat an earlier one: the position of that earlier one.
        earlier: dict[tuple[str, str], int] = {}
        repeats: dict[int, int] = {}
        fresh: list[_Prepared] = []
        for item in prepared:
            keys = [(kind, item.values[f"info_hash_{kind}"]) for kind in ("v1", "v2")]
            keys = [key for key in keys if key[1] is not None]
            # add_torrent's check: the lowest id sharing either hash.
            existing = [listed[key] for key in keys if key in listed]
            if existing:
                results[item.position] = DuplicateEntry(min(existing))
                continue
            first = [earlier[key] for key in keys if key in earlier]
            if first:
                repeats[item.position] = min(first)
                continue
            for key in keys:
                earlier[key] = item.position
            fresh.append(item)
        if not fresh:
            return
        # One multi-row INSERT ... RETURNING (SQLAlchemy's "insertmanyvalues"), ids in order.
        inserted = await connection.execute(
            entries.insert().returning(entries.c.id, sort_by_parameter_order=True),
            [{name: value for name, value in item.values.items() if name != "torrent"} for item in fresh],
        )
        ids = [int(row.id) for row in inserted]
        assert len(ids) == len(fresh)
        await connection.execute(
            entry_torrents.insert(),
            [
                {"entry_id": entry_id, "torrent": item.values["torrent"]}
                for item, entry_id in zip(fresh, ids, strict=True)
            ],
        )
        file_rows: list[dict[str, Any]] = []
        documents: list[SearchDocument] = []
        for item, entry_id in zip(fresh, ids, strict=True):
            results[item.position] = entry_id
            rows = _file_rows(entry_id, item.torrent)
            file_rows += rows
            values = item.values
            paths = [row["path"] for row in rows]
            documents.append(
                SearchDocument.of(entry_id, values["title"], values["tags"].split(), paths, values["description"])
            )
        for position, first_position in repeats.items():
            first_id = results[first_position]
            assert isinstance(first_id, int)
            results[position] = DuplicateEntry(first_id)
        if file_rows:
            await connection.execute(entry_files.insert(), file_rows)
        await self._search.index_entries(connection, documents)

    async def _store_files(self, connection: AsyncConnection, entry_id: int, torrent: Torrent) -> None:
        rows = _file_rows(entry_id, torrent)
        if rows:
            await connection.execute(entry_files.insert(), rows)

    async def _update(self, entry_id: int, values: dict[str, Any], *, reindex: bool) -> None:
        async with self._writing() as connection:
            values = values | {"updated_at": int(self._clock())}
            updated = await connection.execute(entries.update().where(entries.c.id == entry_id).values(**values))
            if updated.rowcount != 1:
                raise EntryNotFound(entry_id)
            if reindex:
                await self._reindex(connection, entry_id)

    async def _reindex(self, connection: AsyncConnection, entry_id: int) -> None:
        """Rebuild the entry's full-text row from what is stored (its file rows included)."""
        row = (
            await connection.execute(
                sa.select(entries.c.title, entries.c.tags, entries.c.description).where(entries.c.id == entry_id)
            )
        ).one()
        paths = (
            await connection.execute(
                sa.select(entry_files.c.path).where(entry_files.c.entry_id == entry_id).order_by(entry_files.c.position)
            )
        ).scalars()
        document = SearchDocument.of(entry_id, row.title, row.tags.split(), list(paths), row.description)
        await self._search.index_entry(connection, document)
