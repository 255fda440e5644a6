"""The parts of `bitswarm ctl`'s RPC client that need no daemon: ids and RPC URLs."""

from __future__ import annotations

import pytest

from bitswarm.errors import UsageError
from bitswarm.remote import parse_torrent_id, split_rpc_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        (" 12 ", 12),
        ("AB" * 20, "ab" * 20),
        ("0123456789abcdef" * 2 + "01234567", "0123456789abcdef" * 2 + "01234567"),
    ],
)
def test_a_number_or_a_v1_info_hash_is_a_torrent_id(text: str, expected: int | str) -> None:
    assert parse_torrent_id(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "ab" * 19, "ab" * 32, "", "٣"])
def test_anything_else_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="not a torrent id"):
        parse_torrent_id(text)


def test_an_rpc_url_gives_its_parts_with_transmissions_defaults() -> None:
    assert split_rpc_url("http://127.0.0.1/transmission/rpc") == (
        "http",
        "127.0.0.1",
        9091,
        "/transmission/rpc",
        None,
        None,
    )
    assert split_rpc_url("https://u%40x:p%3Aw@[::1]:8443/rpc") == ("https", "[::1]", 8443, "/rpc", "u@x", "p:w")
    assert split_rpc_url("http://localhost:9091")[3] == "/transmission/rpc"


@pytest.mark.parametrize("url", ["ftp://host/rpc", "127.0.0.1:9091", "http://:9091/", "http://host:99999/"])
def test_an_rpc_url_that_is_not_http_with_a_host_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="--rpc"):
        split_rpc_url(url)
