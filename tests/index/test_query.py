"""The search box's language (sans-IO): what text parses to, and that any text renders
to engine syntax the engines accept."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitswarm.index import query as query_module
from bitswarm.index.query import (
    MAX_CLAUSES,
    MAX_QUERY_CHARS,
    MAX_WORD_CHARS,
    Clause,
    Query,
    parse,
    search_words,
    to_fts5,
    to_tsquery,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Query()),
        ("   ", Query()),
        ("Big Buck", Query((Clause(("big",)), Clause(("buck",))))),
        ('"big buck" bunny', Query((Clause(("big", "buck")), Clause(("bunny",))))),
        ('"unclosed phrase', Query((Clause(("unclosed", "phrase")),))),
        ("ubun*", Query((Clause(("ubun",), prefix=True),))),
        ('"big bu"*', Query((Clause(("big", "bu"), prefix=True),))),
        ("u*", Query((Clause(("u",)),))),
        ("-linux movie", Query((Clause(("movie",)),), (Clause(("linux",)),))),
        ('-"open movie"', Query((), (Clause(("open", "movie")),))),
        ("- lone dash", Query((Clause(("lone",)), Clause(("dash",))))),
        ("ubuntu-24.04", Query((Clause(("ubuntu", "24", "04")),))),
        ("a-b -c", Query((Clause(("a", "b")),), (Clause(("c",)),))),
        ("NEAR(a b)", Query((Clause(("near", "a")), Clause(("b",))))),
        ("title:x", Query((Clause(("title", "x")),))),
        ("x & y | !z :*", Query((Clause(("x",)), Clause(("y",)), Clause(("z",))))),
        ("dup dup DUP", Query((Clause(("dup",)),))),
        ("bun\u200bny \u202eok", Query((Clause(("bunny",)), Clause(("ok",))))),
        ("Crème Brûlée", Query((Clause(("creme",)), Clause(("brulee",))))),
        ("Straße", Query((Clause(("strasse",)),))),
        ("snake_case", Query((Clause(("snake", "case")),))),
    ],
)
def test_text_parses_to_clauses(text: str, expected: Query) -> None:
    assert parse(text) == expected


def test_limits_cut_rather_than_refuse() -> None:
    many = parse(" ".join(f"w{n}" for n in range(50)))
    assert len(many.required) == MAX_CLAUSES
    assert parse("x" * 1000).required == (Clause(("x" * MAX_WORD_CHARS,)),)
    assert len("".join(word for clause in parse("ab " * 1000).required for word in clause.words)) <= MAX_QUERY_CHARS
    assert search_words("a" * 100) == ["a" * MAX_WORD_CHARS]


def test_rendering_quotes_every_word() -> None:
    query = parse('near "a bc"* -not')
    assert to_fts5(query.excluded, any_of=True) == '"not"'
    # Phrases are searched by their pairs of neighbouring words.
    assert to_fts5(query.required) == '"near" AND "a_bc"*'
    assert to_fts5(parse('"a b c" "it\'s"').required, any_of=True) == '"a_b b_c" OR "it_s"'
    assert to_tsquery(query.required) == "'near' & 'a bc':*"
    assert to_tsquery(query.required, any_of=True) == "'near' | 'a bc':*"
    assert to_tsquery(parse('"a b c" "it\'s"').required) == "('a b' <-> 'b c') & 'it s'"


@pytest.fixture(scope="module")
def fts5() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIRTUAL TABLE t USING fts5(title, tags, files, description, "
        "tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\", prefix='2 3')"
    )
    connection.execute("INSERT INTO t VALUES ('big buck bunny', 'x', 'y', 'z')")
    yield connection
    connection.close()


_LEXEME = r"'(?:[^'\\]|'')+'(?::\*)?"
_CLAUSE = rf"(?:{_LEXEME}|\({_LEXEME}(?: <-> {_LEXEME})+\))"
_TSQUERY = re.compile(rf"(?:{_CLAUSE}(?: [&|] {_CLAUSE})*)?")

# Text rich in the syntax of both engines, and anything else Unicode has.
_HOSTILE_TEXT = st.lists(
    st.one_of(
        st.sampled_from([*"\"*()-^:!&|<>'\\+{}, ", "NEAR", "AND", "OR", "NOT", "title", "\u200b", "\u202e"]),
        st.text(max_size=8),
    ),
    max_size=60,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=_HOSTILE_TEXT)
def test_any_text_renders_to_queries_the_engines_accept(fts5: sqlite3.Connection, text: str) -> None:
    query = parse(text)
    for clauses, any_of in ((query.required, False), (query.excluded, True)):
        if not clauses:
            continue
        # Raises sqlite3.OperationalError on an FTS5 syntax error.
        fts5.execute("SELECT count(*) FROM t WHERE t MATCH ?", (to_fts5(clauses, any_of=any_of),)).fetchall()
        assert _TSQUERY.fullmatch(to_tsquery(clauses, any_of=any_of))
    for clause in query.required + query.excluded:
        assert all(re.fullmatch(r"[^\W_]+", word) for word in clause.words)


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_text_normalises_as_any_other_text(text: str) -> None:
    # normalise() takes a short cut for ASCII (a bulk import's hot path); it must agree.
    assert query_module.normalise(text) == query_module._normalise_unicode(text)


def test_every_ascii_character_normalises_as_any_other_text() -> None:
    every = "".join(map(chr, range(128)))
    assert query_module.normalise(every) == query_module._normalise_unicode(every)
