"""Several ``bitswarm tracker`` processes on one Redis serve one swarm.

Real processes, a real redis-server: announces spread over two trackers must add up to
the same counts and peer lists whichever tracker is asked, and a tracker whose Redis is
gone answers with a failure reason and still shuts down cleanly.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import pytest

from bitswarm import bencode
from tracker.conftest import RedisServer

SHARED_DB = 1
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
INFO_HASH = bytes(range(20))
_READY = re.compile(r"bitswarm tracker: http 127\.0\.0\.1:(\d+); udp (?:off|127\.0\.0\.1:(\d+)); store .*")


@contextlib.contextmanager
def run_trackers(store_url: str, folder: Path, count: int, *, udp: bool = False) -> Iterator[list[int]]:
    """Start ``count`` trackers on ``store_url`` at once; yield their HTTP ports (then UDP ports).

    At the end each gets SIGTERM (by PID) and must exit with status 0.
    """
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for number in range(count):
            log_path = folder / f"tracker{number}.log"
            argv = [sys.executable, "-m", "bitswarm", "tracker", "--http", "127.0.0.1:0"]
            argv += ["--udp", "127.0.0.1:0" if udp else "off"]
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [*argv, "--store", store_url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
                )
            processes.append((process, log_path))
        ports = []
        for process, log_path in processes:
            line = _first_line(process, log_path)
            match = _READY.fullmatch(line.strip())
            assert match is not None, f"unexpected ready line {line!r}; log:\n{log_path.read_text()}"
            ports.append(int(match[1]))
            if udp:
                ports.append(int(match[2]))
        yield ports
    finally:
        statuses = [_stop(process) for process, _ in processes]
    logs = "\n".join(log_path.read_text() for _, log_path in processes)
    assert statuses == [0] * count, f"exit statuses {statuses}; logs:\n{logs}"


def _first_line(process: subprocess.Popen[bytes], log_path: Path) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(START_TIMEOUT_S):
            raise AssertionError(f"no ready line within {START_TIMEOUT_S} s; log:\n{log_path.read_text()}")
    return process.stdout.readline().decode("utf-8", "replace")


def _stop(process: subprocess.Popen[bytes]) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
    finally:
        if process.stdout is not None:
            process.stdout.close()


def get(port: int, path: str) -> dict[bytes, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        body = bencode.decode(response.read())
    finally:
        connection.close()
    assert isinstance(body, dict)
    return body


def announce(
    tracker_port: int, peer_port: int, *, left: int = 1000, event: str = "", numwant: int = 50
) -> dict[bytes, Any]:
    query = urlencode({"port": peer_port, "uploaded": 0, "downloaded": 0, "left": left, "numwant": numwant})
    query += f"&info_hash={quote_from_bytes(INFO_HASH)}&peer_id={quote_from_bytes(peer_port.to_bytes(20, 'big'))}"
    if event:
        query += f"&event={event}"
    return get(tracker_port, f"/announce?{query}")


def scrape(tracker_port: int) -> tuple[int, int, int]:
    files = get(tracker_port, f"/scrape?info_hash={quote_from_bytes(INFO_HASH)}")[b"files"]
    entry = files[INFO_HASH]
    return entry[b"complete"], entry[b"incomplete"], entry[b"downloaded"]


def peer(port: int) -> bytes:
    return bytes([127, 0, 0, 1]) + port.to_bytes(2, "big")


def peers_of(reply: dict[bytes, Any]) -> list[bytes]:
    compact: bytes = reply[b"peers"]
    return [compact[at : at + 6] for at in range(0, len(compact), 6)]


def test_two_trackers_on_one_redis_serve_one_swarm(redis_server: RedisServer, tmp_path: Path) -> None:
    with run_trackers(redis_server.db_url(SHARED_DB), tmp_path, 2) as (first, second):
        announce(first, 7001, left=0, event="started")
        announce(second, 7002, left=0, event="started")
        announce(second, 7003, event="started")
        announce(first, 7004, event="started")
        announce(second, 7005, event="started")
        assert scrape(first) == scrape(second) == (2, 3, 0)

        for tracker, asker in ((first, 7003), (second, 7003), (first, 7005), (second, 7004)):
            reply = announce(tracker, asker)
            assert (reply[b"complete"], reply[b"incomplete"]) == (2, 3)
            peers = peers_of(reply)
            assert set(peers[:2]) == {peer(7001), peer(7002)}
            assert sorted(peers) == sorted(peer(port) for port in range(7001, 7006) if port != asker)

        # A seeder, asking either tracker, gets the leechers only.
        assert sorted(peers_of(announce(second, 7001, left=0))) == [peer(7003), peer(7004), peer(7005)]

        # Completed on one tracker, counted on the other; stopped on one, gone from the other.
        reply = announce(first, 7003, left=0, event="completed")
        assert (reply[b"complete"], reply[b"incomplete"], reply[b"downloaded"]) == (3, 2, 1)
        assert scrape(second) == (3, 2, 1)
        announce(first, 7005, event="stopped")
        assert scrape(second) == (3, 1, 1)
        assert peer(7005) not in peers_of(announce(second, 7004))


def test_concurrent_announces_through_two_trackers_add_up_exactly(redis_server: RedisServer, tmp_path: Path) -> None:
    peer_ports = range(20000, 20200)
    with run_trackers(redis_server.db_url(SHARED_DB), tmp_path, 2) as ports:
        with ThreadPoolExecutor(max_workers=16) as pool:
            replies = list(
                pool.map(lambda port: announce(ports[port % 2], port, left=port % 3, numwant=10), peer_ports)
            )
        seeders = sum(1 for port in peer_ports if port % 3 == 0)
        assert scrape(ports[0]) == scrape(ports[1]) == (seeders, len(peer_ports) - seeders, 0)
        for reply in replies:
            assert len(peers_of(reply)) <= 10
        full = get(ports[1], "/scrape")[b"files"]
        assert list(full) == [INFO_HASH]


def test_a_tracker_whose_redis_is_gone_answers_http_with_a_failure_udp_with_silence(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    try:
        with (
            run_trackers(server.db_url(0), tmp_path, 1, udp=True) as (http_port, udp_port),
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        ):
            udp.settimeout(10)
            udp.connect(("127.0.0.1", udp_port))
            assert announce(http_port, 7001)[b"incomplete"] == 1
            server.stop()
            reply = announce(http_port, 7002)
            assert reply == {b"failure reason": b"tracker storage unavailable, try again later"}
            failures = store_errors(http_port)
            assert failures >= 1
            # UDP: the connect needs no store and is answered; the announce is dropped, counted.
            udp.send(struct.pack(">QII", 0x41727101980, 0, 1))
            connection_id = udp.recv(64)[8:16]
            udp.send(
                connection_id
                + struct.pack(
                    ">II20s20sQQQIIIiH", 1, 2, INFO_HASH, b"-BS0001-" + b"0" * 12, 0, 10, 0, 2, 0, 0, 50, 7003
                )
            )
            deadline = time.monotonic() + 10
            while store_errors(http_port) == failures:
                assert time.monotonic() < deadline, "the UDP announce never reached the store"
                time.sleep(0.01)  # polling interval, bounded by the deadline
            udp.setblocking(False)
            with pytest.raises(BlockingIOError):
                udp.recv(64)
    finally:
        server.stop()


def store_errors(port: int) -> int:
    errors: dict[str, int] = get_json(port, "/stats")["errors"]
    return errors.get("store", 0)


def get_json(port: int, path: str) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        result: dict[str, Any] = json.loads(connection.getresponse().read())
        return result
    finally:
        connection.close()
