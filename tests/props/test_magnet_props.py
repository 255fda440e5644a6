"""Property tests for magnet links (BEP 9, BEP 53, BEP 52 ``urn:btmh``).

``parse(m.format()) == m`` for every link in normal form (trackers and web seeds unique,
``so`` indices sorted and unique, names non-empty); anything after ``magnet:?`` parses
or raises ``MetainfoError``; a parsed link carries only whole 20- and 32-byte hashes.
"""

from __future__ import annotations

import base64
import ipaddress
import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bitswarm import magnet
from bitswarm.errors import MetainfoError
from bitswarm.magnet import Magnet

V1_HASHES = st.binary(min_size=20, max_size=20)
V2_HASHES = st.binary(min_size=32, max_size=32)
HEX_V1 = "00112233445566778899aabbccddeeff00112233"


def _is_url_text(text: str) -> bool:
    # What parse keeps of a tr/ws value: stripped, non-empty, no control character (C0, DEL, C1).
    return bool(text) and text == text.strip() and all(unicodedata.category(char) != "Cc" for char in text)


def urls(schemes: list[str]) -> st.SearchStrategy[str]:
    """URLs a link keeps: other schemes are left out with a warning (issue 16)."""
    return st.builds(
        "{}://{}:{}/{}".format,
        st.sampled_from(schemes),
        st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,2}", fullmatch=True),
        st.integers(min_value=1, max_value=65535),
        st.text(max_size=15),
    ).filter(_is_url_text)


TRACKER_URLS = urls(["http", "https", "udp"])
WEB_SEED_URLS = urls(["http", "https"])

HOSTNAMES = st.from_regex(
    r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}", fullmatch=True
)
HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=6).map(lambda address: address.exploded),
    HOSTNAMES,
)
PEERS = st.tuples(HOSTS, st.integers(min_value=1, max_value=65535))


@st.composite
def magnets(draw: st.DrawFn) -> Magnet:
    """A Magnet in the normal form that parse produces."""
    v1 = draw(st.none() | V1_HASHES)
    v2 = draw(V2_HASHES) if v1 is None else draw(st.none() | V2_HASHES)
    return Magnet(
        info_hash_v1=v1,
        info_hash_v2=v2,
        display_name=draw(st.none() | st.text(min_size=1, max_size=40)),
        trackers=tuple(draw(st.lists(TRACKER_URLS, unique=True, max_size=4))),
        web_seeds=tuple(draw(st.lists(WEB_SEED_URLS, unique=True, max_size=3))),
        peers=tuple(draw(st.lists(PEERS, max_size=4))),
        select_only=tuple(sorted(draw(st.sets(st.integers(min_value=0, max_value=5000), max_size=20)))),
    )


@settings(max_examples=300)
@given(magnets())
def test_parse_inverts_format(link: Magnet) -> None:
    text = link.format()
    assert text.startswith("magnet:?")
    assert len(text) <= magnet.MAX_MAGNET_LENGTH
    assert magnet.parse(text) == link


@settings(max_examples=200)
@given(magnets(), st.data())
def test_normalised_parts_survive_repetition_and_reordering(link: Magnet, data: st.DataObject) -> None:
    # Repeat every tracker and web seed, and give 'so' unsorted and overlapping: the parse
    # is the normal form all the same.
    text = link.format()
    extra = ["tr=" + quote(url, safe="") for url in link.trackers]
    extra += ["ws=" + quote(url, safe="") for url in link.web_seeds]
    if link.select_only:
        shuffled = data.draw(st.permutations(list(link.select_only)))
        extra.append("so=" + ",".join(str(index) for index in shuffled))
    assert magnet.parse(text + "".join("&" + part for part in extra)) == link


@settings(max_examples=200)
@given(V1_HASHES)
def test_base32_btih_parses_to_the_same_bytes_as_hex(digest: bytes) -> None:
    b32 = base64.b32encode(digest).decode()
    assert len(b32) == 32
    forms = [digest.hex(), digest.hex().upper(), b32, b32.lower()]
    for form in forms:
        parsed = magnet.parse("magnet:?xt=urn:btih:" + form)
        assert parsed.info_hash_v1 == digest
        assert parsed.info_hash_v2 is None


@settings(max_examples=100)
@given(V1_HASHES, V2_HASHES)
def test_hybrid_link_carries_both_hashes_in_either_order(v1: bytes, v2: bytes) -> None:
    btih = "xt=urn:btih:" + v1.hex()
    btmh = "xt=urn:btmh:1220" + v2.hex()
    for query in (f"{btih}&{btmh}", f"{btmh}&{btih}", f"{btih}&{btmh}&{btih}"):
        parsed = magnet.parse("magnet:?" + query)
        assert (parsed.info_hash_v1, parsed.info_hash_v2) == (v1, v2)


# Fragments that look like the real thing, so that random links reach every branch.
KEYS = st.sampled_from(["xt", "XT", "xt.1", "dn", "tr", "tr.2", "ws", "x.pe", "X.PE", "so", "kt", "", "="])
VALUES = st.one_of(
    st.sampled_from(
        [
            "urn:btih:" + HEX_V1,
            "urn:btih:" + "A" * 32,
            "urn:btih:" + "a" * 32,
            "urn:btmh:1220" + "ab" * 32,
            "urn:btmh:1114" + "ab" * 32,
            "urn:sha1:abc",
            "[::1]:6881",
            "1.2.3.4:6881",
            "host:0",
            "host:99999",
            "0-3,5",
            "3-1",
            "0-99999999",
            "%",
            "%zz",
            "%ff",
            "%00",
            "+",
        ]
    ),
    st.builds("urn:btih:{}".format, st.text(alphabet="0123456789abcdefABCDEF =%20", min_size=30, max_size=42)),
    st.builds("urn:btmh:{}".format, st.text(alphabet="0123456789abcdef =", min_size=60, max_size=70)),
    # Digits of every script, including ones str.isdigit accepts and int() does not.
    st.text(alphabet=st.one_of(st.sampled_from("0123456789-,"), st.characters(categories=["Nd", "No"])), max_size=12),
    st.text(max_size=20),
)
PAIRS = st.builds(lambda key, value, with_equals: f"{key}={value}" if with_equals else key, KEYS, VALUES, st.booleans())
QUERIES = st.one_of(st.lists(PAIRS, max_size=8).map("&".join), st.text(max_size=200))


def _check_parsed(parsed: Magnet) -> None:
    assert parsed.info_hash_v1 is not None or parsed.info_hash_v2 is not None
    # A malformed hash is refused, never cut short: the hashes are whole or absent.
    assert parsed.info_hash_v1 is None or len(parsed.info_hash_v1) == 20
    assert parsed.info_hash_v2 is None or len(parsed.info_hash_v2) == 32
    assert len(set(parsed.trackers)) == len(parsed.trackers)
    assert all(_is_url_text(url) for url in (*parsed.trackers, *parsed.web_seeds))
    assert list(parsed.select_only) == sorted(set(parsed.select_only))
    assert len(parsed.select_only) <= magnet.MAX_SELECTED_FILES
    assert all(0 < port < 65536 for _, port in parsed.peers)


# Reproducers of bugs found by this property (see the report that came with this file).
SO_SUPERSCRIPT = f"xt=urn:btih:{HEX_V1}&so=\u00b2"
SO_HUGE_NUMBER = f"xt=urn:btih:{HEX_V1}&so=" + "1" * 5000
BTIH_WITH_SPACES = "xt=urn:btih:" + "00" * 18 + "%20%2000"
BTIH_BASE32_PADDED = "xt=urn:btih:" + "A" * 28 + "===="


@settings(max_examples=500)
@given(QUERIES)
@example(SO_SUPERSCRIPT)
@example(SO_HUGE_NUMBER)
@example(BTIH_WITH_SPACES)
@example(BTIH_BASE32_PADDED)
def test_any_query_parses_or_raises_metainfo_error(query: str) -> None:
    text = "magnet:?" + query
    try:
        parsed = magnet.parse(text)
    except MetainfoError as error:
        field = error.field
    else:
        _check_parsed(parsed)
        return
    assert field  # the error names the parameter at fault


@pytest.mark.parametrize(
    "query", [BTIH_WITH_SPACES, BTIH_BASE32_PADDED], ids=["btih-hex-with-spaces", "btih-base32-padding"]
)
def test_known_malformed_links_are_refused(query: str) -> None:
    with pytest.raises(MetainfoError):
        magnet.parse("magnet:?" + query)


@pytest.mark.parametrize("query", [SO_SUPERSCRIPT, SO_HUGE_NUMBER], ids=["so-superscript-digit", "so-5000-digit-index"])
def test_known_malformed_ranges_are_left_out_with_a_warning(query: str) -> None:
    parsed = magnet.parse("magnet:?" + query)
    assert parsed.select_only == ()
    assert [warning.split(":")[0] for warning in parsed.warnings] == ["so"]


@settings(max_examples=200)
@given(st.text(max_size=100))
def test_text_without_the_magnet_prefix_is_refused(text: str) -> None:
    if text.lower().startswith("magnet:?"):
        return
    with pytest.raises(MetainfoError):
        magnet.parse(text)


def test_overlong_link_is_refused() -> None:
    with pytest.raises(MetainfoError, match="longer than"):
        magnet.parse("magnet:?xt=urn:btih:" + HEX_V1 + "&dn=" + "a" * magnet.MAX_MAGNET_LENGTH)


@settings(max_examples=100)
@given(st.ip_addresses(v=6), st.integers(min_value=1, max_value=65535))
def test_ipv6_peers_keep_their_address(address: ipaddress.IPv6Address, port: int) -> None:
    link = Magnet(info_hash_v1=bytes(20), peers=((str(address), port),))
    ((host, parsed_port),) = magnet.parse(link.format()).peers
    assert ipaddress.IPv6Address(host) == address
    assert parsed_port == port
