"""A feed document (RSS 2.0, Atom) read into the torrents it offers.

The XML is read by feedparser, from bytes bitswarm fetched itself: feedparser is never
given a URL, so it never fetches anything. Before it sees the bytes, a document declaring
entities (``<!ENTITY`` in a DOCTYPE) is refused: feeds have no use for them, and they are
how an XML bomb starts. (feedparser already drops entity declarations whose values refer
to other entities and expat caps amplification at 100x past 8 MiB, but a quadratic bomb of
one large entity referred to many times stays under both; refusing is one check with no
exceptions.) A document that is not well-formed is refused too, rather than read by
feedparser's loose fallback, which may find other items than the publisher meant.

Each item's torrent is taken, in this order, from: an enclosure (or Atom link) of type
``application/x-bittorrent``, a link ending in ``.torrent``; its magnet link from the ezRSS
``torrent:magnetURI``, or any link or enclosure that is a magnet link. The info-hash comes
from ``torrent:infoHash``, ``nyaa:infoHash``, the magnet link or a ``urn:btih:`` GUID; the
size from ``torrent:contentLength`` or ``nyaa:size`` ("1.4 GiB"), never from the enclosure's
length (that is the .torrent file's). Sans-IO.
"""

from __future__ import annotations

import base64
import functools
import re
import xml.sax
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from bitswarm import magnet
from bitswarm.errors import FeedError, MetainfoError

TORRENT_MIME_TYPE = "application/x-bittorrent"
EZRSS_NS = "http://xmlns.ezrss.it/0.1/"
NYAA_NS = "https://nyaa.si/xmlns/nyaa"
# A feed is a page of the newest releases: trackers send 50 to 100. More is read no further.
MAX_FEED_ITEMS = 1000
# Release names are under 255 characters; a longer title is cut, not trusted whole.
MAX_TITLE_CHARS = 512
# A link longer than this is not a torrent's address (magnet links are capped the same way).
MAX_URL_CHARS = magnet.MAX_MAGNET_LENGTH
# How long a feed may ask us to wait (ttl), so that a typo cannot silence a feed for years.
MAX_TTL_S = 7 * 24 * 3600


_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_HEX_HASH = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_BASE32_HASH = re.compile(r"[A-Za-z2-7]{32}")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@functools.cache
def _feedparser() -> Any:
    """feedparser, imported with the first feed read: a daemon without subscriptions never
    needs its megabyte."""
    import feedparser  # type: ignore[import-untyped]  # noqa: PLC0415
    from feedparser.mixin import _FeedParserMixin  # type: ignore[import-untyped]  # noqa: PLC0415

    # feedparser names elements of namespaces it does not know by the prefix the document
    # chose; registering the two torrent namespaces makes their keys the same in every feed.
    _FeedParserMixin.namespaces.setdefault(EZRSS_NS, "torrent")
    _FeedParserMixin.namespaces.setdefault(NYAA_NS, "nyaa")
    return feedparser


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One release a feed offers. ``info_hash`` is lower-case hex (v1, or v2 for a v2-only
    torrent) when the feed gives it; ``torrent_url`` is the .torrent's address and
    ``magnet_uri`` the magnet link (at least one of the two is set); ``size_bytes`` is the
    content's size when the feed gives it; ``guid`` is the item's id, else its link."""

    title: str
    guid: str
    info_hash: str | None = None
    torrent_url: str | None = None
    magnet_uri: str | None = None
    size_bytes: int | None = None

    def dedup_keys(self) -> tuple[str, ...]:
        """The keys under which the seen-database remembers this item: info-hash and GUID."""
        keys = [f"guid:{self.guid}"] if self.guid else []
        if self.info_hash:
            keys.append(f"btih:{self.info_hash}")
        return tuple(keys)


@dataclass(frozen=True, slots=True)
class Feed:
    """What one poll read: the items that carry a torrent, the feed's ``ttl`` (seconds,
    when it gives one) and how many items were left out (no torrent link, over the cap)."""

    items: tuple[FeedItem, ...]
    ttl_s: int | None = None
    items_without_torrent: int = 0
    items_over_limit: int = 0


def parse_feed(body: bytes, url: str = "") -> Feed:
    """Read an RSS 2.0 or Atom document; relative links resolve against ``url``.

    Raises ``FeedError`` for entity declarations, malformed XML, or a document that is not
    a feed."""
    if _ENTITY_DECLARATION.search(body):
        raise FeedError("the document declares XML entities (refused: no feed needs them)")
    # response_headers only tells feedparser the document's base for relative links.
    parsed = _feedparser().parse(body, response_headers={"content-location": url} if url else {})
    problem = parsed.get("bozo_exception")
    if isinstance(problem, xml.sax.SAXException):
        raise FeedError(f"malformed XML: {problem}")
    if not parsed.get("version"):
        raise FeedError("not an RSS or Atom feed")
    entries: list[Any] = parsed.get("entries", [])
    items: list[FeedItem] = []
    without_torrent = 0
    for entry in entries[:MAX_FEED_ITEMS]:
        item = _item(entry, url)
        if item is None:
            without_torrent += 1
        else:
            items.append(item)
    return Feed(
        items=tuple(items),
        ttl_s=_ttl_s(parsed.get("feed", {}).get("ttl")),
        items_without_torrent=without_torrent,
        items_over_limit=max(0, len(entries) - MAX_FEED_ITEMS),
    )


def _ttl_s(value: object) -> int | None:
    # RSS 2.0: "ttl stands for time to live. It's a number of minutes".
    if not isinstance(value, str) or not value.strip().isdigit():
        return None
    return min(int(value.strip()) * 60, MAX_TTL_S)


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _url(value: object) -> str | None:
    text = _text(value)
    return text if text is not None and len(text) <= MAX_URL_CHARS else None


def _item(entry: Any, base_url: str) -> FeedItem | None:
    title = (_text(entry.get("title")) or "")[:MAX_TITLE_CHARS]
    links: list[dict[str, Any]] = [link for link in entry.get("links", []) if isinstance(link, dict)]
    # RSS wants absolute enclosure URLs, but feeds send relative ones, which feedparser keeps.
    hrefs = [
        (urljoin(base_url, href), str(link.get("type", "")).lower())
        for link in links
        if (href := _url(link.get("href")))
    ]
    main_link = _url(entry.get("link"))
    if main_link and all(href != main_link for href, _type in hrefs):
        hrefs.append((main_link, ""))

    torrent_url = next((href for href, kind in hrefs if kind == TORRENT_MIME_TYPE and _is_http(href)), None)
    if torrent_url is None:
        torrent_url = next((h for h, _kind in hrefs if _is_http(h) and _path(h).endswith(".torrent")), None)
    magnet_candidates = [_url(entry.get("torrent_magneturi"))] + [h for h, _kind in hrefs]
    magnet_uri = next((m for m in magnet_candidates if m and m.lower().startswith("magnet:?")), None)
    parsed_magnet = None
    if magnet_uri is not None:
        try:
            parsed_magnet = magnet.parse(magnet_uri)
        except MetainfoError:
            magnet_uri = None  # a magnet link that does not parse is no link
    if torrent_url is None and magnet_uri is None:
        return None

    guid = (_text(entry.get("id")) or torrent_url or magnet_uri or "")[:MAX_URL_CHARS]
    info_hash = (
        _hash(entry.get("torrent_infohash"))
        or _hash(entry.get("nyaa_infohash"))
        or _magnet_hash(parsed_magnet)
        or (_hash(guid[len("urn:btih:") :]) if guid.lower().startswith("urn:btih:") else None)
    )
    size = _size(entry.get("torrent_contentlength")) or _size(entry.get("nyaa_size"))
    return FeedItem(title, guid, info_hash, torrent_url, magnet_uri, size)


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _path(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0].lower()


def _hash(value: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    if _HEX_HASH.fullmatch(text):
        return text.lower()
    if _BASE32_HASH.fullmatch(text):
        return base64.b32decode(text.upper()).hex()
    return None


def _magnet_hash(link: magnet.Magnet | None) -> str | None:
    if link is None:
        return None
    digest = link.info_hash_v1 or link.info_hash_v2
    return digest.hex() if digest is not None else None


def _size(value: object) -> int | None:
    """'1234', '1.4 GiB', '700 MiB', '2 GB' -> bytes (binary units, as nyaa means them)."""
    text = _text(value)
    if text is None or len(text) > 32:
        return None
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
