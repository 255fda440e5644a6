"""`bitswarm ctl` against a real transmission-daemon 3.00: every command, in text and
JSON, and the failures a user meets (wrong id, no daemon, wrong password, a server that
never answers), each one line and an exit status."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from interop.trackers import Transmission, free_port, wait_for

from .conftest import PASSWORD, USER, ctl, ctl_process, make_torrent, torrent_fields, wait_status

pytestmark = pytest.mark.interop

STOPPED, SEEDING = 0, 6
MAGNET_HASH = "0123456789abcdef0123456789abcdef01234567"


def statuses(daemon: Transmission) -> set[int]:
    return {torrent["status"] for torrent in torrent_fields(daemon, "status")}


def all_started(daemon: Transmission, count: int) -> bool:
    found = [torrent["status"] for torrent in torrent_fields(daemon, "status")]
    return len(found) == count and STOPPED not in found


def test_a_torrent_file_is_added_with_labels_and_listed_as_seeding_when_its_data_is_there(
    transmission: Transmission, downloads: Path
) -> None:
    made = make_torrent(downloads, "album", {"a.flac": 300_000, "cover/front.jpg": 20_000})

    added = ctl(transmission.rpc_url, "add", str(made.path), "--label", "music", "--label", "flac", "--json")

    assert added.exit_code == 0, added.stderr
    (entry,) = added.json()["added"]
    assert entry["info_hash"] == made.info_hash
    assert entry["name"] == "album"
    assert entry["duplicate"] is False
    wait_status(transmission, entry["id"], {SEEDING}, "the torrent verified and seeding")
    listed = ctl(transmission.rpc_url, "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    (torrent,) = listed.json()["torrents"]
    assert torrent["id"] == entry["id"]
    assert torrent["info_hash"] == made.info_hash
    assert torrent["status"] == "seeding"
    assert torrent["progress"] == 1.0
    assert torrent["size_bytes"] == 320_000
    assert torrent["have_bytes"] == 320_000
    assert torrent["labels"] == ["music", "flac"]
    assert torrent["download_dir"] == str(downloads)
    assert torrent["error"] is None
    text = ctl(transmission.rpc_url, "list")
    assert text.exit_code == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if line.rstrip().endswith("album"))
    assert row.split()[:2] == [str(entry["id"]), "100%"]
    assert "Seeding" in row
    assert "Done" in row


def test_a_magnet_link_is_added_paused_and_listed_as_stopped(transmission: Transmission) -> None:
    link = f"magnet:?xt=urn:btih:{MAGNET_HASH}&dn=some%20show"

    added = ctl(transmission.rpc_url, "add", link, "--paused")

    assert added.exit_code == 0, added.stderr
    assert added.stdout.startswith("added: 1 ")
    assert MAGNET_HASH in added.stdout
    (torrent,) = ctl(transmission.rpc_url, "--json", "list").json()["torrents"]
    assert torrent["info_hash"] == MAGNET_HASH
    assert torrent["status"] == "stopped"
    assert torrent["name"] == "some show"
    (seen,) = torrent_fields(transmission, "status", "hashString")
    assert seen["status"] == STOPPED


def test_adding_a_torrent_again_reports_the_one_there_and_adds_nothing(
    transmission: Transmission, tmp_path: Path
) -> None:
    made = make_torrent(tmp_path, "twice", {"f.bin": 50_000})
    first = ctl(transmission.rpc_url, "add", str(made.path), "--json").json()["added"][0]

    again = ctl(transmission.rpc_url, "add", str(made.path), "--json")

    assert again.exit_code == 0, again.stderr
    (entry,) = again.json()["added"]
    assert entry["duplicate"] is True
    assert entry["id"] == first["id"]
    assert len(torrent_fields(transmission)) == 1


def test_a_file_that_is_not_a_torrent_is_bad_input_and_nothing_is_sent(
    transmission: Transmission, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.torrent"
    junk.write_bytes(b"d4:infoi3e")

    result = ctl(transmission.rpc_url, "add", str(junk))

    assert result.exit_code == 2
    assert str(junk) in result.error_line
    assert torrent_fields(transmission) == []


def test_pause_and_resume_by_id_and_by_info_hash_change_the_state_json_shows(
    transmission: Transmission, downloads: Path
) -> None:
    made = make_torrent(downloads, "show", {"episode.mkv": 200_000})
    torrent_id = ctl(transmission.rpc_url, "add", str(made.path), "--json").json()["added"][0]["id"]
    wait_status(transmission, torrent_id, {SEEDING}, "seeding")

    paused = ctl(transmission.rpc_url, "pause", str(torrent_id), "--json")

    assert paused.exit_code == 0, paused.stderr
    assert paused.json() == {"paused": [{"id": torrent_id, "info_hash": made.info_hash, "name": "show"}]}
    wait_status(transmission, torrent_id, {STOPPED}, "stopped after pause")
    (listed,) = ctl(transmission.rpc_url, "list", "--json").json()["torrents"]
    assert listed["status"] == "stopped"

    resumed = ctl(transmission.rpc_url, "resume", made.info_hash.upper())

    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stdout == f"resumed: {torrent_id} show\n"
    wait_status(transmission, torrent_id, {SEEDING}, "seeding again after resume")
    (listed,) = ctl(transmission.rpc_url, "list", "--json").json()["torrents"]
    assert listed["status"] == "seeding"


def test_pause_all_and_resume_all_reach_every_torrent(transmission: Transmission, tmp_path: Path) -> None:
    for number in range(3):
        ctl(transmission.rpc_url, "add", f"magnet:?xt=urn:btih:{number:040x}")
    # Transmission starts an added torrent in its own thread after answering; a stop that
    # arrives first is undone by that start (seen once on a loaded machine).
    wait_for(lambda: all_started(transmission, 3), "every added torrent started")

    paused = ctl(transmission.rpc_url, "pause", "--all", "--json")

    assert paused.exit_code == 0, paused.stderr
    assert sorted(entry["id"] for entry in paused.json()["paused"]) == [1, 2, 3]
    # The daemon stops a torrent in its own thread after answering: its state is polled.
    wait_for(lambda: statuses(transmission) == {STOPPED}, "every torrent stopped")

    resumed = ctl(transmission.rpc_url, "resume", "--all")

    assert resumed.exit_code == 0, resumed.stderr
    wait_for(lambda: STOPPED not in statuses(transmission), "every torrent started")


def test_info_shows_the_files_trackers_and_facts_of_one_torrent(transmission: Transmission, tmp_path: Path) -> None:
    made = make_torrent(tmp_path, "docs", {"a.txt": 1_000, "sub/b.txt": 70_000})
    torrent_id = ctl(transmission.rpc_url, "add", str(made.path), "--paused", "--json").json()["added"][0]["id"]

    info = ctl(transmission.rpc_url, "info", made.info_hash, "--json")

    assert info.exit_code == 0, info.stderr
    torrent = info.json()["torrent"]
    assert torrent["id"] == torrent_id
    assert torrent["comment"] == "made for ctl"
    assert [(file["name"], file["size_bytes"]) for file in torrent["files"]] == [
        ("docs/a.txt", 1_000),
        ("docs/sub/b.txt", 70_000),
    ]
    assert all(file["wanted"] and file["priority"] == "normal" for file in torrent["files"])
    assert [tracker["announce"] for tracker in torrent["trackers"]] == ["http://127.0.0.1:1/announce"]
    assert torrent["peers"] == []
    assert torrent["magnet"].startswith(f"magnet:?xt=urn:btih:{made.info_hash}")
    text = ctl(transmission.rpc_url, "info", str(torrent_id))
    assert text.exit_code == 0, text.stderr
    assert f"Hash:      {made.info_hash}" in text.stdout
    assert "docs/sub/b.txt" in text.stdout
    assert "Trackers (1):" in text.stdout
    assert "http://127.0.0.1:1/announce" in text.stdout


def test_remove_keeps_the_files(transmission: Transmission, downloads: Path) -> None:
    made = make_torrent(downloads, "keep", {"k.bin": 60_000})
    torrent_id = ctl(transmission.rpc_url, "add", str(made.path), "--json").json()["added"][0]["id"]
    wait_status(transmission, torrent_id, {SEEDING}, "seeding")

    removed = ctl(transmission.rpc_url, "remove", str(torrent_id), "--json")

    assert removed.exit_code == 0, removed.stderr
    assert removed.json() == {
        "removed": [{"id": torrent_id, "info_hash": made.info_hash, "name": "keep"}],
        "data_deleted": False,
    }
    wait_for(lambda: torrent_fields(transmission) == [], "the torrent gone from the daemon")
    assert (made.content / "k.bin").stat().st_size == 60_000


def test_remove_with_delete_data_deletes_the_files(transmission: Transmission, downloads: Path) -> None:
    made = make_torrent(downloads, "gone", {"g.bin": 60_000, "sub/h.bin": 10})
    torrent_id = ctl(transmission.rpc_url, "add", str(made.path), "--json").json()["added"][0]["id"]
    wait_status(transmission, torrent_id, {SEEDING}, "seeding")

    removed = ctl(transmission.rpc_url, "remove", made.info_hash, "--delete-data")

    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout == f"removed: {torrent_id} gone\n"
    wait_for(lambda: not made.content.exists(), "the content deleted", timeout_s=15.0)
    assert torrent_fields(transmission) == []


def test_an_id_the_daemon_does_not_have_is_one_line_and_exit_1(transmission: Transmission) -> None:
    ctl(transmission.rpc_url, "add", f"magnet:?xt=urn:btih:{MAGNET_HASH}", "--paused")

    for command in ("pause", "resume", "remove", "info", "verify"):
        result = ctl_process(transmission.rpc_url, command, "7")
        assert result.exit_code == 1, (command, result.stderr)
        assert result.error_line == "bitswarm ctl: no torrent 7"
    assert len(torrent_fields(transmission)) == 1


def test_a_malformed_id_is_a_usage_error_before_the_daemon_is_asked(transmission: Transmission) -> None:
    for bad in ("abc", "0", "1.5", "0123456789abcdef"):
        result = ctl(transmission.rpc_url, "pause", bad)
        assert result.exit_code == 2, (bad, result.stderr)
        assert "not a torrent id" in result.stderr


def test_no_daemon_is_one_line_and_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}/transmission/rpc"

    result = ctl_process(url, "list")

    assert result.exit_code == 1
    assert result.error_line == f"bitswarm ctl: {url}: cannot connect (connection refused); is the daemon running?"
    assert result.stdout == ""


def test_a_server_that_never_answers_times_out_with_one_line() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/transmission/rpc"
        started = time.monotonic()

        result = ctl_process(url, "--timeout", "0.5", "list")

        elapsed_s = time.monotonic() - started
    assert result.exit_code == 1
    assert result.error_line == f"bitswarm ctl: {url}: no answer within 0.5 s"
    assert elapsed_s < 10


def test_with_authentication_the_right_credentials_work_every_way_they_can_be_given(
    transmission_with_auth: Transmission,
) -> None:
    url = transmission_with_auth.rpc_url
    transmission_with_auth.rpc("torrent-add", filename=f"magnet:?xt=urn:btih:{MAGNET_HASH}", paused=True)

    ways = [
        ctl(url, "--auth", f"{USER}:{PASSWORD}", "list", "--json"),
        ctl(url, "--user", USER, "--password-stdin", "list", "--json", stdin=f"{PASSWORD}\n"),
        ctl(url, "list", "--json", env={"BITSWARM_RPC_AUTH": f"{USER}:{PASSWORD}"}),
    ]

    for result in ways:
        assert result.exit_code == 0, result.stderr
        assert [torrent["info_hash"] for torrent in result.json()["torrents"]] == [MAGNET_HASH]


def test_with_authentication_wrong_or_missing_credentials_are_one_line_and_exit_1(
    transmission_with_auth: Transmission,
) -> None:
    url = transmission_with_auth.rpc_url

    wrong = ctl_process(url, "--auth", f"{USER}:not-it", "list")
    missing = ctl(url, "list")

    assert wrong.exit_code == 1
    assert wrong.error_line == f"bitswarm ctl: {url}: wrong user name or password (401 Unauthorized)"
    assert missing.exit_code == 1
    assert "401" in missing.error_line
    assert "--auth" in missing.error_line


def test_limits_are_set_in_the_daemon_and_shown(transmission: Transmission) -> None:
    result = ctl(transmission.rpc_url, "limits", "--down", "2M", "--up", "500K", "--json")

    assert result.exit_code == 0, result.stderr
    # Transmission keeps limits in kB/s of 1000 bytes: 2 MiB/s is 2097 of them.
    assert result.json() == {"down_limit_bytes_s": 2_097_000, "up_limit_bytes_s": 512_000}
    session = transmission.rpc("session-get")
    assert (session["speed-limit-down"], session["speed-limit-down-enabled"]) == (2097, True)
    assert (session["speed-limit-up"], session["speed-limit-up-enabled"]) == (512, True)

    off = ctl(transmission.rpc_url, "limits", "--up", "off")

    assert off.exit_code == 0, off.stderr
    assert off.stdout.splitlines() == ["Down:  2.0 MiB/s", "Up:    unlimited"]
    assert transmission.rpc("session-get")["speed-limit-up-enabled"] is False


def test_stats_names_the_daemon_and_counts_its_torrents(transmission: Transmission) -> None:
    ctl(transmission.rpc_url, "add", f"magnet:?xt=urn:btih:{MAGNET_HASH}", "--paused")

    result = ctl(transmission.rpc_url, "stats", "--json")

    assert result.exit_code == 0, result.stderr
    stats = result.json()
    assert stats["version"].startswith("3.00")
    assert stats["rpc_version"] == 16
    assert (stats["torrents"], stats["paused"]) == (1, 1)


def test_verify_rechecks_the_data(transmission: Transmission, downloads: Path) -> None:
    made = make_torrent(downloads, "check", {"c.bin": 100_000})
    torrent_id = ctl(transmission.rpc_url, "add", str(made.path), "--json").json()["added"][0]["id"]
    wait_status(transmission, torrent_id, {SEEDING}, "seeding")
    (made.content / "c.bin").write_bytes(b"\0" * 100_000)

    result = ctl(transmission.rpc_url, "verify", str(torrent_id))

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"verifying: {torrent_id} check\n"

    def found_damage() -> bool:
        (torrent,) = torrent_fields(transmission, "percentDone", "status")
        return bool(torrent["status"] not in (1, 2) and torrent["percentDone"] < 1)

    wait_for(found_damage, "the verification finding the damaged piece", timeout_s=15.0)


def test_a_name_with_control_characters_is_escaped_in_the_table(transmission: Transmission) -> None:
    ctl(transmission.rpc_url, "add", f"magnet:?xt=urn:btih:{MAGNET_HASH}&dn=evil%1B%5B31mred", "--paused")

    result = ctl(transmission.rpc_url, "list")

    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "evil\\x1b[31mred" in result.stdout


def test_a_torrent_the_daemon_refuses_is_one_line_and_exit_1_and_the_others_are_still_added(
    transmission: Transmission, tmp_path: Path
) -> None:
    # Transmission 3.00 cannot read a hybrid (v1 + v2) torrent: a refusal from the daemon itself.
    content = tmp_path / "hybrid"
    content.mkdir()
    (content / "h.bin").write_bytes(b"h" * 40_000)
    hybrid = tmp_path / "hybrid.torrent"
    hybrid.write_bytes(create(content, CreateOptions()))

    alone = ctl(transmission.rpc_url, "add", str(hybrid))

    assert alone.exit_code == 1
    assert (
        alone.error_line
        == f"bitswarm ctl: {hybrid}: torrent-add: the daemon answered 'invalid or corrupt torrent file'"
    )
    assert torrent_fields(transmission) == []

    both = ctl(transmission.rpc_url, "add", str(hybrid), f"magnet:?xt=urn:btih:{MAGNET_HASH}", "--paused", "--json")

    assert both.exit_code == 1
    assert both.error_line == "bitswarm ctl: 1 of 2 not added"
    document = both.json()
    assert [entry["info_hash"] for entry in document["added"]] == [MAGNET_HASH]
    assert [entry["source"] for entry in document["failed"]] == [str(hybrid)]
    assert [torrent["hashString"] for torrent in torrent_fields(transmission, "hashString")] == [MAGNET_HASH]
