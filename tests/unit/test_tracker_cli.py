"""``bitswarm tracker`` as an operator meets it: start, readiness line, clean stop, one-line errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND = [sys.executable, "-m", "bitswarm", "tracker"]


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until ready (or the process dies and closes stdout)
    return process, line


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


def test_tracker_starts_reports_its_addresses_and_stops_cleanly_on_sigterm() -> None:
    process, line = start("--http", "127.0.0.1:0", "--udp", "127.0.0.1:0")
    assert line.startswith("bitswarm tracker: http 127.0.0.1:"), line
    assert "; udp 127.0.0.1:" in line
    assert "store memory" in line
    status, stderr = stop(process)
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert "tracker stopped" in stderr


def test_logs_keep_no_peer_address() -> None:
    process, line = start("--http", "127.0.0.1:0", "--udp", "off")
    port = int(line.split("http 127.0.0.1:")[1].split(";")[0])
    query = f"info_hash={'i' * 20}&peer_id={'p' * 20}&port=45678&uploaded=0&downloaded=0&left=1&event=started"
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(f"GET /announce?{query} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        assert b"interval" in connection.recv(4096)
    status, stderr = stop(process)
    assert status == 0
    assert "45678" not in stderr


def test_a_udp_only_tracker() -> None:
    process, line = start("--http", "off", "--udp", "127.0.0.1:0")
    assert "http off" in line
    assert stop(process)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--http", "nonsense"), "is not HOST:PORT"),
        (("--http", "off", "--udp", "off"), "neither HTTP nor UDP"),
        (("--store", "mysql://x"), "neither 'memory' nor a redis:// URL"),
        (("--whitelist", "/nonexistent/list"), "No such file"),
    ],
)
def test_bad_settings_give_one_line_and_status_2(args: tuple[str, ...], message: str) -> None:
    done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert message in done.stderr.strip().splitlines()[-1]


def test_config_file_with_a_typo_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "tracker.toml"
    config.write_text('htp = "127.0.0.1:0"\n')
    done = subprocess.run([*COMMAND, "--config", str(config)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "unknown setting 'htp'" in done.stderr


def test_a_port_already_in_use_is_one_line() -> None:
    first, line = start("--http", "127.0.0.1:0", "--udp", "off")
    port = line.split("http 127.0.0.1:")[1].split(";")[0]
    done = subprocess.run(
        [*COMMAND, "--http", f"127.0.0.1:{port}", "--udp", "off"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stop(first)[0] == 0
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("bitswarm: tracker: ")
