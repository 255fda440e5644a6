"""Local service discovery (BEP 14) over real multicast, between network namespaces.

Each endpoint runs its own event loop on the worker thread `NamespaceNetwork.call` keeps in
its namespace, so its sockets live there. The namespaces have no default route, which is
why the endpoints name their interface ("eth0"): see bitswarm/net/lsd.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.lsd import open_local_discovery

from .netns import IP_TIMEOUT_S, NamespaceNetwork, open_test_network
from .tools import lt_process, require

pytestmark = pytest.mark.interop

SHARED = bytes.fromhex("5a" * 20)
ONLY_A = bytes.fromhex("a0" * 20)
ONLY_B = bytes.fromhex("b0" * 20)
DEADLINE_S = 20.0


@dataclass
class Heard:
    """What one endpoint's callback saw; ``done`` is set once it saw what it waits for."""

    peers: set[tuple[bytes, str, int]] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)  # the groups are joined


def run_endpoint(
    info_hashes: list[bytes],
    port: int,
    expected: Callable[[bytes, str, int], bool],
    heard: Heard,
    other: Heard,
    *,
    ipv6: bool,
) -> dict[str, int]:
    """Announce ``info_hashes`` until this endpoint has heard what it expects and ``other`` is done."""

    def on_peer(info_hash: bytes, host: str, peer_port: int) -> None:
        heard.peers.add((info_hash, host, peer_port))
        if expected(info_hash, host, peer_port):
            heard.done.set()

    async def main() -> dict[str, int]:
        async with open_local_discovery(
            port=port,
            on_peer=on_peer,
            interface="eth0",
            ipv4=not ipv6,
            ipv6=ipv6,
            # Fast enough for a test: announces that a late joiner missed come again soon.
            interval_s=0.3,
            min_round_gap_s=0.1,
            first_announce_delay_s=0.0,
        ) as service:
            for info_hash in info_hashes:
                service.add_torrent(info_hash)
            heard.ready.set()
            # Keep announcing until both sides have heard each other (or the deadline).
            await asyncio.to_thread(heard.done.wait, DEADLINE_S)
            await asyncio.to_thread(other.done.wait, DEADLINE_S)
            return dict(service.counters)

    return asyncio.run(main())


def expect(*wanted: object) -> Callable[[bytes, str, int], bool]:
    return lambda *peer: peer == wanted


def discover_each_other(network: NamespaceNetwork, hosts: tuple[str, str], *, ipv6: bool) -> tuple[Heard, Heard]:
    heard_a, heard_b = Heard(), Heard()
    address_a, address_b = hosts
    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(
            network.call,
            "a",
            lambda: run_endpoint([SHARED, ONLY_A], 6001, expect(SHARED, address_b, 6002), heard_a, heard_b, ipv6=ipv6),
        )
        b = pool.submit(
            network.call,
            "b",
            lambda: run_endpoint([ONLY_B, SHARED], 6002, expect(SHARED, address_a, 6001), heard_b, heard_a, ipv6=ipv6),
        )
        counters = (a.result(timeout=2 * DEADLINE_S + 10), b.result(timeout=2 * DEADLINE_S + 10))
    assert counters == ({}, {})  # nothing malformed and no send failed
    return heard_a, heard_b


def test_two_endpoints_in_two_namespaces_learn_each_others_address_and_port() -> None:
    with open_test_network(["a", "b"]) as network:
        heard_a, heard_b = discover_each_other(network, (network["a"].address, network["b"].address), ipv6=False)
    # Only the torrent they share, only the other side (our own announces loop back and are
    # filtered by the cookie), with the address the datagram came from.
    assert heard_a.peers == {(SHARED, network["b"].address, 6002)}
    assert heard_b.peers == {(SHARED, network["a"].address, 6001)}


def test_two_endpoints_find_each_other_over_ipv6_too() -> None:
    with open_test_network(["a", "b"]) as network:
        # eth0's link-local address is unusable until duplicate address detection ends (a
        # send fails with EADDRNOTAVAIL meanwhile); a unique local address added without
        # DAD is usable at once, and the kernel picks it as the source for the site-local group.
        addresses = {"a": "fd51::1", "b": "fd51::2"}
        for label, address in addresses.items():
            subprocess.run(
                [require("ip"), "-n", network[label].netns, "addr", "add", f"{address}/64", "dev", "eth0", "nodad"],
                check=True,
                timeout=IP_TIMEOUT_S,
            )
        heard_a, heard_b = discover_each_other(network, (addresses["a"], addresses["b"]), ipv6=True)
    assert heard_a.peers == {(SHARED, "fd51::2", 6002)}
    assert heard_b.peers == {(SHARED, "fd51::1", 6001)}


def read_stage(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The driver's next JSON line; it bounds its own time (--timeout), so this returns."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"lt_driver ended early: {process.stderr.read() if process.stderr else ''}"
    stage: dict[str, Any] = json.loads(line)
    assert "error" not in stage, stage
    return stage


def test_bitswarm_and_a_libtorrent_seed_hear_each_others_lsd_announces(tmp_path: Path) -> None:
    content = tmp_path / "content.bin"
    content.write_bytes(random.Random(14).randbytes(100_000))
    torrent = tmp_path / "content.torrent"
    torrent.write_bytes(create(content, CreateOptions(version=TorrentVersion.V1)))
    info_hash = Torrent.decode(torrent.read_bytes()).info_hash_v1
    assert info_hash is not None
    with open_test_network(["libtorrent", "bitswarm"]) as network:
        lt_address, our_address = network["libtorrent"].address, network["bitswarm"].address
        heard, libtorrent_heard = Heard(), Heard()
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Ours first: libtorrent announces as its torrent starts, then only every 5 minutes.
            ours = pool.submit(
                network.call,
                "bitswarm",
                lambda: run_endpoint(
                    [info_hash],
                    7000,
                    lambda peer_hash, host, _port: (peer_hash, host) == (info_hash, lt_address),
                    heard,
                    libtorrent_heard,
                    ipv6=False,
                ),
            )
            assert heard.ready.wait(DEADLINE_S)
            driver = lt_process(
                "lsd",
                torrent,
                tmp_path,
                "--interface",
                lt_address,
                "--timeout",
                str(DEADLINE_S),
                wrap=lambda argv: network.argv("libtorrent", argv),
            )
            try:
                assert driver.stdin is not None
                seeding = read_stage(driver)
                driver.stdin.write("\n")
                driver.stdin.flush()
                try:
                    lsd_peer = read_stage(driver)
                finally:
                    libtorrent_heard.done.set()
                driver.stdin.write("\n")
                driver.stdin.flush()
                assert driver.wait(timeout=DEADLINE_S) == 0
            finally:
                if driver.poll() is None:
                    driver.kill()
                    driver.wait()
            counters = ours.result(timeout=2 * DEADLINE_S + 10)
    assert counters == {}
    # libtorrent announced the torrent with the port it listens on, from its own address ...
    assert heard.peers == {(info_hash, lt_address, seeding["listen_port"])}
    # ... and took ours (address from the datagram, port from the announce) as a peer.
    assert lsd_peer == {"stage": "lsd_peer", "peers": [[our_address, 7000]]}
