"""The parts of entry pages that depend on the entry alone, kept rendered.

An entry page is the same for every visitor but for the live counts, the visitor's CSRF
token and who is signed in; its file list (up to ``FILES_SHOWN`` rows), its rendered
Markdown and its facts were read and rendered again on every visit, most of a page's
CPU (bench/index_bench.py). They are kept here per entry, with the entry they were
rendered from.

Kept parts are used only while they match the entry's row in the database. The page reads
the row again (one indexed read) once the last read is ``fresh_s`` old, and uses the parts
only when the row equals the one they were rendered from: every change (edit, hide, delete,
metadata arriving) changes the row, in this process or in another sharing the database,
and the stored files change only with it (``attach_metadata``). So a change made elsewhere
shows within ``fresh_s`` (the setting ``entry_page_fresh_s``), and one made through this
process at once: its handlers ``forget`` the entry.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from markupsafe import Markup

from bitswarm.index.model import Entry

# What the kept parts may hold in all (characters of HTML): a page of 1,000 files renders to
# about 100,000, most to a few thousand (6,000 for the bench's generated entries), so this
# keeps a few thousand popular pages in 16-64 MiB (1-4 bytes a character, by script).
MAX_KEPT_CHARS = 16 * 1024 * 1024
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
    """Rendered parts per entry id, least recently used first out, bounded in characters.

    ``fresh_s``: for this long after the entry's row was last read and found unchanged, its
    parts are used without reading the row again (``fresh``); 0 reads it on every visit."""

    def __init__(self, *, fresh_s: float = 0.0, max_chars: int = MAX_KEPT_CHARS) -> None:
        self._fresh_s = fresh_s
        self._max_chars = max_chars
        self._chars = 0
        # entry id -> (parts, when their entry was last read from the database)
        self._parts: OrderedDict[int, tuple[EntryParts, float]] = OrderedDict()
        # Counts ``forget`` calls: parts rendered from a read that began before one are not
        # kept (the read may predate the change that was forgotten).
        self.generation = 0

    def __len__(self) -> int:
        return len(self._parts)

    def fresh(self, entry_id: int, now: float) -> EntryParts | None:
        """The entry's parts when its row was read less than ``fresh_s`` ago, else None."""
        kept = self._parts.get(entry_id)
        # A clock that went back makes nothing fresh (rather than fresh for long).
        if kept is None or not 0.0 <= now - kept[1] < self._fresh_s:
            return None
        self._parts.move_to_end(entry_id)
        return kept[0]

    def get(self, entry: Entry, now: float) -> EntryParts | None:
        """The parts rendered from exactly this version of ``entry`` (just read), or None."""
        kept = self._parts.get(entry.id)
        if kept is None:
            return None
        parts = kept[0]
        if parts.entry != entry:
            self._drop(entry.id)
            return None
        self._parts[entry.id] = (parts, now)
        self._parts.move_to_end(entry.id)
        return parts

    def put(self, parts: EntryParts, now: float, generation: int) -> None:
        """Keep ``parts``, rendered from their entry as read at ``now`` by a read that began
        when ``generation`` was current (unless something was forgotten since)."""
        if generation != self.generation:
            return
        self._drop(parts.entry.id)
        size = parts.chars
        if size > MAX_PART_CHARS or size > self._max_chars:
            return
        while self._chars + size > self._max_chars:
            _entry_id, (oldest, _read_at) = self._parts.popitem(last=False)
            self._chars -= oldest.chars
        self._parts[parts.entry.id] = (parts, now)
        self._chars += size

    def forget(self, entry_id: int) -> None:
        """Drop the entry's parts (this process changed the entry)."""
        self.generation += 1
        self._drop(entry_id)

    def _drop(self, entry_id: int) -> None:
        kept = self._parts.pop(entry_id, None)
        if kept is not None:
            self._chars -= kept[0].chars
