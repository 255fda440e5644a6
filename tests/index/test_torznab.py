"""The Torznab endpoint against the requests Sonarr and Prowlarr send and the documents
Jackett and Prowlarr produce and read.

Shapes were read in Jackett's ``src/Jackett.Common/Models/TorznabCapabilities.cs``
(caps), ``ResultPage.cs`` (results) and ``DTO/TorznabRequest.cs`` (parameters), and in
Prowlarr's ``Indexers/Definitions/Newznab/NewznabCapabilitiesProvider.cs`` (what a caps
reader requires: limits with default and max, ``audio-search``), ``Torznab/
TorznabRssParser.cs`` (error codes 100-199 mean a bad key; attributes read from
``torznab:attr``; peers = seeders + leechers) and ``NewznabStandardCategory.cs``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, date, datetime

import feedparser  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from bitswarm.errors import ProtocolError, UsageError
from bitswarm.index.feeds import FeedChannel, FeedItem
from bitswarm.index.feedxml import xml_text
from bitswarm.index.newznab_categories import STANDARD_CATEGORIES, CategoryMap
from bitswarm.index.releases import MAX_RELEASE_NAME_CHARS, episode_matches, parse_release_name
from bitswarm.index.torznab import (
    MAX_OFFSET,
    TORZNAB_NS,
    NewznabErrorCode,
    TorznabError,
    TorznabFunction,
    TorznabQuery,
    TorznabRequest,
    TorznabSettings,
    parse_request,
    render_caps,
    render_error,
    render_results,
)

TZ = f"{{{TORZNAB_NS}}}"
KEY = "0123456789abcdef"
SITE = CategoryMap(["movies", "movies/hd", "tv", "tv/sd", "tv/hd", "music", "books", "software", "games", "other"])
SETTINGS = TorznabSettings(categories=SITE, api_key=KEY, title="bitswarm test")
OPEN = TorznabSettings(categories=SITE)
V1 = "0123456789abcdef0123456789abcdef01234567"
CHANNEL = FeedChannel(
    title="bitswarm", link="http://127.0.0.1:8080/", self_url="http://127.0.0.1:8080/api", description="bitswarm"
)


def parse_xml(document: bytes) -> ET.Element:
    """Our own output, parsed strictly (it has no DTD, so no entity to expand)."""
    return ET.fromstring(document)  # noqa: S314


def make_item(**changes: object) -> FeedItem:
    item = FeedItem(
        title="Show.Name.S01E02.720p.HDTV.x264-GRP",
        page_url="http://127.0.0.1:8080/t/7",
        magnet_uri=f"magnet:?xt=urn:btih:{V1}&dn=Show.Name.S01E02",
        published=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        torrent_url="http://127.0.0.1:8080/t/7.torrent",
        torrent_bytes_length=20_000,
        info_hash_v1_hex=V1,
        size=1_500_000_000,
        file_count=2,
        category="tv/hd",
        description="An episode.",
        seeders=12,
        leechers=5,
        completed=40,
    )
    return replace(item, **changes)  # type: ignore[arg-type]


def error_of(params: dict[str, str], torznab: TorznabSettings = SETTINGS) -> TorznabError:
    with pytest.raises(TorznabError) as caught:
        parse_request(params, torznab)
    return caught.value


def first_item(document: bytes) -> ET.Element:
    item = parse_xml(document).find("channel/item")
    assert item is not None
    return item


def attrs_of(item: ET.Element) -> list[tuple[str, str]]:
    return [(attr.attrib["name"], attr.attrib["value"]) for attr in item.iter(f"{TZ}attr")]


# --- caps -------------------------------------------------------------------------------


def test_caps_has_the_shape_jackett_writes_and_prowlarr_reads() -> None:
    root = parse_xml(render_caps(SETTINGS))
    assert root.tag == "caps"
    assert root.find("server").attrib["title"] == "bitswarm test"  # type: ignore[union-attr]
    limits = root.find("limits")
    assert limits is not None
    assert (int(limits.attrib["default"]), int(limits.attrib["max"])) == (100, 100)
    searching = root.find("searching")
    assert searching is not None
    modes = {mode.tag: (mode.attrib["available"], mode.attrib["supportedParams"]) for mode in searching}
    assert modes == {
        "search": ("yes", "q"),
        "tv-search": ("yes", "q,season,ep"),
        "movie-search": ("yes", "q"),  # imdbid only when the backend honours it
        "music-search": ("yes", "q"),
        "audio-search": ("yes", "q"),
        "book-search": ("yes", "q"),
    }
    categories = {
        int(category.attrib["id"]): (
            category.attrib["name"],
            [int(sub.attrib["id"]) for sub in category.findall("subcat")],
        )
        for category in root.iterfind("categories/category")
    }
    assert categories == {
        2000: ("Movies", [2040]),
        3000: ("Audio", []),
        4000: ("PC", [4050]),
        5000: ("TV", [5030, 5040]),
        7000: ("Books", []),
        8000: ("Other", []),
    }
    for subcat in root.iter("subcat"):
        assert subcat.attrib["name"] == STANDARD_CATEGORIES[int(subcat.attrib["id"])]


def test_caps_offers_imdbid_when_the_backend_honours_it() -> None:
    root = parse_xml(render_caps(replace(SETTINGS, imdb_search=True)))
    assert root.find("searching/movie-search").attrib["supportedParams"] == "q,imdbid"  # type: ignore[union-attr]


def test_caps_needs_no_key_but_a_wrong_key_is_refused() -> None:
    assert parse_request({"t": "caps"}, SETTINGS).function is TorznabFunction.CAPS
    assert parse_request({"t": "caps", "apikey": KEY}, SETTINGS).query is None
    assert error_of({"t": "caps", "apikey": "wrong"}).code is NewznabErrorCode.INCORRECT_USER_CREDENTIALS


def test_the_standard_categories_are_the_newznab_numbers() -> None:
    assert STANDARD_CATEGORIES[2000] == "Movies"
    assert STANDARD_CATEGORIES[2045] == "Movies/UHD"
    assert STANDARD_CATEGORIES[3030] == "Audio/Audiobook"
    assert STANDARD_CATEGORIES[4050] == "PC/Games"
    assert STANDARD_CATEGORIES[5070] == "TV/Anime"
    assert STANDARD_CATEGORIES[7020] == "Books/EBook"
    assert STANDARD_CATEGORIES[8000] == "Other"


# --- requests ---------------------------------------------------------------------------


def test_sonarrs_episode_search() -> None:
    request = parse_request(
        {
            "t": "tvsearch",
            "cat": "5030,5040",
            "extended": "1",
            "apikey": KEY,
            "offset": "0",
            "limit": "100",
            "q": "Show Name",
            "season": "1",
            "ep": "2",
        },
        SETTINGS,
    )
    assert request.function is TorznabFunction.TV_SEARCH
    assert request.extended is True
    assert request.query == TorznabQuery(
        text="Show Name", categories=("tv/sd", "tv/hd"), season=1, episode=2, limit=100, offset=0
    )
    assert request.query.needs_post_filter


def test_sonarrs_rss_sync_is_a_search_without_q() -> None:
    request = parse_request({"t": "search", "cat": "5000", "extended": "1", "apikey": KEY, "limit": "100"}, SETTINGS)
    assert request.query is not None
    assert request.query.text == ""
    assert request.query.categories == ("tv", "tv/sd", "tv/hd")
    assert not request.query.needs_post_filter


def test_sonarrs_daily_show_search_asks_for_an_air_date() -> None:
    request = parse_request({"t": "tvsearch", "apikey": KEY, "q": "Daily", "season": "2023", "ep": "10/23"}, SETTINGS)
    assert request.query is not None
    assert (request.query.season, request.query.episode, request.query.air_date) == (None, None, date(2023, 10, 23))
    assert request.query.accepts("Daily.Show.2023.10.23.720p.WEB")
    assert not request.query.accepts("Daily.Show.2023.10.24.720p.WEB")


def test_prowlarrs_search_and_movie_search() -> None:
    search = parse_request(
        {"t": "search", "q": "ubuntu", "cat": "4000", "extended": "1", "limit": "100", "offset": "0", "apikey": KEY},
        SETTINGS,
    )
    assert search.query == TorznabQuery(text="ubuntu", categories=("software", "games"), limit=100)
    movie = parse_request({"t": "movie", "imdbid": "tt0111161", "apikey": KEY}, SETTINGS)
    assert movie.function is TorznabFunction.MOVIE
    assert movie.query is not None
    assert movie.query.imdb_id == "tt0111161"
    assert parse_request({"t": "movie-search", "imdbid": "111161", "apikey": KEY}, SETTINGS).query.imdb_id == (  # type: ignore[union-attr]
        "tt0111161"
    )


def test_music_and_book_searches_and_their_ids() -> None:
    assert parse_request({"t": "music", "q": "artist"}, OPEN).function is TorznabFunction.MUSIC
    book = parse_request({"t": "book", "q": "title", "tmdbid": "", "tvdbid": "81189"}, OPEN)
    assert book.function is TorznabFunction.BOOK
    assert book.query is not None
    assert (book.query.tmdb_id, book.query.tvdb_id) == (None, 81189)


def test_categories_select_the_parent_with_its_children_or_the_parent_for_a_missing_child() -> None:
    def categories(cat: str) -> tuple[str, ...] | None:
        query = parse_request({"t": "search", "cat": cat}, OPEN).query
        assert query is not None
        return query.categories

    assert categories("5000") == ("tv", "tv/sd", "tv/hd")
    assert categories("5040") == ("tv/hd",)
    assert categories("5045") == ("tv",)  # no UHD on this site: its parent
    assert categories("2000,3000") == ("movies", "movies/hd", "music")
    assert categories("") is None
    nothing = parse_request({"t": "search", "cat": "6000,100123"}, OPEN).query
    assert nothing is not None
    assert nothing.categories == ()
    assert nothing.selects_nothing


def test_limit_is_capped_at_the_advertised_maximum_and_offset_is_bounded() -> None:
    query = parse_request({"t": "search", "limit": "5000"}, OPEN).query
    assert query is not None
    assert query.limit == 100
    default = parse_request({"t": "search"}, OPEN).query
    assert default is not None
    assert (default.limit, default.offset) == (100, 0)
    assert parse_request({"t": "search", "offset": str(MAX_OFFSET)}, OPEN).query.offset == MAX_OFFSET  # type: ignore[union-attr]
    assert error_of({"t": "search", "offset": str(MAX_OFFSET + 1)}, OPEN).code is NewznabErrorCode.INCORRECT_PARAMETER


def test_multidict_parameters_as_aiohttp_gives_them() -> None:
    params: MultiDict[str] = MultiDict([("t", "search"), ("q", "a"), ("q", "a"), ("apikey", KEY)])
    assert parse_request(params, SETTINGS).query.text == "a"  # type: ignore[union-attr]
    params.add("q", "b")
    with pytest.raises(TorznabError, match="given twice"):
        parse_request(params, SETTINGS)
    assert parse_request({"t": ["search"], "q": ["x"]}, OPEN).query.text == "x"  # type: ignore[union-attr]


def test_the_key_may_come_in_a_header() -> None:
    assert parse_request({"t": "search"}, SETTINGS, header_api_key=KEY).function is TorznabFunction.SEARCH


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"apikey": KEY}, NewznabErrorCode.MISSING_PARAMETER),
        ({"t": "", "apikey": KEY}, NewznabErrorCode.MISSING_PARAMETER),
        ({"t": "details", "apikey": KEY}, NewznabErrorCode.NO_SUCH_FUNCTION),
        ({"t": "tv-search", "apikey": KEY}, NewznabErrorCode.NO_SUCH_FUNCTION),
        ({"t": "search"}, NewznabErrorCode.INCORRECT_USER_CREDENTIALS),
        ({"t": "search", "apikey": "wrong"}, NewznabErrorCode.INCORRECT_USER_CREDENTIALS),
        ({"t": "search", "apikey": KEY.upper()}, NewznabErrorCode.INCORRECT_USER_CREDENTIALS),
        ({"t": "search", "apikey": KEY, "limit": "abc"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "limit": "-1"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "limit": "0"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "limit": " 10"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "limit": "١٠"}, NewznabErrorCode.INCORRECT_PARAMETER),  # noqa: RUF001
        ({"t": "search", "apikey": KEY, "limit": "1_0"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "offset": "1e3"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "cat": "5000,tv"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "cat": ",".join(["5000"] * 65)}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "extended": "yes"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "o": "json"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "q": "x" * 513}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "search", "apikey": KEY, "attrs": "seeders,<x>"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "tvsearch", "apikey": KEY, "season": "S01"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "tvsearch", "apikey": KEY, "season": "1", "ep": "two"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "tvsearch", "apikey": KEY, "season": "2023", "ep": "13/40"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "tvsearch", "apikey": KEY, "season": "3", "ep": "10/23"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "movie", "apikey": KEY, "imdbid": "tt123456789"}, NewznabErrorCode.INCORRECT_PARAMETER),
        ({"t": "movie", "apikey": KEY, "tmdbid": "x"}, NewznabErrorCode.INCORRECT_PARAMETER),
    ],
)
def test_bad_requests_get_their_newznab_code(params: dict[str, str], code: NewznabErrorCode) -> None:
    error = error_of(params)
    assert error.code is code
    assert isinstance(error, ProtocolError)  # the client's fault, not ours
    root = parse_xml(error.to_xml())
    assert root.tag == "error"
    assert int(root.attrib["code"]) == code
    assert root.attrib["description"]


def test_error_documents_are_as_the_spec_writes_them() -> None:
    assert render_error(NewznabErrorCode.NO_SUCH_FUNCTION) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<error code="202" description="No such function" />'
    )
    wrong_key = error_of({"t": "search", "apikey": "wrong"})
    assert parse_xml(wrong_key.to_xml()).attrib == {
        "code": "100",
        "description": "Incorrect user credentials: wrong API key",
    }
    # Prowlarr matches these descriptions word for word.
    assert error_of({"apikey": KEY}).description == "Missing parameter"
    limit = TorznabError(NewznabErrorCode.REQUEST_LIMIT_REACHED, "30 per minute")
    assert parse_xml(limit.to_xml()).attrib["description"] == "Request limit reached"


def test_a_hostile_function_name_comes_back_as_valid_xml() -> None:
    error = error_of({"t": '"/><script>\x00]]>'})
    assert parse_xml(error.to_xml()).attrib["description"] == 'No such function: t="/><script>]]>'


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["t", "q", "cat", "limit", "offset", "season", "ep", "imdbid", "tmdbid", "extended", "attrs", "apikey"]
        ),
        st.one_of(
            st.text(max_size=40), st.sampled_from(["search", "tvsearch", "caps", "movie", "5000,5040", "1", KEY])
        ),
    )
)
def test_any_parameters_parse_or_raise_a_torznab_error(params: dict[str, str]) -> None:
    try:
        request = parse_request(params, SETTINGS)
    except TorznabError as error:
        parse_xml(error.to_xml())
    else:
        assert request.query is None or 1 <= request.query.limit <= 100


def test_an_empty_api_key_is_not_a_key() -> None:
    with pytest.raises(UsageError, match="empty"):
        TorznabSettings(api_key="")


# --- results ----------------------------------------------------------------------------


def search(params: dict[str, str] | None = None) -> TorznabRequest:
    return parse_request({"t": "search", "extended": "1", **(params or {})}, OPEN)


def test_results_have_the_shape_jackett_writes() -> None:
    document = render_results(CHANNEL, [make_item()], search({"offset": "0"}), OPEN, total=321)
    root = parse_xml(document)
    assert root.tag == "rss"
    assert root.attrib["version"] == "2.0"
    channel = root.find("channel")
    assert channel is not None
    assert channel.find("{http://www.w3.org/2005/Atom}link").attrib == {  # type: ignore[union-attr]
        "href": "http://127.0.0.1:8080/api",
        "rel": "self",
        "type": "application/rss+xml",
    }
    assert channel.find(f"{TZ}response").attrib == {"offset": "0", "total": "321"}  # type: ignore[union-attr]
    item = channel.find("item")
    assert item is not None
    assert item.findtext("title") == "Show.Name.S01E02.720p.HDTV.x264-GRP"
    assert item.findtext("guid") == "http://127.0.0.1:8080/t/7"
    assert item.findtext("comments") == "http://127.0.0.1:8080/t/7"
    assert item.findtext("pubDate") == "Mon, 06 May 2024 07:08:09 +0000"
    assert item.findtext("size") == "1500000000"
    assert item.findtext("files") == "2"
    assert item.findtext("grabs") == "40"
    assert item.findtext("link") == "http://127.0.0.1:8080/t/7.torrent"
    assert [category.text for category in item.findall("category")] == ["5040", "5000"]
    assert item.find("enclosure").attrib == {  # type: ignore[union-attr]
        "url": "http://127.0.0.1:8080/t/7.torrent",
        "length": "1500000000",
        "type": "application/x-bittorrent",
    }
    assert attrs_of(item) == [
        ("category", "5040"),
        ("category", "5000"),
        ("size", "1500000000"),
        ("files", "2"),
        ("grabs", "40"),
        ("infohash", V1),
        ("magneturl", make_item().magnet_uri),
        ("seeders", "12"),
        ("leechers", "5"),
        ("peers", "17"),
        ("season", "1"),
        ("episode", "2"),
    ]


def test_feedparser_reads_the_results() -> None:
    feed = feedparser.parse(render_results(CHANNEL, [make_item()], search(), OPEN, total=1))
    assert feed.bozo == 0
    entry = feed.entries[0]
    assert entry.title == "Show.Name.S01E02.720p.HDTV.x264-GRP"
    assert entry.enclosures[0]["type"] == "application/x-bittorrent"
    assert entry.enclosures[0]["href"] == "http://127.0.0.1:8080/t/7.torrent"
    assert feed.namespaces["torznab"] == TORZNAB_NS


def test_unknown_counts_are_left_out_never_zero() -> None:
    item = make_item(seeders=None, leechers=None, completed=None, file_count=None, category="movies/hd")
    names = [name for name, _ in attrs_of(first_item(render_results(CHANNEL, [item], search(), OPEN, total=1)))]
    assert names == ["category", "category", "size", "infohash", "magneturl"]


def test_an_entry_waiting_for_metadata_is_offered_by_its_magnet_link() -> None:
    item = make_item(torrent_url=None, torrent_bytes_length=None, size=None, file_count=None)
    element = first_item(render_results(CHANNEL, [item], search(), OPEN, total=1))
    assert element is not None
    assert element.findtext("link") == item.magnet_uri
    assert element.find("enclosure").attrib == {"url": item.magnet_uri, "type": "application/x-bittorrent"}  # type: ignore[union-attr]
    assert element.find("size") is None
    assert "size" not in dict(attrs_of(element))


def test_a_v2_only_torrent_gives_its_truncated_hash_in_lowercase() -> None:
    v2 = "C0FFEE" * 10 + "abcd"
    item = make_item(info_hash_v1_hex=None, info_hash_v2_hex=v2.lower())
    element = first_item(render_results(CHANNEL, [item], search(), OPEN, total=1))
    assert dict(attrs_of(element))["infohash"] == v2.lower()[:40]


def test_attrs_chooses_the_attributes_but_category_and_size_always_go_out() -> None:
    request = parse_request({"t": "search", "attrs": "seeders,infohash"}, OPEN)
    element = first_item(render_results(CHANNEL, [make_item()], request, OPEN, total=1))
    assert [name for name, _ in attrs_of(element)] == ["category", "category", "size", "infohash", "seeders"]


def test_an_uncategorised_entry_is_other() -> None:
    element = first_item(render_results(CHANNEL, [make_item(category=None)], search(), OPEN, total=1))
    assert [category.text for category in element.findall("category")] == ["8000"]


def test_a_page_longer_than_the_limit_and_caps_are_refused() -> None:
    with pytest.raises(UsageError, match="at most 1"):
        render_results(CHANNEL, [make_item(), make_item()], search({"limit": "1"}), OPEN, total=2)
    with pytest.raises(UsageError, match="render_caps"):
        render_results(CHANNEL, [], parse_request({"t": "caps"}, OPEN), OPEN, total=0)


HOSTILE = [
    "]]><script>alert(1)</script>",
    "Tom & Jerry &amp; </title></item>",
    "nul\x00 \x01\x1b controls \ufffe \ud800",
    "bidi \u202egnp.exe zero\u200bwidth",
    "S01E02 " * 15_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_titles_make_valid_results_with_the_text(text: str) -> None:
    item = make_item(title=text, description=text, magnet_uri="magnet:?dn=" + text)
    document = render_results(replace(CHANNEL, title=text), [item], search(), OPEN, total=1)
    feed = feedparser.parse(document)
    assert feed.bozo == 0
    assert feed.entries[0].title == xml_text(text).strip()
    assert parse_xml(document).findtext("channel/item/title") == xml_text(text)


@settings(max_examples=150, deadline=None)
@given(title=st.text(max_size=300), description=st.text(max_size=100), url=st.text(max_size=100))
def test_any_text_gives_results_that_parse(title: str, description: str, url: str) -> None:
    item = make_item(title=title, description=description, page_url=url, magnet_uri=url, torrent_url=url)
    root = parse_xml(render_results(replace(CHANNEL, description=url), [item], search(), OPEN, total=1))
    assert root.findtext("channel/item/title") == xml_text(title).replace("\r\n", "\n").replace("\r", "\n")


# --- TV searches: release names ----------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "season", "episode", "expected"),
    [
        ("Show.Name.S01E02.720p.HDTV.x264-GRP", 1, 2, True),
        ("Show Name 1x02 HDTV", 1, 2, True),
        ("Show.Name.S01E01E02.1080p", 1, 2, True),
        ("Show.Name.S01E01-E03.1080p", 1, 2, True),
        ("Show.Name.S01E03.720p", 1, 2, False),
        ("Show.Name.S02E02.720p", 1, 2, False),
        ("Show.Name.S01.COMPLETE.1080p", 1, 2, False),  # a pack is not the episode
        ("Show.Name.S01.COMPLETE.1080p", 1, None, True),
        ("Show.Name.S01-S03.1080p", 2, None, True),
        ("Show.Name.S01E05.720p", 1, None, True),
        ("Show.Name.2019.1080p.BluRay", 1, None, False),
        ("anything at all", None, None, True),
    ],
)
def test_episode_matching(title: str, season: int | None, episode: int | None, expected: bool) -> None:
    assert episode_matches(title, season, episode) is expected


def test_a_tv_search_filters_candidates_and_pages_what_is_left() -> None:
    query = TorznabQuery(text="Show Name", season=1, episode=2, limit=2, offset=1)
    titles = [
        "Show.Name.S01E02.720p",
        "Show.Name.S01E03.720p",
        "Show Name 1x02 HDTV",
        "Show.Name.S01E02.1080p",
        "Show.Name.S01E02.2160p",
    ]
    page, total = query.filter_and_page(titles, lambda title: title)
    assert (page, total) == (["Show Name 1x02 HDTV", "Show.Name.S01E02.1080p"], 4)
    assert query.candidate_limit > query.limit


def test_release_names_are_cut_before_parsing() -> None:
    name = "A" * (MAX_RELEASE_NAME_CHARS + 10_000) + " S01E02"
    assert parse_release_name(name).seasons == ()  # the tail beyond the cut is not read


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_release_name_parses(name: str) -> None:
    release = parse_release_name(name)
    assert all(isinstance(number, int) for number in release.seasons + release.episodes)
