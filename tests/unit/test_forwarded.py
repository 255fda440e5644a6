"""The client's address behind trusted reverse proxies, and only behind them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswarm.errors import UsageError
from bitswarm.forwarded import TrustedProxies

PROXIES = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "::1"])


def test_headers_from_an_untrusted_connection_are_ignored() -> None:
    assert PROXIES.client_host("203.0.113.9", "198.51.100.1", "198.51.100.2") == "203.0.113.9"


def test_the_address_a_trusted_proxy_appended_is_the_client() -> None:
    assert PROXIES.client_host("127.0.0.1", "198.51.100.7", None) == "198.51.100.7"


def test_a_client_cannot_hide_behind_an_address_it_wrote_itself() -> None:
    # The client sent "X-Forwarded-For: 192.0.2.1"; nginx appended the address it saw.
    assert PROXIES.client_host("127.0.0.1", "192.0.2.1, 198.51.100.7", None) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    assert PROXIES.client_host("127.0.0.1", "198.51.100.7, 10.1.2.3, 10.9.9.9", None) == "198.51.100.7"


def test_garbage_in_the_chain_stops_the_walk_at_the_last_address_a_proxy_wrote() -> None:
    assert PROXIES.client_host("127.0.0.1", "198.51.100.7, not-an-address, 10.1.2.3", None) == "10.1.2.3"
    assert PROXIES.client_host("127.0.0.1", "unknown", "198.51.100.8") == "198.51.100.8"


def test_x_real_ip_when_there_is_no_x_forwarded_for() -> None:
    assert PROXIES.client_host("::1", None, " 2001:db8::5 ") == "2001:db8::5"
    assert PROXIES.client_host("::1", None, "nonsense") == "::1"


def test_an_ipv4_mapped_peer_address_matches_its_ipv4_network() -> None:
    assert PROXIES.trusts("::ffff:10.2.3.4")
    assert PROXIES.client_host("::ffff:127.0.0.1", "[2001:db8::9]", None) == "2001:db8::9"


def test_no_proxies_trusted_means_no_header_counts() -> None:
    nobody = TrustedProxies()
    assert not nobody
    assert nobody.client_host("127.0.0.1", "198.51.100.7", "198.51.100.8") == "127.0.0.1"


def test_a_bad_network_in_the_setting_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="trusted_proxies"):
        TrustedProxies(["10.0.0.0/33"])


@given(st.text(max_size=3000), st.one_of(st.none(), st.text(max_size=100)))
def test_any_header_gives_an_address_never_an_error(forwarded_for: str, real_ip: str | None) -> None:
    host = PROXIES.client_host("127.0.0.1", forwarded_for, real_ip)
    assert host == "127.0.0.1" or TrustedProxies([host])  # an address
