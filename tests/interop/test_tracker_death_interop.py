"""The resilience test of issue 5: a mixed swarm (libtorrent and bitswarm) is mid-download
from a tracker when the tracker process is killed; every download still finishes, and a
peer that arrives afterwards, with only the dead tracker in its .torrent, finds the swarm
through the DHT.

Everything is on loopback: a `bitswarm tracker`, a `bitswarm dht` node everyone joins
through, a libtorrent seed (`lt_driver.py dht --torrent`, tracker and DHT), a bitswarm
download and a libtorrent one (`lt_driver.py dht-download --keep-trackers`), both held to
1 MB/s so that they are mid-download when the tracker dies, and a late bitswarm download.
"""

from __future__ import annotations

import json
import queue
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion

from .tools import lt_process

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
LOOPBACK = "127.0.0.1"
DEADLINE_S = 90.0
SIZE = 8 << 20
RATE = 1 << 20  # 8 s for the held downloads: the tracker dies well before they finish


class Lines:
    """A process's stdout lines, read on a thread so that waits can have deadlines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, accept: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first JSON line ``accept`` takes; fails the test at the deadline or the end of output."""
        while True:
            try:
                line = self.lines.get(timeout=DEADLINE_S)
            except queue.Empty:
                pytest.fail(f"no {what} within {DEADLINE_S} s")
            if line is None:
                stderr = self.process.stderr.read() if self.process.stderr else ""
                pytest.fail(f"output ended before {what}: {stderr[-2000:]}")
            if line.startswith("{"):
                found: dict[str, Any] = json.loads(line)
                assert "error" not in found, found
                if accept(found):
                    return found


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[list[str]], subprocess.Popen[str]]]:
    """Start processes; each still running at the end gets SIGTERM and must exit 0."""
    processes: list[subprocess.Popen[str]] = []

    def start(argv: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.communicate(timeout=30)


def test_a_mixed_swarm_finishes_after_its_tracker_is_killed(
    tmp_path: Path, started: Callable[[list[str]], subprocess.Popen[str]]
) -> None:
    tracker = started([*BITSWARM, "tracker", "--http", f"{LOOPBACK}:0", "--udp", "off"])
    assert tracker.stdout is not None
    tracker_port = int(tracker.stdout.readline().split(f"http {LOOPBACK}:")[1].split(";")[0])
    node = started([*BITSWARM, "dht", "--bind", f"{LOOPBACK}:0", "--state", str(tmp_path / "node.dat")])
    assert node.stdout is not None
    bootstrap = node.stdout.readline().removeprefix("bitswarm dht: listening on ").split(";")[0]

    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / "data.bin").write_bytes(random.Random(51).randbytes(SIZE))
    torrent_path = tmp_path / "data.torrent"
    announce = f"http://{LOOPBACK}:{tracker_port}/announce"
    options = CreateOptions(version=TorrentVersion.HYBRID, piece_length=64 * 1024, trackers=(announce,))
    torrent_path.write_bytes(create(folder / "data.bin", options))
    assert Torrent.decode(torrent_path.read_bytes()).trackers == ((announce,),)

    # The libtorrent seed announces to the tracker and (forced, awaited) to the DHT.
    seed_argv = ["--bootstrap", bootstrap, "--torrent", str(torrent_path), "--save-path", str(folder)]
    seed = lt_process("dht", *seed_argv, "--timeout", str(2 * DEADLINE_S))
    try:
        seed_lines = Lines(seed)
        seed_lines.wait_for(lambda line: line.get("stage") == "started", "the libtorrent seed")
        assert seed.stdin is not None
        seed.stdin.write("announce\n")
        seed.stdin.flush()
        seed_lines.wait_for(lambda line: "num_peers" in line, "the seed's DHT announce")

        held = ["--port", "0", "--no-seed", "--no-lsd", "--dht-bootstrap", bootstrap, "--json"]
        ours = started([*BITSWARM, "get", str(torrent_path), "-o", str(tmp_path / "ours"), "--max-down", str(RATE),
                        "--dht-state", str(tmp_path / "ours.dat"), *held])  # fmt: skip
        (tmp_path / "theirs").mkdir()
        theirs = lt_process("dht-download", torrent_path, tmp_path / "theirs", "--bootstrap", bootstrap,
                            "--keep-trackers", "--max-down", str(RATE), "--timeout", str(DEADLINE_S))  # fmt: skip
        try:
            ours_lines = Lines(ours)
            ours_lines.wait_for(lambda line: line.get("progress", 0) >= 0.1, "a tenth of our download")

            tracker.kill()
            assert tracker.wait(timeout=30) == -signal.SIGKILL

            late = subprocess.run(
                [*BITSWARM, "get", str(torrent_path), "-o", str(tmp_path / "late"), "--dht-state",
                 str(tmp_path / "late.dat"), *held],
                capture_output=True, text=True, timeout=DEADLINE_S, check=False,
            )  # fmt: skip
            assert late.returncode == 0, late.stderr
            ours_lines.wait_for(lambda line: line.get("event") == "stopped", "the end of our held download")
            assert ours.wait(timeout=30) == 0
            report = json.loads(theirs.communicate(timeout=DEADLINE_S)[0])
            assert report.get("is_seeding"), report
        finally:
            if theirs.poll() is None:
                theirs.kill()
                theirs.wait()
    finally:
        if seed.poll() is None:
            assert seed.stdin is not None
            seed.stdin.write("quit\n")
            seed.stdin.flush()
        seed.wait(timeout=30)
    assert seed.returncode == 0
    expected = (folder / "data.bin").read_bytes()
    for name in ("ours", "theirs", "late"):
        assert (tmp_path / name / "data.bin").read_bytes() == expected, name
