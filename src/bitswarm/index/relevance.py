"""Okapi BM25 over a bounded set of candidates, sans-IO: FTS5's ``bm25()`` without its walk.

SQLite's ``bm25()`` first counts, for its IDF, every document holding each phrase of the
query: for a word in a third of a million entries that is a third of a million doclist
entries, and for a phrase of a common word every document holding both words with their
positions compared (42 ms for one phrase at a million entries, bench/index_bench.py),
although only the newest ``RANKED_CANDIDATES`` matches are ranked. Here the same formula
(FTS5's constants, weights and IDF clamp, fts5_aux.c) is computed from the candidates'
own text, which FTS5 keeps as the words the index was given joined by single spaces, and
from document frequencies the caller counts or estimates cheaply; a query of one clause
needs none, as its IDF scales every candidate's score alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bitswarm.index.query import Clause

# FTS5's bm25() constants (fts5_aux.c).
K1 = 1.2
B = 0.75
# FTS5 clamps a negative IDF (a phrase in more than half the documents) to this.
MIN_IDF = 1e-6


def idf(documents: int, holding: float) -> float:
    """FTS5's IDF of a phrase found in ``holding`` of ``documents`` documents."""
    value = math.log((documents - holding + 0.5) / (holding + 0.5)) if documents > 0 else 0.0
    return value if value > 0.0 else MIN_IDF


class Scorer:
    """BM25 of documents (their columns' texts) for one query's clauses, higher is better:
    the negation of what FTS5's ``bm25(table, *weights)`` returns for the same IDFs."""

    def __init__(
        self, clauses: Sequence[Clause], weights: Sequence[float], idfs: Sequence[float], average_words: float
    ) -> None:
        if len(idfs) != len(clauses):
            raise ValueError("one IDF per clause")
        self.weights = tuple(weights)
        self.idfs = tuple(idfs)
        self.average_words = average_words
        # (needle, the clause's first word, whether occurrences may overlap): a clause is
        # looked for as " w1 w2 " in the text with a space added at each end.
        self.needles: list[tuple[str, str, bool]] = []
        for clause in clauses:
            needle = " " + " ".join(clause.words) + ("" if clause.prefix else " ")
            # Two occurrences share a space ("a" twice in "a a") or words ("a a" in
            # "a a a": FTS5 counts 2), which str.count() does not count, only when the
            # clause can start where one of its occurrences ends or within it.
            overlaps = not clause.prefix or len(clause.words) > 1
            self.needles.append((needle, clause.words[0], overlaps))

    def score(self, columns: Sequence[str]) -> float:
        length = 0
        for text in columns:
            if text:
                length += text.count(" ") + 1
        average = self.average_words
        norm = K1 * (1 - B + B * length / average) if average > 0 else K1
        total = 0.0
        for (needle, first, overlaps), clause_idf in zip(self.needles, self.idfs, strict=True):
            frequency = 0.0
            for text, weight in zip(columns, self.weights, strict=False):
                if text and first in text:  # most columns lack the word: no copy, no count
                    padded = " " + text + " "
                    found = padded.count(needle)
                    if found and overlaps and padded.find(needle, padded.find(needle) + 1) >= 0:
                        found = _overlapping(padded, needle)
                    frequency += weight * found
            total += clause_idf * (frequency * (K1 + 1.0)) / (frequency + norm)
        return total


def _overlapping(text: str, needle: str) -> int:
    found, at = 0, text.find(needle)
    while at >= 0:
        found += 1
        at = text.find(needle, at + 1)
    return found


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's varint at ``at`` (1-9 bytes, big-endian, 7 bits a byte, the 9th all 8):
    (value, offset after it)."""
    value = 0
    for index in range(8):
        if at + index >= len(data):
            raise ValueError("truncated varint")
        byte = data[at + index]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + index + 1
    if at + 8 >= len(data):
        raise ValueError("truncated varint")
    return (value << 8) | data[at + 8], at + 9


def fts5_averages(record: bytes, columns: int) -> tuple[int, int]:
    """(documents, words in all columns) from an FTS5 table's averages record (the row of
    id 1 in its ``_data`` table: the row count, then each column's word count, varints)."""
    documents, at = read_varint(record, 0)
    words = 0
    for _column in range(columns):
        count, at = read_varint(record, at)
        words += count
    return documents, words
