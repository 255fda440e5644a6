"""Port mapping against real router software: bitswarm seeds behind miniupnpd's NAT, and a
libtorrent peer on the "internet" side downloads from it through the mapped port.

The home network is ``home_router.py``'s: bitswarm in "lan", miniupnpd and nftables in
"router", a bitswarm tracker and libtorrent in "wan". The router lets the LAN reach only
the tracker's port, so libtorrent's download can only have come in through the mapping
that bitswarm asked for. Each test runs one protocol with the other off in miniupnpd: UPnP
IGD, then PCP. After bitswarm exits, the router's DNAT chain is empty again. miniupnpd
answers PCP, so NAT-PMP (our fallback for gateways that do not) is checked on its own
against it: a mapping made and deleted by NAT-PMP requests from the LAN.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import TorrentVersion
from bitswarm.net.natpmp import open_gateway_client
from bitswarm.portmap.pcp import Mapped, MappingProtocol

from .home_router import (
    LAN_ADDRESS,
    ROUTER_LAN_ADDRESS,
    ROUTER_WAN_ADDRESS,
    WAN_ADDRESS,
    DnatRule,
    HomeNetwork,
    open_home_network,
)
from .tools import lt_argv
from .trackers import run_bitswarm_tracker, stop_process, wait_for

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
SEED_PORT = 6881
DEADLINE_S = 30.0
DOWNLOAD_TIMEOUT_S = 60.0


def ours(home: HomeNetwork) -> list[DnatRule] | None:
    """The router's mappings once both of bitswarm's ports are in (None until then)."""
    rules = home.dnat_rules()
    return rules if {rule.protocol for rule in rules} == {"tcp", "udp"} else None


@pytest.mark.parametrize("method", ["upnp", "pcp"])
def test_a_peer_on_the_internet_downloads_from_bitswarm_through_the_port_the_router_mapped(
    tmp_path: Path, method: str
) -> None:
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(15).randbytes(1_500_000))
    # Our own config: the one every test gets (tests/conftest.py) turns port mapping off.
    config = tmp_path / "client.toml"
    config.write_text("lsd = false\nport_mapping = true\n")
    with (
        open_home_network(tmp_path / "router", upnp=method == "upnp", pmp=method == "pcp") as home,
        run_bitswarm_tracker(tmp_path / "tracker.log", host=WAN_ADDRESS, wrap=lambda argv: home.argv("wan", argv))
        as tracker,
    ):  # fmt: skip
        home.allow_outgoing_tcp(tracker.http_port)
        torrent = tmp_path / "data.torrent"
        options = CreateOptions(version=TorrentVersion.V1, piece_length=64 * 1024, trackers=[tracker.announce])
        torrent.write_bytes(create(source, options))
        # The DHT is on (with no node to join through) so that its UDP port is mapped too.
        seed = subprocess.Popen(
            home.argv("lan", [*BITSWARM, "seed", str(torrent), str(source.parent), "--port", str(SEED_PORT),
                              "--config", str(config), "--json"]),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            rules = wait_for(lambda: ours(home), "miniupnpd's mappings of bitswarm's TCP and UDP ports", DEADLINE_S)
            assert set(rules) == {
                DnatRule("tcp", SEED_PORT, LAN_ADDRESS, SEED_PORT),
                DnatRule("udp", SEED_PORT, LAN_ADDRESS, SEED_PORT),
            }
            # The protocol asked in, as miniupnpd logs it.
            log = home.log.read_text(errors="replace")
            said = "AddPortMapping" if method == "upnp" else "PCP MAP: added mapping"
            assert said in log, log[-3000:]
            target = tmp_path / "libtorrent"
            target.mkdir()
            # libtorrent learns of the seed from the tracker, as the router's external
            # address and the port bitswarm announced.
            done = subprocess.run(
                home.argv("wan", lt_argv("download", torrent, target, "--interface", WAN_ADDRESS,
                                         "--timeout", str(DOWNLOAD_TIMEOUT_S))),
                capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S + 30, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout.splitlines()[-1])
            assert report["is_seeding"], report
            # The one peer it had was the router's external address at the mapped port.
            assert {(peer["ip"], peer["port"]) for peer in report["peers"]} == {(ROUTER_WAN_ADDRESS, SEED_PORT)}
        finally:
            status = stop_process(seed, "bitswarm seed")
            _, stderr = seed.communicate(timeout=10)
        assert status == 0, stderr
        # bitswarm removed its mappings on the way out; miniupnpd is still running.
        assert home.dnat_rules() == []
        assert "Traceback" not in stderr
    assert (target / "data.bin").read_bytes() == source.read_bytes()


def test_nat_pmp_maps_and_deletes_a_port_on_miniupnpd(tmp_path: Path) -> None:
    with open_home_network(tmp_path / "router", upnp=False, pmp=True) as home:

        async def scenario() -> tuple[Mapped, list[DnatRule], list[DnatRule]]:
            async with open_gateway_client(ROUTER_LAN_ADDRESS, pcp=False) as client:
                mapped = await client.map(MappingProtocol.UDP, SEED_PORT, SEED_PORT, 120)
                during = await asyncio.to_thread(home.dnat_rules)
                await client.map(MappingProtocol.UDP, SEED_PORT, 0, 0)
                return mapped, during, await asyncio.to_thread(home.dnat_rules)

        mapped, during, after = home.network.call("lan", lambda: asyncio.run(scenario()))
        assert "NAT-PMP" in home.log.read_text(errors="replace")
    assert (mapped.external_port, mapped.lifetime_s, mapped.external_address) == (SEED_PORT, 120, ROUTER_WAN_ADDRESS)
    assert during == [DnatRule("udp", SEED_PORT, LAN_ADDRESS, SEED_PORT)]
    assert after == []
