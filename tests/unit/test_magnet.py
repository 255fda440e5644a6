from __future__ import annotations

import base64

import pytest

from bitswarm import magnet
from bitswarm.errors import MetainfoError

V1 = bytes(range(20))
V2 = bytes(range(32))


def test_hex_and_base32_btih_give_the_same_hash() -> None:
    hex_link = magnet.parse(f"magnet:?xt=urn:btih:{V1.hex().upper()}")
    base32_link = magnet.parse(f"magnet:?xt=urn:btih:{base64.b32encode(V1).decode()}")
    assert hex_link.info_hash_v1 == base32_link.info_hash_v1 == V1


def test_hybrid_link_with_every_parameter_round_trips() -> None:
    text = (
        f"magnet:?xt=urn:btih:{V1.hex()}&xt=urn:btmh:1220{V2.hex()}&dn=My+Show%20S01"
        "&tr=http%3A%2F%2Ft1%2Fannounce&tr.1=udp%3A%2F%2Ft2%3A80&ws=http%3A%2F%2Fseed%2Ff"
        "&x.pe=10.0.0.1:6881&x.pe=[2001:db8::1]:51413&so=0,2,4-6"
    )
    link = magnet.parse(text)
    assert link.info_hash_v1 == V1
    assert link.info_hash_v2 == V2
    assert link.display_name == "My Show S01"
    assert link.trackers == ("http://t1/announce", "udp://t2:80")
    assert link.web_seeds == ("http://seed/f",)
    assert link.peers == (("10.0.0.1", 6881), ("2001:db8::1", 51413))
    assert link.select_only == (0, 2, 4, 5, 6)
    assert magnet.parse(link.format()) == link
    assert "so=0,2,4-6" in link.format()


def test_v2_only_link_parses() -> None:
    link = magnet.parse(f"magnet:?xt=urn:btmh:1220{V2.hex()}")
    assert (link.info_hash_v1, link.info_hash_v2) == (None, V2)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("http://example.com/", "magnet"),
        ("magnet:?dn=nothing", "xt"),
        ("magnet:?xt=urn:sha1:ABCDEF", "xt"),
        ("magnet:?xt=urn:btih:1234", "xt"),
        ("magnet:?xt=urn:btih:" + "g" * 40, "xt"),
        ("magnet:?xt=urn:btih:" + "1" * 32, "xt"),
        ("magnet:?xt=urn:btmh:1114" + "00" * 20, "xt"),
        ("magnet:?xt=urn:btmh:1220" + "00" * 31, "xt"),
        (f"magnet:?xt=urn:btih:{V1.hex()}&xt=urn:btih:{bytes(20).hex()}", "xt"),
        ("magnet:?xt=urn:btih:" + V1.hex() + "&tr=x" * 600, "magnet"),
    ],
)
def test_malformed_links_are_refused_naming_the_parameter(text: str, field: str) -> None:
    with pytest.raises(MetainfoError) as caught:
        magnet.parse(text)
    assert caught.value.field == field


def test_other_networks_topics_and_unknown_parameters_are_ignored() -> None:
    link = magnet.parse(f"magnet:?xt=urn:ed2k:abc&xt=urn:btih:{V1.hex()}&xl=10&kt=word&tr=http://a&tr=http://a")
    assert link.info_hash_v1 == V1
    assert link.trackers == ("http://a",)


@pytest.mark.parametrize(
    ("item", "warning"),
    [
        ("x.pe=host", "x.pe: 'host' is not host:port: left out"),
        ("x.pe=host:0", "x.pe: 'host:0' is not host:port: left out"),
        ("x.pe=host:70000", "x.pe: 'host:70000' is not host:port: left out"),
        ("so=5-2", "so: range '5-2' is reversed: left out"),
        ("so=a", "so: 'a' is not an index or a range: left out"),
        ("tr=", "tr: '' is not a URL: left out"),
        ("tr=http://x/%0ay", "tr: 'http://x/\\ny' is not a URL: left out"),
        ("tr=wss://tracker.example/announce", "tr: 'wss://tracker.example/announce': not http, https, udp: left out"),
        ("ws=ftp://mirror.example/file", "ws: 'ftp://mirror.example/file': not http, https: left out"),
    ],
)
def test_one_bad_item_is_left_out_with_a_warning_and_the_link_kept(item: str, warning: str) -> None:
    """Issue 16: as the best clients do, a bad peer, range or tracker costs itself, not the link."""
    link = magnet.parse(f"magnet:?xt=urn:btih:{V1.hex()}&{item}&tr=http://good/announce&x.pe=10.0.0.1:6881&so=1")
    assert link.info_hash_v1 == V1
    assert link.warnings == (warning,)
    assert "http://good/announce" in link.trackers
    assert ("10.0.0.1", 6881) in link.peers
    assert 1 in link.select_only


def test_a_range_selecting_too_many_files_is_cut_short_with_a_warning() -> None:
    link = magnet.parse(f"magnet:?xt=urn:btih:{V1.hex()}&so=0-999999999")
    assert len(link.select_only) == magnet.MAX_SELECTED_FILES
    assert link.select_only[-1] == magnet.MAX_SELECTED_FILES - 1
    assert link.warnings == (f"so: range '0-999999999' cut to the first {magnet.MAX_SELECTED_FILES} files",)


def test_control_characters_are_written_as_escapes_for_a_terminal() -> None:
    link = magnet.parse(f"magnet:?xt=urn:btih:{V1.hex()}&dn=evil%1b%5b2J%00name")
    assert link.display_name == "evil\x1b[2J\x00name"  # kept as given
    assert magnet.printable(link.display_name) == "evil\\x1b[2J\\x00name"


def test_the_users_own_ranges_are_still_strict() -> None:
    with pytest.raises(MetainfoError):
        magnet.parse_ranges("5-2")
