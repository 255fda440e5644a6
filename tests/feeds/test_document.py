"""Feed documents read into items: where the torrent, its hash and size come from, and
the documents refused before or by the XML parser."""

from __future__ import annotations

import time

import pytest

from bitswarm.errors import FeedError
from bitswarm.feeds.document import MAX_FEED_ITEMS, parse_feed
from feeds.support import BILLION_LAUGHS, rss

HASH = "0123456789abcdef0123456789abcdef01234567"


def test_an_ezrss_item_gives_its_enclosure_hash_size_and_the_feeds_ttl() -> None:
    body = rss(
        [
            {
                "title": "A.S01E01",
                "guid": "g",
                "enclosure": "/dl/a.torrent?passkey=k",
                "hash": HASH.upper(),
                "size": "1234",
            }
        ],
        ttl_min=30,
    )
    feed = parse_feed(body, "http://127.0.0.1:8080/rss")
    (item,) = feed.items
    assert item.torrent_url == "http://127.0.0.1:8080/dl/a.torrent?passkey=k"
    assert (item.info_hash, item.size_bytes, item.guid, feed.ttl_s) == (HASH, 1234, "g", 1800)


def test_a_nyaa_item_gives_its_hash_and_size_in_binary_units() -> None:
    body = f"""<?xml version="1.0"?><rss version="2.0" xmlns:nyaa="https://nyaa.si/xmlns/nyaa"><channel><title>n</title>
<item><title>[SubsPlease] One Piece - 1071 (1080p) [ABCD1234].mkv</title><link>https://nyaa.si/download/1.torrent</link>
<guid isPermaLink="true">https://nyaa.si/view/1</guid><nyaa:infoHash>{HASH}</nyaa:infoHash>
<nyaa:size>1.5 GiB</nyaa:size></item></channel></rss>""".encode()
    (item,) = parse_feed(body).items
    assert (item.torrent_url, item.info_hash, item.size_bytes) == ("https://nyaa.si/download/1.torrent", HASH, 3 << 29)


def test_an_atom_entry_gives_its_enclosure_link_and_magnet() -> None:
    body = f"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:t</id>
<updated>2024-01-01T00:00:00Z</updated><entry><title>B.S01E02</title><id>urn:entry:2</id><updated>2024-01-01T00:00:00Z</updated>
<link rel="enclosure" type="application/x-bittorrent" href="http://127.0.0.1/b.torrent"/>
<link href="magnet:?xt=urn:btih:{HASH}&amp;dn=B"/></entry></feed>""".encode()
    (item,) = parse_feed(body).items
    assert (item.torrent_url, item.magnet_uri, item.info_hash, item.guid) == (
        "http://127.0.0.1/b.torrent",
        f"magnet:?xt=urn:btih:{HASH}&dn=B",
        HASH,
        "urn:entry:2",
    )


def test_items_without_a_torrent_are_counted_and_left_out() -> None:
    body = rss([{"title": "news", "guid": "n"}, {"title": "C", "guid": "c", "magnet": f"magnet:?xt=urn:btih:{HASH}"}])
    feed = parse_feed(body)
    assert [item.title for item in feed.items] == ["C"]
    assert feed.items_without_torrent == 1


def test_a_feed_is_read_up_to_its_item_limit() -> None:
    items = [
        {"title": f"T{n}", "guid": str(n), "magnet": f"magnet:?xt=urn:btih:{HASH}"} for n in range(MAX_FEED_ITEMS + 5)
    ]
    feed = parse_feed(rss(items))
    assert len(feed.items) == MAX_FEED_ITEMS
    assert feed.items_over_limit == 5


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        # A quadratic bomb: one large entity used many times passes feedparser's and expat's guards.
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + b"a" * 100_000 + b'">]><rss version="2.0"><channel>'
        b"<title>t</title><item><title>" + b"&a;" * 20_000 + b"</title></item></channel></rss>",
    ],
    ids=["billion-laughs", "quadratic"],
)
def test_an_xml_bomb_is_refused_before_parsing_at_once(body: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(FeedError, match="declares XML entities"):
        parse_feed(body)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</channel></rss>', "malformed XML"),
        (b"<html><body>login</body></html>", "malformed XML|not an RSS or Atom feed"),
        (b'<?xml version="1.0"?><root><a>b</a></root>', "not an RSS or Atom feed"),
    ],
)
def test_a_broken_document_is_a_feed_error(body: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_feed(body)
