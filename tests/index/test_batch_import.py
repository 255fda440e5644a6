"""``EntryStore.add_torrents`` (the bulk import) stores exactly what ``add_torrent`` one by
one stores, on SQLite and on PostgreSQL, and answers for each item on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitswarm import bencode
from bitswarm.errors import BitswarmError, DuplicateEntry, UsageError
from bitswarm.index import IndexDatabase, open_database
from bitswarm.index.entries import MAX_BATCH_ITEMS, MAX_STORED_FILES, TorrentUpload
from bitswarm.metainfo import Torrent, TorrentVersion
from index.conftest import PostgresServer
from index.support import make_torrent, run

QUERIES = ["film", "episode", "english", '"season two"', "hd", "notes -film", "nothingmatches", "readme"]


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def other_database(index_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second empty database on the same backend as ``index_url``."""
    if index_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'batch.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


def many_files_torrent(count: int) -> bytes:
    """A v1 torrent of ``count`` one-byte files (made directly: the creator would write them)."""
    files = [{b"length": 1, b"path": [b"dir", f"f{number:05}.txt".encode()]} for number in range(count)]
    info = {b"files": files, b"name": b"Many Files", b"piece length": 16384, b"pieces": b"\x01" * 20}
    return bencode.encode({b"info": info})


def uploads(tmp_path: Path) -> tuple[TorrentUpload, list[TorrentUpload]]:
    """One torrent listed beforehand, and a batch with new, repeated, listed, invalid items."""
    film = make_torrent(tmp_path, "Some Film", {"film.mkv": b"f" * 70_000, "subs/english.srt": b"hi"})
    season = make_torrent(tmp_path, "Show Season Two", {"e01.mkv": b"1" * 40_000, "e02.mkv": b"2" * 40_000},
                          TorrentVersion.V2)  # fmt: skip
    v1_only = make_torrent(tmp_path, "Notes", {"": b"n" * 999}, TorrentVersion.V1)
    single = make_torrent(tmp_path, "readme.txt", {"": b"r" * 10}, TorrentVersion.V1)
    listed_before = make_torrent(tmp_path, "Listed Before", {"a.bin": b"a" * 5000})
    batch = [
        TorrentUpload(film, description="*A film* in HD", category="Movies", tags=["HD", "film"]),
        TorrentUpload(season, title="Show: season two", category="tv"),
        TorrentUpload(b"<html>404</html>"),
        TorrentUpload(film, title="The same film again"),  # a repeat within the batch
        TorrentUpload(listed_before),  # listed before the batch
        TorrentUpload(v1_only, tags=["notes", "Notes", "text"]),
        TorrentUpload(single, title="bad\u202etitle"),  # a bidi override: refused
        TorrentUpload(single, category="not a slug"),
        TorrentUpload(single, description="plain readme"),
        TorrentUpload(season, category="tv"),  # another repeat
        TorrentUpload(many_files_torrent(MAX_STORED_FILES + 5)),
    ]
    return TorrentUpload(listed_before, title="Listed"), batch


def outcome(result: int | BitswarmError) -> tuple[str, str]:
    return ("id", str(result)) if isinstance(result, int) else (type(result).__name__, str(result))


async def stored(db: IndexDatabase) -> list[object]:
    """Everything a visitor can see of the database: entries, files, .torrent bytes, searches."""
    everything: list[object] = []
    for entry in await db.entries.list_newest(limit=100, include_hidden=True):
        everything.append(entry)
        everything.append(await db.entries.files(entry.id, limit=MAX_STORED_FILES))
        everything.append(await db.entries.torrent_bytes(entry.id))
    for text in QUERIES:
        page = await db.search(text)
        everything.append((text, [entry.id for entry in page.entries], page.total, page.total_is_exact))
    return everything


def test_a_batch_stores_what_one_by_one_stores(index_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    before, batch = uploads(tmp_path)
    batch_url = other_database(index_url, request, tmp_path)

    async def one_by_one() -> tuple[list[tuple[str, str]], list[object]]:
        async with await open_database(index_url, clock=Clock()) as db:
            await db.entries.add_torrent(before.data, title=before.title)
            results: list[int | BitswarmError] = []
            for item in batch:
                try:
                    entry = await db.entries.add_torrent(item.data, title=item.title, description=item.description,
                                                         category=item.category, tags=item.tags)  # fmt: skip
                    results.append(entry.id)
                except BitswarmError as error:
                    results.append(error)
            return [outcome(result) for result in results], await stored(db)

    async def in_one_batch() -> tuple[list[tuple[str, str]], list[object]]:
        async with await open_database(batch_url, clock=Clock()) as db:
            await db.entries.add_torrent(before.data, title=before.title)
            results = await db.entries.add_torrents(batch)
            return [outcome(result) for result in results], await stored(db)

    expected_results, expected_stored = run(one_by_one())
    results, stored_by_batch = run(in_one_batch())
    assert results == expected_results
    assert [kind for kind, _text in results] == [
        "id", "id", "DecodeError", "DuplicateEntry", "DuplicateEntry", "id", "InvalidEntry", "InvalidEntry", "id",
        "DuplicateEntry", "id",
    ]  # fmt: skip
    assert results[3] == ("DuplicateEntry", f"already listed as entry {results[0][1]}")
    assert results[4] == ("DuplicateEntry", "already listed as entry 1")
    assert stored_by_batch == expected_stored
    # The searches found something (the comparison is not between two empty lists).
    assert any(isinstance(item, tuple) and item[1] for item in stored_by_batch)


def test_a_batch_of_only_refused_items_stores_nothing(index_url: str) -> None:
    async def scenario() -> None:
        async with await open_database(index_url) as db:
            results = await db.entries.add_torrents([TorrentUpload(b""), TorrentUpload(b"d4:infoi1ee")])
            assert all(isinstance(result, BitswarmError) for result in results)
            assert await db.entries.list_newest() == []
            assert await db.entries.add_torrents([]) == []

    run(scenario())


def test_a_batch_is_bounded(index_url: str, tmp_path: Path) -> None:
    data = make_torrent(tmp_path, "One", {"": b"1" * 100}, TorrentVersion.V1)

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            with pytest.raises(UsageError, match=str(MAX_BATCH_ITEMS)):
                await db.entries.add_torrents([TorrentUpload(data)] * (MAX_BATCH_ITEMS + 1))
            assert await db.entries.list_newest() == []
            results = await db.entries.add_torrents([TorrentUpload(data)] * 3)
            assert isinstance(results[0], int)
            assert [type(result) for result in results[1:]] == [DuplicateEntry, DuplicateEntry]
            assert Torrent.decode(data).name == (await db.entries.get(results[0])).title

    run(scenario())
