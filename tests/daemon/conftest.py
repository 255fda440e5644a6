"""`bitswarm daemon` as a user runs it, for real clients to drive.

Each test gets its own daemon process: RPC and peer port on free 127.0.0.1 ports, DHT and
local discovery off (nothing leaves loopback), state and downloads in its temporary
folder. At the end it is sent SIGTERM by PID and must exit 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import TorrentVersion, read_torrent_file
from interop.trackers import stop_process

SRC = Path(__file__).resolve().parents[2] / "src"
START_TIMEOUT_S = 20.0
READY = re.compile(r"bitswarm daemon: http://127\.0\.0\.1:(\d+)/")


@dataclass
class Daemon:
    process: subprocess.Popen[str]
    port: int
    state: Path
    downloads: Path
    log: Path
    session_id: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/transmission/rpc"

    def post(
        self, body: bytes | None, headers: dict[str, str] | None = None, *, host: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One raw POST: (status, headers, body); no handshake unless the headers carry it."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers or {})  # noqa: S310
        if host is not None:
            request.add_unredirected_header("Host", host)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def rpc(self, method: str, **arguments: Any) -> dict[str, Any]:
        """A request as a client sends it (the 409 handshake done once); the whole answer."""
        body = json.dumps({"method": method, "arguments": arguments, "tag": 7}).encode()
        for _ in range(2):
            status, headers, answer = self.post(body, {"X-Transmission-Session-Id": self.session_id})
            if status == 409:
                self.session_id = headers["X-Transmission-Session-Id"]
                continue
            assert status == 200, (status, answer)
            decoded: dict[str, Any] = json.loads(answer)
            assert decoded.get("tag") == 7
            return decoded
        raise AssertionError("the daemon kept answering 409")

    def call(self, method: str, **arguments: Any) -> dict[str, Any]:
        """``arguments`` of a request that must succeed."""
        answer = self.rpc(method, **arguments)
        assert answer["result"] == "success", answer
        result: dict[str, Any] = answer["arguments"]
        return result

    def torrents(self, *fields: str, **arguments: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("torrent-get", fields=["id", *fields], **arguments)["torrents"]
        return found


def write_config(folder: Path, extra: str = "") -> Path:
    path = folder / "daemon.toml"
    path.write_text(f"dht = false\nlsd = false\nport_mapping = false\n{extra}")
    return path


def start_daemon(tmp: Path, *, config_extra: str = "", args: tuple[str, ...] = ()) -> Daemon:
    """`python -m bitswarm daemon` on free ports, once it printed its ready line."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = write_config(tmp, config_extra)
    state, downloads, log = tmp / "state", tmp / "downloads", tmp / "daemon.log"
    environment = {**os.environ, "PYTHONPATH": str(SRC)}
    argv = [
        sys.executable, "-m", "bitswarm", "daemon", "--config", str(config), "--state", str(state),
        "--rpc", "127.0.0.1:0", "--download-dir", str(downloads), "--port", "0", *args,
    ]  # fmt: skip
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, text=True, env=environment
        )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(START_TIMEOUT_S):
            process.kill()
            process.wait()
            raise AssertionError(f"no ready line within {START_TIMEOUT_S} s; log:\n{log.read_text()}")
    line = process.stdout.readline()
    match = READY.fullmatch(line.strip())
    if match is None:
        process.wait(timeout=10)
        raise AssertionError(f"unexpected ready line {line!r}; log:\n{log.read_text()}")
    return Daemon(process, int(match[1]), state, downloads, log)


def stop_daemon(daemon: Daemon) -> None:
    status = stop_process(daemon.process, "bitswarm daemon")
    if daemon.process.stdout is not None:
        daemon.process.stdout.close()
    assert status == 0, f"exit status {status}; log:\n{daemon.log.read_text()}"


@contextlib.contextmanager
def running_daemon(tmp: Path, *, config_extra: str = "", args: tuple[str, ...] = ()) -> Iterator[Daemon]:
    daemon = start_daemon(tmp, config_extra=config_extra, args=args)
    try:
        yield daemon
    finally:
        if daemon.process.poll() is None:
            stop_daemon(daemon)


def kill_hard(daemon: Daemon) -> None:
    """kill -9 by PID: no stop announce, no resume data, no state written."""
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait(timeout=10)
    if daemon.process.stdout is not None:
        daemon.process.stdout.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path / "daemon") as running:
        yield running


@dataclass(frozen=True)
class Made:
    path: Path
    content: Path
    info_hash: str
    name: str


def make_torrent(root: Path, name: str, files: dict[str, int], tracker: str = "http://127.0.0.1:1/announce") -> Made:
    """Content under ``root/name`` and ``root/name.torrent`` describing it (v1, for transmission-remote)."""
    content = root / name
    for relative, size in files.items():
        target = content / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(size))
    data = create(content, CreateOptions(version=TorrentVersion.V1, trackers=[tracker], piece_length=16384))
    path = root / f"{name}.torrent"
    path.write_bytes(data)
    info_hash = read_torrent_file(data).info_hash_v1
    assert info_hash is not None
    return Made(path, content, info_hash.hex(), name)
