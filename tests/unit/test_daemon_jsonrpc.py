"""The JSON-RPC 2.0 dialect's envelope and names (``bitswarm.daemon.jsonrpc``), in memory."""

from __future__ import annotations

import pytest

from bitswarm.daemon import jsonrpc

NAMES = jsonrpc.Names.of(["hashString", "download-dir", "isUTP", "peersFrom", "seedRatioLimited", "cache-size-mb"])
METHODS = jsonrpc.Names.of(["torrent-get", "session-get", "queue-move-top"])


@pytest.mark.parametrize(
    ("classic", "snake"),
    [
        ("hashString", "hash_string"),
        ("download-dir", "download_dir"),
        ("isUTP", "is_utp"),
        ("rpc-version-semver", "rpc_version_semver"),
        ("cache-size-mb", "cache_size_mib"),
        ("seedRatioLimited", "seed_ratio_limited"),
        ("file-count", "file_count"),
        ("fromDht", "from_dht"),
        ("id", "id"),
    ],
)
def test_classic_names_have_their_snake_case_form(classic: str, snake: str) -> None:
    assert jsonrpc.snake(classic) == snake


def test_a_request_is_translated_to_the_classic_names() -> None:
    call = jsonrpc.parse_request(
        {"jsonrpc": "2.0", "method": "torrent_get", "id": 4,
         "params": {"fields": ["hash_string", "peers_from", "no_such"], "ids": "recently_active"}},
        NAMES, METHODS,
    )  # fmt: skip
    assert call.method == "torrent-get"
    assert call.arguments == {"fields": ["hashString", "peersFrom", "no_such"], "ids": "recently-active"}
    assert (call.id, call.has_id) == (4, True)


def test_classic_names_are_still_accepted_and_unknown_ones_kept() -> None:
    call = jsonrpc.parse_request(
        {"jsonrpc": "2.0", "method": "queue-move-top", "params": {"download-dir": "/x", "cache_size_mib": 4}},
        NAMES, METHODS,
    )  # fmt: skip
    assert call.method == "queue-move-top"
    assert call.arguments == {"download-dir": "/x", "cache-size-mb": 4}
    assert not call.has_id


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ([], jsonrpc.INVALID_REQUEST),
        ({"method": "session_get", "id": 1, "jsonrpc": "1.0"}, jsonrpc.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "method": 5, "id": 1}, jsonrpc.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "method": "session_get", "id": True}, jsonrpc.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "method": "session_get", "id": "x" * 300}, jsonrpc.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "method": "session_get", "id": 1, "params": [1, 2]}, jsonrpc.INVALID_PARAMS),
    ],
)
def test_a_broken_envelope_is_a_failure_with_the_spec_code(request_: object, code: int) -> None:
    with pytest.raises(jsonrpc.Failure) as raised:
        jsonrpc.parse_request(request_, NAMES, METHODS)
    assert raised.value.code == code


def test_answers_carry_snake_case_names_booleans_for_wanted_and_the_table_header() -> None:
    call = jsonrpc.Call("torrent-get", {}, "a", True)
    answer = jsonrpc.success(call, {"torrents": [["id", "hashString", "wanted"], [1, "ab", [1, 0]]]})
    table = [["id", "hash_string", "wanted"], [1, "ab", [True, False]]]
    assert answer == {"jsonrpc": "2.0", "result": {"torrents": table}, "id": "a"}
    answer = jsonrpc.success(call, {"torrents": [{"hashString": "ab", "wanted": [1, 0], "peersFrom": {"fromDht": 2}}]})
    assert answer["result"] == {
        "torrents": [{"hash_string": "ab", "wanted": [True, False], "peers_from": {"from_dht": 2}}]
    }
    assert jsonrpc.translate_result({"encryption": "tolerated"}) == {"encryption": "allowed"}


def test_a_failure_names_the_code_its_message_and_our_sentence() -> None:
    assert jsonrpc.failure(jsonrpc.INVALID_PARAMS, "ids: bad", 3) == {
        "jsonrpc": "2.0",
        "error": {"code": -32602, "message": "Invalid params", "data": {"error_string": "ids: bad"}},
        "id": 3,
    }
    assert jsonrpc.request_id({"id": [1]}) is None
