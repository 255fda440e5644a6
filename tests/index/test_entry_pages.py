"""The kept parts of entry pages: used only for the entry they were rendered from, for at
most ``fresh_s`` without a new read, never after a change this process forgot, bounded."""

from __future__ import annotations

import dataclasses

from markupsafe import Markup

from bitswarm.index.entry_pages import EntryParts, EntryPartsCache
from bitswarm.index.model import Entry, EntryState


def entry(entry_id: int = 1, **changes: object) -> Entry:
    values: dict[str, object] = {
        "id": entry_id, "info_hash_v1": f"{entry_id:040x}", "info_hash_v2": None, "title": "A title",
        "description": "", "category": None, "tags": (), "total_size": 10, "file_count": 1, "piece_length": 16384,
        "magnet": f"magnet:?xt=urn:btih:{entry_id:040x}", "trackers": (), "web_seeds": (),
        "state": EntryState.READY, "is_hidden": False, "created_at": 0, "updated_at": 0,
    }  # fmt: skip
    values.update(changes)
    return Entry(**values)  # type: ignore[arg-type]


def parts(of: Entry, size: int = 10) -> EntryParts:
    return EntryParts(of, Markup("h" * size), Markup(""), Markup(""))  # noqa: S704 - constant text


def test_parts_are_fresh_for_fresh_s_after_the_read_and_never_when_the_clock_went_back() -> None:
    cache = EntryPartsCache(fresh_s=5.0)
    kept = parts(entry())
    cache.put(kept, 100.0, cache.generation)
    assert cache.fresh(1, 100.0) is kept
    assert cache.fresh(1, 104.9) is kept
    assert cache.fresh(1, 105.0) is None
    assert cache.fresh(1, 99.0) is None
    assert cache.fresh(2, 100.0) is None


def test_a_read_of_the_same_row_renews_the_parts_and_a_changed_row_drops_them() -> None:
    cache = EntryPartsCache(fresh_s=5.0)
    kept = parts(entry())
    cache.put(kept, 100.0, cache.generation)
    assert cache.get(entry(), 200.0) is kept
    assert cache.fresh(1, 201.0) is kept
    for changed in (entry(title="Edited"), entry(is_hidden=True), entry(state=EntryState.WAITING_METADATA)):
        assert cache.get(changed, 202.0) is None
        cache.put(kept, 202.0, cache.generation)
    assert cache.get(dataclasses.replace(entry(), updated_at=1), 203.0) is None
    assert cache.fresh(1, 203.0) is None


def test_with_fresh_s_zero_every_visit_reads_the_row() -> None:
    cache = EntryPartsCache(fresh_s=0.0)
    kept = parts(entry())
    cache.put(kept, 100.0, cache.generation)
    assert cache.fresh(1, 100.0) is None
    assert cache.get(entry(), 100.0) is kept


def test_parts_from_a_read_begun_before_a_forget_are_not_kept() -> None:
    cache = EntryPartsCache(fresh_s=5.0)
    before = cache.generation
    cache.forget(1)  # this process changed entry 1 while a visit's read was under way
    cache.put(parts(entry()), 100.0, before)
    assert cache.fresh(1, 100.0) is None
    assert len(cache) == 0
    cache.put(parts(entry()), 100.0, cache.generation)
    assert cache.fresh(1, 100.0) is not None


def test_the_least_recently_used_parts_leave_first_and_oversized_ones_are_not_kept() -> None:
    cache = EntryPartsCache(fresh_s=5.0, max_chars=30)
    for entry_id in (1, 2, 3):
        cache.put(parts(entry(entry_id)), 100.0, cache.generation)
    assert cache.fresh(1, 100.0) is not None  # now the most recently used
    cache.put(parts(entry(4)), 100.0, cache.generation)
    assert [entry_id for entry_id in (1, 2, 3, 4) if cache.fresh(entry_id, 100.0)] == [1, 3, 4]
    cache.put(parts(entry(5), size=31), 100.0, cache.generation)
    assert cache.fresh(5, 100.0) is None
    assert len(cache) == 3
