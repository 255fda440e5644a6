"""A mixed swarm on a private test network (issue 4, point 9, remaining part).

One `bitswarm seed` and three downloaders at once: `bitswarm get --no-seed`, libtorrent 2.0
(`lt_driver.py download`) and transmission-daemon 3.00, all finding each other through one
`bitswarm tracker` over HTTP. Every copy is compared byte for byte with the seed's
(Transmission 3.00 never creates zero-byte files, transmission#417, so its copy may lack
the empty one), and the tracker must have counted three completed downloads.

Transmission 3.00 does not dial 127.x or ::1 peers that a tracker names, so every peer
runs in its own network namespace on 10.251.0.0/24 (`netns.py`): the seed and the tracker
share one, and each downloader has its own.

Transmission is the slow one: it first tries an encrypted handshake (MSE), which bitswarm
does not speak, and dials again in plain text; then it declares interest only at its next
10-second choking round. So it finishes some ten seconds after the others, which by then
have left; the polls meanwhile see its connection to the seed, which it dialled itself.
The seed's upload is not capped: a cap turns on super-seeding (BEP 16), where the seed
offers two pieces at a time and offers more only when the peer says it has them, and
Transmission, which re-declares interest only every ten seconds, then takes minutes.

Waits poll something observable up to a deadline: a process's output or exit, the
tracker's scrape counts, Transmission's RPC status. A missing tool fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bitswarm.metainfo import Torrent

from .netns import NamespaceNetwork, open_test_network
from .payload import PIECE_LENGTH, write_payload
from .tools import StrPath, lt_process
from .trackers import (
    POLL_INTERVAL_S,
    TrackerUrls,
    Transmission,
    http_scrape,
    run_bitswarm_tracker,
    run_transmission,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
HOSTS = ("seed", "bitswarm", "libtorrent", "transmission")  # the seed's host runs the tracker too
PEER_PORT = 6881  # every peer has a namespace of its own, so they can share one port number
START_TIMEOUT_S = 20.0
TRANSFER_TIMEOUT_S = 40.0
# Transmission's RPC status for "seeding" (TR_STATUS_SEED).
TR_STATUS_SEED = 6


def swarm_counts(network: NamespaceNetwork, tracker: TrackerUrls, info_hash: bytes) -> tuple[int, int, int]:
    """(seeders, leechers, completed) as the tracker's scrape counts them, asked from the seed's host."""
    reply = network.call("seed", lambda: http_scrape(tracker.scrape, [info_hash]))
    entry = reply[b"files"].get(info_hash, {b"complete": 0, b"incomplete": 0, b"downloaded": 0})
    return int(entry[b"complete"]), int(entry[b"incomplete"]), int(entry[b"downloaded"])


def assert_same_tree(expected: Path, actual: Path, *, creates_empty_files: bool = True) -> None:
    """Every file under ``expected`` is under ``actual`` with the same bytes.

    Empty files too, unless ``creates_empty_files`` is False: then they may be missing
    (Transmission 3.00 never creates a file that holds no bytes; transmission#417,
    fixed in 4.1), though nothing else may stand in their place.
    """
    files = sorted(path.relative_to(expected) for path in expected.rglob("*") if path.is_file())
    assert any((expected / relative).stat().st_size == 0 for relative in files)
    for relative in files:
        if not creates_empty_files and (expected / relative).stat().st_size == 0:
            assert not (actual / relative).exists() or (actual / relative).read_bytes() == b"", relative
            continue
        assert (actual / relative).is_file(), f"{relative} is missing"
        assert (actual / relative).read_bytes() == (expected / relative).read_bytes(), relative


@dataclass
class Downloader:
    """A downloader process we wait for: done once it exits."""

    name: str
    process: subprocess.Popen[str]
    stdout: str = ""
    stderr: str = ""

    def finished(self) -> bool:
        if self.process.poll() is None:
            return False
        self.stdout, self.stderr = self.process.communicate()
        return True


@dataclass
class TransmissionWatch:
    """What polling Transmission's RPC has shown: its state, and every peer it had."""

    transmission: Transmission
    state: dict[str, Any] = field(default_factory=dict)
    # (address, port, isIncoming) of each peer connection seen in any poll.
    peers: set[tuple[str, int, bool]] = field(default_factory=set)

    def finished(self) -> bool:
        fields = ["status", "percentDone", "error", "errorString", "peers", "downloadedEver"]
        [self.state] = self.transmission.rpc("torrent-get", fields=fields)["torrents"]
        assert self.state["error"] in (0, 1), self.state["errorString"]  # 1: a tracker warning, retried
        self.peers |= {(peer["address"], peer["port"], peer["isIncoming"]) for peer in self.state["peers"]}
        return bool(self.state["status"] == TR_STATUS_SEED and self.state["percentDone"] == 1)


def wait_all(checks: dict[str, Callable[[], bool]], timeout_s: float, detail: Callable[[], str]) -> None:
    """Poll every check until each has returned True once; fails naming those still pending,
    with what ``detail`` says then."""
    pending = dict(checks)
    deadline = time.monotonic() + timeout_s
    while pending:
        for name, check in list(pending.items()):
            if check():
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not finished within {timeout_s} s: {sorted(pending)}; {detail()}")
        time.sleep(POLL_INTERVAL_S)  # polling observables, not standing in for one


def start_bitswarm(
    network: NamespaceNetwork, host: str, command: str, torrent: Path, *args: str
) -> subprocess.Popen[str]:
    """`bitswarm COMMAND TORRENT ARGS... --port PEER_PORT --json` inside ``host``'s namespace."""
    argv = [*BITSWARM, command, str(torrent), *args, "--port", str(PEER_PORT), "--json"]
    return subprocess.Popen(
        network.argv(host, argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_counts(
    network: NamespaceNetwork, tracker: TrackerUrls, info_hash: bytes, expected: tuple[int, int, int], what: str
) -> None:
    """Until the tracker's (seeders, leechers, completed) are ``expected``; fails with the last seen."""
    seen = [(-1, -1, -1)]

    def matches() -> bool:
        seen[-1] = swarm_counts(network, tracker, info_hash)
        return seen[-1] == expected

    try:
        wait_for(matches, what, START_TIMEOUT_S)
    except AssertionError as error:
        raise AssertionError(f"{error}: tracker counts {seen[-1]}, expected {expected}") from None


def test_bitswarm_libtorrent_and_transmission_download_together_from_one_bitswarm_seed(tmp_path: Path) -> None:
    payload = write_payload(tmp_path / "seed", seed=911)
    torrent = tmp_path / "payload.torrent"
    folders = {name: tmp_path / name for name in HOSTS[1:]}
    for folder in folders.values():
        folder.mkdir()
    with (
        open_test_network(HOSTS) as network,
        run_bitswarm_tracker(
            tmp_path / "tracker.log", host=network["seed"].address, wrap=lambda argv: network.argv("seed", argv)
        ) as tracker,
    ):
        argv = [*BITSWARM, "create", str(payload), "-o", str(torrent), "--v1"]  # Transmission 3.00 reads v1 only
        argv += ["--piece-length", str(PIECE_LENGTH), "-t", tracker.announce]
        created = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert created.returncode == 0, created.stderr
        info_hash = Torrent.decode(torrent.read_bytes()).info_hash_v1
        assert info_hash is not None

        seed = start_bitswarm(network, "seed", "seed", torrent, str(payload.parent))
        downloaders: list[Downloader] = []
        try:
            wait_for_counts(network, tracker, info_hash, (1, 0, 0), "the seed announcing")
            with run_transmission(
                tmp_path / "transmission",
                address=network["transmission"].address,
                wrap=lambda argv: network.argv("transmission", argv),
                call=lambda function: network.call("transmission", function),
            ) as transmission:
                # All three start at once; each finds the others through the tracker.
                get = start_bitswarm(network, "bitswarm", "get", torrent, "-o", str(folders["bitswarm"]), "--no-seed")
                downloaders.append(Downloader("bitswarm get", get))
                lt_args: list[StrPath] = [torrent, folders["libtorrent"], "--timeout", str(TRANSFER_TIMEOUT_S)]
                lt_args += ["--interface", network["libtorrent"].address]
                lt_download = lt_process("download", *lt_args, wrap=lambda argv: network.argv("libtorrent", argv))
                downloaders.append(Downloader("lt_driver download", lt_download))
                transmission.rpc("torrent-add", filename=str(torrent), **{"download-dir": str(folders["transmission"])})
                watch = TransmissionWatch(transmission)
                checks = {downloader.name: downloader.finished for downloader in downloaders}
                wait_all(
                    {**checks, "transmission": watch.finished},
                    TRANSFER_TIMEOUT_S,
                    lambda: f"transmission: {watch.state}\n{transmission.log_path.read_text()[-2000:]}",
                )

                for downloader in downloaders:
                    assert downloader.process.returncode == 0, (downloader.name, downloader.stderr)
                events = [json.loads(line)["event"] for line in downloaders[0].stdout.splitlines()]
                assert "finished" in events
                assert events[-1] == "stopped"
                report = json.loads(downloaders[1].stdout)
                assert report["is_seeding"] is True
                assert report["tracker_errors"] == []
                assert all("tracker" in peer["sources"] for peer in report["peers"]), report["peers"]
                # Transmission dialled the seed the tracker named: what the namespaces are for.
                assert (network["seed"].address, PEER_PORT, False) in watch.peers, watch.peers
                assert watch.state["downloadedEver"] > 0
                # Seeders: the seed and Transmission; bitswarm and libtorrent announced
                # "completed" and then "stopped".
                wait_for_counts(network, tracker, info_hash, (2, 0, 3), "three downloads counted")
        finally:
            for downloader in downloaders:
                if downloader.process.poll() is None:
                    downloader.process.kill()
                    downloader.process.communicate()
            status = stop_process(seed, "bitswarm seed")
            _, seed_stderr = seed.communicate()
        assert status == 0, seed_stderr
    for name, folder in folders.items():
        assert_same_tree(payload, folder / payload.name, creates_empty_files=name != "transmission")
