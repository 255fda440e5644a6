"""BM25 computed from the candidates' text equals SQLite FTS5's own ``bm25()``, on a real
FTS5 table made as migration 0001 makes it."""

from __future__ import annotations

import random
import sqlite3

import pytest

from bitswarm.index import query, relevance
from bitswarm.index.search import _FTS_WEIGHTS

# A small vocabulary, so that words repeat within a document and phrases overlap
# ("la la" in "la la la").
WORDS = ("la", "lab", "lama", "do", "re", "mi", "fa", "sol", "si", "dore")
QUERIES = (
    "la",
    "lama",
    "la do",
    "re mi fa",
    '"la la"',
    '"do re"',
    '"do re" mi',
    '"la la la"',
    "la*",
    '"do la"*',
    '"la la"*',
    "dor* sol",
    "absent",
)


@pytest.fixture(scope="module")
def table() -> sqlite3.Connection:
    rng = random.Random(7)
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIRTUAL TABLE entry_search USING fts5("
        "title, tags, files, description, tokenize='unicode61 remove_diacritics 0', prefix='2 3')"
    )
    for _document in range(400):
        # Some columns empty, some long, so that lengths and weights both matter.
        columns = [" ".join(rng.choices(WORDS, k=rng.choice((0, 1, 3, 8, 30)))) for _column in range(4)]
        connection.execute("INSERT INTO entry_search VALUES (?, ?, ?, ?)", columns)
    connection.commit()  # FTS5 writes its averages record at the commit
    return connection


@pytest.mark.parametrize("text", QUERIES)
def test_scores_equal_fts5_bm25(table: sqlite3.Connection, text: str) -> None:
    clauses = query.parse(text).required
    record = table.execute("SELECT block FROM entry_search_data WHERE id = 1").fetchone()[0]
    documents, words = relevance.fts5_averages(record, 4)
    assert documents == 400
    assert words == sum(
        len(value.split()) for row in table.execute("SELECT * FROM entry_search") for value in row if value
    )
    idfs = []
    for clause in clauses:
        holding = table.execute(
            "SELECT count(*) FROM entry_search WHERE entry_search MATCH ?", (query.to_fts5([clause]),)
        ).fetchone()[0]
        idfs.append(relevance.idf(documents, holding))
    scorer = relevance.Scorer(clauses, _FTS_WEIGHTS, idfs, words / documents)
    weights = ", ".join(str(weight) for weight in _FTS_WEIGHTS)
    rows = table.execute(
        f"SELECT bm25(entry_search, {weights}), title, tags, files, description FROM entry_search "  # noqa: S608 - constants
        "WHERE entry_search MATCH ?",
        (query.to_fts5(clauses),),
    ).fetchall()
    if text != "absent":
        assert rows
    for fts5_score, *columns in rows:
        assert scorer.score(columns) == pytest.approx(-fts5_score, rel=1e-9, abs=1e-12)


def test_idf_is_clamped_as_fts5_does() -> None:
    assert relevance.idf(1000, 10) > relevance.idf(1000, 100) > relevance.idf(1000, 400) > 0
    assert relevance.idf(1000, 600) == relevance.MIN_IDF


def test_varints_as_sqlite_writes_them() -> None:
    assert relevance.read_varint(bytes([0x05]), 0) == (5, 1)
    assert relevance.read_varint(bytes([0x81, 0x00]), 0) == (128, 2)
    assert relevance.read_varint(bytes([0xFF] * 8 + [0x01]), 0) == ((1 << 64) - 255, 9)
    with pytest.raises(ValueError, match="truncated"):
        relevance.read_varint(bytes([0x81]), 0)
