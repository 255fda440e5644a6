"""Local service discovery (BEP 14) on the network: the multicast sockets around ``LocalDiscovery``.

``open_local_discovery`` joins 239.192.152.143:6771 and [ff15::efc0:988f]:6771 on one
interface, announces the torrents it is given on the core's schedule, and hands every
peer others announce for them to a callback as ``(info_hash, host, port)``. Leaving the
``async with`` stops the task and closes the sockets (which leaves the groups).

Why an interface: an IPv4 group is joined, and sent to, through the route to the group.
A host with a default route has one; a network namespace, a LAN without a gateway or a
host with several networks may not, and then joining fails (ENODEV) and sending fails
(ENETUNREACH). Naming the interface (IP_ADD_MEMBERSHIP and IP_MULTICAST_IF with its
index) needs no route, and BEP 14 asks for announces on each interface we listen on.
IPv6 needs no route (the kernel gives every interface ff00::/8), but is pinned the same
way so both families agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from bitswarm.errors import ProtocolError
from bitswarm.lsd import (
    ANNOUNCE_INTERVAL_S,
    FIRST_ANNOUNCE_DELAY_S,
    IPV4_GROUP,
    IPV6_GROUP,
    LSD_PORT,
    MAX_ANNOUNCE_BYTES,
    MIN_ROUND_GAP_S,
    LocalDiscovery,
)

log = logging.getLogger(__name__)

OnPeer = Callable[[bytes, str, int], None]
# BEP 14's groups are org- and site-local, but one link is what "local" means to users,
# and an announce says what we download: it does not cross a router unless asked.
DEFAULT_TTL = 1


class LocalDiscoveryService:
    """The running LSD endpoint; made by ``open_local_discovery``."""

    def __init__(self, core: LocalDiscovery, on_peer: OnPeer, lsd_port: int) -> None:
        self.core = core
        self.on_peer = on_peer
        self.lsd_port = lsd_port
        # Why datagrams were dropped or sends failed: "malformed", "send_error".
        self.counters: Counter[str] = Counter()
        self._transports: dict[str, asyncio.DatagramTransport] = {}
        self._wake = asyncio.Event()

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups joined (IPv4, IPv6 or both)."""
        return tuple(self._transports)

    def add_torrent(self, info_hash: bytes) -> None:
        """Announce ``info_hash`` (20 bytes; not a private torrent) and report its local peers."""
        self.core.add_torrent(info_hash, time.monotonic())
        self._wake.set()

    def remove_torrent(self, info_hash: bytes) -> None:
        self.core.remove_torrent(info_hash)

    def set_port(self, port: int) -> None:
        """Our BitTorrent listening port changed."""
        self.core.set_port(port, time.monotonic())
        self._wake.set()

    def attach(self, group: str, transport: asyncio.DatagramTransport) -> None:
        self._transports[group] = transport

    def close(self) -> None:
        """Close the sockets, which leaves the groups."""
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def datagram_received(self, data: bytes, host: str) -> None:
        try:
            found = self.core.receive(data, host, time.monotonic())
        except ProtocolError:
            self.counters["malformed"] += 1
            return
        for peer in found:
            self.on_peer(peer.info_hash, peer.host, peer.port)

    async def run(self) -> None:
        """Send what the core says is due, then sleep until its next deadline or a change."""
        while True:
            for datagram in self.core.tick(time.monotonic()):
                transport = self._transports.get(datagram.group)
                if transport is not None:
                    transport.sendto(datagram.payload, (datagram.group, self.lsd_port))
            deadline = self.core.next_deadline()
            self._wake.clear()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, service: LocalDiscoveryService) -> None:
        self.service = service

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) > MAX_ANNOUNCE_BYTES:
            self.service.counters["malformed"] += 1
            return
        self.service.datagram_received(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        self.service.counters["send_error"] += 1


def _ipv4_socket(lsd_port: int, ifindex: int, ttl: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _share_port(sock)
        # Bound to the group, the socket gets only the group's datagrams, not those of any
        # other group someone joined on this port (Linux delivers those to wildcard binds).
        sock.bind((IPV4_GROUP, lsd_port))
        # struct ip_mreqn: group, local address (any), interface index (0: by route).
        membership = socket.inet_aton(IPV4_GROUP) + bytes(4) + struct.pack("@i", ifindex)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        if ifindex:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, membership)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        # Loopback on: two clients on one host find each other; our cookie filters our own.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _ipv6_socket(lsd_port: int, ifindex: int, ttl: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        _share_port(sock)
        sock.bind((IPV6_GROUP, lsd_port))
        membership = socket.inet_pton(socket.AF_INET6, IPV6_GROUP) + struct.pack("@I", ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
        if ifindex:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _share_port(sock: socket.socket) -> None:
    # Every LSD client on a host listens on 6771: each gets its own copy of a datagram.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


@contextlib.asynccontextmanager
async def open_local_discovery(
    *,
    port: int,
    on_peer: OnPeer,
    interface: str | None = None,
    ipv4: bool = True,
    ipv6: bool = True,
    lsd_port: int = LSD_PORT,
    ttl: int = DEFAULT_TTL,
    cookie: str | None = None,
    interval_s: float = ANNOUNCE_INTERVAL_S,
    min_round_gap_s: float = MIN_ROUND_GAP_S,
    first_announce_delay_s: float = FIRST_ANNOUNCE_DELAY_S,
) -> AsyncIterator[LocalDiscoveryService]:
    """Join the LSD groups on ``interface`` (a name such as "eth0"; None: by route) and run.

    ``port`` is our BitTorrent listening port, announced to others; ``on_peer`` is called
    with ``(info_hash, host, port)`` for each peer announced for one of our torrents.
    A family that cannot be set up (no IPv6, no route) is left out; raises ``OSError``
    when neither can, or when ``interface`` does not exist.
    """
    ifindex = socket.if_nametoindex(interface) if interface is not None else 0
    sockets: dict[str, socket.socket] = {}
    failures: list[str] = []
    for wanted, group, make in ((ipv4, IPV4_GROUP, _ipv4_socket), (ipv6, IPV6_GROUP, _ipv6_socket)):
        if not wanted:
            continue
        try:
            sockets[group] = make(lsd_port, ifindex, ttl)
        except OSError as error:
            failures.append(f"{group}: {error.strerror or error}")
    if not sockets:
        raise OSError(f"local service discovery: no group could be joined ({'; '.join(failures)})")
    for failure in failures:
        log.info("local service discovery without %s", failure)
    core = LocalDiscovery(
        port=port,
        cookie=cookie if cookie is not None else secrets.token_hex(8),
        groups=tuple(sockets),
        interval_s=interval_s,
        min_round_gap_s=min_round_gap_s,
        first_announce_delay_s=first_announce_delay_s,
    )
    service = LocalDiscoveryService(core, on_peer, lsd_port)
    loop = asyncio.get_running_loop()
    try:
        for group, sock in list(sockets.items()):
            transport, _ = await loop.create_datagram_endpoint(lambda: _Endpoint(service), sock=sock)
            del sockets[group]  # the transport owns it now
            service.attach(group, transport)
        async with asyncio.TaskGroup() as tasks:
            runner = tasks.create_task(service.run())
            try:
                yield service
            finally:
                runner.cancel()
    finally:
        service.close()
        for sock in sockets.values():
            sock.close()
