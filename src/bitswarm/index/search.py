"""Full-text search of the index: one ``SearchBackend`` per database engine.

Both backends index the same four fields, weighted title > tags > file names >
description, from words normalised by ``bitswarm.index.query.search_words``, and render the
same parsed ``Query``; the engines' own text parsers never see what a visitor typed.

- SQLite: an FTS5 table (``entry_search``, rowid = entry id), ranked by ``bm25`` with
  per-column weights; each column also holds a token per pair of neighbouring words, which
  phrases are searched by.
- PostgreSQL: two ``tsvector`` per entry, each with a GIN index, built from quoted lexemes
  with positions and weights (A title, B tags, C files, D description) so that no locale
  or text parser changes a word, ranked by ``ts_rank``: its words (``entry_search``) and
  its pairs of neighbouring words (``entry_search_pairs``), which phrases are searched by.

Pages are bounded (``MAX_PAGE_SIZE``, ``MAX_OFFSET``) and the total is counted up to
``MAX_COUNTED`` matches only: past that the page says "more than". By relevance, the
newest ``RANKED_CANDIDATES`` matches are ranked: a word in a third of a million entries
would otherwise have every one of them scored for each page.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from bitswarm.errors import UsageError
from bitswarm.index import query as query_language
from bitswarm.index.model import ENTRY_COLUMNS, Entry, entry_from_row
from bitswarm.index.query import Clause, Query
from bitswarm.index.schema import entries, swarm_counts

MAX_PAGE_SIZE = 100
# Deep pages cost a scan of everything before them; nobody reads page 100 of a search.
MAX_OFFSET = 10_000
# Counting every match of a common word in a million entries is the slow part of a search.
MAX_COUNTED = 1000
# Scoring every match of a common word is slower still (a word in a third of a million
# entries: 0.4 s on SQLite): by relevance, the newest this many matches are ranked:
# every page within the count the site shows (a page beyond them is empty). The cost is
# per candidate (bm25 or ts_rank, and the join): at a million entries on SQLite, 2,000
# of them took 12-20 ms of a common word's search (bench/index_bench.py).
RANKED_CANDIDATES = MAX_COUNTED + MAX_PAGE_SIZE
# Bounds on what one entry puts in the index (a torrent may name 300,000 files).
MAX_INDEXED_TITLE_WORDS = 200
MAX_INDEXED_TAG_WORDS = 100
MAX_INDEXED_FILE_WORDS = 20_000
MAX_INDEXED_DESCRIPTION_WORDS = 5000
# PostgreSQL: positions above this are stored as this; at most 255 positions per lexeme.
_MAX_TS_POSITION = 16383
_MAX_TS_POSITIONS_PER_LEXEME = 255


class SearchSort(enum.Enum):
    """Orders of a result page. (Seeders will come from the tracker's counts: a later
    backend revision joins them; callers pass the sort key only.)"""

    RELEVANCE = "relevance"
    NEWEST = "newest"
    OLDEST = "oldest"
    LARGEST = "largest"
    SMALLEST = "smallest"
    # The most seeders any tracker reported lately (unknown last).
    SEEDERS = "seeders"


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrictions on top of the words: any of ``categories`` (none: all), size bounds in
    bytes (entries of unknown size fall out when one is set), created at most
    ``max_age_s`` seconds ago, hidden entries only with ``include_hidden``."""

    categories: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    max_age_s: float | None = None
    include_hidden: bool = False
    # At least this many seeders reported lately by some tracker (unknown counts fall out).
    min_seeders: int | None = None


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """What the index knows of one entry, as normalised words per field."""

    entry_id: int
    title: Sequence[str]
    tags: Sequence[str]
    files: Sequence[str]
    description: Sequence[str]

    @staticmethod
    def of(entry_id: int, title: str, tags: Sequence[str], paths: Sequence[str], description: str) -> SearchDocument:
        """Normalise and bound an entry's texts (``paths`` are its file paths)."""
        words = query_language.search_words
        file_words: list[str] = []
        for path in paths:
            file_words += words(path, MAX_INDEXED_FILE_WORDS - len(file_words))
            if len(file_words) >= MAX_INDEXED_FILE_WORDS:
                break
        return SearchDocument(
            entry_id,
            words(title, MAX_INDEXED_TITLE_WORDS),
            words(" ".join(tags), MAX_INDEXED_TAG_WORDS),
            file_words,
            words(description, MAX_INDEXED_DESCRIPTION_WORDS),
        )


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results: ``total`` matches in all, or more than ``total`` when
    ``total_is_exact`` is false (counting stops at ``MAX_COUNTED``)."""

    entries: tuple[Entry, ...]
    total: int
    total_is_exact: bool
    limit: int
    offset: int


class SearchBackend(Protocol):
    """The full-text index of one engine. Every call runs on the caller's connection, in
    the caller's transaction, so an entry and its index row change together."""

    async def index_entry(self, connection: AsyncConnection, document: SearchDocument) -> None:
        """Add or replace the entry's row in the index."""

    async def index_entries(self, connection: AsyncConnection, documents: Sequence[SearchDocument]) -> None:
        """Add or replace the rows of many entries (a bulk import), as ``index_entry`` each."""

    async def remove_entry(self, connection: AsyncConnection, entry_id: int) -> None:
        """Drop the entry's row from the index (nothing happens when there is none)."""

    async def search(
        self,
        connection: AsyncConnection,
        query: Query,
        filters: SearchFilters,
        sort: SearchSort,
        limit: int,
        offset: int,
        now: float,
    ) -> SearchPage:
        """A page of entries matching ``query`` and ``filters``; never raises for any query."""


# Counts older than this take no part in filters and sorts: scrapes come every 30 min and
# the site's own tracker writes its counts every minute, so an older row is a swarm gone.
FRESH_COUNTS_S = 2 * 3600


def seeders_of_entry(now: float) -> sa.ScalarSelect[Any]:
    """The most seeders a tracker reported lately for the entry of the outer query (NULL
    when none did), by either of its info-hashes (v1, v2 cut to 20 bytes)."""
    return (
        sa.select(sa.func.max(swarm_counts.c.seeders))
        .where(
            swarm_counts.c.info_hash.in_([entries.c.info_hash_v1, entries.c.info_hash_v2_short]),
            swarm_counts.c.checked_at >= int(now - FRESH_COUNTS_S),
        )
        .scalar_subquery()
    )


def _filter_conditions(filters: SearchFilters, now: float) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if not filters.include_hidden:
        conditions.append(entries.c.is_hidden == sa.false())
    if filters.categories:
        conditions.append(entries.c.category.in_(filters.categories))
    if filters.min_size is not None:
        conditions.append(entries.c.total_size >= filters.min_size)
    if filters.max_size is not None:
        conditions.append(entries.c.total_size <= filters.max_size)
    if filters.max_age_s is not None:
        conditions.append(entries.c.created_at >= int(now - filters.max_age_s))
    if filters.min_seeders is not None:
        conditions.append(seeders_of_entry(now) >= filters.min_seeders)
    return conditions


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise UsageError(f"limit {limit} is not between 1 and {MAX_PAGE_SIZE}")
    if not 0 <= offset <= MAX_OFFSET:
        raise UsageError(f"offset {offset} is not between 0 and {MAX_OFFSET}")


async def _run_page(
    connection: AsyncConnection,
    base: sa.Select[Any],
    score: sa.ColumnElement[Any] | None,
    sort: SearchSort,
    limit: int,
    offset: int,
    now: float,
    *,
    newest_match_first: sa.ColumnElement[Any] | None = None,
) -> SearchPage:
    """Order, cut and count ``base`` (a select of ``ENTRY_COLUMNS`` with its conditions).

    By relevance, only the newest ``RANKED_CANDIDATES`` matches are scored, taken in the
    order ``newest_match_first`` (one the engine's index yields without sorting); they are
    the count too (there are more of them than the count shows), so the full-text match
    runs once: a phrase with a common word tests every entry holding that word.
    """
    _check_page(limit, offset)
    if sort is SearchSort.RELEVANCE and score is not None:
        candidates = (
            base.with_only_columns(entries.c.id, score.label("score"))
            .order_by(newest_match_first if newest_match_first is not None else entries.c.id.desc())
            .limit(RANKED_CANDIDATES)
        )
        scored = sorted((await connection.execute(candidates)).all(), key=lambda row: (row.score, row.id), reverse=True)
        page_ids = [row.id for row in scored[offset : offset + limit]]
        found = {}
        if page_ids:
            statement = sa.select(*ENTRY_COLUMNS).where(entries.c.id.in_(page_ids))
            found = {row.id: row for row in (await connection.execute(statement)).all()}
        rows = [found[entry_id] for entry_id in page_ids if entry_id in found]
        return _page(rows, await _matches(connection, base, len(scored)), limit, offset)
    if sort is SearchSort.OLDEST:
        order: list[sa.ColumnElement[Any]] = [entries.c.created_at.asc(), entries.c.id.asc()]
    elif sort is SearchSort.LARGEST:
        order = [entries.c.total_size.desc().nulls_last(), entries.c.id.desc()]
    elif sort is SearchSort.SMALLEST:
        order = [entries.c.total_size.asc().nulls_last(), entries.c.id.desc()]
    elif sort is SearchSort.SEEDERS:
        order = [seeders_of_entry(now).desc().nulls_last(), entries.c.id.desc()]
    else:  # NEWEST, and RELEVANCE without words to rank by
        order = [entries.c.created_at.desc(), entries.c.id.desc()]
    rows = (await connection.execute(base.order_by(*order).limit(limit).offset(offset))).all()
    return await _counted_page(connection, base, rows, limit, offset)


async def _counted_page(
    connection: AsyncConnection, base: sa.Select[Any], rows: Sequence[sa.Row[Any]], limit: int, offset: int
) -> SearchPage:
    counted = base.with_only_columns(entries.c.id).limit(MAX_COUNTED + 1).subquery()
    total = (await connection.execute(sa.select(sa.func.count()).select_from(counted))).scalar_one()
    return _page(rows, total, limit, offset)


async def _matches(connection: AsyncConnection, base: sa.Select[Any], candidates: int) -> int:
    """How many matches to count, given the number of ranked ``candidates`` found: those,
    unless they were cut below the count the page shows (never so by default)."""
    if candidates < RANKED_CANDIDATES or RANKED_CANDIDATES > MAX_COUNTED:
        return candidates
    counted = base.with_only_columns(entries.c.id).limit(MAX_COUNTED + 1).subquery()
    return int((await connection.execute(sa.select(sa.func.count()).select_from(counted))).scalar_one())


def _page(rows: Sequence[sa.Row[Any]], matches: int, limit: int, offset: int) -> SearchPage:
    """The page of these rows, of ``matches`` matches counted (up to ``MAX_COUNTED`` or more)."""
    return SearchPage(
        entries=tuple(entry_from_row(row) for row in rows),
        total=min(matches, MAX_COUNTED),
        total_is_exact=matches <= MAX_COUNTED,
        limit=limit,
        offset=offset,
    )


# The FTS5 table as a lightweight table clause: its DDL lives in the migration.
_fts = sa.table("entry_search", sa.column("rowid", sa.Integer))
# FTS5 takes the table's own name as MATCH's left side and as bm25's argument.
_fts_self: sa.ColumnClause[Any] = sa.literal_column("entry_search")
# bm25 weights per column, in the table's order (title, tags, files, description).
_FTS_WEIGHTS = (10.0, 5.0, 2.0, 1.0)


def fts5_field(words: Sequence[str]) -> str:
    """An FTS5 column's text: the field's words, then a token per pair of neighbouring
    words (``query.fts5_pair``), which phrases are searched by. The pairs come after the
    words, so the words keep their own neighbours."""
    pairs = [query_language.fts5_pair(first, second) for first, second in itertools.pairwise(words)]
    return " ".join([*words, *pairs])


def _fts5_row(document: SearchDocument) -> dict[str, Any]:
    return {
        "entry_id": document.entry_id,
        "title": fts5_field(document.title),
        "tags": fts5_field(document.tags),
        "files": fts5_field(document.files),
        "description": fts5_field(document.description),
    }


_FTS5_INSERT = sa.text(
    "INSERT INTO entry_search (rowid, title, tags, files, description) "
    "VALUES (:entry_id, :title, :tags, :files, :description)"
)
_FTS5_DELETE = sa.text("DELETE FROM entry_search WHERE rowid = :entry_id")


class Fts5Search:
    """SQLite FTS5 (``entry_search``; rowid = entry id)."""

    async def index_entry(self, connection: AsyncConnection, document: SearchDocument) -> None:
        await self.index_entries(connection, [document])

    async def index_entries(self, connection: AsyncConnection, documents: Sequence[SearchDocument]) -> None:
        if not documents:
            return
        rows = [_fts5_row(document) for document in documents]
        await connection.execute(_FTS5_DELETE, [{"entry_id": row["entry_id"]} for row in rows])
        await connection.execute(_FTS5_INSERT, rows)

    async def remove_entry(self, connection: AsyncConnection, entry_id: int) -> None:
        await connection.execute(_FTS5_DELETE, {"entry_id": entry_id})

    async def search(
        self,
        connection: AsyncConnection,
        query: Query,
        filters: SearchFilters,
        sort: SearchSort,
        limit: int,
        offset: int,
        now: float,
    ) -> SearchPage:
        conditions = _filter_conditions(filters, now)
        score: sa.ColumnElement[Any] | None = None
        if query.required:
            base = sa.select(*ENTRY_COLUMNS).select_from(entries.join(_fts, _fts.c.rowid == entries.c.id))
            conditions.append(_fts_self.op("MATCH")(query_language.to_fts5(query.required)))
            # bm25 is lower for better matches.
            score = -sa.func.bm25(_fts_self, *_FTS_WEIGHTS)
        else:
            base = sa.select(*ENTRY_COLUMNS)
        if query.excluded:
            conditions.append(entries.c.id.not_in(self._matching(query.excluded)))
        return await _run_page(
            connection, base.where(*conditions), score, sort, limit, offset, now, newest_match_first=_fts.c.rowid.desc()
        )

    @staticmethod
    def _matching(clauses: Sequence[Clause]) -> sa.Select[Any]:
        inner = sa.select(_fts.c.rowid).where(_fts_self.op("MATCH")(query_language.to_fts5(clauses, any_of=True)))
        return inner.correlate(None)


# PostgreSQL: the words of each entry (``entry_search``) and their pairs, which phrases are
# searched by (``entry_search_pairs``), in tables of their own: a word's matches then read
# rows half the size, none of them in the TOAST table (at a million entries: 425 MB against
# 734 MB and 191 MB of TOAST), and the p50 of a one-word search fell from 21 to 12-14 ms.
# ``ctid``: a row's address, valid within one statement's snapshot.
_pg_search = sa.table(
    "entry_search", sa.column("entry_id", sa.Integer), sa.column("document", postgresql.TSVECTOR), sa.column("ctid")
)
_pg_pairs = sa.table(
    "entry_search_pairs",
    sa.column("entry_id", sa.Integer),
    sa.column("document", postgresql.TSVECTOR),
    sa.column("ctid"),
)
# PostgreSQL: the newest ids a search by relevance looks at first (then more, ...). The
# planner may walk the key in this window, testing each document: enough for a word in a
# third of the entries to fill the candidates, and little wasted for a rarer one.
_FIRST_WINDOW_IDS = 4_000
# Bounds the windows of one search (each at least doubles, or moves below a cut one).
_MAX_WINDOWS = 64
# For the statements of one transaction (SET LOCAL): see PostgresSearch._ranked_page.
_NO_INDEX_SCANS = sa.text("SET LOCAL enable_indexscan = off")
_INDEX_SCANS = sa.text("SET LOCAL enable_indexscan = on")


def tsvector_literals(fields: Sequence[tuple[str, Sequence[str]]]) -> tuple[str, str]:
    """tsvector input texts for (weight letter, words) fields, in order: the words, each a
    quoted lexeme with its positions; and the pairs of neighbouring words in a field
    (``query.word_pair``, at the first word's position), which phrases are searched by. A
    position is skipped between fields so that no phrase spans two of them (as in FTS5,
    where a phrase stays within one column)."""
    words_at: dict[str, list[str]] = {}
    pairs_at: dict[str, list[str]] = {}
    position = 1
    for weight, words in fields:
        for index, word in enumerate(words):
            at = f"{min(position, _MAX_TS_POSITION)}{weight}"
            kept = words_at.setdefault(word, [])
            if len(kept) < _MAX_TS_POSITIONS_PER_LEXEME:
                kept.append(at)
            if index + 1 < len(words):  # the pair this word starts, at its position
                kept = pairs_at.setdefault(query_language.word_pair(word, words[index + 1]), [])
                if len(kept) < _MAX_TS_POSITIONS_PER_LEXEME:
                    kept.append(at)
            position += 1
        position += 1
    return _literal(words_at), _literal(pairs_at)


def _literal(positions: dict[str, list[str]]) -> str:
    return " ".join(f"{query_language.tsquery_lexeme(word)}:{','.join(at)}" for word, at in positions.items())


def document_literals(document: SearchDocument) -> tuple[str, str]:
    """An entry's tsvector input texts, its words and its pairs: weights A title, B tags,
    C file names, D description."""
    return tsvector_literals(
        [("A", document.title), ("B", document.tags), ("C", document.files), ("D", document.description)]
    )


class PostgresSearch:
    """PostgreSQL full-text search (``entry_search`` and ``entry_search_pairs``: a tsvector
    of each entry's words and one of its word pairs, each with a GIN index)."""

    async def index_entry(self, connection: AsyncConnection, document: SearchDocument) -> None:
        await self.index_entries(connection, [document])

    async def index_entries(self, connection: AsyncConnection, documents: Sequence[SearchDocument]) -> None:
        if not documents:
            return
        literals = [(document.entry_id, document_literals(document)) for document in documents]
        for table, part in ((_pg_search, 0), (_pg_pairs, 1)):
            statement = postgresql.insert(table).values(
                entry_id=sa.bindparam("entry_id", type_=sa.Integer),
                document=sa.cast(sa.bindparam("literal", type_=sa.Text), postgresql.TSVECTOR),
            )
            statement = statement.on_conflict_do_update(
                index_elements=["entry_id"], set_={"document": statement.excluded.document}
            )
            rows = [{"entry_id": entry_id, "literal": texts[part]} for entry_id, texts in literals]
            await connection.execute(statement, rows)

    async def remove_entry(self, connection: AsyncConnection, entry_id: int) -> None:
        for table in (_pg_search, _pg_pairs):
            await connection.execute(sa.delete(table).where(table.c.entry_id == entry_id))

    async def search(
        self,
        connection: AsyncConnection,
        query: Query,
        filters: SearchFilters,
        sort: SearchSort,
        limit: int,
        offset: int,
        now: float,
    ) -> SearchPage:
        conditions = _filter_conditions(filters, now)
        for table, excluded in self._sources(query.excluded, any_of=True):
            inner = sa.select(table.c.entry_id).where(table.c.document.op("@@")(excluded))
            conditions.append(entries.c.id.not_in(inner.correlate(None)))
        if not query.required:
            return await _run_page(
                connection, sa.select(*ENTRY_COLUMNS).where(*conditions), None, sort, limit, offset, now
            )
        sources = self._sources(query.required)
        joined: sa.FromClause = entries
        for table, _tsquery in sources:
            joined = joined.join(table, table.c.entry_id == entries.c.id)
        base = sa.select(*ENTRY_COLUMNS).select_from(joined)
        base = base.where(*conditions, *(table.c.document.op("@@")(tsquery) for table, tsquery in sources))
        if sort is SearchSort.RELEVANCE:
            _check_page(limit, offset)
            only_visible = filters == SearchFilters() and not query.excluded
            return await self._ranked_page(connection, base, sources, conditions, limit, offset, only_visible)
        return await _run_page(connection, base, None, sort, limit, offset, now)

    def _sources(
        self, clauses: Sequence[Clause], *, any_of: bool = False
    ) -> list[tuple[sa.TableClause, sa.ColumnElement[Any]]]:
        """The tables ``clauses`` are searched in, each with its tsquery: phrases in the
        pairs (first: the rarer, so they lead a search of both), words in the words."""
        phrases = [clause for clause in clauses if clause.is_phrase]
        words = [clause for clause in clauses if not clause.is_phrase]
        return [
            (table, self._tsquery(group, any_of=any_of)) for table, group in ((_pg_pairs, phrases), (_pg_search, words))
            if group
        ]  # fmt: skip

    @staticmethod
    async def _ranked_page(
        connection: AsyncConnection,
        base: sa.Select[Any],
        sources: Sequence[tuple[sa.TableClause, sa.ColumnElement[Any]]],
        conditions: Sequence[sa.ColumnElement[bool]],
        limit: int,
        offset: int,
        only_visible: bool,
    ) -> SearchPage:
        """A page by relevance: the newest ``RANKED_CANDIDATES`` matches, scored.

        PostgreSQL's planner cannot guess how many entries a phrase matches: it walked the
        primary key backwards testing each document (85,000 of them for a phrase in 1 % of
        200,000 entries, 0.1 s), where the GIN index finds them at once, and for a common
        word the reverse. So matches are looked for among the newest ids first, in windows
        that grow (by the density found so far) until they hold ``RANKED_CANDIDATES`` or
        span every entry. In the first window the planner may walk the key and stop at the
        matches it needs (a common word: a few thousand documents, 1 ms); in the later
        ones, where matches have proved sparse, ``+ 0`` keeps it off the key's order and
        plain index scans are off, so each is the GIN index ANDed with a key range: the
        planner thinks testing a document costs next to nothing and walked 40,000 of them
        (38 ms) where the two bitmaps took 9 ms (150,000 entries, a word in 5 %).

        Each window's matches are found in the leading table (the pairs when the query has
        a phrase, else the words; the other one is asked of each match), newest first and
        at most as many as are still needed, and only then joined to ``entries`` for the
        filters: joined inside, the planner hashed the whole ``entries`` table for a common
        word (137 ms of 208 at 150,000 entries). With no filter but "not hidden" (``only_visible``),
        no entry row is read at all: the few hidden entries come from their partial index
        (reading each candidate's entry row took a third of a common word's search at a
        million entries). When filters drop some of them, the search goes on below the
        last one looked at. The result is the same as searching everything; the count
        comes with it (``base``, the whole search, counts only when the candidates were
        cut below the count shown). Each match is scored (``ts_rank``) in the statement of
        its window: scoring the candidates in a statement of their own read their 1,100
        rows again, 48-76 ms at 354,000 entries when they were not cached."""
        (leading, tsquery), others = sources[0], sources[1:]
        newest = (await connection.execute(sa.select(sa.func.max(leading.c.entry_id)))).scalar()
        window = _FIRST_WINDOW_IDS
        candidates: list[tuple[float, int]] = []  # (score, id)
        # Scored once the window's matches are cut to those wanted, through their row's
        # address: scoring every match of a window (3,800 for a word in 0.4 % of a million
        # entries, each document decompressed, most from the TOAST table) before the cut
        # took 24 of its 30 ms.
        scored = leading.alias("scored")
        in_others = [
            sa.exists().where(other.c.entry_id == leading.c.entry_id, other.c.document.op("@@")(other_query))
            for other, other_query in others
        ]  # fmt: skip
        upper = newest  # every id above this has been looked at
        index_scans_off = False
        for step in range(_MAX_WINDOWS):  # bounded: the floor of the window doubles each time
            if upper is None or upper <= 0:
                break
            wanted = RANKED_CANDIDATES - len(candidates)
            lower = upper - window
            found = sa.select(leading.c.entry_id, leading.c.ctid).where(
                leading.c.document.op("@@")(tsquery), leading.c.entry_id <= upper, *in_others
            )
            if lower > 0:
                found = found.where(leading.c.entry_id > lower)
            key = leading.c.entry_id if step == 0 else leading.c.entry_id + 0
            if step == 1:
                await connection.execute(_NO_INDEX_SCANS)
                index_scans_off = True
            matches = found.order_by(key.desc()).limit(wanted).subquery("matches")
            rows_of_matches = matches.join(scored, scored.c.ctid == matches.c.ctid)
            ranks: sa.ColumnElement[Any] = sa.func.ts_rank(scored.c.document, tsquery)
            for other, other_query in others:
                other_rank = sa.select(sa.func.ts_rank(other.c.document, other_query))
                ranks = ranks + other_rank.where(other.c.entry_id == matches.c.entry_id).scalar_subquery()
            score = ranks.label("score")
            if only_visible:
                hidden = sa.exists().where(entries.c.id == matches.c.entry_id, entries.c.is_hidden)
                statement = sa.select(matches.c.entry_id, score, (~hidden).label("kept")).select_from(rows_of_matches)
            else:
                kept = entries.c.id.is_not(None).label("kept")
                statement = sa.select(matches.c.entry_id, score, kept).select_from(
                    rows_of_matches.outerjoin(entries, sa.and_(entries.c.id == matches.c.entry_id, *conditions))
                )
            statement = statement.order_by(matches.c.entry_id.desc())
            rows = (await connection.execute(statement)).all()
            candidates += [(row.score, row.entry_id) for row in rows if row.kept]
            if len(candidates) >= RANKED_CANDIDATES or (lower <= 0 and len(rows) < wanted):
                break
            if len(rows) >= wanted:  # cut by the limit: go on below the last one looked at
                upper = rows[-1].entry_id - 1
                continue
            upper = lower
            # Wide enough for the matches still wanted at the density so far (with a margin),
            # and at least a floor that doubles each time, so that the windows reach the
            # oldest id within a few steps. Doubling the last window instead read a window
            # of 600,000 ids (2,000 matches) for the last 18 candidates.
            looked_at = newest - upper if newest is not None else window
            still_wanted = RANKED_CANDIDATES - len(candidates)
            promised = looked_at * still_wanted * 5 // (4 * max(1, len(candidates)))
            window = max(_FIRST_WINDOW_IDS << (step + 1), promised)
            if 2 * window >= upper:
                # The planner reads every match of the word for a window this wide (the key's
                # range no longer narrows the bitmap), so one window takes all that is left.
                window = upper
        if index_scans_off:
            await connection.execute(_INDEX_SCANS)
        total = await _matches(connection, base, len(candidates))
        page_ids = [entry_id for _score, entry_id in sorted(candidates, reverse=True)[offset : offset + limit]]
        found_rows = {}
        if page_ids:
            statement = sa.select(*ENTRY_COLUMNS).where(entries.c.id.in_(page_ids))
            found_rows = {row.id: row for row in (await connection.execute(statement)).all()}
        return _page([found_rows[entry_id] for entry_id in page_ids if entry_id in found_rows], total, limit, offset)

    @staticmethod
    def _tsquery(clauses: Sequence[Clause], *, any_of: bool = False) -> sa.ColumnElement[Any]:
        text = query_language.to_tsquery(clauses, any_of=any_of)
        return sa.cast(sa.literal(text, sa.Text), postgresql.TSQUERY)


def backend_for(dialect_name: str) -> SearchBackend:
    """The search backend of an engine ('sqlite' or 'postgresql')."""
    if dialect_name == "postgresql":
        return PostgresSearch()
    if dialect_name == "sqlite":
        return Fts5Search()
    raise UsageError(f"no search backend for {dialect_name}")
