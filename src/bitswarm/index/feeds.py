"""RSS 2.0 feeds of the newest entries (all, per category, per search), with the
``torrent:`` namespace (ezRSS, ``http://xmlns.ezrss.it/0.1/``) that torrent clients read.

The web route selects the entries and describes each as a ``FeedItem``; ``render_rss``
turns them into the document. Nothing here reads a clock or a database.

An item carries:

- ``title``, ``link`` (the entry's page), ``description`` (plain text), ``category`` (the
  site's slug), ``pubDate`` (RFC 822, UTC);
- ``guid``: the info-hash as a URN (``urn:btih:<v1 hex>``, or ``urn:btmh:1220<v2 hex>``
  for a v2-only torrent), ``isPermaLink="false"``. It names the torrent itself, so it
  stays the same when the site moves or the entry is edited, and a reader never offers
  the same torrent twice;
- ``enclosure``: the .torrent download, with the .torrent file's length in bytes and
  ``type="application/x-bittorrent"``;
- ``torrent:infoHash``, ``torrent:magnetURI``, ``torrent:contentLength`` (the content's
  bytes), ``torrent:fileName`` (the .torrent's file name), and ``torrent:seeds`` and
  ``torrent:peers`` when the counts are known. ``torrent:peers`` counts seeders and
  leechers together, as Torznab's ``peers`` does. Unknown counts are left out, never 0.

Entries waiting for metadata (added by magnet link; no .torrent yet) are items without an
enclosure: an enclosure of type ``application/x-bittorrent`` promises a .torrent file and
RSS 2.0 requires its byte length, and neither exists yet. Their magnet link is in
``torrent:magnetURI``, which torrent clients' RSS readers take, and their content length
is left out. Once the metadata arrives the item gains its enclosure under the same guid.

The info-hash clients are told (``client_info_hash``) is the v1 hash, and for a v2-only
torrent the v2 hash truncated to 20 bytes: BEP 52 uses that truncation wherever a 20-byte
id is needed (tracker, DHT, handshake), and it is the id libtorrent-based clients list the
torrent under, which is what Sonarr and Radarr compare a grabbed release with.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bitswarm.errors import UsageError
from bitswarm.index.feedxml import ATOM_NS, rfc822_date, serialize, sub

EZRSS_NS = "http://xmlns.ezrss.it/0.1/"
TORRENT_MIME_TYPE = "application/x-bittorrent"
RSS_MIME_TYPE = "application/rss+xml"
# A feed is a page of the newest entries, not an export: the route pages, we refuse more.
MAX_FEED_ITEMS = 500

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SHA256_MULTIHASH_PREFIX = "1220"


@dataclass(frozen=True, slots=True)
class FeedChannel:
    """The feed itself: its ``title``, the page it mirrors (``link``), its own address
    (``self_url``, for ``atom:link rel="self"``), a one-line ``description`` and an
    optional ``language`` tag ("en")."""

    title: str
    link: str
    self_url: str
    description: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry as the feeds show it, for RSS and Torznab alike.

    - ``title``, ``page_url`` (the entry's page), ``magnet_uri``; ``published`` is the time
      the entry was added, timezone-aware.
    - ``torrent_url`` and ``torrent_bytes_length``: the .torrent download and its size in
      bytes; both None while the entry waits for metadata.
    - ``info_hash_v1_hex`` / ``info_hash_v2_hex``: lowercase hex (40 and 64 digits); at
      least one is set.
    - ``size``: the content's total bytes, ``file_count`` its files; None while unknown.
    - ``category``: the site's category slug ("tv/hd"), or None.
    - ``description``: plain text (readers show it as text, markup included).
    - ``seeders``, ``leechers``, ``completed``: swarm counts; None means unknown and the
      feed leaves the field out rather than claim 0.
    - ``torrent_file_name``: the .torrent's file name for ``torrent:fileName``; None lets
      the feed leave it out.

    Raises UsageError when the values contradict each other (a .torrent URL without its
    length, no info-hash, malformed hex, negative counts, a naive ``published``)."""

    title: str
    page_url: str
    magnet_uri: str
    published: datetime
    torrent_url: str | None = None
    torrent_bytes_length: int | None = None
    info_hash_v1_hex: str | None = None
    info_hash_v2_hex: str | None = None
    size: int | None = None
    file_count: int | None = None
    category: str | None = None
    description: str = ""
    seeders: int | None = None
    leechers: int | None = None
    completed: int | None = None
    torrent_file_name: str | None = None

    def __post_init__(self) -> None:
        if (self.torrent_url is None) != (self.torrent_bytes_length is None):
            raise UsageError("a feed item's torrent_url and torrent_bytes_length go together")
        if self.info_hash_v1_hex is None and self.info_hash_v2_hex is None:
            raise UsageError("a feed item needs a v1 or a v2 info-hash")
        if self.info_hash_v1_hex is not None and not _HEX40.fullmatch(self.info_hash_v1_hex):
            raise UsageError(f"info_hash_v1_hex must be 40 lowercase hex digits, got {self.info_hash_v1_hex!r}")
        if self.info_hash_v2_hex is not None and not _HEX64.fullmatch(self.info_hash_v2_hex):
            raise UsageError(f"info_hash_v2_hex must be 64 lowercase hex digits, got {self.info_hash_v2_hex!r}")
        for name in ("torrent_bytes_length", "size", "file_count", "seeders", "leechers", "completed"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"a feed item's {name} cannot be negative, got {value}")
        rfc822_date(self.published)  # raises for a naive datetime

    @property
    def is_waiting_for_metadata(self) -> bool:
        return self.torrent_url is None

    @property
    def peers(self) -> int | None:
        """Seeders and leechers together, or None unless both are known."""
        if self.seeders is None or self.leechers is None:
            return None
        return self.seeders + self.leechers


def client_info_hash(item: FeedItem) -> str:
    """The 40-hex info-hash clients know the torrent by: v1, else v2 truncated to 20 bytes."""
    if item.info_hash_v1_hex is not None:
        return item.info_hash_v1_hex
    assert item.info_hash_v2_hex is not None  # FeedItem guarantees one of the two
    return item.info_hash_v2_hex[:40]


def item_guid(item: FeedItem) -> str:
    """The item's stable guid: the torrent's info-hash as a URN (v1 preferred)."""
    if item.info_hash_v1_hex is not None:
        return "urn:btih:" + item.info_hash_v1_hex
    assert item.info_hash_v2_hex is not None
    return "urn:btmh:" + _SHA256_MULTIHASH_PREFIX + item.info_hash_v2_hex


def render_rss(channel: FeedChannel, items: Sequence[FeedItem]) -> bytes:
    """The RSS 2.0 document for ``items`` (newest first, as given), UTF-8 encoded.

    ``lastBuildDate`` is the newest item's date (the feed changes only when an entry
    comes), so no clock is read. Raises UsageError for more than ``MAX_FEED_ITEMS``."""
    if len(items) > MAX_FEED_ITEMS:
        raise UsageError(f"a feed holds at most {MAX_FEED_ITEMS} items, got {len(items)}")
    rss = ET.Element("rss", {"version": "2.0", "xmlns:atom": ATOM_NS, "xmlns:torrent": EZRSS_NS})
    element = sub(rss, "channel")
    sub(element, "title", channel.title)
    sub(element, "link", channel.link)
    sub(element, "description", channel.description)
    if channel.language:
        sub(element, "language", channel.language)
    sub(element, "atom:link", href=channel.self_url, rel="self", type=RSS_MIME_TYPE)
    if items:
        sub(element, "lastBuildDate", rfc822_date(max(item.published for item in items)))
    for item in items:
        _rss_item(element, item)
    return serialize(rss)


def _rss_item(channel: ET.Element, item: FeedItem) -> None:
    element = sub(channel, "item")
    sub(element, "title", item.title)
    sub(element, "link", item.page_url)
    sub(element, "guid", item_guid(item), isPermaLink="false")
    sub(element, "pubDate", rfc822_date(item.published))
    if item.description:
        sub(element, "description", item.description)
    if item.category is not None:
        sub(element, "category", item.category)
    if item.torrent_url is not None:
        sub(element, "enclosure", url=item.torrent_url, length=item.torrent_bytes_length, type=TORRENT_MIME_TYPE)
    sub(element, "torrent:infoHash", client_info_hash(item))
    sub(element, "torrent:magnetURI", item.magnet_uri)
    if item.size is not None:
        sub(element, "torrent:contentLength", item.size)
    if item.torrent_file_name is not None:
        sub(element, "torrent:fileName", item.torrent_file_name)
    if item.seeders is not None:
        sub(element, "torrent:seeds", item.seeders)
    if item.peers is not None:
        sub(element, "torrent:peers", item.peers)
