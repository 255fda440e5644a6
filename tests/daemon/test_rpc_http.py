"""The RPC's HTTP rules and its answers to bad requests, against a running daemon."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .conftest import Daemon, make_torrent, running_daemon

SESSION = "X-Transmission-Session-Id"


def test_a_bodyless_post_gets_409_with_the_session_id_and_the_id_then_works(daemon: Daemon) -> None:
    status, headers, _ = daemon.post(None)
    assert status == 409
    session_id = headers[SESSION]
    assert len(session_id) >= 32
    status, headers, _ = daemon.post(b'{"method": "session-get"}', {SESSION: "wrong"})
    assert status == 409
    assert headers[SESSION] == session_id
    status, _, body = daemon.post(b'{"method": "session-get"}', {SESSION: session_id})
    assert status == 200
    answer = json.loads(body)
    assert answer["result"] == "success"
    assert answer["arguments"]["rpc-version"] == 17
    assert answer["arguments"]["rpc-version-minimum"] == 14


def test_a_host_not_allowed_gets_421_and_loopback_names_pass(daemon: Daemon) -> None:
    status, _, _ = daemon.post(None, host="attacker.example:9091")
    assert status == 421
    for host in ("localhost:9091", "127.0.0.1", "[::1]:9091"):
        status, _, _ = daemon.post(None, host=host)
        assert status == 409, host


def test_credentials_are_required_when_configured_and_failures_are_bounded(tmp_path: Path) -> None:
    config = 'rpc_username = "alice"\nrpc_password = "s3cret"\nrpc_max_auth_failures = 3\n'
    with running_daemon(tmp_path / "d", config_extra=config) as daemon:
        good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        bad = "Basic " + base64.b64encode(b"alice:guess").decode()
        status, headers, _ = daemon.post(None)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic")
        status, headers, _ = daemon.post(None, {"Authorization": good})
        assert status == 409
        session_id = headers[SESSION]
        status, _, _ = daemon.post(b'{"method":"session-get"}', {"Authorization": good, SESSION: session_id})
        assert status == 200
        for _ in range(3):
            assert daemon.post(None, {"Authorization": bad})[0] == 401
        # Now refused outright, the right password included, for a while.
        assert daemon.post(None, {"Authorization": good})[0] == 403


def test_an_address_outside_the_whitelist_gets_403(tmp_path: Path) -> None:
    with running_daemon(tmp_path / "d", config_extra='rpc_whitelist = ["10.9.8.0/24"]\n') as daemon:
        assert daemon.post(None)[0] == 403


def test_a_body_over_the_limit_gets_413_and_the_daemon_serves_on(tmp_path: Path) -> None:
    with running_daemon(tmp_path / "d", config_extra="rpc_max_body_bytes = 4096\n") as daemon:
        daemon.rpc("session-get")
        status, _, _ = daemon.post(b"x" * 10_000, {SESSION: daemon.session_id})
        assert status == 413
        assert daemon.call("session-get")["rpc-version"] == 17


def test_bad_json_unknown_methods_and_wrong_types_get_a_result_string(daemon: Daemon) -> None:
    daemon.rpc("session-get")
    status, _, body = daemon.post(b"{not json", {SESSION: daemon.session_id})
    assert status == 200
    assert json.loads(body)["result"] == "the request is not JSON"
    assert daemon.rpc("torrent-explode")["result"] == "method name not recognized"
    assert daemon.rpc("torrent-get", fields="name")["result"] == "fields must be a list of strings"
    assert daemon.rpc("torrent-get", fields=["id"], ids=[{"x": 1}])["result"].startswith("ids:")
    assert daemon.rpc("torrent-add", filename=12)["result"] == "filename must be a string"
    assert daemon.rpc("torrent-add", metainfo="!!!")["result"] == "metainfo: not base64"
    bogus = base64.b64encode(b"d4:spam4:eggse").decode()
    assert daemon.rpc("torrent-add", metainfo=bogus)["result"] != "success"
    assert daemon.rpc("session-set", **{"speed-limit-down": "fast"})["result"] == "speed-limit-down must be an integer"
    assert daemon.rpc("torrent-set", seedRatioMode=7)["result"] == "seedRatioMode must be 0, 1 or 2"
    assert daemon.rpc("torrent-rename-path", path="a", name="b")["result"].startswith("torrent-rename-path: ids")
    assert daemon.call("session-get")["version"].startswith("4.")


def test_thousands_of_ids_and_unknown_fields_are_answered(tmp_path: Path, daemon: Daemon) -> None:
    made = make_torrent(tmp_path, "ids", {"a.bin": 40_000})
    metainfo = base64.b64encode(made.path.read_bytes()).decode()
    added = daemon.call("torrent-add", metainfo=metainfo, paused=True)["torrent-added"]
    ids: list[int | str] = [*range(1, 50_001), made.info_hash, "f" * 40]
    [row] = daemon.torrents("hashString", "noSuchField", ids=ids)
    assert row == {"id": added["id"], "hashString": made.info_hash}
    table = daemon.call("torrent-get", fields=["id", "name"], format="table", ids=added["id"])["torrents"]
    assert table == [["id", "name"], [added["id"], "ids"]]
    again = daemon.call("torrent-add", metainfo=metainfo)
    assert again["torrent-duplicate"]["id"] == added["id"]
    daemon.call("torrent-remove", ids=[added["id"]])
    recent = daemon.call("torrent-get", fields=["id"], ids="recently-active")
    assert recent["torrents"] == []
    assert recent["removed"] == [added["id"]]
