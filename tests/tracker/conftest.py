"""A real redis-server (Debian's package) for the tracker store tests, one per session.

It listens on a free loopback port with persistence off and its files in a temporary
folder. A missing binary fails the tests: the Redis store is tested against Redis or not
at all. Tests take a database number of their own and flush it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_START_DEADLINE_S = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_ping(url: str, process: subprocess.Popen[bytes], deadline_s: float) -> bool:
    """True once the server answers PING; False if it exited or the deadline passed."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.01)  # polling interval, bounded by the deadline
        return False
    finally:
        client.close()


class RedisServer:
    """One redis-server process on loopback."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: install Debian's redis-server package (scripts/test does)")
        self.process: subprocess.Popen[bytes] | None = None
        for _attempt in range(3):  # another process may take the free port before the server does
            self.port = free_port()
            self.url = f"redis://127.0.0.1:{self.port}"
            command = [binary, "--save", "", "--appendonly", "no", "--port", str(self.port)]
            command += ["--bind", "127.0.0.1", "--dir", str(folder), "--databases", "16"]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if wait_for_ping(self.url, process, REDIS_START_DEADLINE_S):
                self.process = process
                return
            self._stop(process)
        pytest.fail(f"redis-server did not answer PING within {REDIS_START_DEADLINE_S} s")

    def db_url(self, db: int) -> str:
        """The URL of database ``db``, flushed."""
        with redis.Redis.from_url(f"{self.url}/{db}") as client:
            client.flushdb()
        return f"{self.url}/{db}"

    @staticmethod
    def _stop(process: subprocess.Popen[bytes]) -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        if self.process is not None:
            self._stop(self.process)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
