"""The Torznab 1.3 endpoint (``/api``), sans-IO: query parameters in, a typed request or a
Newznab error out; caps, results and errors rendered as XML.

Clients: Sonarr, Radarr, Lidarr, Readarr and Prowlarr (and Jackett as a model). The web
route does three things:

1. ``request = parse_request(params, settings)``; on ``TorznabError`` it answers
   ``error.to_xml()`` (HTTP 200 with the error document, as Newznab servers do: clients
   read the code from the body).
2. ``t=caps``: ``render_caps(settings)``. Otherwise it runs ``request.query``
   (``TorznabQuery``) on the search backend. When ``query.needs_post_filter`` (a TV
   search for a season or an episode) the backend fetches up to ``query.candidate_limit``
   entries matching ``query.text`` and ``query.categories`` from the start, and
   ``filter_and_page`` keeps those whose titles name the wanted episode and cuts the
   requested page; otherwise the backend pages itself with ``query.offset`` and
   ``query.limit``.
3. ``render_results(channel, items, request, settings, total=...)``.

Parsing is strict, with the Newznab error codes: a missing ``t`` is 200, an unknown one
202, a malformed number or list 201, a missing or wrong API key (when the operator set
one) 100. ``t=caps`` needs no key (Newznab: capabilities require no credentials), but a
key that is given must be right, so a client's "test" shows a wrong key at once.
``limit`` above the advertised maximum is cut to it; ``offset`` has its own bound.

Results follow the shape Jackett's ``ResultPage`` writes and Prowlarr's
``TorznabRssParser`` reads: RSS 2.0 with ``xmlns:torznab`` and ``xmlns:atom``,
``<torznab:response offset total>``, items with ``title``, ``guid`` (the entry page),
``comments`` (the entry page), ``pubDate``, ``size``, ``link`` and ``enclosure`` (the
.torrent, or for an entry still waiting for metadata the magnet link, without a length,
as Jackett does for magnet-only results), ``category`` elements, and ``torznab:attr``
category (each number), size, files, grabs (the tracker's completed count), infohash
(``feeds.client_info_hash``: v1, or v2 truncated to 20 bytes), magneturl, seeders,
leechers, peers (seeders + leechers, the spec's meaning, which Prowlarr also computes),
and for TV entries season and episode when the title names exactly one. Unknown counts
are left out, never written as 0.
"""

from __future__ import annotations

import enum
import hmac
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from bitswarm.errors import ProtocolError, UsageError
from bitswarm.index.feeds import TORRENT_MIME_TYPE, FeedChannel, FeedItem, client_info_hash
from bitswarm.index.feedxml import ATOM_NS, rfc822_date, serialize, sub, xml_text
from bitswarm.index.newznab_categories import CategoryMap
from bitswarm.index.releases import episode_matches, parse_release_name

TORZNAB_NS = "http://torznab.com/schemas/2015/feed"
RSS_MIME_TYPE = "application/rss+xml"

# What caps advertises; Sonarr and Prowlarr page with limit=100.
DEFAULT_LIMIT = 100
MAX_LIMIT = 100
# Deep pages cost the backend a scan each; clients page RSS sync to a few hundred items.
MAX_OFFSET = 10_000
# A TV search by season/episode filters candidates by title; this many are examined.
MAX_POST_FILTER_CANDIDATES = 500
# Bounds on what a request may carry (THREATS.md, 1): one named limit per input.
MAX_QUERY_CHARS = 512
MAX_VALUE_CHARS = 2048
MAX_CATEGORIES = 64
MAX_ATTRS = 64

_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: int() would take "١٢", "1_0", " 7"
_IMDB_ID = re.compile(r"(?:tt)?([0-9]{1,8})", re.IGNORECASE)
_DAILY_EPISODE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})")  # Sonarr's daily shows: season=2023&ep=10/23
_ATTR_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
# A season this large is a year: the daily-show convention.
_FIRST_YEAR_SEASON = 1000


class NewznabErrorCode(enum.IntEnum):
    """The error codes of the Newznab API, which Torznab keeps."""

    INCORRECT_USER_CREDENTIALS = 100
    ACCOUNT_SUSPENDED = 101
    INSUFFICIENT_PRIVILEGES = 102
    REGISTRATION_DENIED = 103
    REGISTRATIONS_CLOSED = 104
    INVALID_REGISTRATION_EMAIL_TAKEN = 105
    INVALID_REGISTRATION_EMAIL_BAD_FORMAT = 106
    REGISTRATION_FAILED = 107
    MISSING_PARAMETER = 200
    INCORRECT_PARAMETER = 201
    NO_SUCH_FUNCTION = 202
    FUNCTION_NOT_AVAILABLE = 203
    NO_SUCH_ITEM = 300
    ITEM_ALREADY_EXISTS = 310
    REQUEST_LIMIT_REACHED = 500
    DOWNLOAD_LIMIT_REACHED = 501
    UNKNOWN_ERROR = 900
    API_DISABLED = 910


_DESCRIPTIONS: Mapping[NewznabErrorCode, str] = {
    NewznabErrorCode.INCORRECT_USER_CREDENTIALS: "Incorrect user credentials",
    NewznabErrorCode.ACCOUNT_SUSPENDED: "Account suspended",
    NewznabErrorCode.INSUFFICIENT_PRIVILEGES: "Insufficient privileges/not authorized",
    NewznabErrorCode.REGISTRATION_DENIED: "Registration denied",
    NewznabErrorCode.REGISTRATIONS_CLOSED: "Registrations are closed",
    NewznabErrorCode.INVALID_REGISTRATION_EMAIL_TAKEN: "Invalid registration (Email Address Taken)",
    NewznabErrorCode.INVALID_REGISTRATION_EMAIL_BAD_FORMAT: "Invalid registration (Email Address Bad Format)",
    NewznabErrorCode.REGISTRATION_FAILED: "Registration Failed (Data error)",
    NewznabErrorCode.MISSING_PARAMETER: "Missing parameter",
    NewznabErrorCode.INCORRECT_PARAMETER: "Incorrect parameter",
    NewznabErrorCode.NO_SUCH_FUNCTION: "No such function",
    NewznabErrorCode.FUNCTION_NOT_AVAILABLE: "Function not available",
    NewznabErrorCode.NO_SUCH_ITEM: "No such item",
    NewznabErrorCode.ITEM_ALREADY_EXISTS: "Item already exists",
    NewznabErrorCode.REQUEST_LIMIT_REACHED: "Request limit reached",
    NewznabErrorCode.DOWNLOAD_LIMIT_REACHED: "Download limit reached",
    NewznabErrorCode.UNKNOWN_ERROR: "Unknown error",
    NewznabErrorCode.API_DISABLED: "API Disabled",
}
# Prowlarr compares these descriptions word for word (a rate limit, a key that is
# required): they go out exactly as the spec spells them, without our detail.
_EXACT_DESCRIPTIONS = {NewznabErrorCode.MISSING_PARAMETER, NewznabErrorCode.REQUEST_LIMIT_REACHED}


class TorznabError(ProtocolError):
    """A Torznab client sent a request the API refuses; ``code`` is the Newznab code and
    ``description`` the text that goes back in the error document."""

    def __init__(self, code: NewznabErrorCode, detail: str = "") -> None:
        spec = _DESCRIPTIONS[code]
        self.code = code
        self.detail = detail
        self.description = spec if code in _EXACT_DESCRIPTIONS or not detail else f"{spec}: {detail}"
        super().__init__(f"torznab {int(code)}: {self.description}" if detail else f"torznab {int(code)}: {spec}")

    def to_xml(self) -> bytes:
        """The Newznab error document for this error."""
        return render_error(self.code, self.description)


def render_error(code: NewznabErrorCode, description: str | None = None) -> bytes:
    """``<error code=".." description=".."/>`` with the spec's description by default."""
    text = _DESCRIPTIONS[code] if description is None else description
    root = ET.Element("error", {"code": str(int(code)), "description": xml_text(text)})
    return serialize(root)


class TorznabFunction(enum.Enum):
    """The functions (``t=``) the endpoint answers."""

    CAPS = "caps"
    SEARCH = "search"
    TV_SEARCH = "tvsearch"
    MOVIE = "movie"
    MUSIC = "music"
    BOOK = "book"


_FUNCTIONS: Mapping[str, TorznabFunction] = {
    **{function.value: function for function in TorznabFunction},
    # Some clients send the caps element's name rather than the function's.
    "movie-search": TorznabFunction.MOVIE,
}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TorznabQuery:
    """A search for the backend to run.

    - ``text``: the words to search for ("" lists the newest entries, as ``t=search``
      without ``q`` asks: the RSS sync of Sonarr and Radarr).
    - ``categories``: the site's category slugs to keep; None keeps every category, and an
      empty tuple means the request named only categories the site does not have, so
      nothing matches (``selects_nothing``).
    - ``season``, ``episode``, ``air_date``: a TV search's episode (``air_date`` for a
      daily show); the backend leaves them to ``accepts``/``filter_and_page``.
    - ``imdb_id`` ("tt0111161"), ``tmdb_id``, ``tvdb_id``: ids a client sent. Caps offers
      ``imdbid`` only when ``TorznabSettings.imdb_search`` says the backend honours it; a
      backend that does not must return nothing rather than ignore the id.
    - ``limit`` (1..MAX_LIMIT) and ``offset``: the page."""

    text: str = ""
    categories: tuple[str, ...] | None = None
    season: int | None = None
    episode: int | None = None
    air_date: date | None = None
    imdb_id: str | None = None
    tmdb_id: int | None = None
    tvdb_id: int | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @property
    def selects_nothing(self) -> bool:
        return self.categories == ()

    @property
    def needs_post_filter(self) -> bool:
        """Whether results must be filtered by title (``accepts``) after the search."""
        return self.season is not None or self.episode is not None or self.air_date is not None

    @property
    def candidate_limit(self) -> int:
        """How many entries the backend should fetch (from offset 0) for a filtered search."""
        return MAX_POST_FILTER_CANDIDATES if self.needs_post_filter else self.limit

    def accepts(self, title: str) -> bool:
        """Whether an entry called ``title`` is what the request's season/episode names."""
        return episode_matches(title, self.season, self.episode, self.air_date)

    def filter_and_page(self, candidates: Sequence[T], title_of: Callable[[T], str]) -> tuple[list[T], int]:
        """The requested page of the ``candidates`` that ``accepts`` keeps, and how many
        were kept in all (the ``total`` to report)."""
        kept = [candidate for candidate in candidates if self.accepts(title_of(candidate))]
        return kept[self.offset : self.offset + self.limit], len(kept)


@dataclass(frozen=True, slots=True)
class TorznabRequest:
    """A parsed request: the function, the query (None for caps), and which attributes
    the client wants (``extended``: all; else ``attrs``, None meaning the default set,
    which is all of ours too: every client in use sends ``extended=1`` anyway)."""

    function: TorznabFunction
    query: TorznabQuery | None = None
    extended: bool = False
    attrs: frozenset[str] | None = None

    def wants(self, attribute: str) -> bool:
        # category and size always go out (the spec), whatever attrs asks for.
        return self.extended or self.attrs is None or attribute in self.attrs or attribute in ("category", "size")


@dataclass(frozen=True, slots=True)
class TorznabSettings:
    """The operator's side: ``api_key`` (None: the API is open), the site's
    ``categories``, the server's ``title`` and ``url`` for caps, the limits caps
    advertises, and whether the backend honours ``imdbid`` (``imdb_search``)."""

    categories: CategoryMap = field(default_factory=CategoryMap.default)
    api_key: str | None = None
    title: str = "bitswarm"
    url: str | None = None
    limit_default: int = DEFAULT_LIMIT
    limit_max: int = MAX_LIMIT
    max_offset: int = MAX_OFFSET
    imdb_search: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.limit_default <= self.limit_max:
            raise UsageError(f"Torznab limits need 1 <= default <= max, got {self.limit_default}, {self.limit_max}")
        if self.api_key == "":
            raise UsageError("an empty Torznab API key would accept anyone: use None for an open API")


def _values(params: Mapping[str, str] | Mapping[str, Sequence[str]], name: str) -> list[str]:
    getall = getattr(params, "getall", None)  # aiohttp's and multidict's MultiDict
    if getall is not None:
        return [str(value) for value in getall(name, [])]
    value = params.get(name)
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(item) for item in value]


def _param(params: Mapping[str, str] | Mapping[str, Sequence[str]], name: str) -> str | None:
    """The parameter's one value, None when absent or empty (clients send ``imdbid=``)."""
    values = [value for value in _values(params, name) if value != ""]
    if len(set(values)) > 1:
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, f"{name} given twice with different values")
    if not values:
        return None
    if len(values[0]) > MAX_VALUE_CHARS:
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, f"{name} longer than {MAX_VALUE_CHARS} characters")
    return values[0]


def _number(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not _NUMBER.fullmatch(text):
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, f"{name} must be a whole number")
    return int(text)


def _flag(name: str, text: str | None) -> bool:
    if text is None or text == "0":
        return False
    if text == "1":
        return True
    raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, f"{name} must be 0 or 1")


def _query_text(text: str | None) -> str:
    if text is None:
        return ""
    if len(text) > MAX_QUERY_CHARS:
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, f"q longer than {MAX_QUERY_CHARS} characters")
    # Control characters mean nothing in a search and would only reach the backend.
    return "".join(char for char in text if unicodedata.category(char) != "Cc").strip()


def _categories(text: str | None, categories: CategoryMap) -> tuple[str, ...] | None:
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) > MAX_CATEGORIES:
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, f"cat lists more than {MAX_CATEGORIES} categories")
    numbers = [_number("cat", part) for part in parts]
    if not numbers:
        return None
    return categories.slugs_for(number for number in numbers if number is not None)


def _imdb_id(text: str | None) -> str | None:
    if text is None:
        return None
    match = _IMDB_ID.fullmatch(text)
    if match is None:
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, "imdbid must be like tt0111161")
    return f"tt{int(match.group(1)):07d}"


def _episode(season: int | None, text: str | None) -> tuple[int | None, int | None, date | None]:
    """``(season, episode, air_date)``: a daily show's ``season=YYYY&ep=MM/DD`` becomes a date."""
    if text is None:
        return season, None, None
    daily = _DAILY_EPISODE.fullmatch(text)
    if daily is not None:
        if season is None or season < _FIRST_YEAR_SEASON:
            raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, "ep=MM/DD needs the year as season")
        try:
            return None, None, date(season, int(daily.group(1)), int(daily.group(2)))
        except ValueError:
            raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, "season/ep is not a calendar date") from None
    return season, _number("ep", text), None


def _check_api_key(given: str | None, expected: str | None, *, required: bool) -> None:
    if expected is None:
        return
    if given is None:
        if required:
            raise TorznabError(NewznabErrorCode.INCORRECT_USER_CREDENTIALS, "an API key is required")
        return
    # Constant time, so the key cannot be guessed a character at a time from timings.
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")):
        raise TorznabError(NewznabErrorCode.INCORRECT_USER_CREDENTIALS, "wrong API key")


def parse_request(
    params: Mapping[str, str] | Mapping[str, Sequence[str]],
    settings: TorznabSettings,
    *,
    header_api_key: str | None = None,
) -> TorznabRequest:
    """The request that ``params`` (the query string: a plain mapping, a mapping to lists,
    or a MultiDict) make. ``header_api_key`` is an ``X-Api-Key`` header's value, which
    some clients send instead of ``apikey``.

    Returns the ``TorznabRequest``; raises ``TorznabError`` with the Newznab code the
    client should see. Parameters the API does not use (``rid``, ``tvmazeid``, ``cache``)
    are ignored, as other Newznab servers do."""
    name = _param(params, "t")
    if name is None:
        raise TorznabError(NewznabErrorCode.MISSING_PARAMETER, "t")
    function = _FUNCTIONS.get(name)
    if function is None:
        raise TorznabError(NewznabErrorCode.NO_SUCH_FUNCTION, f"t={name[:64]}")
    given_key = _param(params, "apikey") or header_api_key
    _check_api_key(given_key, settings.api_key, required=function is not TorznabFunction.CAPS)
    output = _param(params, "o")
    if output is not None and output.lower() != "xml":
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, "o: only xml is served")
    if function is TorznabFunction.CAPS:
        return TorznabRequest(function)

    limit = _number("limit", _param(params, "limit"))
    if limit is None:
        limit = settings.limit_default
    elif limit < 1:
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, "limit must be at least 1")
    offset = _number("offset", _param(params, "offset")) or 0
    if offset > settings.max_offset:
        raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, f"offset beyond {settings.max_offset}")

    season = episode = None
    air_date = None
    if function is TorznabFunction.TV_SEARCH:
        season, episode, air_date = _episode(_number("season", _param(params, "season")), _param(params, "ep"))
    attrs_text = _param(params, "attrs")
    attrs = None
    if attrs_text is not None:
        names = [part.strip().lower() for part in attrs_text.split(",") if part.strip()]
        if len(names) > MAX_ATTRS or not all(_ATTR_NAME.fullmatch(part) for part in names):
            raise TorznabError(NewznabErrorCode.INCORRECT_PARAMETER, "attrs must be a list of attribute names")
        attrs = frozenset(names)
    query = TorznabQuery(
        text=_query_text(_param(params, "q")),
        categories=_categories(_param(params, "cat"), settings.categories),
        season=season,
        episode=episode,
        air_date=air_date,
        imdb_id=_imdb_id(_param(params, "imdbid")),
        tmdb_id=_number("tmdbid", _param(params, "tmdbid")),
        tvdb_id=_number("tvdbid", _param(params, "tvdbid")),
        # Newznab's limit is an upper bound: more than the advertised maximum gets the maximum.
        limit=min(limit, settings.limit_max),
        offset=offset,
    )
    return TorznabRequest(function, query, extended=_flag("extended", _param(params, "extended")), attrs=attrs)


def render_caps(settings: TorznabSettings) -> bytes:
    """The ``t=caps`` document: server, limits, searching modes and categories.

    The shape is Jackett's ``TorznabCapabilities.ToXml`` and what Prowlarr's
    ``NewznabCapabilitiesProvider`` reads: ``limits`` with both ``default`` and ``max``,
    ``available="yes|no"`` and ``supportedParams`` per mode, ``audio-search`` beside
    ``music-search`` (Prowlarr reads the former, Newznab names the latter), and
    ``category``/``subcat`` elements with ``id`` and ``name``."""
    root = ET.Element("caps")
    sub(root, "server", title=settings.title, url=settings.url)
    sub(root, "limits", default=settings.limit_default, max=settings.limit_max)
    sub(root, "registration", available="no", open="no")
    searching = sub(root, "searching")
    movie_params = "q,imdbid" if settings.imdb_search else "q"
    modes = [
        ("search", "q"),
        ("tv-search", "q,season,ep"),
        ("movie-search", movie_params),
        ("music-search", "q"),
        ("audio-search", "q"),
        ("book-search", "q"),
    ]
    for mode, supported in modes:
        sub(searching, mode, available="yes", supportedParams=supported)
    categories = sub(root, "categories")
    for parent, children in settings.categories.caps_tree():
        element = sub(categories, "category", id=parent.id, name=parent.name)
        for child in children:
            sub(element, "subcat", id=child.id, name=child.name)
    return serialize(root)


def render_results(
    channel: FeedChannel,
    items: Sequence[FeedItem],
    request: TorznabRequest,
    settings: TorznabSettings,
    *,
    total: int,
) -> bytes:
    """The results document for one page of ``items`` of ``total`` matches.

    Raises UsageError for a caps request or a page longer than the request's limit."""
    query = request.query
    if query is None:
        raise UsageError("t=caps is answered by render_caps, not render_results")
    if len(items) > query.limit:
        raise UsageError(f"a page holds at most {query.limit} items, got {len(items)}")
    rss = ET.Element("rss", {"version": "2.0", "xmlns:atom": ATOM_NS, "xmlns:torznab": TORZNAB_NS})
    element = sub(rss, "channel")
    sub(element, "atom:link", href=channel.self_url, rel="self", type=RSS_MIME_TYPE)
    sub(element, "title", channel.title)
    sub(element, "description", channel.description)
    sub(element, "link", channel.link)
    if channel.language:
        sub(element, "language", channel.language)
    sub(element, "torznab:response", offset=query.offset, total=max(total, query.offset + len(items)))
    for item in items:
        _result_item(element, item, request, settings.categories)
    return serialize(rss)


def _attr(item: ET.Element, request: TorznabRequest, name: str, value: str | int | None) -> None:
    if value is not None and request.wants(name):
        sub(item, "torznab:attr", name=name, value=value)


def _result_item(channel: ET.Element, item: FeedItem, request: TorznabRequest, categories: CategoryMap) -> None:
    numbers = categories.numbers_for(item.category)
    download = item.torrent_url if item.torrent_url is not None else item.magnet_uri
    element = sub(channel, "item")
    sub(element, "title", item.title)
    sub(element, "guid", item.page_url)
    sub(element, "comments", item.page_url)
    sub(element, "pubDate", rfc822_date(item.published))
    if item.size is not None:
        sub(element, "size", item.size)
    if item.file_count is not None:
        sub(element, "files", item.file_count)
    if item.completed is not None:
        sub(element, "grabs", item.completed)
    if item.description:
        sub(element, "description", item.description)
    sub(element, "link", download)
    for number in numbers:
        sub(element, "category", number)
    # The enclosure's length is the content's size, as Jackett writes it and Prowlarr's
    # GetSize falls back to; left out while unknown.
    sub(element, "enclosure", url=download, length=item.size, type=TORRENT_MIME_TYPE)
    for number in numbers:
        _attr(element, request, "category", number)
    _attr(element, request, "size", item.size)
    _attr(element, request, "files", item.file_count)
    _attr(element, request, "grabs", item.completed)
    _attr(element, request, "infohash", client_info_hash(item))
    _attr(element, request, "magneturl", item.magnet_uri)
    _attr(element, request, "seeders", item.seeders)
    _attr(element, request, "leechers", item.leechers)
    _attr(element, request, "peers", item.peers)
    if any(number // 1000 == 5 for number in numbers):  # TV: Newznab's 5000 range
        release = parse_release_name(item.title)
        if len(release.seasons) == 1:
            _attr(element, request, "season", release.seasons[0])
        if len(release.episodes) == 1:
            _attr(element, request, "episode", release.episodes[0])
