"""The search box's language, sans-IO: user text -> a small query tree -> each engine's syntax.

What a visitor can write (everything else is plain text, never syntax):

- ``word``: entries holding the word; a word is a run of letters and digits, and any other
  character separates words (so ``ubuntu-22.04`` is the phrase ``ubuntu 22 04``);
- ``word*``: entries holding a word that starts with ``word`` (at least two characters);
- ``"a few words"``: the words next to each other, in this order (an unclosed quote runs
  to the end of the text);
- ``-word`` or ``-"a phrase"``: entries without it.

Clauses are joined by AND. Index and query normalise text by the same ``search_words``
(NFKC, case folding, accents dropped, zero-width and bidi controls removed, words cut at
``MAX_WORD_CHARS``), so SQLite FTS5 and PostgreSQL see the same plain words and give the
same results. The renderers quote every word, so FTS5's ``NEAR``, ``AND``, column filters
(``title:``), ``^`` and ``*`` or tsquery's ``& | ! :*`` in the text reach no engine as syntax.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# A search box, not a document: longer text is cut here rather than refused (a search
# never fails), which also bounds the work a single query asks of the engine.
MAX_QUERY_CHARS = 256
# Clauses beyond this are dropped: each one is a posting-list intersection.
MAX_CLAUSES = 8
MAX_PHRASE_WORDS = 16
# Longer words are cut on both sides (index and query), so they still match each other.
MAX_WORD_CHARS = 64
# A one-letter prefix matches most of the index: it is searched as a plain word instead.
MIN_PREFIX_CHARS = 2

_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Clause:
    """Words that must appear next to each other, in order (one word: a plain term).

    ``prefix`` makes the last word match any word it starts."""

    words: tuple[str, ...]
    prefix: bool = False

    @property
    def is_phrase(self) -> bool:
        return len(self.words) > 1


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed search: every ``required`` clause and none of the ``excluded`` ones.

    With no required clause the query matches every entry that none of the excluded
    clauses matches (no clause at all: every entry)."""

    required: tuple[Clause, ...] = ()
    excluded: tuple[Clause, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.required and not self.excluded


def normalise(text: str) -> str:
    """Text as the index compares it: format characters (zero-width, bidi controls, soft
    hyphens) removed, so they can neither split nor disguise a word; NFKC; case folded;
    combining accents dropped (``Beyoncé`` finds ``beyonce``)."""
    if text.isascii():
        # The common case, and a bulk import's hot path: ASCII holds no format character
        # and no accent, NFKC and NFKD leave it as it is, and casefold() is lower() there.
        return text.lower()
    return _normalise_unicode(text)


def _normalise_unicode(text: str) -> str:
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return unicodedata.normalize("NFC", "".join(char for char in text if unicodedata.category(char) != "Mn"))


def search_words(text: str, limit: int | None = None) -> list[str]:
    """The words of ``text`` as the index stores them (at most ``limit``)."""
    words = []
    for match in _WORD.finditer(normalise(text)):
        words.append(match.group()[:MAX_WORD_CHARS])
        if limit is not None and len(words) >= limit:
            break
    return words


def parse(text: str) -> Query:
    """Read what a visitor typed. Never raises: anything that is not syntax is text."""
    text = "".join(char for char in text[:MAX_QUERY_CHARS] if unicodedata.category(char) != "Cf")
    required: list[Clause] = []
    excluded: list[Clause] = []
    at, end = 0, len(text)
    while at < end and len(required) + len(excluded) < MAX_CLAUSES:
        if text[at].isspace():
            at += 1
            continue
        negated = text[at] == "-" and at + 1 < end and not text[at + 1].isspace()
        if negated:
            at += 1
        if text[at] == '"':
            close = text.find('"', at + 1)
            close = end if close < 0 else close
            body, at, prefix = text[at + 1 : close], close + 1, False
            if at < end and text[at] == "*":
                prefix, at = True, at + 1
        else:
            stop = at
            while stop < end and not text[stop].isspace() and text[stop] != '"':
                stop += 1
            body, at = text[at:stop], stop
            prefix = body.endswith("*")
        words = tuple(search_words(body, MAX_PHRASE_WORDS))
        if not words:
            continue
        clause = Clause(words, prefix and len(words[-1]) >= MIN_PREFIX_CHARS)
        target = excluded if negated else required
        if clause not in target:
            target.append(clause)
    return Query(tuple(required), tuple(excluded))


def fts5_pair(first: str, second: str) -> str:
    """The FTS5 token of two words next to each other in a field (SQLite's index holds one
    per neighbouring pair, after the field's words): joined by ``_``, which no word holds
    and the table's tokenizer keeps inside a token."""
    return f"{first}_{second}"


def to_fts5(clauses: Sequence[Clause], *, any_of: bool = False) -> str:
    """SQLite FTS5 MATCH text: every clause (``any_of``: one of them). Each word is a
    quoted string, so it is never a keyword, a column filter or an operator.

    A phrase is its pairs of neighbouring words (``fts5_pair`` tokens), one after another:
    "a b c" is ``"a_b b_c"``, and "a b" the one token ``"a_b"``. FTS5's ``bm25`` then counts
    the documents holding the phrase from that token's own postings, where ``"a b"`` had it
    compare the positions in every document holding both words (42 ms for a phrase of a
    common word at a million entries)."""
    rendered = []
    for clause in clauses:
        tokens = [fts5_pair(first, second) for first, second in itertools.pairwise(clause.words)] or clause.words
        quoted = '"' + " ".join(tokens).replace('"', '""') + '"'
        rendered.append(quoted + ("*" if clause.prefix else ""))
    return (" OR " if any_of else " AND ").join(rendered)


def tsquery_lexeme(word: str) -> str:
    """A word as a quoted tsquery/tsvector lexeme (taken verbatim, no parser, no stemming)."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def word_pair(first: str, second: str) -> str:
    """The lexeme of two words next to each other in a field (PostgreSQL's index holds
    one per neighbouring pair): a space, which no word holds, between them."""
    return f"{first} {second}"


def to_tsquery(clauses: Sequence[Clause], *, any_of: bool = False) -> str:
    """PostgreSQL tsquery input text (for ``CAST(:query AS tsquery)``): every clause
    (``any_of``: one of them); a prefix is ``:*``.

    A phrase is its pairs of neighbouring words (``word_pair`` lexemes), each next to
    the one before (``<->``): "a b c" is ``'a b' <-> 'b c'``, and "a b" the one lexeme
    ``'a b'``. The GIN index then finds a phrase by its own postings, where ``'a' <-> 'b'``
    had every document holding both words read and its positions compared (200 ms for a
    phrase of two common words at 150,000 entries)."""
    rendered = []
    for clause in clauses:
        words = clause.words
        if not clause.is_phrase:
            rendered.append(tsquery_lexeme(words[0]) + (":*" if clause.prefix else ""))
            continue
        lexemes = [tsquery_lexeme(word_pair(first, second)) for first, second in itertools.pairwise(words)]
        if clause.prefix:
            lexemes[-1] += ":*"
        rendered.append("(" + " <-> ".join(lexemes) + ")" if len(lexemes) > 1 else lexemes[0])
    return (" | " if any_of else " & ").join(rendered)
