"""bitswarm and Transmission 3.00 over uTP (BEP 29) only, both ways (issue 15, point 4).

Transmission 3.00 does not dial 127.x peers, so each peer runs in a network namespace of
its own (`netns.py`). TCP between the two peers is made impossible by an nftables table in
the seed's namespace: every TCP packet from the downloader's address is dropped, so
neither side's SYN, nor an answer to one, gets through, whoever dials. A transfer that
completes therefore went over uTP, and the same table counts what the seed sent from its
UDP peer port to the downloader: at least the payload's size. Transmission's RPC tells it
too: a peer connected over uTP carries a ``T`` in its ``flagStr``.

1. `bitswarm get` downloads from a Transmission seed, given only a magnet link whose
   ``x.pe`` names Transmission: the info dictionary (BEP 9) and the content both come
   over uTP.
2. Transmission downloads from `bitswarm seed`, which it learns from a `bitswarm tracker`
   in a third namespace (so the tracker's HTTP is not caught by the table). Transmission
   3.00 dials a tracker's peers over uTP first when uTP is on (it falls back to TCP only
   after a uTP handshake failed), so no PEX or earlier connection is needed; bitswarm
   takes the uTP connection on the UDP socket of its peer port (its DHT is off).

   This test found a bitswarm interop bug: Transmission 3.00 reads nothing of a uTP
   packet past the end of the BitTorrent handshake until another packet arrives, so the
   seed's extension handshake and have-all, sent in the packet with its handshake, sat
   unread and Transmission never wanted anything. bitswarm now ends a uTP packet after
   the handshake of a connection it accepted (``UTPTransport.end_packet``).

Each takes some 12-18 s, most of it Transmission's: it unchokes (case 1) and declares
interest (case 2) only at its 10-second rechoke, and in the captures its first uTP
packets came half a second to a second apart.

Everything runs with DHT, local discovery and port mapping off. Waits poll something
observable up to a deadline; every process is ended by its PID. A missing tool fails
the test.
"""

from __future__ import annotations

import json
import random
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
from .tools import require
from .trackers import POLL_INTERVAL_S, Transmission, http_scrape, run_bitswarm_tracker, run_transmission, stop_process

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
# bitswarm's peers use no DHT, local discovery or port mapping in a closed network.
CLOSED = ["--no-dht", "--no-lsd", "--no-port-mapping"]
PEER_PORT = 6881  # bitswarm's, in a namespace of its own
SIZE = 4 * 1024 * 1024 + 54_321
PIECE = 256 * 1024
START_TIMEOUT_S = 20.0
TRANSFER_TIMEOUT_S = 60.0
NFT_TIMEOUT_S = 10.0
TABLE = "bitswarm_utp_test"
# Transmission's RPC status for "seeding" (TR_STATUS_SEED).
TR_STATUS_SEED = 6


def make_torrent(tmp_path: Path, *trackers: str) -> tuple[Path, Path, bytes]:
    """A v1 torrent (Transmission 3.00 reads no other) of one SIZE-byte file; (torrent, file, info-hash)."""
    source = tmp_path / "seed" / "payload.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(2915).randbytes(SIZE))
    torrent = tmp_path / "payload.torrent"
    argv = [*BITSWARM, "create", str(source), "-o", str(torrent), "--v1", "--piece-length", str(PIECE)]
    for tracker in trackers:
        argv += ["-t", tracker]
    created = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert created.returncode == 0, created.stderr
    info_hash = Torrent.decode(torrent.read_bytes()).info_hash_v1
    assert info_hash is not None
    return torrent, source, info_hash


@dataclass(frozen=True, slots=True)
class UtpOnly:
    """The nftables table in the seed's namespace: no TCP from the peer, uTP counted."""

    network: NamespaceNetwork
    label: str  # the seed's host

    def _nft(self, *args: str) -> str:
        argv = self.network.argv(self.label, [require("nft"), *args])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=NFT_TIMEOUT_S, check=False)
        assert done.returncode == 0, f"{' '.join(argv)}: exit status {done.returncode}: {done.stderr.strip()}"
        return done.stdout

    def install(self, peer: str, seed_port: int) -> None:
        """Drop every TCP packet from ``peer``; count UDP from ``seed_port`` to it, and the drops."""
        self._nft("add", "table", "inet", TABLE)
        self._nft("add", "counter", "inet", TABLE, "tcp_dropped")
        self._nft("add", "counter", "inet", TABLE, "utp_sent")
        self._nft("add", "chain", "inet", TABLE, "input", "{ type filter hook input priority 0; }")
        self._nft("add", "chain", "inet", TABLE, "output", "{ type filter hook output priority 0; }")
        self._nft("add", "rule", "inet", TABLE, "input", "ip", "saddr", peer, "meta", "l4proto", "tcp",
                  "counter", "name", "tcp_dropped", "drop")  # fmt: skip
        self._nft("add", "rule", "inet", TABLE, "output", "ip", "daddr", peer, "udp", "sport", str(seed_port),
                  "counter", "name", "utp_sent")  # fmt: skip

    def counters(self) -> dict[str, tuple[int, int]]:
        """(packets, bytes) by counter name."""
        listing = json.loads(self._nft("-j", "list", "counters", "table", "inet", TABLE))
        return {
            item["counter"]["name"]: (item["counter"]["packets"], item["counter"]["bytes"])
            for item in listing["nftables"]
            if "counter" in item
        }


@dataclass
class TransmissionWatch:
    """What polling Transmission's RPC has shown: its state, and each peer's flags."""

    transmission: Transmission
    state: dict[str, Any] = field(default_factory=dict)
    # address -> every flagStr seen for a peer at that address.
    flags: dict[str, set[str]] = field(default_factory=dict)

    def poll(self) -> dict[str, Any]:
        fields = ["status", "percentDone", "error", "errorString", "peers", "uploadedEver", "downloadedEver"]
        [self.state] = self.transmission.rpc("torrent-get", fields=fields)["torrents"]
        assert self.state["error"] in (0, 1), self.state["errorString"]  # 1: a tracker warning, retried
        for peer in self.state["peers"]:
            self.flags.setdefault(peer["address"], set()).add(peer["flagStr"])
        return self.state

    def seeding(self) -> bool:
        state = self.poll()
        return bool(state["status"] == TR_STATUS_SEED and state["percentDone"] == 1)


def poll_until(done: Callable[[], bool], what: str, timeout_s: float, detail: Callable[[], str]) -> None:
    """Call ``done`` until it returns True; fails naming ``what`` with what ``detail`` says."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s; {detail()}")
        time.sleep(POLL_INTERVAL_S)  # polling an observable, not standing in for one


def start_transmission(network: NamespaceNetwork, label: str, root: Path) -> Any:
    return run_transmission(
        root,
        address=network[label].address,
        wrap=lambda argv: network.argv(label, argv),
        call=lambda function: network.call(label, function),
        utp=True,
    )


def test_bitswarm_downloads_from_transmission_over_utp_only(tmp_path: Path) -> None:
    torrent, source, info_hash = make_torrent(tmp_path)
    output = tmp_path / "get"
    output.mkdir()
    with (
        open_test_network(("transmission", "bitswarm")) as network,
        start_transmission(network, "transmission", tmp_path / "transmission") as transmission,
    ):
        firewall = UtpOnly(network, "transmission")
        firewall.install(network["bitswarm"].address, transmission.peer_port)
        transmission.rpc("torrent-add", filename=str(torrent), **{"download-dir": str(source.parent)})
        watch = TransmissionWatch(transmission)
        poll_until(watch.seeding, "transmission seeding the payload", START_TIMEOUT_S, lambda: str(watch.state))

        seed_address = f"{network['transmission'].address}:{transmission.peer_port}"
        magnet = f"magnet:?xt=urn:btih:{info_hash.hex()}&x.pe={seed_address}"
        argv = [*BITSWARM, "get", magnet, "-o", str(output), "--no-seed", "--port", str(PEER_PORT), "--json", *CLOSED]
        get = subprocess.Popen(
            network.argv("bitswarm", argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            poll_until(
                lambda: watch.poll() is not None and get.poll() is not None,
                "bitswarm get finishing",
                TRANSFER_TIMEOUT_S,
                lambda: f"{watch.state}; {firewall.counters()}\n{transmission.log_path.read_text()[-2000:]}",
            )
            stdout, stderr = get.communicate()
        finally:
            if get.poll() is None:
                stop_process(get, "bitswarm get")
                get.communicate()
        assert get.returncode == 0, stderr
        events = [json.loads(line)["event"] for line in stdout.splitlines()]
        assert "finished" in events, events
        counters = firewall.counters()
        uploaded = transmission.rpc("torrent-get", fields=["uploadedEver"])["torrents"][0]["uploadedEver"]
    assert (output / "payload.bin").read_bytes() == source.read_bytes()
    assert (output / "payload.bin.torrent").is_file()  # the info dictionary came from Transmission
    # bitswarm dialled uTP first and never fell back to TCP; Transmission sent the payload over UDP.
    assert counters["tcp_dropped"] == (0, 0), counters
    assert counters["utp_sent"][1] > SIZE, counters
    assert uploaded >= SIZE
    # Any peer Transmission listed while it served was a uTP peer.
    assert all("T" in flags for seen in watch.flags.values() for flags in seen), watch.flags


def test_transmission_downloads_from_bitswarm_over_utp_only(tmp_path: Path) -> None:
    hosts = ("seed", "transmission", "tracker")
    with (
        open_test_network(hosts) as network,
        run_bitswarm_tracker(
            tmp_path / "tracker.log", host=network["tracker"].address, wrap=lambda argv: network.argv("tracker", argv)
        ) as tracker,
    ):
        torrent, source, info_hash = make_torrent(tmp_path, tracker.announce)
        firewall = UtpOnly(network, "seed")
        firewall.install(network["transmission"].address, PEER_PORT)
        argv = [*BITSWARM, "seed", str(torrent), str(source.parent), "--port", str(PEER_PORT), "--json", *CLOSED]
        seed = subprocess.Popen(
            network.argv("seed", argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def announced() -> bool:
                assert seed.poll() is None, "bitswarm seed exited"
                reply = network.call("tracker", lambda: http_scrape(tracker.scrape, [info_hash]))
                entry = reply[b"files"].get(info_hash, {})
                return bool(entry.get(b"complete") == 1)

            poll_until(announced, "bitswarm seed announcing", START_TIMEOUT_S, lambda: "")
            folder = tmp_path / "transmission-get"
            folder.mkdir()
            with start_transmission(network, "transmission", tmp_path / "transmission") as transmission:
                transmission.rpc("torrent-add", filename=str(torrent), **{"download-dir": str(folder)})
                watch = TransmissionWatch(transmission)
                poll_until(
                    watch.seeding,
                    "transmission downloading the payload",
                    TRANSFER_TIMEOUT_S,
                    lambda: f"{watch.state}; {firewall.counters()}\n{transmission.log_path.read_text()[-3000:]}",
                )
                counters = firewall.counters()
        finally:
            status = stop_process(seed, "bitswarm seed")
            _, seed_stderr = seed.communicate()
        assert status == 0, seed_stderr
    assert (folder / "payload.bin").read_bytes() == source.read_bytes()
    # Transmission dialled the seed and the connection was uTP: TCP could not have carried it.
    assert network["seed"].address in watch.flags, watch.flags
    assert all("T" in flags for flags in watch.flags[network["seed"].address]), watch.flags
    assert counters["utp_sent"][1] > SIZE, counters
    assert watch.state["downloadedEver"] >= SIZE
