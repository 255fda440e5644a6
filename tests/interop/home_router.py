"""A home network in three network namespaces, with Debian's miniupnpd as its router.

``open_home_network(folder, upnp=..., pmp=...)`` builds, with iproute2 and nftables:

- "lan": the home computer, 192.168.77.2/24 on ``eth0``, its default route via the router;
- "router": ``lan0`` 192.168.77.1/24 and ``wan0`` 11.77.0.1/24, forwarding between them,
  with an nftables ruleset that masquerades what leaves by ``wan0``, drops what comes in
  unasked and what goes out except to the TCP ports ``allow_outgoing_tcp`` opens (so a
  transfer can only have come in through a mapping), and has the empty chains miniupnpd
  fills (``miniupnpd`` for forwarding, ``prerouting_miniupnpd`` for the DNAT of each
  mapping, in table ``inet filter``, its defaults); miniupnpd runs there with its config
  in ``folder``, listening on ``lan0``, UPnP IGD and NAT-PMP/PCP on or off as asked;
- "wan": the internet, 11.77.0.2/24, no route to the LAN's addresses.

Why 11.77.0.0/24: miniupnpd 2.3.1 refuses to map ports when its external address is
private or reserved (the documentation ranges 192.0.2.0/24 and kin included), so the
"internet" side needs a public-looking address. The namespaces are joined only to each
other, never to the root namespace, so no packet can reach the real holder of it.

``HomeNetwork.dnat_rules()`` reads the router's DNAT rules: what miniupnpd has mapped;
``HomeNetwork.log`` is miniupnpd's log (which says which protocol asked).
At the end miniupnpd is stopped by its PID and the namespaces deleted, even after a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .netns import IP_TIMEOUT_S, NETNS_DIR, Host, NamespaceNetwork
from .tools import require
from .trackers import wait_for

LAN_ADDRESS = "192.168.77.2"
ROUTER_LAN_ADDRESS = "192.168.77.1"
ROUTER_WAN_ADDRESS = "11.77.0.1"
WAN_ADDRESS = "11.77.0.2"
MINIUPNPD = "/usr/sbin/miniupnpd"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0

RULESET = """
table inet filter {
  chain miniupnpd {
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    jump miniupnpd
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan0" masquerade
  }
}
"""

# A DNAT rule of miniupnpd as `nft list chain` prints it, the IP protocol number read from
# the network header: 'iif "wan0" @nh,72,8 0x6 th dport 6881 dnat ip to 192.168.77.2:6881'.
_DNAT = re.compile(r"@nh,72,8 (0x6|0x11) th dport (\d+) dnat ip to ([\d.]+):(\d+)")
_PROTOCOLS = {"0x6": "tcp", "0x11": "udp"}


@dataclass(frozen=True, slots=True)
class DnatRule:
    protocol: str  # "tcp" or "udp"
    external_port: int
    internal_address: str
    internal_port: int


@dataclass
class HomeNetwork:
    network: NamespaceNetwork
    log: Path

    def argv(self, label: str, argv: list[str]) -> list[str]:
        return self.network.argv(label, argv)

    def allow_outgoing_tcp(self, port: int) -> None:
        """Let the LAN open TCP connections to ``port`` on the internet side (a tracker's)."""
        rule = ["iifname", "lan0", "oifname", "wan0", "tcp", "dport", str(port), "accept"]
        _run(require("ip"), "netns", "exec", self.network["router"].netns, require("nft"), "add", "rule", "inet",
             "filter", "forward", *rule)  # fmt: skip

    def dnat_rules(self) -> list[DnatRule]:
        """The port mappings miniupnpd has made, from the router's nftables chain."""
        done = _run(require("ip"), "netns", "exec", self.network["router"].netns, require("nft"), "list", "chain",
                    "inet", "filter", "prerouting_miniupnpd")  # fmt: skip
        return [
            DnatRule(_PROTOCOLS[match[1]], int(match[2]), match[3], int(match[4]))
            for match in _DNAT.finditer(done.stdout)
        ]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit status {done.returncode}: {done.stderr.strip()}")
    return done


def _config(*, upnp: bool, pmp: bool, lease_file: Path) -> str:
    yes = {True: "yes", False: "no"}
    return "\n".join([
        "ext_ifname=wan0",
        "listening_ip=lan0",
        f"enable_upnp={yes[upnp]}",
        f"enable_natpmp={yes[pmp]}",  # NAT-PMP and PCP both
        "secure_mode=yes",  # a host maps ports to itself only
        "system_uptime=no",
        f"lease_file={lease_file}",
        "uuid=6b1d3a52-31c5-4f3e-9a37-bd0b1f6a9e10",
        f"allow 1024-65535 {LAN_ADDRESS[:-2]}.0/24 1024-65535",
        "deny 0-65535 0.0.0.0/0 0-65535",
        "",
    ])  # fmt: skip


@contextlib.contextmanager
def open_home_network(folder: Path, *, upnp: bool, pmp: bool) -> Iterator[HomeNetwork]:
    """Build the namespaces, start miniupnpd, yield; stop it and tear everything down.

    Fails the test (never skips it) when a tool is missing or the process is not root.
    """
    for tool in ("ip", "nft"):
        require(tool)
    if not os.access(MINIUPNPD, os.X_OK):
        pytest.fail(f"{MINIUPNPD} is missing: apt-get install miniupnpd-nftables", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the home network needs root: ip netns add, veth pairs, nftables", pytrace=False)
    tag = secrets.token_hex(3)
    hosts = {
        "lan": Host("lan", f"bsw-{tag}-lan", LAN_ADDRESS),
        "router": Host("router", f"bsw-{tag}-router", ROUTER_LAN_ADDRESS),
        "wan": Host("wan", f"bsw-{tag}-wan", WAN_ADDRESS),
    }
    network = NamespaceNetwork(hosts)
    created: list[str] = []
    daemon: subprocess.Popen[bytes] | None = None
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "miniupnpd.log"
    ip = require("ip")
    try:
        for host in hosts.values():
            _run(ip, "netns", "add", host.netns)
            created.append(host.netns)
            _run(ip, "-n", host.netns, "link", "set", "lo", "up")
        router, lan, wan = hosts["router"].netns, hosts["lan"].netns, hosts["wan"].netns
        # Each veth is made inside the router's namespace, its peer moved straight to the other.
        _run(ip, "-n", router, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", lan)
        _run(ip, "-n", router, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", wan)
        for namespace, device, address in (
            (router, "lan0", f"{ROUTER_LAN_ADDRESS}/24"),
            (router, "wan0", f"{ROUTER_WAN_ADDRESS}/24"),
            (lan, "eth0", f"{LAN_ADDRESS}/24"),
            (wan, "eth0", f"{WAN_ADDRESS}/24"),
        ):
            _run(ip, "-n", namespace, "addr", "add", address, "dev", device)
            _run(ip, "-n", namespace, "link", "set", device, "up")
        _run(ip, "-n", lan, "route", "add", "default", "via", ROUTER_LAN_ADDRESS)
        _run(ip, "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        rules = folder / "router.nft"
        rules.write_text(RULESET)
        _run(ip, "netns", "exec", router, require("nft"), "-f", str(rules))
        config = folder / "miniupnpd.conf"
        config.write_text(_config(upnp=upnp, pmp=pmp, lease_file=folder / "leases"))
        with log.open("wb") as log_file:
            daemon = subprocess.Popen(
                [ip, "netns", "exec", router, MINIUPNPD, "-d", "-f", str(config), "-P", str(folder / "miniupnpd.pid")],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            )  # fmt: skip
        ready = "Listening for NAT-PMP/PCP traffic" if pmp else "HTTP listening on port"
        wait_for(
            lambda: ready in log.read_text(errors="replace") or daemon.poll() is not None,
            "miniupnpd's listening line",
            START_TIMEOUT_S,
        )
        assert daemon.poll() is None, f"miniupnpd exited: {log.read_text(errors='replace')}"
        yield HomeNetwork(network, log)
    finally:
        network.close_callers()
        if daemon is not None and daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(daemon.pid, signal.SIGKILL)
                daemon.wait()
        errors = []
        for netns in reversed(created):
            try:
                _run(ip, "netns", "del", netns)
            except (AssertionError, OSError, subprocess.TimeoutExpired) as error:
                errors.append(str(error))
        left = set(os.listdir(NETNS_DIR)) & set(created) if os.path.isdir(NETNS_DIR) else set()
        assert not errors, f"home network not torn down: {errors}"
        assert not left, f"namespaces left after `ip netns del`: {sorted(left)}"
