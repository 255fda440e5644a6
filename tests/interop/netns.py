"""A private test network of Linux network namespaces, for peers that will not use loopback.

Transmission 3.00 does not dial 127.x or ::1 peers that a tracker names, so a test where it
downloads needs its peers on other addresses. `open_test_network(labels)` builds, with
iproute2 (`ip`, run as root):

- one namespace per label, each with `lo` up and one veth end, `eth0`, holding
  `10.251.0.N/24` (N = 1, 2, ... in the order of the labels);
- one more namespace, the switch, holding a bridge that joins the other veth ends.

Every device lives inside a namespace the test created: the root namespace gets no
interface, address or route, and no namespace has a default route, so no packet can
leave the test's network. At the end, even after a failure, the veths and the bridge
are deleted and then the namespaces; the names carry a random tag, so two runs never
share one.

Processes run inside a namespace with `ip netns exec` (`NamespaceNetwork.argv`); `ip` execs
the command, so the PID the caller holds is the command's own. The test's own calls
(a tracker scrape, Transmission's RPC) run with `NamespaceNetwork.call`, on a worker thread
that joined the namespace with setns(2): a network namespace belongs to one thread, so
the rest of the test process stays where it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from .tools import require

T = TypeVar("T")

SUBNET_PREFIX = "10.251.0."  # a /24 that exists only inside the namespaces
PREFIX_BITS = 24
NETNS_DIR = "/run/netns"  # where `ip netns add` keeps the namespaces' handles
IP_TIMEOUT_S = 10.0
# From <sched.h>: setns(2) may join only a network namespace through this descriptor.
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True, slots=True)
class Host:
    """One namespace of the test network, with the one address it has."""

    label: str
    netns: str
    address: str


@dataclass
class NamespaceNetwork:
    """The namespaces of one test; see the module docstring."""

    hosts: dict[str, Host]
    _callers: dict[str, ThreadPoolExecutor] = field(default_factory=dict)

    def __getitem__(self, label: str) -> Host:
        return self.hosts[label]

    def argv(self, label: str, argv: Sequence[str]) -> list[str]:
        """``argv`` as a command line that runs it inside ``label``'s namespace."""
        return [require("ip"), "netns", "exec", self.hosts[label].netns, *argv]

    def call(self, label: str, function: Callable[[], T]) -> T:
        """Run ``function`` inside ``label``'s namespace and return what it returns.

        Its sockets are opened in that namespace. Raises what ``function`` raises.
        """
        caller = self._callers.get(label)
        if caller is None:
            netns = self.hosts[label].netns
            caller = ThreadPoolExecutor(max_workers=1, initializer=_join_netns, initargs=(netns,))
            self._callers[label] = caller
        return caller.submit(function).result()

    def close_callers(self) -> None:
        """End the worker threads, which hold their namespaces open."""
        for caller in self._callers.values():
            caller.shutdown(wait=True)
        self._callers.clear()


def _join_netns(netns: str) -> None:
    """Move the calling thread into the named network namespace; raises OSError if it cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(descriptor, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {netns}: {os.strerror(errno)}")
    finally:
        os.close(descriptor)


def _ip(*args: str) -> None:
    """Run one `ip` command; raises AssertionError with its stderr when it fails."""
    argv = [require("ip"), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit status {done.returncode}: {done.stderr.strip()}")


@contextlib.contextmanager
def open_test_network(labels: Sequence[str]) -> Iterator[NamespaceNetwork]:
    """Build the namespaces, veths and bridge for ``labels``; yield them; tear them down.

    Fails the test (never skips it) when iproute2 is missing or the process may not
    create namespaces (it must be root). Raises AssertionError when an `ip` command fails.
    """
    require("ip")
    if os.geteuid() != 0:
        pytest.fail("the test network needs root: ip netns add, veth pairs and a bridge", pytrace=False)
    tag = secrets.token_hex(3)
    switch = f"bsw-{tag}-switch"
    hosts = {
        label: Host(label, f"bsw-{tag}-{label}", f"{SUBNET_PREFIX}{number}")
        for number, label in enumerate(labels, start=1)
    }
    # What to delete at the end, pushed as each is made: links first, then namespaces.
    links: list[str] = []  # the bridge and the switch's veth ends
    created: list[str] = []  # namespaces
    network = NamespaceNetwork(hosts)
    try:
        _ip("netns", "add", switch)
        created.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        links.append("br0")
        _ip("-n", switch, "link", "set", "br0", "up")
        for number, host in enumerate(hosts.values(), start=1):
            _ip("netns", "add", host.netns)
            created.append(host.netns)
            _ip("-n", host.netns, "link", "set", "lo", "up")
            port = f"port{number}"
            # Both ends are made inside namespaces: the root namespace never holds either.
            _ip("-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
            links.append(port)
            _ip("-n", switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/{PREFIX_BITS}", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
        yield network
    finally:
        network.close_callers()
        errors: list[str] = []
        # Links first: a namespace some stray process still holds would outlive `ip netns
        # del`, and its devices with it; deleting them unplugs the network at once.
        deletions: list[tuple[str, ...]] = [("-n", switch, "link", "del", link) for link in reversed(links)]
        deletions += [("netns", "del", netns) for netns in reversed(created)]
        for args in deletions:
            try:
                _ip(*args)
            except (AssertionError, OSError, subprocess.TimeoutExpired) as error:
                errors.append(str(error))
        left = set(os.listdir(NETNS_DIR)) & set(created) if os.path.isdir(NETNS_DIR) else set()
        assert not errors, f"test network not torn down: {errors}"
        assert not left, f"namespaces left after `ip netns del`: {sorted(left)}"
