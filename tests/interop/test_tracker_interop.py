"""`bitswarm tracker` with real clients, and against opentracker (issue 3, point 8).

- transmission-daemon 3.00 seeds, libtorrent 2.0 downloads, and the only way they find
  each other is `bitswarm tracker` over HTTP or over UDP (no DHT, LSD, PEX or manual peer);
  the tracker's HTTP and UDP scrapes count them while libtorrent leeches and after.
- Debian's opentracker and `bitswarm tracker` get the same scripted announces and scrapes,
  over HTTP and over UDP, and must agree on every count and peer set. Where the two
  differ by design, a test pins down what each one does (see `test_policy_differences_*`).

A missing tool fails the test. Waits poll something observable up to a deadline.
"""

from __future__ import annotations

import hashlib
import json
import selectors
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .payload import PIECE_LENGTH, write_payload
from .tools import lt_process
from .trackers import (
    TrackerUrls,
    UdpTrackerClient,
    UdpTrackerError,
    compact_peers,
    http_announce,
    http_scrape,
    run_bitswarm_tracker,
    run_opentracker,
    run_transmission,
    wait_for,
)

pytestmark = pytest.mark.interop

# Transmission's RPC status for "seeding" (TR_STATUS_SEED).
TR_STATUS_SEED = 6
DOWNLOAD_TIMEOUT_S = 40.0


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[TrackerUrls]:
    """`bitswarm tracker` with the memory store on free loopback ports."""
    with run_bitswarm_tracker(tmp_path / "tracker.log") as urls:
        yield urls


def bitswarm_create(content: Path, out: Path, tracker_url: str) -> bytes:
    """Make a v1 torrent of ``content`` announcing to ``tracker_url``; return its info-hash."""
    argv = [sys.executable, "-m", "bitswarm", "create", str(content), "-o", str(out), "--v1"]
    argv += ["--piece-length", str(PIECE_LENGTH), "-t", tracker_url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    from bitswarm.metainfo import Torrent

    info_hash = Torrent.decode(out.read_bytes()).info_hash_v1
    assert info_hash is not None
    return info_hash


def scrape_counts(tracker: TrackerUrls, info_hash: bytes) -> dict[str, tuple[int, int, int]]:
    """(seeders, completed, leechers) from the tracker's HTTP and UDP scrapes."""
    files = http_scrape(tracker.scrape, [info_hash])[b"files"]
    entry = files[info_hash]
    with UdpTrackerClient(tracker.udp_address) as client:
        udp = client.scrape([info_hash])[info_hash]
    return {"http": (entry[b"complete"], entry[b"downloaded"], entry[b"incomplete"]), "udp": udp}


class LtDownload:
    """`lt_driver.py download --hold`: read its stage lines, let it go on, collect its end."""

    def __init__(self, torrent: Path, save_path: Path) -> None:
        self.process = lt_process("download", torrent, save_path, "--timeout", str(DOWNLOAD_TIMEOUT_S), "--hold")

    def stage(self, name: str) -> dict[str, Any]:
        """The next stage line, which must be ``name``; fails with the driver's stderr otherwise."""
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(DOWNLOAD_TIMEOUT_S + 10)
        line = self.process.stdout.readline() if ready else ""
        report = json.loads(line) if line.strip() else {}
        if report.get("stage") != name:
            self.process.kill()
            _, stderr = self.process.communicate()
            pytest.fail(f"lt_driver download: wanted stage {name!r}, got {line!r}\nstderr:\n{stderr}")
        return report

    def go_on(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def finish(self) -> None:
        """Let the driver close its session and exit; it must exit with status 0."""
        self.go_on()
        _, stderr = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, stderr


def assert_same_tree(expected: Path, actual: Path) -> None:
    """Every file under ``expected`` exists under ``actual`` with the same bytes."""
    files = sorted(path.relative_to(expected) for path in expected.rglob("*") if path.is_file())
    assert files, f"{expected} holds no files"
    for relative in files:
        assert (actual / relative).read_bytes() == (expected / relative).read_bytes(), relative


@pytest.mark.parametrize("protocol", ["http", "udp"])
def test_libtorrent_downloads_from_transmission_found_through_bitswarm_tracker(
    tmp_path: Path, tracker: TrackerUrls, protocol: str
) -> None:
    seed_dir = tmp_path / "seed"
    payload = write_payload(seed_dir, seed=3008)
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.announce if protocol == "http" else tracker.udp)
    leech_dir = tmp_path / "leech"
    leech_dir.mkdir()

    with run_transmission(tmp_path / "transmission") as transmission:
        transmission.rpc("torrent-add", filename=str(torrent), **{"download-dir": str(seed_dir)})

        def seeding() -> bool:
            torrents = transmission.rpc("torrent-get", fields=["status", "percentDone", "error", "errorString"])
            [state] = torrents["torrents"]
            assert state["error"] in (0, 1), state["errorString"]  # 1: a tracker warning, retried
            return bool(state["status"] == TR_STATUS_SEED and state["percentDone"] == 1)

        wait_for(seeding, "transmission seeding the payload")
        # Transmission's announce is what makes it findable: wait until the tracker counts it.
        wait_for(
            lambda: scrape_counts(tracker, info_hash) == {"http": (1, 0, 0), "udp": (1, 0, 0)},
            "the tracker counting transmission as a seeder",
        )

        download = LtDownload(torrent, leech_dir)
        announced = download.stage("announced")
        # libtorrent heard of exactly one peer, from the tracker: transmission.
        assert [reply["num_peers"] for reply in announced["tracker_replies"]] == [1]
        assert scrape_counts(tracker, info_hash) == {"http": (1, 0, 1), "udp": (1, 0, 1)}
        assert (announced["num_complete"], announced["num_incomplete"]) == (1, 1)
        download.go_on()

        seeding_report = download.stage("seeding")
        assert seeding_report["is_seeding"] is True
        assert seeding_report["tracker_errors"] == []
        transmission_peers = [peer for peer in seeding_report["peers"] if peer["port"] == transmission.peer_port]
        assert len(transmission_peers) == 1, seeding_report["peers"]
        [peer] = transmission_peers
        assert "tracker" in peer["sources"]
        assert peer["outgoing"] is True  # libtorrent dialled transmission's listening port
        assert "Transmission" in peer["client"]
        assert {(peer["ip"], peer["port"]) for peer in seeding_report["peers"]} == {
            ("127.0.0.1", transmission.peer_port)
        }
        # libtorrent announced "completed": two seeders, one completed download.
        assert scrape_counts(tracker, info_hash) == {"http": (2, 1, 0), "udp": (2, 1, 0)}
        download.finish()

    assert_same_tree(payload, leech_dir / payload.name)


# -- opentracker and bitswarm tracker, same requests -------------------------------------


def swarm_hash(name: str) -> bytes:
    return hashlib.sha1(f"bitswarm differential {name}".encode(), usedforsecurity=False).digest()


PROTOCOLS = ("http", "udp")
SWARMS = ("mixed", "restart", "leechers")
# Whitelisted on both trackers but never announced, to scrape.
UNANNOUNCED = "unannounced"
# Used by the tests of known differences; one swarm per question.
DIFFERENCES = ("completed-while-seeding", "emptied", "scrape-unknown")
NOT_LISTED = swarm_hash("not on the whitelist")


def all_hashes() -> list[bytes]:
    names = [f"{protocol}/{swarm}" for protocol in PROTOCOLS for swarm in (*SWARMS, UNANNOUNCED, *DIFFERENCES)]
    return [swarm_hash(name) for name in names]


@dataclass(frozen=True, slots=True)
class TrackerPair:
    opentracker: TrackerUrls
    bitswarm: TrackerUrls


@pytest.fixture(scope="module")
def trackers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerPair]:
    """opentracker and `bitswarm tracker`, both serving only the test swarms' whitelist."""
    root = tmp_path_factory.mktemp("differential")
    with run_opentracker(root / "opentracker", all_hashes(), swarm_hash("readiness probe")) as opentracker:
        config = root / "bitswarm.toml"
        # Every request comes from 127.0.0.1; the default per-address limits are for the wild.
        config.write_text("rate_limit_per_s = 10000.0\nrate_limit_burst = 10000.0\n")
        whitelist = root / "opentracker" / "whitelist"
        with run_bitswarm_tracker(
            root / "bitswarm.log", "--config", str(config), "--whitelist", str(whitelist)
        ) as bitswarm:
            yield TrackerPair(opentracker, bitswarm)


@dataclass(frozen=True, slots=True)
class Step:
    swarm: str
    port: int
    event: str
    left: int


# Peers are 127.0.0.1 at distinct ports: opentracker (Debian's build, without
# WANT_IP_FROM_QUERY_STRING) ignores ip=, and both trackers key a peer on address and port.
SCRIPT = (
    Step("mixed", 6001, "started", 1000),
    Step("mixed", 6002, "started", 0),
    Step("mixed", 6003, "started", 500),
    Step("mixed", 6004, "started", 700),
    Step("mixed", 6001, "", 300),
    Step("mixed", 6001, "completed", 0),
    Step("mixed", 6001, "completed", 0),  # said twice, finished once
    Step("mixed", 6003, "completed", 200),  # "completed" with bytes left is no completion
    Step("mixed", 6003, "stopped", 200),
    Step("mixed", 6005, "stopped", 0),  # a peer the tracker never saw
    Step("mixed", 6003, "started", 200),  # back after stopping
    Step("mixed", 6004, "", 0),  # finished without saying "completed"
    Step("restart", 6101, "started", 0),
    Step("restart", 6102, "started", 100),
    Step("restart", 6102, "completed", 0),
    Step("restart", 6102, "stopped", 0),
    Step("restart", 6102, "completed", 0),  # a new peer again: its completion counts again
    Step("restart", 6103, "started", 50),
    Step("leechers", 6201, "started", 10),
    Step("leechers", 6202, "started", 20),
    Step("leechers", 6203, "", 30),  # first announce without an event
    Step("leechers", 6201, "stopped", 10),
)


@dataclass
class Model:
    """What both trackers should know: per swarm, each peer's port and whether it seeds."""

    peers: dict[str, dict[int, bool]]
    completed: dict[str, int]

    def apply(self, step: Step) -> None:
        swarm = self.peers.setdefault(step.swarm, {})
        was_seed = swarm.pop(step.port, None)
        if step.event == "stopped":
            return
        swarm[step.port] = step.left == 0
        if step.event == "completed" and step.left == 0 and not was_seed:
            self.completed[step.swarm] = self.completed.get(step.swarm, 0) + 1

    def counts(self, swarm: str) -> tuple[int, int, int]:
        """(seeders, completed, leechers), the order of a BEP 15 scrape."""
        peers = self.peers.get(swarm, {})
        seeders = sum(peers.values())
        return (seeders, self.completed.get(swarm, 0), len(peers) - seeders)

    def opentracker_peers(self, step: Step) -> set[tuple[str, int]]:
        """opentracker answers with every peer of the swarm: the asker too, seeders to seeders."""
        if step.event == "stopped":
            return set()
        return {("127.0.0.1", port) for port in self.peers[step.swarm]}

    def bitswarm_peers(self, step: Step) -> set[tuple[str, int]]:
        """bitswarm never names the asker, and gives a seeder only leechers."""
        if step.event == "stopped":
            return set()
        peers = self.peers[step.swarm]
        return {
            ("127.0.0.1", port) for port, seeds in peers.items() if port != step.port and not (step.left == 0 and seeds)
        }


@dataclass(frozen=True, slots=True)
class Answer:
    seeders: int
    leechers: int
    completed: int | None  # None: not in the reply (UDP; opentracker's HTTP "stopped" reply)
    peers: set[tuple[str, int]]


def announce(urls: TrackerUrls, protocol: str, swarm: str, step: Step) -> Answer:
    info_hash = swarm_hash(f"{protocol}/{swarm}")
    if protocol == "http":
        reply = http_announce(urls.announce, info_hash, port=step.port, left=step.left, event=step.event)
        assert b"failure reason" not in reply, reply
        return Answer(
            reply[b"complete"], reply[b"incomplete"], reply.get(b"downloaded"), compact_peers(reply[b"peers"])
        )
    with UdpTrackerClient(urls.udp_address) as client:
        udp = client.announce(info_hash, port=step.port, left=step.left, event=step.event)
    assert udp is not None, f"no UDP reply to {step}"
    return Answer(udp.seeders, udp.leechers, None, udp.peers)


def scrape_both_ways(urls: TrackerUrls, protocol: str, swarms: list[str]) -> dict[str, dict[str, tuple[int, int, int]]]:
    """(seeders, completed, leechers) per swarm from an HTTP scrape and a UDP scrape;
    a swarm missing from the HTTP reply is left out of its "http" entry."""
    hashes = {swarm: swarm_hash(f"{protocol}/{swarm}") for swarm in swarms}
    files = http_scrape(urls.scrape, list(hashes.values()))[b"files"]
    with UdpTrackerClient(urls.udp_address) as client:
        udp = client.scrape(list(hashes.values()))
    http = {
        swarm: (files[h][b"complete"], files[h][b"downloaded"], files[h][b"incomplete"])
        for swarm, h in hashes.items()
        if h in files
    }
    return {"http": http, "udp": {swarm: udp[h] for swarm, h in hashes.items()}}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_opentracker_and_bitswarm_agree_on_a_scripted_swarm(trackers: TrackerPair, protocol: str) -> None:
    model = Model({}, {})
    for number, step in enumerate(SCRIPT):
        model.apply(step)
        theirs = announce(trackers.opentracker, protocol, step.swarm, step)
        ours = announce(trackers.bitswarm, protocol, step.swarm, step)
        seeders, completed, leechers = model.counts(step.swarm)
        where = f"step {number} {step}"
        assert (theirs.seeders, theirs.leechers) == (seeders, leechers), where
        assert (ours.seeders, ours.leechers) == (seeders, leechers), where
        if protocol == "http":
            # opentracker's reply to "stopped" has no "downloaded"; every other reply has it.
            assert theirs.completed == (None if step.event == "stopped" else completed), where
            assert ours.completed == completed, where
        assert theirs.peers == model.opentracker_peers(step), where
        assert ours.peers == model.bitswarm_peers(step), where
        # The same peers once the two policies below are applied to opentracker's answer.
        others = theirs.peers - {("127.0.0.1", step.port)}
        if step.left == 0:
            others -= {("127.0.0.1", port) for port, seeds in model.peers[step.swarm].items() if seeds}
        assert ours.peers == others, where

    expected = {swarm: model.counts(swarm) for swarm in SWARMS}
    for urls in (trackers.opentracker, trackers.bitswarm):
        scraped = scrape_both_ways(urls, protocol, list(SWARMS))
        assert scraped == {"http": expected, "udp": expected}, urls
    # A whitelisted swarm nobody announced counts zero over UDP on both.
    for urls in (trackers.opentracker, trackers.bitswarm):
        assert scrape_both_ways(urls, protocol, [UNANNOUNCED])["udp"] == {UNANNOUNCED: (0, 0, 0)}


# -- where opentracker and bitswarm differ by design -------------------------------------


def test_completed_from_a_peer_already_seeding_counts_on_opentracker_only(trackers: TrackerPair) -> None:
    swarm = "completed-while-seeding"
    counts = {}
    for name, urls in (("opentracker", trackers.opentracker), ("bitswarm", trackers.bitswarm)):
        announce(urls, "http", swarm, Step(swarm, 7001, "started", 0))
        announce(urls, "http", swarm, Step(swarm, 7001, "completed", 0))
        counts[name] = scrape_both_ways(urls, "http", [swarm])["http"][swarm]
    # opentracker counts a peer's first "completed" whatever it announced before;
    # bitswarm counts a completion only when a leecher becomes a seeder.
    assert counts == {"opentracker": (1, 1, 0), "bitswarm": (1, 0, 0)}


def test_a_swarm_emptied_by_stops_keeps_its_completed_count_on_both(trackers: TrackerPair) -> None:
    swarm = "emptied"
    counts = {}
    for name, urls in (("opentracker", trackers.opentracker), ("bitswarm", trackers.bitswarm)):
        announce(urls, "http", swarm, Step(swarm, 7101, "started", 10))
        announce(urls, "http", swarm, Step(swarm, 7101, "completed", 0))
        announce(urls, "http", swarm, Step(swarm, 7101, "stopped", 0))
        counts[name] = scrape_both_ways(urls, "http", [swarm])
    # Both keep a swarm with completions after its last peer leaves (opentracker until its
    # torrent timeout, bitswarm until it has been empty for the peer timeout).
    assert counts["opentracker"] == {"http": {swarm: (0, 1, 0)}, "udp": {swarm: (0, 1, 0)}}
    assert counts["bitswarm"] == counts["opentracker"]


def test_scrapes_and_announces_of_unknown_swarms_differ(trackers: TrackerPair) -> None:
    listed = swarm_hash("http/scrape-unknown")
    # A whitelisted swarm nobody announced: opentracker leaves it out of an HTTP scrape,
    # bitswarm lists it with zeros. Over UDP both answer zeros.
    assert http_scrape(trackers.opentracker.scrape, [listed]) == {b"files": {}}
    zeros = {b"complete": 0, b"downloaded": 0, b"incomplete": 0}
    assert http_scrape(trackers.bitswarm.scrape, [listed]) == {b"files": {listed: zeros}}
    # A swarm not on the whitelist: opentracker treats a scrape like any unknown swarm
    # (left out over HTTP, zeros over UDP); bitswarm refuses it both ways.
    assert http_scrape(trackers.opentracker.scrape, [NOT_LISTED]) == {b"files": {}}
    refused = b"torrent not registered with this tracker"
    assert http_scrape(trackers.bitswarm.scrape, [NOT_LISTED]) == {b"failure reason": refused}
    with UdpTrackerClient(trackers.opentracker.udp_address) as client:
        assert client.scrape([NOT_LISTED]) == {NOT_LISTED: (0, 0, 0)}
    with (
        UdpTrackerClient(trackers.bitswarm.udp_address) as client,
        pytest.raises(UdpTrackerError, match="not registered"),
    ):
        client.scrape([NOT_LISTED])
    # Announcing it: both refuse over HTTP; over UDP opentracker sends a bare 8-byte
    # announce header (no counts, no peers), bitswarm an error (action 3).
    theirs = http_announce(trackers.opentracker.announce, NOT_LISTED, port=7201, left=1, event="started")
    assert theirs == {b"failure reason": b"Requested download is not authorized for use with this tracker."}
    ours = http_announce(trackers.bitswarm.announce, NOT_LISTED, port=7201, left=1, event="started")
    assert ours == {b"failure reason": refused}
    with UdpTrackerClient(trackers.opentracker.udp_address) as client, pytest.raises(UdpTrackerError, match="8 bytes"):
        client.announce(NOT_LISTED, port=7201, left=1, event="started")
    with (
        UdpTrackerClient(trackers.bitswarm.udp_address) as client,
        pytest.raises(UdpTrackerError, match="not registered"),
    ):
        client.announce(NOT_LISTED, port=7201, left=1, event="started")
