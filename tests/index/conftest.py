"""A throwaway PostgreSQL cluster (Debian's postgresql) for the index tests, one per session,
and the ``index_url`` fixture that runs a test on SQLite and on PostgreSQL.

The cluster is made by ``initdb`` as the ``postgres`` user in a temporary folder it owns,
listens on a free loopback port with its unix socket in that folder, and is stopped by its
PID at the end. Readiness is the server's own "ready to accept connections" line, read
from its log as it is written. A missing PostgreSQL fails the tests (never skips them).
Each test gets a database of its own.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0


def postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        pytest.fail("PostgreSQL is missing: install Debian's postgresql package (scripts/test does)")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """One postgres process on 127.0.0.1, running as the ``postgres`` user."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        account = pwd.getpwnam("postgres")
        self.folder = Path(tempfile.mkdtemp(prefix="bitswarm-pg-"))
        os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.data = self.folder / "data"
        self.log: list[str] = []
        self._names = itertools.count()
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        initdb += ["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
        subprocess.run(["runuser", "-u", "postgres", "--", *initdb], check=True, capture_output=True)
        self.process: subprocess.Popen[str] | None = None
        for _attempt in range(3):  # another process may take the free port before the server does
            self.port = free_port()
            if self._start():
                return
        pytest.fail("postgres did not start:\n" + "".join(self.log[-20:]))

    def _start(self) -> bool:
        command = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.folder)]
        command += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"]
        command += ["-c", "full_page_writes=off", "-c", "logging_collector=off"]
        # Started directly as postgres (not through runuser) so that its PID is the server's.
        process = subprocess.Popen(command, user="postgres", group="postgres", stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def read_log() -> None:
            # Drains the log for the server's whole life, so it never blocks on a full pipe.
            assert process.stderr is not None
            for line in process.stderr:
                self.log.append(line)
                if "ready to accept connections" in line:
                    ready.set()
            ready.set()  # the server exited

        threading.Thread(target=read_log, daemon=True).start()
        ready.wait(START_DEADLINE_S)
        if process.poll() is None and ready.is_set():
            self.process = process
            return True
        self._stop(process)
        return False

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"index_test_{next(self._names)}"
        createdb = [str(self.bindir / "createdb"), "-h", str(self.folder), "-p", str(self.port), "-U", "postgres", name]
        subprocess.run(createdb, check=True, capture_output=True)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    @staticmethod
    def _stop(process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        if self.process is not None:
            self._stop(self.process)
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty index database: SQLite in a file, or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
