"""The parts of entry pages that depend on the entry alone, kept rendered.

An entry page is the same for every visitor but for the live counts, the visitor's CSRF
token and who is signed in; its file list (up to ``FILES_SHOWN`` rows), its rendered
Markdown and its facts were read and rendered again on every visit, most of a page's
CPU (bench/index_bench.py). They are kept here per entry, with the entry they were
rendered from.

They stay correct without a time limit, across processes too: the page reads the entry's
row on every visit (one indexed read) and uses kept parts only when that row equals the
one they were rendered from. Every change an operator, an uploader or the metadata fetcher
makes (edit, hide, delete, metadata arriving) changes the row, here or in another process
sharing the database; the stored files change only with the row (``attach_metadata``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from markupsafe import Markup

from bitswarm.index.model import Entry

# What the kept parts may hold in all (characters of HTML): a page of 1,000 files renders to
# about 100,000; most to a few thousand, so this keeps thousands of popular pages.
MAX_KEPT_CHARS = 32 * 1024 * 1024
# A part this large is not kept (it would push out hundreds of others for one page).
MAX_PART_CHARS = 1024 * 1024


@dataclass(frozen=True, slots=True)
class EntryParts:
    """An entry page's fixed parts, rendered (autoescaped HTML) from ``entry``."""

    entry: Entry
    head: Markup
    facts: Markup
    body: Markup

    @property
    def chars(self) -> int:
        return len(self.head) + len(self.facts) + len(self.body)


class EntryPartsCache:
    """Rendered parts per entry id, least recently used first out, bounded in characters."""

    def __init__(self, max_chars: int = MAX_KEPT_CHARS) -> None:
        self._max_chars = max_chars
        self._chars = 0
        self._parts: OrderedDict[int, EntryParts] = OrderedDict()

    def __len__(self) -> int:
        return len(self._parts)

    def get(self, entry: Entry) -> EntryParts | None:
        """The parts rendered from exactly this version of ``entry``, or None."""
        parts = self._parts.get(entry.id)
        if parts is None:
            return None
        if parts.entry != entry:
            self.forget(entry.id)
            return None
        self._parts.move_to_end(entry.id)
        return parts

    def put(self, parts: EntryParts) -> None:
        self.forget(parts.entry.id)
        size = parts.chars
        if size > MAX_PART_CHARS or size > self._max_chars:
            return
        while self._chars + size > self._max_chars:
            _entry_id, oldest = self._parts.popitem(last=False)
            self._chars -= oldest.chars
        self._parts[parts.entry.id] = parts
        self._chars += size

    def forget(self, entry_id: int) -> None:
        parts = self._parts.pop(entry_id, None)
        if parts is not None:
            self._chars -= parts.chars
