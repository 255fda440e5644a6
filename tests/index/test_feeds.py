"""RSS feeds as a feed reader sees them: parsed by the real ``feedparser`` and ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import feedparser  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitswarm.errors import UsageError
from bitswarm.index.feeds import (
    EZRSS_NS,
    MAX_FEED_ITEMS,
    FeedChannel,
    FeedItem,
    client_info_hash,
    render_rss,
)
from bitswarm.index.feedxml import xml_text

V1 = "0123456789abcdef0123456789abcdef01234567"
V2 = "ab" * 32
CHANNEL = FeedChannel(
    title="bitswarm: newest",
    link="http://127.0.0.1:8080/",
    self_url="http://127.0.0.1:8080/rss",
    description="The newest torrents",
    language="en",
)
PUBLISHED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def make_item(**changes: object) -> FeedItem:
    item = FeedItem(
        title="Ubuntu 24.04 Desktop amd64",
        page_url="http://127.0.0.1:8080/t/1",
        magnet_uri=f"magnet:?xt=urn:btih:{V1}&dn=ubuntu&tr=http%3A%2F%2F127.0.0.1%3A8080%2Fannounce",
        published=PUBLISHED,
        torrent_url="http://127.0.0.1:8080/t/1.torrent",
        torrent_bytes_length=123_456,
        info_hash_v1_hex=V1,
        size=6_000_000_000,
        file_count=1,
        category="software/iso",
        description="The desktop image.",
        seeders=10,
        leechers=3,
        completed=99,
        torrent_file_name="ubuntu-24.04-desktop-amd64.iso.torrent",
    )
    return replace(item, **changes)  # type: ignore[arg-type]


def parse_xml(document: bytes) -> ET.Element:
    """Our own output, parsed strictly (it has no DTD, so no entity to expand)."""
    return ET.fromstring(document)  # noqa: S314


def read(document: bytes) -> feedparser.FeedParserDict:
    parse_xml(document)  # a strict XML parser accepts it too
    feed = feedparser.parse(document)
    assert feed.bozo == 0, feed.get("bozo_exception")
    return feed


def test_a_reader_sees_the_channel_and_its_items() -> None:
    older = make_item(
        title="Older",
        page_url="http://127.0.0.1:8080/t/2",
        info_hash_v1_hex="f" * 40,
        published=PUBLISHED - timedelta(days=1),
    )
    feed = read(render_rss(CHANNEL, [make_item(), older]))
    assert feed.version == "rss20"
    assert feed.feed.title == "bitswarm: newest"
    assert feed.feed.link == "http://127.0.0.1:8080/"
    assert feed.feed.language == "en"
    assert any(link.rel == "self" and link.href == CHANNEL.self_url for link in feed.feed.links)
    assert feed.feed.updated_parsed[:6] == (2024, 5, 6, 7, 8, 9)  # lastBuildDate: the newest item
    assert [entry.title for entry in feed.entries] == ["Ubuntu 24.04 Desktop amd64", "Older"]
    entry = feed.entries[0]
    assert entry.link == "http://127.0.0.1:8080/t/1"
    assert entry.id == f"urn:btih:{V1}"
    assert entry.guidislink is False
    assert entry.published_parsed[:6] == (2024, 5, 6, 7, 8, 9)
    assert entry.summary == "The desktop image."
    assert [tag.term for tag in entry.tags] == ["software/iso"]
    assert entry.enclosures == [
        {"href": "http://127.0.0.1:8080/t/1.torrent", "length": "123456", "type": "application/x-bittorrent"}
    ]
    assert entry.torrent_infohash == V1
    assert entry.torrent_magneturi == make_item().magnet_uri
    assert entry.torrent_contentlength == "6000000000"
    assert entry.torrent_filename == "ubuntu-24.04-desktop-amd64.iso.torrent"
    assert entry.torrent_seeds == "10"
    assert entry.torrent_peers == "13"  # seeders and leechers together
    assert feed.namespaces["torrent"] == EZRSS_NS


def test_an_entry_waiting_for_metadata_has_its_magnet_but_no_enclosure() -> None:
    waiting = make_item(torrent_url=None, torrent_bytes_length=None, size=None, file_count=None, torrent_file_name=None)
    entry = read(render_rss(CHANNEL, [waiting])).entries[0]
    assert entry.enclosures == []
    assert entry.torrent_magneturi.startswith("magnet:?xt=urn:btih:")
    assert "torrent_contentlength" not in entry
    assert entry.link == waiting.page_url


def test_unknown_swarm_counts_are_left_out_and_a_real_zero_is_kept() -> None:
    unknown = read(render_rss(CHANNEL, [make_item(seeders=None, leechers=None)])).entries[0]
    assert "torrent_seeds" not in unknown
    assert "torrent_peers" not in unknown
    half_known = read(render_rss(CHANNEL, [make_item(seeders=4, leechers=None)])).entries[0]
    assert half_known.torrent_seeds == "4"
    assert "torrent_peers" not in half_known
    dead = read(render_rss(CHANNEL, [make_item(seeders=0, leechers=0)])).entries[0]
    assert (dead.torrent_seeds, dead.torrent_peers) == ("0", "0")


def test_a_v2_only_torrent_is_named_by_its_truncated_v2_hash() -> None:
    item = make_item(info_hash_v1_hex=None, info_hash_v2_hex=V2, magnet_uri=f"magnet:?xt=urn:btmh:1220{V2}")
    entry = read(render_rss(CHANNEL, [item])).entries[0]
    assert client_info_hash(item) == V2[:40]
    assert entry.torrent_infohash == V2[:40]
    assert entry.id == f"urn:btmh:1220{V2}"


def test_dates_in_other_zones_are_written_in_utc() -> None:
    item = make_item(published=datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2))))
    assert b"<pubDate>Mon, 06 May 2024 07:08:09 +0000</pubDate>" in render_rss(CHANNEL, [item])


def test_an_empty_feed_is_valid() -> None:
    feed = read(render_rss(CHANNEL, []))
    assert feed.entries == []
    assert "updated" not in feed.feed


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"published": datetime(2024, 1, 1)}, "time zone"),  # naive: no zone
        ({"torrent_bytes_length": None}, "go together"),
        ({"info_hash_v1_hex": None}, "info-hash"),
        ({"info_hash_v1_hex": V1.upper()}, "lowercase hex"),
        ({"seeders": -1}, "negative"),
    ],
)
def test_contradictory_items_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make_item(**changes)


def test_a_feed_is_a_page_not_an_export() -> None:
    with pytest.raises(UsageError, match=str(MAX_FEED_ITEMS)):
        render_rss(CHANNEL, [make_item()] * (MAX_FEED_ITEMS + 1))


HOSTILE = [
    "]]><script>alert(1)</script><![CDATA[",
    "<script>alert('x')</script>",
    "Tom & Jerry &amp; &lt; &#0; &bogus;",
    "</title></item></channel></rss><rss>",
    "quote \" apostrophe ' <!-- comment --> <?pi?>",
    "nul\x00byte and \x01\x02\x1b[31mcontrols\x7f\x85",
    "bidi \u202egnp.exe and \u2066isolate\u2069",
    "zero\u200bwidth\u200d\ufeffjoiners",
    "non-characters \ufffe\uffff and a lone \ud800 surrogate",
    "emoji \U0001f600 and CJK 漢字",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_in_every_field_makes_a_valid_feed_with_the_text(text: str) -> None:
    item = make_item(
        title=text,
        description=text,
        category=text,
        torrent_file_name=text,
        page_url="http://127.0.0.1:8080/t/1?" + text,
        magnet_uri=f"magnet:?xt=urn:btih:{V1}&dn={text}",
    )
    channel = replace(CHANNEL, title=text, description=text)
    document = render_rss(channel, [item])
    entry = read(document).entries[0]
    expected = xml_text(text)
    assert entry.title == expected.strip()
    assert entry.torrent_filename == expected.strip()
    root = parse_xml(document)
    assert root.findtext("channel/item/title") == expected
    assert root.findtext("channel/item/description") == expected
    assert root.findtext("channel/title") == expected


def test_a_100_kib_title_arrives_whole() -> None:
    title = ("Ünïcødé <&> ]]> " * 8000)[: 100 * 1024]
    entry = read(render_rss(CHANNEL, [make_item(title=title)])).entries[0]
    assert entry.title == title.strip()


_ANY_TEXT = st.text(max_size=200)


@settings(max_examples=200, deadline=None)
@given(title=_ANY_TEXT, description=_ANY_TEXT, category=_ANY_TEXT, url=_ANY_TEXT, channel_title=_ANY_TEXT)
def test_any_text_in_any_field_gives_xml_that_parses(
    title: str, description: str, category: str, url: str, channel_title: str
) -> None:
    item = make_item(
        title=title, description=description, category=category, page_url=url, magnet_uri=url, torrent_url=url
    )
    document = render_rss(replace(CHANNEL, title=channel_title, self_url=url), [item])
    root = parse_xml(document)
    # XML parsers turn a carriage return into a line feed; nothing else changes.
    assert root.findtext("channel/item/title") == xml_text(title).replace("\r\n", "\n").replace("\r", "\n")
