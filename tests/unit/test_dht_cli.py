"""``bitswarm dht`` as an operator meets it: a ready line, answers to KRPC, a clean stop,
the routing table kept, and one-line usage errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bitswarm.dht import krpc
from bitswarm.dht.krpc import Ping, Query, Response
from bitswarm.dht.node import load_state

COMMAND = [sys.executable, "-m", "bitswarm", "dht"]
READY_PREFIX = "bitswarm dht: listening on "
MAX_DATAGRAMS = 4


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until ready (or the process dies and closes stdout)
    return process, line


def port_of(line: str) -> int:
    assert line.startswith(READY_PREFIX), line
    return int(line.removeprefix(READY_PREFIX).split(";")[0].rsplit(":", 1)[1])


def ping(port: int) -> Response:
    """One KRPC ping to 127.0.0.1:port from our own codec; the decoded answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10.0)
        sock.sendto(krpc.encode(Query(b"pi", b"\x11" * 20, Ping())), ("127.0.0.1", port))
        # The node may ping us back first, to check the new node that queried it.
        for _ in range(MAX_DATAGRAMS):
            data, _ = sock.recvfrom(2048)
            answer = krpc.decode(data)
            if not isinstance(answer, Query):
                assert isinstance(answer, Response), answer
                return answer
    raise AssertionError(f"no answer in {MAX_DATAGRAMS} datagrams")


def test_dht_prints_a_ready_line_answers_a_ping_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state" / "dht.dat"
    process, line = start("--bind", "127.0.0.1:0", "--state", str(state))
    try:
        port = port_of(line)
        node_id = bytes.fromhex(line.split("node id ")[1].split(";")[0])
        answer = ping(port)
        assert answer.transaction_id == b"pi"
        assert answer.node_id == node_id
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    # The table was saved on the way out, with the ID the node had (and keeps next time).
    assert load_state(state.read_bytes()).node_id == node_id
    again, line = start("--bind", "127.0.0.1:0", "--state", str(state))
    again.send_signal(signal.SIGINT)
    again.communicate(timeout=30)
    assert again.returncode == 0
    assert f"node id {node_id.hex()}" in line


def test_a_node_joins_through_another_given_with_dht_bootstrap(tmp_path: Path) -> None:
    first, line = start("--bind", "127.0.0.1:0")
    try:
        first_port = port_of(line)
        second, line = start("--bind", "127.0.0.1:0", "--dht-bootstrap", f"127.0.0.1:{first_port}")
        try:
            # Ready once the bootstrap search ended: the first node is in its table.
            assert line.rstrip().endswith("; 1 nodes"), line
        finally:
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=30)
        assert second.returncode == 0
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bind", "localhost:x"], "--bind: localhost:x: port is not a number"),
        (["--bind", "nowhere:6881"], "--bind: nowhere:6881: not an IP address"),
        (["--bind", "127.0.0.1:0", "--bind", "127.0.0.2:0"], "--bind: at most one address per address family"),
        (["--bind", "127.0.0.1:99999"], "--bind: 127.0.0.1:99999: port out of range"),
        (["--dht-bootstrap", "[::1]x"], "--dht-bootstrap: [::1]x: expected [IPV6]:PORT"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str) -> None:
    done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"bitswarm: {message}"
    assert done.stdout == ""
