"""Search on SQLite FTS5 and on PostgreSQL: the same corpus, the same queries, the same
answers (ranking, phrases, prefixes, exclusions, filters, pages), and hostile text that
never raises."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from bitswarm.errors import UsageError
from bitswarm.index import IndexDatabase, SearchFilters, SearchSort, open_database
from bitswarm.index import search as search_module
from bitswarm.index.search import MAX_COUNTED
from bitswarm.metainfo import TorrentVersion
from index.support import make_torrent, run

DAY_S = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Corpus:
    """The entries' ids by a short name."""

    ids: dict[str, int]

    def names(self, entries: tuple[object, ...]) -> list[str]:
        by_id = {entry_id: name for name, entry_id in self.ids.items()}
        return [by_id[entry.id] for entry in entries]  # type: ignore[attr-defined]


async def fill(db: IndexDatabase, clock: Clock, tmp_path: Path) -> Corpus:
    """Six entries, a day apart, oldest first."""
    ids = {}

    async def torrent(name: str, title: str, files: dict[str, bytes], **fields: object) -> None:
        clock.now += DAY_S
        data = make_torrent(tmp_path, title, files, TorrentVersion.V1)
        ids[name] = (await db.entries.add_torrent(data, **fields)).id  # type: ignore[arg-type]

    await torrent(
        "bunny",
        "Big Buck Bunny",
        {"big_buck_bunny_1080p.mkv": b"b" * 300_000, "subs/english.srt": b"s" * 100},
        description="An open movie by the Blender Foundation.",
        category="movies",
        tags=["animation", "blender"],
    )
    await torrent(
        "sintel",
        "Sintel",
        {"sintel-4k.mkv": b"s" * 200_000},
        description="A girl and her dragon. Not about bunny rabbits at all.",
        category="movies",
        tags=["animation"],
    )
    await torrent(
        "ubuntu",
        "Ubuntu 24.04 Desktop",
        {"ubuntu-24.04-desktop-amd64.iso": b"u" * 500_000},
        description="Installer image.",
        category="software",
        tags=["linux", "iso"],
    )
    clock.now += DAY_S
    ids["elephants"] = (
        await db.entries.add_magnet(
            "magnet:?xt=urn:btih:" + "e" * 40 + "&dn=Elephants+Dream",
            description="The first open movie.",
            category="movies",
        )
    ).id
    await torrent("cafe", "Café Müller", {"tanz.flac": b"c" * 1000}, description="Pina Bausch", category="music")
    await torrent("secret", "Bunny Secret", {"x.bin": b"x" * 10}, description="hidden bunny")
    await db.entries.set_hidden(ids["secret"], True)
    return Corpus(ids)


def search_names(index_url: str, tmp_path: Path, *searches: tuple[str, dict[str, object]]) -> list[list[str]]:
    """The names each search finds, in order, on a freshly filled database."""
    clock = Clock()

    async def scenario() -> list[list[str]]:
        async with await open_database(index_url, clock=clock) as db:
            corpus = await fill(db, clock, tmp_path)
            found = []
            for text, options in searches:
                page = await db.search(text, **options)  # type: ignore[arg-type]
                found.append(corpus.names(page.entries))
            return found

    return run(scenario())


def test_a_title_match_outranks_a_description_match(index_url: str, tmp_path: Path) -> None:
    assert search_names(index_url, tmp_path, ("bunny", {})) == [["bunny", "sintel"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("english", ["bunny"]),  # a file name in a sub-folder
        ("amd64", ["ubuntu"]),  # a word of a file name
        ("blender", ["bunny"]),  # description and tag
        ("linux", ["ubuntu"]),  # a tag
        ("BUNNY big", ["bunny"]),  # every word, any case
        ('"open movie"', ["elephants", "bunny"]),  # a phrase: newest first among equals
        ('"movie open"', []),  # the words out of order
        ('"buck bunny"', ["bunny"]),
        ("ubun*", ["ubuntu"]),  # a prefix
        ("drag*", ["sintel"]),
        ('"big buc"*', ["bunny"]),  # a phrase whose last word is a prefix
        ('blender "big buck"', ["bunny"]),  # a word and a phrase
        ('sintel "open movie"', []),  # the phrase here, the word there
        ('"open movie" -bunny', ["elephants"]),
        ("u*", []),  # a one-letter prefix is a plain word
        ("movie -bunny", ["elephants"]),  # an exclusion
        ('movie -"buck bunny"', ["elephants"]),
        ("-bunny -movie", ["cafe", "ubuntu"]),  # exclusions alone: everything else
        ("ubuntu-24.04", ["ubuntu"]),  # punctuation joins words into a phrase
        ("cafe", ["cafe"]),  # accents folded
        ("MÜLLER", ["cafe"]),
        ("bun\u200bny", ["bunny", "sintel"]),  # a zero-width space does not split a word
        ("\u202ebunny\u202c", ["bunny", "sintel"]),  # bidi controls are dropped
        ("\uff42\uff55\uff4e\uff4e\uff59", ["bunny", "sintel"]),  # full-width letters (NFKC)
        ("secret", []),  # hidden
        ("nothing-like-this", []),
    ],
)
def test_queries_find_the_same_entries_on_both_backends(
    index_url: str, tmp_path: Path, text: str, expected: list[str]
) -> None:
    assert search_names(index_url, tmp_path, (text, {})) == [expected]


def test_filters_and_sorts(index_url: str, tmp_path: Path) -> None:
    movies = SearchFilters(categories=("movies",))
    found = search_names(
        index_url,
        tmp_path,
        ("", {}),
        ("", {"filters": movies}),
        ("", {"filters": SearchFilters(categories=("movies", "music"))}),
        ("animation", {"filters": SearchFilters(min_size=250_000)}),
        ("", {"filters": SearchFilters(max_size=10_000)}),
        ("", {"filters": SearchFilters(max_age_s=2.5 * DAY_S)}),
        ("", {"filters": SearchFilters(include_hidden=True)}),
        ("", {"sort": SearchSort.LARGEST, "filters": movies}),
        ("", {"sort": SearchSort.SMALLEST}),
        ("", {"sort": SearchSort.OLDEST}),
        ("movie", {"sort": SearchSort.NEWEST}),
        ("bunny", {"filters": SearchFilters(include_hidden=True)}),
    )
    # Two title matches: their order is the engine's (bm25 and ts_rank weigh lengths and
    # the other fields differently); both come before the description match.
    assert sorted(found[-1][:2]) == ["bunny", "secret"]
    found[-1][:2] = ["title matches"]
    assert found == [
        ["cafe", "elephants", "ubuntu", "sintel", "bunny"],  # no words: newest first
        ["elephants", "sintel", "bunny"],
        ["cafe", "elephants", "sintel", "bunny"],
        ["bunny"],
        ["cafe"],  # an unknown size (elephants) never passes a size filter
        ["cafe", "elephants"],  # within two and a half days (the hidden one left out)
        ["secret", "cafe", "elephants", "ubuntu", "sintel", "bunny"],
        ["bunny", "sintel", "elephants"],  # unknown sizes last
        ["cafe", "sintel", "bunny", "ubuntu", "elephants"],
        ["bunny", "sintel", "ubuntu", "elephants", "cafe"],
        ["elephants", "bunny"],
        ["title matches", "sintel"],
    ]


def test_pages_and_totals(index_url: str, tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        async with await open_database(index_url, clock=clock) as db:
            corpus = await fill(db, clock, tmp_path)
            first = await db.search("", limit=2)
            second = await db.search("", limit=2, offset=2)
            last = await db.search("", limit=2, offset=4)
            assert (first.total, first.total_is_exact) == (5, True)
            assert [corpus.names(page.entries) for page in (first, second, last)] == [
                ["cafe", "elephants"],
                ["ubuntu", "sintel"],
                ["bunny"],
            ]
            assert (await db.search("movie", limit=1)).total == 2
            beyond = await db.search("movie", offset=10)
            assert (beyond.entries, beyond.total) == ((), 2)
            for limit, offset in ((0, 0), (101, 0), (10, -1), (10, 10_001)):
                with pytest.raises(UsageError):
                    await db.search("movie", limit=limit, offset=offset)

    run(scenario())


def test_a_common_word_is_counted_up_to_a_bound(index_url: str) -> None:
    async def scenario() -> None:
        async with await open_database(index_url) as db:
            for number in range(MAX_COUNTED + 5):
                link = f"magnet:?xt=urn:btih:{number:040x}&dn=common+word+{number}"
                await db.entries.add_magnet(link)
            page = await db.search("common", limit=3)
            assert (len(page.entries), page.total, page.total_is_exact) == (3, MAX_COUNTED, False)
            exact = await db.search("1004")
            assert (exact.total, exact.total_is_exact) == (1, True)

    run(scenario())


def test_relevance_ranks_only_the_newest_matches_of_a_common_word(
    index_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_module, "RANKED_CANDIDATES", 3)
    # PostgreSQL looks among the newest ids first, in growing windows: make them small.
    monkeypatch.setattr(search_module, "_FIRST_WINDOW_IDS", 1)

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            # The oldest is the best match (the word in its title, twice); then four more.
            best = await db.entries.add_magnet(f"magnet:?xt=urn:btih:{1:040x}&dn=storm+storm")
            others = []
            for number in range(2, 6):
                others.append(await db.entries.add_magnet(f"magnet:?xt=urn:btih:{number:040x}&dn=storm+film+{number}"))
            page = await db.search("storm")
            assert best.id not in [entry.id for entry in page.entries]
            assert sorted(entry.id for entry in page.entries) == sorted(entry.id for entry in others[-3:])
            assert (page.total, page.total_is_exact) == (5, True)
            # Other orders are not cut.
            newest = await db.search("storm", sort=SearchSort.OLDEST)
            assert [entry.id for entry in newest.entries] == [best.id, *(entry.id for entry in others)]
            monkeypatch.setattr(search_module, "RANKED_CANDIDATES", 10)
            assert (await db.search("storm")).entries[0].id == best.id

    run(scenario())


@pytest.mark.parametrize("text", ["river", '"big river"', 'river "big river"'])
def test_relevance_skips_filtered_matches_and_looks_further(
    index_url: str, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """The newest matches are hidden: the ranked candidates are the newest visible ones
    (PostgreSQL's windows go on below matches the filters dropped, led by the words or by
    the pairs of a phrase)."""
    monkeypatch.setattr(search_module, "RANKED_CANDIDATES", 3)
    monkeypatch.setattr(search_module, "_FIRST_WINDOW_IDS", 2)

    async def scenario() -> None:
        async with await open_database(index_url) as db:
            added = []
            for number in range(1, 10):
                link = f"magnet:?xt=urn:btih:{number:040x}&dn=big+river+{number}"
                added.append((await db.entries.add_magnet(link)).id)
            for entry_id in added[-4:]:
                await db.entries.set_hidden(entry_id, True)
            page = await db.search(text)
            assert sorted(entry.id for entry in page.entries) == sorted(added[-7:-4])
            assert (page.total, page.total_is_exact) == (5, True)

    run(scenario())


HOSTILE = [
    '"',
    '""',
    '"""',
    "*",
    "**",
    "a*b*c",
    "NEAR(a b)",
    "NEAR(bunny big, 2)",
    "title:bunny",
    "{title description}:bunny",
    "bunny AND",
    "AND",
    "OR OR",
    "NOT bunny",
    "a AND",
    ")",
    "(",
    "((bunny",
    "-",
    "--",
    "- -",
    "^bunny",
    "!",
    "!bunny",
    "&|",
    "bunny & big | !sintel",
    ":*",
    "bunny:*",
    "'",
    "''",
    "\\",
    "bunny' OR '1'='1",
    "'; DROP TABLE entries; --",
    "<->",
    "bunny <-> big",
    "bunny <2> big",
    "%",
    "_",
    "\x00",
    "\x00bunny",
    "\u200b",
    "\u202e\u2066\u2069",
    "\ufeffbunny",
    "😀 bunny 🐰",
    "x" * 10_000,
    "bunny " * 500,
    '"' * 300,
    "-bunny " * 40,
    "a* " * 100,
    "ǅ İ ß ﬁ",
]


def test_hostile_text_is_only_text(index_url: str, tmp_path: Path) -> None:
    rng = random.Random(12)
    alphabet = "\"*()-^:!&|<>'\\ \u200b\u202eNEARANDORNOTtitlebunny0123456789é😀\x00\t\n"
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60))) for _ in range(150)]
    clock = Clock()

    async def scenario() -> None:
        async with await open_database(index_url, clock=clock) as db:
            corpus = await fill(db, clock, tmp_path)
            for text in HOSTILE + fuzz:
                page = await db.search(text)
                assert set(corpus.names(page.entries)) <= set(corpus.ids), text
            # Syntax that is only text still finds the words it holds.
            assert corpus.names((await db.search("NEAR(bunny big)")).entries) == []
            assert corpus.names((await db.search("NEAR(bunny buck)")).entries) == []
            assert corpus.names((await db.search("title:bunny")).entries) == []
            assert corpus.names((await db.search("^bunny")).entries) == ["bunny", "sintel"]
            assert corpus.names((await db.search("!bunny & big")).entries) == ["bunny"]
            assert corpus.names((await db.search("bunny:*")).entries) == ["bunny", "sintel"]
            assert await db.entries.list_newest(limit=10) != []  # and the table is still there

    run(scenario())
