"""A small internet of network namespaces for the issue-15 tests and benchmark: a DNS
server (Debian's dnsmasq) that answers the DHT's well-known bootstrap names with DHT nodes
of the test, so a client started with its defaults joins "the DHT" from nothing.

`open_internet(network)` starts, in `network`'s "internet" namespace, dnsmasq on port 53
and a `bitswarm dht` node on port 6881 (router.bittorrent.com and router.utorrent.com
name it), and a second node on port 25401 (dht.libtorrent.org) in the "internet2"
namespace; dht.transmissionbt.com does not resolve (one fewer way in). A client namespace
is pointed at that DNS server with `use_dns(network, label)`: `ip netns exec` mounts
/etc/netns/NAME/resolv.conf over /etc/resolv.conf for what it runs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .netns import NamespaceNetwork
from .tools import require

BITSWARM = [sys.executable, "-m", "bitswarm"]
NETNS_ETC = Path("/etc/netns")
READY_TIMEOUT_S = 30.0
ROUTER_PORT = 6881
LIBTORRENT_ROUTER_PORT = 25401


@dataclass(frozen=True, slots=True)
class Internet:
    dns: str  # the DNS server's address
    router: str  # HOST:PORT of the node router.bittorrent.com names
    dns_log: Path  # dnsmasq's log of the queries it answered


@contextlib.contextmanager
def open_internet(network: NamespaceNetwork, work: Path) -> Iterator[Internet]:
    """dnsmasq and two DHT nodes, in the "internet" and "internet2" namespaces; stopped at the end."""
    internet, second = network["internet"].address, network["internet2"].address
    dns_log = work / "dnsmasq.log"
    dnsmasq = [
        require("dnsmasq"), "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
        f"--listen-address={internet}", "--port=53", "--pid-file=", "--user=root", "--group=root",
        "--log-queries", f"--log-facility={dns_log}",
        f"--address=/router.bittorrent.com/{internet}", f"--address=/router.utorrent.com/{internet}",
        f"--address=/dht.libtorrent.org/{second}", "--address=/dht.transmissionbt.com/",
    ]  # fmt: skip
    started: list[subprocess.Popen[str]] = []
    try:
        started.append(subprocess.Popen(network.argv("internet", dnsmasq), stderr=subprocess.PIPE, text=True))
        router = _dht_node(network, "internet", f"{internet}:{ROUTER_PORT}", [], started)
        _dht_node(network, "internet2", f"{second}:{LIBTORRENT_ROUTER_PORT}", [router], started)
        yield Internet(internet, router, dns_log)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def _dht_node(
    network: NamespaceNetwork, label: str, bind: str, bootstrap: list[str], started: list[subprocess.Popen[str]]
) -> str:
    options = [option for node in bootstrap for option in ("--dht-bootstrap", node)]
    process = subprocess.Popen(
        network.argv(label, [*BITSWARM, "dht", "--bind", bind, *options]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started.append(process)
    assert process.stdout is not None
    ready = process.stdout.readline()  # the node prints its line once it listens (and has joined)
    assert ready.startswith("bitswarm dht: listening on"), process.stderr.read() if process.stderr else ready
    return bind


@contextlib.contextmanager
def open_dht_seed(
    network: NamespaceNetwork, internet: Internet, torrent: Path, folder: Path, state: Path
) -> Iterator[subprocess.Popen[str]]:
    """`bitswarm seed` in the "seed" namespace on the DHT alone (joined through the router
    node), once it has started; stopped at the end, which must be clean."""
    seed = subprocess.Popen(
        network.argv("seed", [*BITSWARM, "seed", str(torrent), str(folder), "--port", "7000", "--no-lsd",
                              "--dht-bootstrap", internet.router, "--dht-state", str(state), "--json"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert seed.stdout is not None
        assert json.loads(seed.stdout.readline())["event"] == "started"
        yield seed
    finally:
        seed.terminate()
        _, errors = seed.communicate(timeout=30)
    assert seed.returncode == 0, errors


@contextlib.contextmanager
def use_dns(network: NamespaceNetwork, label: str, server: str) -> Iterator[None]:
    """Commands run in ``label``'s namespace resolve names through ``server``."""
    folder = NETNS_ETC / network[label].netns
    folder.mkdir(parents=True)
    try:
        (folder / "resolv.conf").write_text(f"nameserver {server}\noptions timeout:2 attempts:1\n")
        yield
    finally:
        shutil.rmtree(folder)


def disable_ipv6(network: NamespaceNetwork, label: str) -> None:
    """No IPv6 on ``label``'s eth0: the kernel's own router solicitations and MLD reports
    would otherwise look like traffic of the process under test."""
    subprocess.run(
        network.argv(label, [require("sysctl"), "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"]),
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip


def add_default_route(network: NamespaceNetwork, label: str, via: str) -> None:
    subprocess.run(
        [require("ip"), "-n", network[label].netns, "route", "add", "default", "via", via],
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip
