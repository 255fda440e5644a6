"""The JSON-RPC 2.0 dialect (Transmission 4.1) at /transmission/rpc of a running daemon."""

from __future__ import annotations

import base64
import json
from typing import Any

from .conftest import Daemon, make_torrent

SESSION = "X-Transmission-Session-Id"


def _post(daemon: Daemon, payload: Any) -> tuple[int, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, headers, answer = daemon.post(body, {SESSION: daemon.session_id})
    if status == 409:
        daemon.session_id = headers[SESSION]
        status, headers, answer = daemon.post(body, {SESSION: daemon.session_id})
    return status, (json.loads(answer) if answer else None)


def test_the_409_carries_the_rpc_semver_so_clients_pick_json_rpc(daemon: Daemon) -> None:
    status, headers, _ = daemon.post(None)
    assert status == 409
    assert headers["X-Transmission-Rpc-Version"] == "6.0.0"


def test_session_get_answers_in_snake_case_with_the_id(daemon: Daemon) -> None:
    fields = ["rpc_version_semver", "download_dir", "rpc_version"]
    status, answer = _post(
        daemon, {"jsonrpc": "2.0", "method": "session_get", "id": "s1", "params": {"fields": fields}}
    )
    assert status == 200
    assert answer == {
        "jsonrpc": "2.0",
        "result": {"rpc_version_semver": "6.0.0", "download_dir": str(daemon.downloads), "rpc_version": 18},
        "id": "s1",
    }
    # The classic dialect still answers as before, beside it.
    assert daemon.call("session-get", fields=["rpc-version"]) == {"rpc-version": 17}


def test_add_get_set_and_errors_in_the_json_rpc_dialect(daemon: Daemon, tmp_path: Any) -> None:
    made = make_torrent(tmp_path, "jr", {"a.bin": 40000, "b.bin": 1000})
    junk = base64.b64encode(b"junk").decode()
    metainfo = base64.b64encode(made.path.read_bytes()).decode()
    status, answer = _post(daemon, {"jsonrpc": "2.0", "method": "torrent_add", "id": 1,
                                    "params": {"metainfo": metainfo, "paused": True, "labels": ["tv"],
                                               "download_dir": str(tmp_path), "files_unwanted": [1]}})  # fmt: skip
    assert status == 200, answer
    added = answer["result"]["torrent_added"]
    assert added["hash_string"] == made.info_hash
    fields = ["hash_string", "download_dir", "labels", "wanted", "percent_done", "file_stats", "nonsense"]
    params = {"ids": [made.info_hash], "fields": fields}
    status, answer = _post(daemon, {"jsonrpc": "2.0", "method": "torrent_get", "id": 2, "params": params})
    (torrent,) = answer["result"]["torrents"]
    assert torrent["hash_string"] == made.info_hash
    assert torrent["download_dir"] == str(tmp_path)
    assert torrent["labels"] == ["tv"]
    assert torrent["wanted"] == [True, False]
    assert set(torrent["file_stats"][0]) == {"bytes_completed", "wanted", "priority"}
    assert "nonsense" not in torrent
    # A notification runs and gets no answer: 204.
    status, answer = _post(daemon, {"jsonrpc": "2.0", "method": "torrent_set",
                                    "params": {"ids": [added["id"]], "labels": ["movies"]}})  # fmt: skip
    assert (status, answer) == (204, None)
    assert daemon.torrents("labels")[0]["labels"] == ["movies"]
    # A batch: answers in order, the notification left out, each error its own.
    status, answer = _post(daemon, [
        {"jsonrpc": "2.0", "method": "torrent_get", "id": 10, "params": {"fields": ["id"], "format": "table"}},
        {"jsonrpc": "2.0", "method": "no_such_method", "id": 11},
        {"jsonrpc": "2.0", "method": "session_set", "params": {"speed_limit_down": 7}},
        {"jsonrpc": "2.0", "method": "session_set", "id": 12, "params": {"speed_limit_down": "fast"}},
        {"jsonrpc": "2.0", "method": "torrent_set_location", "id": 13, "params": {"location": "relative"}},
        {"jsonrpc": "2.0", "method": "torrent_add", "id": 14, "params": {"metainfo": junk}},
        "not a request",
    ])  # fmt: skip
    assert status == 200
    assert [item["id"] for item in answer] == [10, 11, 12, 13, 14, None]
    assert answer[0]["result"] == {"torrents": [["id"], [added["id"]]]}
    assert answer[1]["error"]["code"] == -32601
    assert answer[2]["error"]["code"] == -32602
    assert answer[2]["error"]["data"]["error_string"] == "speed-limit-down must be an integer"
    assert answer[3]["error"]["code"] == 3  # libtransmission's PATH_NOT_ABSOLUTE
    assert answer[4]["error"]["code"] == 9  # CORRUPT_TORRENT
    assert answer[5]["error"]["code"] == -32600
    assert daemon.call("session-get", fields=["speed-limit-down"]) == {"speed-limit-down": 7}


def test_malformed_json_rpc_bodies_get_spec_errors(daemon: Daemon) -> None:
    _, answer = _post(daemon, b'{"jsonrpc": "2.0", "method": ')
    assert answer["error"]["code"] == -32700
    assert answer["id"] is None
    _, answer = _post(daemon, [])
    assert answer["error"]["code"] == -32600
    _, answer = _post(daemon, [{"jsonrpc": "2.0", "method": "session_stats"}] * 300)
    assert answer["error"]["code"] == -32600
    _, answer = _post(daemon, {"jsonrpc": "2.0", "method": "session_get", "id": 1, "params": [1]})
    assert answer["error"]["code"] == -32602
