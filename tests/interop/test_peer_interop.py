"""bitswarm's peer engine with real peers on loopback (issue 4, point 9, first part).

- bitswarm downloads (`bitswarm get --no-seed`) from a libtorrent 2.0, a
  transmission-daemon 3.00 and an aria2c 1.36 seeder;
- libtorrent and aria2c download from `bitswarm seed`;
- the torrents are v1, made by `bitswarm create --v1` (Transmission 3.00 cannot read
  hybrids), of the shared multi-file payload with 32 KiB pieces, so pieces cross file
  boundaries and a zero-byte file sits between two others; one hybrid torrent (pad
  files, two info-hashes) goes both ways with libtorrent.

Peers find each other only through `bitswarm tracker` (no DHT, LSD or PEX), over HTTP,
or UDP where bitswarm gets from Transmission and libtorrent gets a v1 torrent from
bitswarm (aria2c's UDP tracker client needs its DHT). Every copy is compared byte for
byte, and the tracker's scrape must show that bitswarm's "stopped" announce arrived.

Not here: Transmission as the downloader. Transmission 3.00 ignores 127.x peers a
tracker gives it (it only serves peers that connect to it), so that case runs in network
namespaces, in test_mixed_swarm_interop.py.

A missing tool fails the test. Waits poll something observable up to a deadline: a
process's output line, the tracker's scrape counts, transmission's RPC status.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bitswarm.metainfo import Torrent

from .payload import PIECE_LENGTH, write_payload
from .tools import lt, lt_process, require
from .trackers import (
    TrackerUrls,
    free_port,
    http_scrape,
    run_bitswarm_tracker,
    run_transmission,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
# Each transfer is about 300 KB on loopback: seconds, when it works at all.
TRANSFER_TIMEOUT_S = 30.0
START_TIMEOUT_S = 20.0
# Transmission's RPC status for "seeding" (TR_STATUS_SEED).
TR_STATUS_SEED = 6


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[TrackerUrls]:
    with run_bitswarm_tracker(tmp_path / "tracker.log") as urls:
        yield urls


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    """The payload folder, under ``tmp_path / "seed"`` (the folder a seeder is given)."""
    return write_payload(tmp_path / "seed", seed=409)


def bitswarm_create(content: Path, out: Path, tracker_url: str, version: str = "v1") -> bytes:
    """A torrent of ``content`` announcing to ``tracker_url``; returns its v1 info-hash."""
    argv = [*BITSWARM, "create", str(content), "-o", str(out), f"--{version}"]
    argv += ["--piece-length", str(PIECE_LENGTH), "-t", tracker_url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    torrent = Torrent.decode(out.read_bytes())
    # The payload's files end mid-piece: pieces cross file boundaries.
    assert any(entry.length % PIECE_LENGTH for entry in torrent.data_files())
    assert torrent.info_hash_v1 is not None
    return torrent.info_hash_v1


def swarm_counts(tracker: TrackerUrls, info_hash: bytes) -> tuple[int, int]:
    """(seeders, leechers) as the tracker's scrape counts them."""
    entry = http_scrape(tracker.scrape, [info_hash])[b"files"].get(info_hash, {b"complete": 0, b"incomplete": 0})
    return int(entry[b"complete"]), int(entry[b"incomplete"])


def wait_for_seed(tracker: TrackerUrls, info_hash: bytes, who: str) -> None:
    """Until the tracker counts one seeder and no leecher: the seed announced and can be found."""
    what = f"the tracker counting {who} as a seeder"
    wait_for(lambda: swarm_counts(tracker, info_hash) == (1, 0), what, START_TIMEOUT_S)


def read_line(process: subprocess.Popen[str], timeout_s: float, what: str) -> str:
    """The next line ``process`` prints on stdout, within ``timeout_s``; fails with its stderr."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout_s)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"{what}: no line within {timeout_s} s (exit {process.returncode})\nstderr:\n{stderr}")
    return line


def assert_same_tree(expected: Path, actual: Path) -> None:
    """Every file under ``expected`` (empty ones too) is under ``actual`` with the same bytes."""
    files = sorted(path.relative_to(expected) for path in expected.rglob("*") if path.is_file())
    assert any((expected / relative).stat().st_size == 0 for relative in files)
    for relative in files:
        assert (actual / relative).is_file(), f"{relative} is missing"
        assert (actual / relative).read_bytes() == (expected / relative).read_bytes(), relative


# -- bitswarm --------------------------------------------------------------------------


def bitswarm_get(torrent: Path, folder: Path, tracker: TrackerUrls, info_hash: bytes, args: Sequence[str] = ()) -> None:
    """`bitswarm get --no-seed` until every piece is verified; it must exit 0 having said so.

    It announced "completed" and then "stopped" before exiting: the tracker counts only
    the seeder it downloaded from.
    """
    argv = [*BITSWARM, "get", str(torrent), "-o", str(folder), "--port", "0", "--no-seed", "--json", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TRANSFER_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"bitswarm get: not done within {TRANSFER_TIMEOUT_S} s\nstdout tail:\n{str(error.stdout)[-600:]}")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert "finished" in events
    assert events[-1] == "stopped"
    assert swarm_counts(tracker, info_hash) == (1, 0)


@contextlib.contextmanager
def bitswarm_seed(
    torrent: Path, folder: Path, tracker: TrackerUrls, info_hash: bytes, args: Sequence[str] = ()
) -> Iterator[int]:
    """`bitswarm seed` of ``folder``, once the tracker counts it; yields the port it listens on.

    At the end it is sent SIGTERM and must exit with status 0.
    """
    argv = [*BITSWARM, "seed", str(torrent), str(folder), "--port", "0", "--json", *args]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        started = json.loads(read_line(process, START_TIMEOUT_S, "bitswarm seed"))
        assert started["event"] == "started"
        assert started["pieces"] == started["num_pieces"]
        wait_for_seed(tracker, info_hash, "bitswarm seed")
        yield int(started["port"])
        seeding, leeching = swarm_counts(tracker, info_hash)
    finally:
        status = stop_process(process, "bitswarm seed")
        _, stderr = process.communicate()
    assert status == 0, stderr
    # It announced "stopped", and the tracker heard it, before it exited.
    assert swarm_counts(tracker, info_hash) == (seeding - 1, leeching)


# -- libtorrent ------------------------------------------------------------------------


@contextlib.contextmanager
def libtorrent_seed(torrent: Path, folder: Path, args: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """`lt_driver.py seed`, once it seeds and its tracker answered; yields that report.

    At the end it is told to stop and must exit 0; it must have uploaded the payload.
    """
    process = lt_process("seed", torrent, folder, "--timeout", str(START_TIMEOUT_S + TRANSFER_TIMEOUT_S), *args)
    try:
        report = json.loads(read_line(process, START_TIMEOUT_S, "lt_driver seed"))
        assert report["stage"] == "seeding", report
        yield report
        assert process.stdin is not None
        process.stdin.write("\n")
        process.stdin.flush()
        stopped = json.loads(read_stop_line(process))
        assert stopped["stage"] == "stopped"
        assert stopped["uploaded"] >= sum(entry.length for entry in Torrent.decode(torrent.read_bytes()).data_files())
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def read_stop_line(process: subprocess.Popen[str]) -> str:
    """`lt_driver seed`'s last line; an expected failure, not a pass, if libtorrent crashed first.

    libtorrent 2.0.8 rarely crashes (SIGSEGV) in its own RC4 send path as a connection closes
    (once in CI, not reproduced in 40 runs; arvidn/libtorrent#4074 reports the same crash).
    What the test checked inside the `with` block has held by then; only the seed's upload
    total is lost.
    """
    try:
        return read_line(process, 10, "lt_driver seed, stopping")
    except pytest.fail.Exception as failure:
        if process.returncode == -signal.SIGSEGV:
            pytest.xfail(f"libtorrent crashed in its own code while stopping: {failure}")
        raise


def libtorrent_download(torrent: Path, folder: Path, args: Sequence[str] = ()) -> dict[str, Any]:
    """`lt_driver.py download` until seeding, with every peer learned from the tracker."""
    report = lt("download", torrent, folder, "--timeout", str(TRANSFER_TIMEOUT_S), *args)
    assert report["is_seeding"] is True
    assert report["tracker_errors"] == []
    assert all("tracker" in peer["sources"] for peer in report["peers"]), report["peers"]
    return report


# -- aria2c ----------------------------------------------------------------------------


def aria2c_argv(torrent: Path, folder: Path) -> list[str]:
    """aria2c with DHT, LPD and PEX off, on a free port, quiet; peers only from the tracker."""
    port = free_port()
    return [
        require("aria2c"), "--no-conf", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
        "--enable-peer-exchange=false", f"--listen-port={port}", "--file-allocation=none",
        "--summary-interval=0", "--show-console-readout=false", "--console-log-level=warn",
        "--bt-tracker-connect-timeout=5", "--bt-tracker-timeout=5", "-d", str(folder), str(torrent),
    ]  # fmt: skip


@contextlib.contextmanager
def aria2c_seed(torrent: Path, folder: Path, tracker: TrackerUrls, info_hash: bytes) -> Iterator[None]:
    """aria2c checking ``folder`` and seeding it without end, once the tracker counts it."""
    argv = [*aria2c_argv(torrent, folder), "--seed-ratio=0", "-V"]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_seed(tracker, info_hash, "aria2c")
        yield
    finally:
        status = stop_process(process, "aria2c")
        output = process.communicate()[0].decode("utf-8", "replace")
    # aria2c ends a download it was told to stop with status 7 ("unfinished downloads").
    assert status in (0, 7), output


def aria2c_download(torrent: Path, folder: Path) -> None:
    """aria2c downloading until every piece is checked, then leaving at once (--seed-time=0)."""
    argv = [*aria2c_argv(torrent, folder), "--seed-time=0", "--bt-stop-timeout=20"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TRANSFER_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"aria2c: not done within {TRANSFER_TIMEOUT_S} s\noutput:\n{error.stdout!r}")
    assert done.returncode == 0, done.stdout + done.stderr


# -- bitswarm downloads ----------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "hybrid"])
def test_bitswarm_downloads_from_libtorrent(tmp_path: Path, tracker: TrackerUrls, payload: Path, version: str) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.announce, version)
    with libtorrent_seed(torrent, payload.parent):
        bitswarm_get(torrent, tmp_path / "get", tracker, info_hash)
    assert_same_tree(payload, tmp_path / "get" / payload.name)


def test_bitswarm_downloads_from_transmission(tmp_path: Path, tracker: TrackerUrls, payload: Path) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.udp)
    with run_transmission(tmp_path / "transmission") as transmission:
        transmission.rpc("torrent-add", filename=str(torrent), **{"download-dir": str(payload.parent)})

        def seeding() -> bool:
            [state] = transmission.rpc("torrent-get", fields=["status", "percentDone", "error", "errorString"])[
                "torrents"
            ]
            assert state["error"] in (0, 1), state["errorString"]  # 1: a tracker warning, retried
            return bool(state["status"] == TR_STATUS_SEED and state["percentDone"] == 1)

        wait_for(seeding, "transmission seeding the payload", START_TIMEOUT_S)
        wait_for_seed(tracker, info_hash, "transmission")
        bitswarm_get(torrent, tmp_path / "get", tracker, info_hash)
        [stats] = transmission.rpc("torrent-get", fields=["uploadedEver"])["torrents"]
        assert stats["uploadedEver"] > 0
    assert_same_tree(payload, tmp_path / "get" / payload.name)


def test_bitswarm_downloads_from_aria2c(tmp_path: Path, tracker: TrackerUrls, payload: Path) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.announce)
    with aria2c_seed(torrent, payload.parent, tracker, info_hash):
        bitswarm_get(torrent, tmp_path / "get", tracker, info_hash)
    assert_same_tree(payload, tmp_path / "get" / payload.name)


# -- bitswarm seeds --------------------------------------------------------------------


@pytest.mark.parametrize(("version", "protocol"), [("v1", "udp"), ("hybrid", "http")])
def test_libtorrent_downloads_from_bitswarm(
    tmp_path: Path, tracker: TrackerUrls, payload: Path, version: str, protocol: str
) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.udp if protocol == "udp" else tracker.announce, version)
    leech = tmp_path / "leech"
    leech.mkdir()
    with bitswarm_seed(torrent, payload.parent, tracker, info_hash) as port:
        report = libtorrent_download(torrent, leech)
    # Its one peer, dialled from the tracker's list, was bitswarm. (libtorrent names the
    # client "BTSlave": Azureus-style peer ids give "BS" to BTSlave.)
    assert [(peer["ip"], peer["port"], peer["outgoing"]) for peer in report["peers"]] == [("127.0.0.1", port, True)]
    assert_same_tree(payload, leech / payload.name)


def test_aria2c_downloads_from_bitswarm(tmp_path: Path, tracker: TrackerUrls, payload: Path) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.announce)  # aria2c's UDP tracker client needs DHT
    leech = tmp_path / "leech"
    with bitswarm_seed(torrent, payload.parent, tracker, info_hash):
        aria2c_download(torrent, leech)
    assert_same_tree(payload, leech / payload.name)
