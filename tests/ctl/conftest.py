"""A real transmission-daemon 3.00 for `bitswarm ctl` to drive, and a way to run ctl.

transmission-daemon speaks the same Transmission RPC as bitswarm's own daemon, so what
ctl does against it holds for both. Each test gets its own daemon (a config folder in
its temporary folder, RPC on a free 127.0.0.1 port), stopped by PID at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner

from bitswarm.cli import main
from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import TorrentVersion, read_torrent_file
from interop.trackers import Transmission, run_transmission, wait_for

SRC = Path(__file__).resolve().parents[2] / "src"
# Far above a run's few hundred milliseconds: only a hung command reaches it.
CTL_TIMEOUT_S = 30.0
USER, PASSWORD = "alice", "s3cret:with colon"


@dataclass(frozen=True)
class Ctl:
    """The result of one `bitswarm ctl` run."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error_line(self) -> str:
        """stderr, checked to be the one line a user is owed."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {self.stderr!r}"
        assert lines[0].startswith("bitswarm ctl: "), lines[0]
        return lines[0]


def ctl(rpc_url: str, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Ctl:
    """Run `bitswarm ctl --rpc RPC_URL ARGS...` in this process, through the command's own
    entry point (`bitswarm.cli.main`: its one error line and exit status), for speed."""
    overrides: dict[str, str | None] = {key: None for key in os.environ if key.startswith("BITSWARM_RPC")}
    overrides.update(env or {})
    argv = ["bitswarm", "ctl", "--rpc", rpc_url, *args]
    with CliRunner().isolation(input=stdin, env=overrides) as (stdout, stderr, _), mock.patch.object(sys, "argv", argv):
        try:
            main()
        except SystemExit as done:
            code = done.code
        else:
            raise AssertionError("bitswarm.cli.main returned instead of exiting")
    assert isinstance(code, int), code
    return Ctl(code, stdout.getvalue().decode(), stderr.getvalue().decode())


def ctl_process(rpc_url: str, *args: str) -> Ctl:
    """Run `python -m bitswarm ctl --rpc RPC_URL ARGS...` as a user does, in a process of its own."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BITSWARM_RPC")}
    environment["PYTHONPATH"] = str(SRC)
    done = subprocess.run(
        [sys.executable, "-m", "bitswarm", "ctl", "--rpc", rpc_url, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=CTL_TIMEOUT_S,
        check=False,
    )
    return Ctl(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Made:
    """A v1 torrent (Transmission 3.00 reads no v2) and its content."""

    path: Path
    content: Path
    info_hash: str
    name: str


def make_torrent(root: Path, name: str, files: dict[str, int]) -> Made:
    """Content under ``root/name`` and ``root/name.torrent`` describing it, made by bitswarm."""
    content = root / name
    for relative, size in files.items():
        target = content / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(size))
    data = create(
        content,
        CreateOptions(version=TorrentVersion.V1, trackers=["http://127.0.0.1:1/announce"], comment="made for ctl"),
    )
    path = root / f"{name}.torrent"
    path.write_bytes(data)
    info_hash = read_torrent_file(data).info_hash_v1
    assert info_hash is not None
    return Made(path, content, info_hash.hex(), name)


def torrent_fields(daemon: Transmission, *fields: str) -> list[dict[str, Any]]:
    """What the daemon itself says, asked directly (not through ctl), to check ctl against."""
    torrents: list[dict[str, Any]] = daemon.rpc("torrent-get", fields=["id", *fields])["torrents"]
    return torrents


def wait_status(daemon: Transmission, torrent_id: int, wanted: set[int], what: str) -> dict[str, Any]:
    """Poll the daemon until the torrent's status is one of ``wanted``; return its fields."""

    def probe() -> dict[str, Any] | None:
        for torrent in torrent_fields(daemon, "status", "percentDone"):
            if torrent["id"] == torrent_id and torrent["status"] in wanted:
                return torrent
        return None

    found: dict[str, Any] = wait_for(probe, what, timeout_s=15.0)
    return found


@pytest.fixture
def transmission(tmp_path: Path) -> Iterator[Transmission]:
    with run_transmission(tmp_path / "transmission") as daemon:
        yield daemon


@pytest.fixture
def transmission_with_auth(tmp_path: Path) -> Iterator[Transmission]:
    with run_transmission(tmp_path / "transmission", rpc_auth=(USER, PASSWORD)) as daemon:
        yield daemon


@pytest.fixture
def downloads(transmission: Transmission) -> Path:
    """The daemon's download folder (content placed here is found by its verification)."""
    return transmission.log_path.parent / "downloads"
