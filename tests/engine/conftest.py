"""Processes of bitswarm for end-to-end tests: a tracker, and waiting on what they show."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import quote_from_bytes

import pytest

from bitswarm import bencode
from bitswarm.net.session import Session

BITSWARM = [sys.executable, "-m", "bitswarm"]


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)  # polling an observable condition, not a stand-in for one
    pytest.fail(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def running_sessions(count: int) -> AsyncIterator[list[Session]]:
    """``count`` strict sessions on 127.0.0.1, started; closed in reverse order at the end,
    and, when the body ended normally, none of them may have recorded a failure."""
    started: list[Session] = []
    try:
        for _ in range(count):
            session = Session(port=0, host="127.0.0.1", strict=True)
            await session.start()
            started.append(session)
        yield started
    finally:
        for session in reversed(started):
            await session.close()
    for session in started:
        assert not session.failures


@pytest.fixture
def tracker() -> Iterator[str]:
    process = subprocess.Popen(
        [*BITSWARM, "tracker", "--http", "127.0.0.1:0", "--udp", "off"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    port = int(line.split("http 127.0.0.1:")[1].split(";")[0])
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    assert process.wait(timeout=30) == 0


def scrape_counts(tracker: str, info_hash: bytes) -> dict[bytes, int]:
    """The tracker's scrape entry for ``info_hash``: complete, incomplete, downloaded (zeros if unknown)."""
    with urllib.request.urlopen(f"{tracker}/scrape?info_hash={quote_from_bytes(info_hash)}", timeout=10) as reply:  # noqa: S310
        files = bencode.decode(reply.read())
    assert isinstance(files, dict)
    counts = files[b"files"]
    assert isinstance(counts, dict)
    entry = counts.get(info_hash, {b"complete": 0, b"incomplete": 0, b"downloaded": 0})
    assert isinstance(entry, dict)
    return {key: int(value) for key, value in entry.items() if isinstance(key, bytes) and isinstance(value, int)}


def seeders(tracker: str, info_hash: bytes) -> int:
    return scrape_counts(tracker, info_hash)[b"complete"]
