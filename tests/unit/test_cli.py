"""The command as a user meets it: exit statuses and one-line errors, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bitswarm import cli
from bitswarm.metainfo import Torrent
from bitswarm.net.client import TransferPlan
from bitswarm.net.session import TorrentOptions
from helpers import torrent_bytes, v1_info


def bitswarm(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bitswarm", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bitswarm: ")
    assert text in lines[0]


def test_create_info_verify_round_trip(sample_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "content.torrent"
    created = bitswarm(
        "create",
        sample_folder,
        "-o",
        out,
        "-t",
        "http://t/announce",
        "-w",
        "http://w/",
        "--private",
        "--piece-length",
        "16K",
        "--v1",
        "--comment",
        "hi",
        "--source",
        "src",
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines()[-1].startswith("magnet:?xt=urn:btih:")
    info = bitswarm("info", out, "--json")
    facts = json.loads(info.stdout)
    assert facts["version"] == "v1"
    assert facts["piece_length"] == 16384
    assert facts["private"] is True
    assert facts["trackers"] == [["http://t/announce"]]
    assert facts["web_seeds"] == ["http://w/"]
    assert (facts["comment"], facts["source"]) == ("hi", "src")
    assert facts["info_hash_v2"] is None
    verified = bitswarm("verify", out, sample_folder.parent)
    assert verified.returncode == 0, verified.stderr
    assert f"{facts['num_pieces']} good, 0 bad" in verified.stdout


def test_verify_exits_1_when_a_piece_is_bad(sample_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "content.torrent"
    assert bitswarm("create", sample_folder, "-o", out).returncode == 0
    os.truncate(sample_folder / "a.bin", 10)
    result = bitswarm("verify", out, sample_folder.parent, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["complete"] is False
    assert {file["path"]: file["status"] for file in report["files"]}["content/a.bin"] == "truncated"
    assert "pieces bad or missing" in result.stderr


def test_create_default_output_is_name_dot_torrent_and_is_not_overwritten(sample_folder: Path) -> None:
    assert bitswarm("create", "content", cwd=sample_folder.parent).returncode == 0
    assert (sample_folder.parent / "content.torrent").is_file()
    assert_one_line_error(bitswarm("create", "content", cwd=sample_folder.parent), 2, "already exists")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "unexpected end of data at byte 0"),
        (b"d4:infoi1ee", "info: missing or not a dictionary"),
        (b"garbage", "unexpected byte"),
        (b"d8:announce", "unexpected end of data"),
    ],
)
def test_broken_torrent_gives_one_line_and_status_2(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.torrent"
    path.write_bytes(content)
    assert_one_line_error(bitswarm("info", path), 2, f"{path}: ")
    assert message in bitswarm("info", path).stderr


def test_hostile_path_gives_one_line_and_status_2(tmp_path: Path) -> None:
    info = v1_info({"x": b"data"})
    info[b"files"] = [{b"length": 4, b"path": [b"..", b"..", b"etc", b"passwd"]}]
    path = tmp_path / "evil.torrent"
    path.write_bytes(torrent_bytes(info))
    for command in (("info", path), ("verify", path, tmp_path)):
        assert_one_line_error(bitswarm(*command), 2, "not allowed")
    assert not (tmp_path / "etc").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.torrent"
    path.write_bytes(b"i1")
    assert "Traceback" in bitswarm("--debug", "info", path).stderr


def test_info_of_a_magnet_link() -> None:
    link = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=name&tr=udp%3A%2F%2Ft%3A1"
    facts = json.loads(bitswarm("info", link, "--json").stdout)
    assert facts["info_hash_v1"] == "ab" * 20
    assert facts["name"] == "name"
    assert facts["trackers"] == ["udp://t:1"]
    assert_one_line_error(bitswarm("info", "magnet:?xt=urn:btih:xyz"), 2, "urn:btih")


def test_missing_file_and_bad_usage_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(bitswarm("info", tmp_path / "none.torrent"), 2, "No such file")
    assert bitswarm("create").returncode == 2
    assert bitswarm("create", tmp_path, "--piece-length", "huge").returncode == 2


def test_demo_runs_and_exits_0() -> None:
    result = bitswarm("demo")
    assert result.returncode == 0, result.stderr
    assert "demo finished" in result.stdout


@pytest.mark.parametrize("command", ["get", "seed"])
def test_upload_slots_below_one_is_a_one_line_usage_error(tmp_path: Path, command: str) -> None:
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(torrent_bytes(v1_info()))
    arguments = [torrent, "--no-seed"] if command == "get" else [torrent, tmp_path]
    assert_one_line_error(bitswarm(command, *arguments, "--upload-slots", "0"), 2, "--upload-slots: 0; at least 1")
    assert bitswarm(command, *arguments, "--upload-slots", "many").returncode == 2


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[TransferPlan]:
    """The plans get and seed hand to the transfer, which does not run."""
    made: list[TransferPlan] = []

    def run_transfer(plan: TransferPlan) -> int:
        made.append(plan)
        return 0

    monkeypatch.setattr(cli, "_run_transfer", run_transfer)
    return made


@pytest.mark.parametrize("command", ["get", "seed"])
def test_upload_slots_reach_the_torrent_options(tmp_path: Path, plans: list[TransferPlan], command: str) -> None:
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(torrent_bytes(v1_info()))
    arguments = [str(torrent), "-o", str(tmp_path)] if command == "get" else [str(torrent), str(tmp_path)]
    result = CliRunner().invoke(cli.cli, [command, *arguments, "--upload-slots", "3", "--no-dht", "--no-lsd"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli.cli, [command, *arguments, "--no-dht", "--no-lsd"])
    assert result.exit_code == 0, result.output
    assert [plan.options.upload_slots for plan in plans] == [3, TorrentOptions().upload_slots]


def test_seed_super_seeds_as_asked_or_by_its_upload_limit(tmp_path: Path, plans: list[TransferPlan]) -> None:
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(torrent_bytes(v1_info()))
    arguments = ["seed", str(torrent), str(tmp_path), "--no-dht", "--no-lsd", "--no-port-mapping"]
    for extra in (["--no-super-seed", "--max-up", "500K"], ["--super-seed"], []):
        result = CliRunner().invoke(cli.cli, [*arguments, *extra])
        assert result.exit_code == 0, result.output
    assert [plan.options.super_seed for plan in plans] == [False, True, None]


def test_seed_announces_to_given_trackers_instead_of_the_torrents(tmp_path: Path, plans: list[TransferPlan]) -> None:
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(torrent_bytes(v1_info()))
    passkey_url = "https://site.example/announce/0123456789abcdef"
    arguments = ["seed", str(torrent), str(tmp_path), "--no-dht", "--no-lsd", "--no-port-mapping"]
    result = CliRunner().invoke(cli.cli, [*arguments, "-t", passkey_url, "--tracker", "udp://10.0.0.5:6969"])
    assert result.exit_code == 0, result.output
    (plan,) = plans
    assert plan.torrent is not None
    assert plan.torrent.trackers == ((passkey_url,), ("udp://10.0.0.5:6969",))
    assert plan.torrent.info_hash_v1 == Torrent.decode(torrent.read_bytes()).info_hash_v1
    refused = CliRunner().invoke(cli.cli, [*arguments, "-t", "wss://site.example/announce/secret"])
    assert isinstance(refused.exception, cli.Failure)
    assert refused.exception.exit_code == 2
    assert str(refused.exception) == "--tracker: unsupported tracker URL scheme 'wss'"  # no passkey on screen


@pytest.mark.parametrize("command", ["get", "seed"])
def test_port_mapping_is_on_unless_the_option_or_the_config_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    plans: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "discovery_settings", _recording(cli.discovery_settings, plans))
    # Nothing runs: the plan is only looked at (a real run would reach the real gateway).
    monkeypatch.setattr(cli, "_run_transfer", lambda plan: 0)
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(torrent_bytes(v1_info()))
    arguments = [str(torrent), str(tmp_path)] if command == "seed" else [str(torrent), "-o", str(tmp_path)]
    on = tmp_path / "on.toml"
    on.write_text("port_mapping = true\n")
    off = tmp_path / "off.toml"
    off.write_text("port_mapping = false\n")
    for extra in (["--config", str(on)], ["--config", str(on), "--no-port-mapping"], ["--config", str(off)]):
        CliRunner().invoke(cli.cli, [command, *arguments, "--no-dht", "--no-lsd", *extra])
    assert [plan["port_mapping"] for plan in plans] == [True, False, False]


def _recording(function: Any, plans: list[dict[str, Any]]) -> Any:
    def record(*args: Any, **kwargs: Any) -> dict[str, Any]:
        settings: dict[str, Any] = function(*args, **kwargs)
        plans.append(settings)
        return settings

    return record


@pytest.mark.parametrize("command", ["get", "seed", "stream", "daemon"])
def test_every_command_that_maps_the_port_has_the_option_to_not(command: str) -> None:
    result = CliRunner().invoke(cli.cli, [command, "--help"])
    assert "--no-port-mapping" in result.output


def test_info_of_a_magnet_link_without_a_name_shows_no_none_and_warns_of_what_it_left_out() -> None:
    link = "magnet:?xt=urn:btih:" + "ab" * 20 + "&x.pe=nohost&tr=wss://t.example/a&dn="
    result = bitswarm("info", link.replace("&dn=", ""))
    assert result.returncode == 0, result.stderr
    assert "None" not in result.stdout
    assert "name:          (not given" in result.stdout
    assert result.stderr.splitlines() == [
        "bitswarm: magnet: warning: x.pe: 'nohost' is not host:port: left out",
        "bitswarm: magnet: warning: tr: 'wss://t.example/a': not http, https, udp: left out",
    ]


def test_info_never_prints_a_control_character_from_a_link() -> None:
    result = bitswarm("info", "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=a%1b%5D0%3Btitle%07b")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert "name:          a\\x1b]0;title\\x07b" in result.stdout


@pytest.mark.parametrize("command", [["info", ""], ["get", ""], ["seed", "", "."], ["verify", "", "."]])
def test_an_empty_torrent_argument_is_a_usage_error(command: list[str]) -> None:
    result = bitswarm(*command)
    assert result.returncode == 2
    assert "empty: give a .torrent file or a magnet link" in result.stderr
    assert "directory" not in result.stderr.lower()
