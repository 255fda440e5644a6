"""The entries API on SQLite and on PostgreSQL: add, duplicates, limits, change, delete,
magnet entries waiting for their metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitswarm import bencode
from bitswarm.errors import (
    DecodeError,
    DuplicateEntry,
    EntryLimitExceeded,
    EntryNotFound,
    EntryStateError,
    InvalidEntry,
    MetainfoError,
    UsageError,
)
from bitswarm.index import EntryState, open_database
from bitswarm.index import entries as entries_module
from bitswarm.index.entries import MAX_DESCRIPTION_CHARS, MAX_TAGS, MAX_TITLE_CHARS
from bitswarm.metainfo import MAX_TORRENT_BYTES, Torrent, TorrentVersion
from index.support import make_torrent, run

FILES = {"movie.mkv": b"m" * 70_000, "subs/english.srt": b"1\n00:00 --> 00:01\nhi\n", "notes.txt": b"n" * 10}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("version", list(TorrentVersion))
def test_a_torrent_becomes_a_ready_entry_with_its_files(
    index_url: str, tmp_path: Path, version: TorrentVersion
) -> None:
    data = make_torrent(tmp_path, "Some Film", FILES, version, trackers=["http://tracker.example/announce"])
    torrent = Torrent.decode(data)

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            entry = await db.entries.add_torrent(data, description="*Nice*", category="Movies", tags=["HD", "film"])
            assert entry.state is EntryState.READY
            assert entry.is_ready
            assert entry.title == "Some Film"
            assert entry.info_hash_v1 == (torrent.info_hash_v1.hex() if torrent.info_hash_v1 else None)
            assert entry.info_hash_v2 == (torrent.info_hash_v2.hex() if torrent.info_hash_v2 else None)
            assert (entry.total_size, entry.file_count) == (sum(map(len, FILES.values())), 3)
            assert entry.piece_length == torrent.piece_length
            assert (entry.category, entry.tags, entry.description) == ("movies", ("hd", "film"), "*Nice*")
            assert entry.trackers == (("http://tracker.example/announce",),)
            assert entry.magnet == torrent.magnet().format()
            assert await db.entries.torrent_bytes(entry.id) == data
            files = await db.entries.files(entry.id)
            assert sorted((file.path, file.size) for file in files) == sorted(
                (("Some Film", *path.split("/")), len(content)) for path, content in FILES.items()
            )
            assert await db.entries.get(entry.id) == entry
            assert [listed.id for listed in await db.entries.list_newest()] == [entry.id]

    run(scenario())


def test_lookup_by_info_hash_takes_hex_bytes_and_the_short_v2_hash(index_url: str, tmp_path: Path) -> None:
    data = make_torrent(tmp_path, "hybrid", FILES, TorrentVersion.HYBRID)
    torrent = Torrent.decode(data)
    v1, v2 = torrent.info_hash_v1, torrent.info_hash_v2
    assert v1 is not None
    assert v2 is not None
    keys: list[bytes | str] = [v1, v1.hex().upper(), v2, v2.hex(), v2[:20]]

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            entry = await db.entries.add_torrent(data)
            for key in keys:
                found = await db.entries.find_by_info_hash(key)
                assert found is not None, key
                assert found.id == entry.id
            assert await db.entries.find_by_info_hash("00" * 20) is None
            assert await db.entries.find_by_info_hash("' OR 1=1 --") is None

    run(scenario())


def test_duplicates_are_recognised_by_v1_and_v2_info_hash(index_url: str, tmp_path: Path) -> None:
    hybrid = make_torrent(tmp_path, "same", FILES, TorrentVersion.HYBRID)
    torrent = Torrent.decode(hybrid)
    assert torrent.info_hash_v1 is not None
    assert torrent.info_hash_v2 is not None
    v1_link = f"magnet:?xt=urn:btih:{torrent.info_hash_v1.hex()}&dn=same"
    v2_link = f"magnet:?xt=urn:btmh:1220{torrent.info_hash_v2.hex()}"

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            entry = await db.entries.add_torrent(hybrid)
            with pytest.raises(DuplicateEntry) as same:
                await db.entries.add_torrent(hybrid, title="Again")
            assert same.value.entry_id == entry.id
            for link in (v1_link, v2_link, torrent.magnet().format()):
                with pytest.raises(DuplicateEntry) as by_link:
                    await db.entries.add_magnet(link)
                assert by_link.value.entry_id == entry.id
            assert [listed.id for listed in await db.entries.list_newest()] == [entry.id]

    run(scenario())


def test_a_hybrid_torrent_matching_a_listed_v1_only_entry_is_a_duplicate(index_url: str, tmp_path: Path) -> None:
    hybrid = make_torrent(tmp_path, "same", FILES, TorrentVersion.HYBRID)
    v1_hash = Torrent.decode(hybrid).info_hash_v1
    assert v1_hash is not None

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            waiting = await db.entries.add_magnet(f"magnet:?xt=urn:btih:{v1_hash.hex()}")
            assert waiting.info_hash_v2 is None
            with pytest.raises(DuplicateEntry) as duplicate:
                await db.entries.add_torrent(hybrid)
            assert duplicate.value.entry_id == waiting.id

    run(scenario())


def test_a_magnet_entry_waits_for_metadata_then_becomes_ready(index_url: str, tmp_path: Path) -> None:
    data = make_torrent(tmp_path, "Fetched Later", FILES, TorrentVersion.V1)
    torrent = Torrent.decode(data)
    other = Torrent.decode(make_torrent(tmp_path, "Another", {"x.bin": b"x" * 5000}, TorrentVersion.V1))
    # x.pe carries a peer's address: the index keeps no IP address.
    link = torrent.magnet().format() + "&tr=udp%3A%2F%2Ftracker.example%3A6969&x.pe=203.0.113.7:6881"

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            entry = await db.entries.add_magnet(link, description="from a link")
            assert entry.state is EntryState.WAITING_METADATA
            assert not entry.is_ready
            assert (entry.title, entry.total_size, entry.file_count, entry.piece_length) == (
                "Fetched Later",
                None,
                None,
                None,
            )
            assert "203.0.113.7" not in entry.magnet
            assert "x.pe" not in entry.magnet
            assert await db.entries.torrent_bytes(entry.id) is None
            assert await db.entries.files(entry.id) == []
            assert [hit.id for hit in (await db.search("fetched")).entries] == [entry.id]
            assert (await db.search("english")).entries == ()

            with pytest.raises(MetainfoError, match="info-hash"):
                await db.entries.attach_metadata(entry.id, other.info)
            with pytest.raises(DecodeError):
                await db.entries.attach_metadata(entry.id, b"d4:name")
            assert (await db.entries.get(entry.id)).state is EntryState.WAITING_METADATA

            ready = await db.entries.attach_metadata(entry.id, torrent.info)
            assert ready.state is EntryState.READY
            assert (ready.total_size, ready.file_count, ready.title) == (torrent.total_size, 3, "Fetched Later")
            saved = await db.entries.torrent_bytes(entry.id)
            assert saved is not None
            rebuilt = Torrent.decode(saved)
            assert rebuilt.info_hash_v1 == torrent.info_hash_v1
            assert rebuilt.trackers == (("udp://tracker.example:6969",),)
            assert b"203.0.113.7" not in saved
            assert len(await db.entries.files(entry.id)) == 3
            assert [hit.id for hit in (await db.search("english")).entries] == [entry.id]
            with pytest.raises(EntryStateError):
                await db.entries.attach_metadata(entry.id, torrent.info)

    run(scenario())


def test_metadata_whose_v2_hash_is_listed_elsewhere_is_a_duplicate(index_url: str, tmp_path: Path) -> None:
    hybrid = Torrent.decode(make_torrent(tmp_path, "both", FILES, TorrentVersion.HYBRID))
    assert hybrid.info_hash_v1 is not None
    assert hybrid.info_hash_v2 is not None
    v1_link = f"magnet:?xt=urn:btih:{hybrid.info_hash_v1.hex()}"
    v2_link = f"magnet:?xt=urn:btmh:1220{hybrid.info_hash_v2.hex()}"

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            by_v2 = await db.entries.add_magnet(v2_link)
            by_v1 = await db.entries.add_magnet(v1_link)
            with pytest.raises(DuplicateEntry) as duplicate:
                await db.entries.attach_metadata(by_v1.id, hybrid.info)
            assert duplicate.value.entry_id == by_v2.id
            assert (await db.entries.get(by_v1.id)).state is EntryState.WAITING_METADATA

    run(scenario())


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"title": "x" * (MAX_TITLE_CHARS + 1)}, EntryLimitExceeded, "title"),
        ({"title": "   "}, InvalidEntry, "title"),
        ({"title": "evil\u202egpj.exe"}, InvalidEntry, "title"),
        ({"title": "two\nlines"}, InvalidEntry, "title"),
        ({"description": "d" * (MAX_DESCRIPTION_CHARS + 1)}, EntryLimitExceeded, "description"),
        ({"description": "bell \x07"}, InvalidEntry, "description"),
        ({"tags": [f"t{n}" for n in range(MAX_TAGS + 1)]}, EntryLimitExceeded, "tags"),
        ({"tags": ["x" * 33]}, EntryLimitExceeded, "tags"),
        ({"tags": ["two words"]}, InvalidEntry, "tags"),
        ({"tags": ["<script>"]}, InvalidEntry, "tags"),
        ({"category": "Movies & TV"}, InvalidEntry, "category"),
        ({"category": "c" * 65}, EntryLimitExceeded, "category"),
    ],
)
def test_fields_beyond_the_limits_are_refused_and_nothing_is_stored(
    index_url: str, tmp_path: Path, fields: dict[str, object], error: type[InvalidEntry], field: str
) -> None:
    data = make_torrent(tmp_path, "limits", {"": b"z" * 1000}, TorrentVersion.V1)

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            with pytest.raises(error) as refused:
                await db.entries.add_torrent(data, **fields)  # type: ignore[arg-type]
            assert refused.value.field == field
            with pytest.raises(error):
                await db.entries.add_magnet(Torrent.decode(data).magnet().format(), **fields)  # type: ignore[arg-type]
            assert await db.entries.list_newest() == []

    run(scenario())


def test_oversized_and_broken_torrents_are_refused(index_url: str) -> None:
    async def scenario() -> None:
        async with await open_database(index_url) as db:
            with pytest.raises(EntryLimitExceeded) as too_big:
                await db.entries.add_torrent(b"d" + b"0" * MAX_TORRENT_BYTES)
            assert too_big.value.limit == MAX_TORRENT_BYTES
            with pytest.raises(DecodeError):
                await db.entries.add_torrent(b"<html>not a torrent</html>")
            with pytest.raises(MetainfoError):
                await db.entries.add_torrent(bencode.encode({b"info": {b"name": b"../etc"}}))
            with pytest.raises(MetainfoError):
                await db.entries.add_magnet("magnet:?dn=no-hash")
            assert await db.entries.list_newest() == []

    run(scenario())


def test_a_magnet_name_with_bidi_overrides_makes_a_clean_title(index_url: str) -> None:
    # (The metainfo reader already refuses such names in a torrent's paths.)
    link = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=holiday%E2%80%AEgpj.exe%07%0A"

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            entry = await db.entries.add_magnet(link)
            assert entry.title == "holiday gpj.exe"

    run(scenario())


def test_only_so_many_file_rows_are_stored_but_counts_stay_exact(
    index_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entries_module, "MAX_STORED_FILES", 2)
    data = make_torrent(tmp_path, "many", {f"f{n}.bin": bytes([n]) * (n + 1) for n in range(5)}, TorrentVersion.V1)

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            entry = await db.entries.add_torrent(data)
            assert (entry.file_count, entry.total_size) == (5, 15)
            assert [file.path[-1] for file in await db.entries.files(entry.id)] == ["f0.bin", "f1.bin"]

    run(scenario())


def test_hide_edit_and_delete(index_url: str, tmp_path: Path) -> None:
    clock = Clock()
    first = make_torrent(tmp_path, "First Upload", {"": b"1" * 100}, TorrentVersion.V1)
    second = make_torrent(tmp_path, "Second Upload", {"": b"2" * 100}, TorrentVersion.V1)

    async def scenario() -> None:
        async with await open_database(index_url, clock=clock) as db:
            one = await db.entries.add_torrent(first)
            clock.now += 60
            two = await db.entries.add_torrent(second, category="tv", tags=["old"])
            assert [entry.id for entry in await db.entries.list_newest()] == [two.id, one.id]

            hidden = await db.entries.set_hidden(one.id, True)
            assert hidden.is_hidden
            assert [entry.id for entry in await db.entries.list_newest()] == [two.id]
            assert [entry.id for entry in await db.entries.list_newest(include_hidden=True)] == [two.id, one.id]
            assert (await db.search("first")).entries == ()
            await db.entries.set_hidden(one.id, False)
            assert [entry.id for entry in (await db.search("first")).entries] == [one.id]

            clock.now += 60
            edited = await db.entries.edit(two.id, title="Renamed Show", description="Season one", tags=["new"])
            assert (edited.title, edited.description, edited.tags, edited.category) == (
                "Renamed Show",
                "Season one",
                ("new",),
                "tv",
            )
            assert edited.updated_at == int(clock.now)
            assert edited.created_at == two.created_at
            assert [entry.id for entry in (await db.search("renamed")).entries] == [two.id]
            assert [entry.id for entry in (await db.search("season")).entries] == [two.id]
            assert (await db.search("old")).entries == ()
            assert (await db.entries.edit(two.id, category="")).category is None
            with pytest.raises(InvalidEntry):
                await db.entries.edit(two.id, title="")

            await db.entries.delete(two.id)
            with pytest.raises(EntryNotFound):
                await db.entries.get(two.id)
            with pytest.raises(EntryNotFound):
                await db.entries.torrent_bytes(two.id)
            with pytest.raises(EntryNotFound):
                await db.entries.delete(two.id)
            with pytest.raises(EntryNotFound):
                await db.entries.edit(two.id, title="Back")
            assert await db.entries.files(two.id) == []
            assert (await db.search("renamed")).entries == ()
            # The hashes are free again once the entry is gone.
            again = await db.entries.add_torrent(second)
            assert again.id != two.id

    run(scenario())


def test_list_pages_are_bounded(index_url: str) -> None:
    clock = Clock()

    async def scenario() -> None:
        async with await open_database(index_url, clock=clock) as db:
            ids = []
            for number in range(5):
                clock.now += 1
                entry = await db.entries.add_magnet(f"magnet:?xt=urn:btih:{number:040x}&dn=entry{number}")
                ids.append(entry.id)
            newest_first = ids[::-1]
            assert [entry.id for entry in await db.entries.list_newest(limit=2)] == newest_first[:2]
            assert [entry.id for entry in await db.entries.list_newest(limit=2, offset=2)] == newest_first[2:4]
            assert [entry.id for entry in await db.entries.list_newest(limit=2, offset=4)] == newest_first[4:]
            for limit, offset in ((0, 0), (101, 0), (10, -1), (10, 10_001)):
                with pytest.raises(UsageError):
                    await db.entries.list_newest(limit=limit, offset=offset)

    run(scenario())


def test_an_entry_with_its_files_reads_as_get_and_files_do(index_url: str, tmp_path: Path) -> None:
    # SQLite takes a shorter path to aiosqlite's thread for this read (entry pages): same answer.
    data = make_torrent(tmp_path, "Paged Film", FILES, TorrentVersion.HYBRID,
                        trackers=["http://tracker.example/announce", "udp://other.example:6969"],
                        web_seeds=["http://seed.example/files/"])  # fmt: skip

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            entry = await db.entries.add_torrent(data, description="*d*", category="movies", tags=["a", "b"])
            hidden = await db.entries.set_hidden(entry.id, True)
            together = await db.entries.get_with_files(entry.id)
            assert together == (hidden, await db.entries.files(entry.id))
            assert together[0].trackers
            assert together[0].web_seeds
            assert together[0].is_hidden
            first = await db.entries.get_with_files(entry.id, limit=1)
            assert first == (hidden, await db.entries.files(entry.id, limit=1))
            with pytest.raises(EntryNotFound):
                await db.entries.get_with_files(entry.id + 1)
            with pytest.raises(UsageError):
                await db.entries.get_with_files(entry.id, limit=0)

    run(scenario())
