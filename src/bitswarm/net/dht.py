"""The DHT on real UDP sockets: a thin asyncio layer over ``bitswarm.dht.node.DHTNode``.

``open_dht`` binds one socket per address family (IPv6 sockets are IPv6-only, so both can
share a port), joins the network through the bootstrap nodes and runs one timer task that
calls the core's ``tick`` at its deadline. Searches are futures completed by the core's
``LookupCompleted`` facts. The routing table is saved to a file atomically (temporary
file, fsync, rename, fsync of the folder), on close and by ``run_dht_node`` every few
minutes.

For the CLI (``bitswarm dht``) there is ``run_dht_node``; for the session, ``open_dht``
and the ``DHTService`` methods ``get_peers``, ``announce`` and ``bootstrap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bitswarm.dht.krpc import Address, family_of
from bitswarm.dht.node import DHTNode, LookupCompleted, Output, SendDatagram, load_state, save_state
from bitswarm.dht.node_id import is_valid_for, node_id_for
from bitswarm.errors import KRPCError, UsageError
from bitswarm.external_address import ExternalAddressVote
from bitswarm.storage.atomic import replace_durably

log = logging.getLogger(__name__)

DEFAULT_PORT = 6881
LOOKUP_TIMEOUT_S = 60.0
SAVE_INTERVAL_S = 300.0
# An empty table is re-bootstrapped this often by run_dht_node.
REBOOTSTRAP_S = 60.0


def parse_endpoint(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``HOST`` to (host, port); raises UsageError."""
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise UsageError(f"{text}: expected [IPV6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not host:
        raise UsageError(f"{text}: no host")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise UsageError(f"{text}: port is not a number") from None
    if not 0 <= port <= 0xFFFF:
        raise UsageError(f"{text}: port out of range")
    return host, port


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, service: DHTService) -> None:
        self.service = service

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # IPv6 addresses come with flow info and scope; a node is (host, port).
        self.service._on_datagram((addr[0], addr[1]), data)

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable from a node that went away: its query will time out.
        self.service.send_errors += 1


class DHTService:
    """One DHT node on the network. Build it with ``open_dht``."""

    def __init__(self, node: DHTNode, *, bootstrap: Sequence[str] = (), saved: Sequence[Address] = ()) -> None:
        self.node = node
        # HOST:PORT texts, resolved at each bootstrap; the saved nodes are tried before them.
        self.bootstrap_endpoints = list(bootstrap)
        self.saved_addresses = list(saved)
        self.loop = asyncio.get_running_loop()
        self.transports: dict[int, asyncio.DatagramTransport] = {}
        self.send_errors = 0
        # The first exception of our own making, kept for tests to check (strict mode).
        self.failure: BaseException | None = None
        # Datagrams on our port that are not KRPC (which is always a bencoded dictionary)
        # go here: uTP shares the port (bitswarm.net.utp).
        self.foreign_datagram: Callable[[Address, bytes], None] | None = None
        self._waiters: dict[int, asyncio.Future[LookupCompleted]] = {}
        self._wake = asyncio.Event()
        self._activity = asyncio.Event()

    def now(self) -> float:
        return self.loop.time()

    @property
    def addresses(self) -> list[Address]:
        """The (host, port) each socket is bound to."""
        found = []
        for transport in self.transports.values():
            name = transport.get_extra_info("sockname")
            found.append((str(name[0]), int(name[1])))
        return found

    async def _bind(self, host: str, port: int) -> None:
        family = family_of(host)
        sock = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if family == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            transport, _ = await self.loop.create_datagram_endpoint(lambda: _Endpoint(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self.transports[family] = transport

    def _on_datagram(self, address: Address, data: bytes) -> None:
        if self.foreign_datagram is not None and not data.startswith(b"d"):
            self.foreign_datagram(address, data)
            return
        self._activity.set()
        try:
            self._dispatch(self.node.receive(address, data, self.now()))
        except Exception as error:  # our bug, not the sender's: the core handles bad input
            if self.failure is None:
                self.failure = error
                log.exception("DHT core failed on a datagram")

    def _dispatch(self, outputs: Iterable[Output]) -> None:
        sent = False
        for output in outputs:
            if isinstance(output, SendDatagram):
                transport = self.transports.get(family_of(output.address[0]))
                if transport is None:
                    continue
                try:
                    transport.sendto(output.payload, output.address)
                except OSError:
                    self.send_errors += 1
                sent = True
            else:
                waiter = self._waiters.pop(output.lookup_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(output)
        if sent:
            self._wake.set()  # a new query may have an earlier deadline

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Return once ``predicate()`` holds, checking after each datagram we receive;
        raises TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._activity.clear()
                await self._activity.wait()

    async def run_timers(self) -> None:
        """Call the core's tick at each deadline; runs until cancelled."""
        while True:
            delay = max(0.0, self.node.next_deadline() - self.now())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self.node.next_deadline() <= self.now():
                self._dispatch(self.node.tick(self.now()))

    async def _wait(self, started: tuple[int, list[Output]], timeout_s: float) -> LookupCompleted:
        lookup_id, outputs = started
        waiter: asyncio.Future[LookupCompleted] = self.loop.create_future()
        self._waiters[lookup_id] = waiter
        self._dispatch(outputs)  # may complete the waiter at once
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.pop(lookup_id, None)

    @property
    def can_bootstrap(self) -> bool:
        """Whether ``bootstrap()`` has anywhere to start from."""
        return bool(self.saved_addresses or self.bootstrap_endpoints)

    @property
    def has_nodes(self) -> bool:
        return any(len(table) for table in self.node.tables.values())

    async def bootstrap(self, addresses: Sequence[Address] | None = None) -> list[LookupCompleted]:
        """Search for our own ID through ``addresses``, once per family we have a socket
        for; returns each search's result. By default through the saved nodes, then, if the
        table is still empty, through the bootstrap endpoints, resolved now: a router's
        address may have changed since the last time."""
        if addresses is not None:
            return await self._bootstrap_through(addresses)
        results = []
        if self.saved_addresses:
            results += await self._bootstrap_through(self.saved_addresses)
        if self.bootstrap_endpoints and not self.has_nodes:
            resolved = await resolve(self.bootstrap_endpoints)
            if resolved:
                results += await self._bootstrap_through(resolved)
        return results

    async def _bootstrap_through(self, addresses: Sequence[Address]) -> list[LookupCompleted]:
        searches = []
        for family in self.transports:
            seeds = [address for address in addresses if family_of(address[0]) == family]
            searches.append(self._wait(self.node.bootstrap(seeds, self.now(), family=family), LOOKUP_TIMEOUT_S))
        return list(await asyncio.gather(*searches))

    async def _ensure_joined(self) -> None:
        if self.can_bootstrap and not self.has_nodes:
            await self.bootstrap()

    async def get_peers(self, info_hash: bytes, *, timeout_s: float = LOOKUP_TIMEOUT_S) -> list[Address]:
        """Peers for ``info_hash`` from every family's search (and our own store)."""
        return await self._get_peers(info_hash, None, False, timeout_s)

    async def announce(
        self, info_hash: bytes, port: int, *, implied_port: bool = False, timeout_s: float = LOOKUP_TIMEOUT_S
    ) -> list[Address]:
        """Announce that a peer of ours listens on ``port`` for ``info_hash`` (BEP 5) to the
        nearest nodes; returns the peers the search found on the way."""
        return await self._get_peers(info_hash, port, implied_port, timeout_s)

    async def _get_peers(
        self, info_hash: bytes, port: int | None, implied_port: bool, timeout_s: float
    ) -> list[Address]:
        await self._ensure_joined()
        searches = [
            self._wait(
                self.node.get_peers(
                    info_hash, self.now(), family=family, announce_port=port, implied_port=implied_port
                ),
                timeout_s,
            )
            for family in self.transports
        ]
        peers: dict[Address, None] = {}
        for result in await asyncio.gather(*searches):
            peers.update(dict.fromkeys(result.peers))
        return list(peers)

    def ping(self, address: Address) -> None:
        """Ping the node at ``address`` (one a peer named in a BEP 5 PORT message); it
        enters the routing table if it answers."""
        if family_of(address[0]) in self.transports:
            self._dispatch(self.node.ping(address, self.now()))

    def save(self, path: Path) -> None:
        """Write our node ID and routing table to ``path`` atomically."""
        replace_durably(path, save_state(self.node))

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
        for waiter in self._waiters.values():
            waiter.cancel()


async def resolve(endpoints: Iterable[str]) -> list[Address]:
    """Each ``HOST:PORT`` resolved to every address it names (names may fail quietly:
    a bootstrap host that does not resolve is one fewer way in, not an error)."""
    loop = asyncio.get_running_loop()
    found: list[Address] = []
    for text in endpoints:
        host, port = parse_endpoint(text)
        try:
            ipaddress.ip_address(host)
            found.append((host, port))
            continue
        except ValueError:
            pass
        with contextlib.suppress(OSError):
            for info in await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM):
                sockaddr = info[4]
                address = (str(sockaddr[0]), int(sockaddr[1]))
                if address not in found:
                    found.append(address)
    return found


@contextlib.asynccontextmanager
async def open_dht(
    bind: Sequence[str] = ("0.0.0.0:6881",),
    bootstrap: Sequence[str] = (),
    *,
    state_path: Path | None = None,
    read_only: bool = False,
    enforce_node_id: bool = False,
    external_ip: str | None = None,
    join: bool = True,
    address_vote: ExternalAddressVote | None = None,
) -> AsyncIterator[DHTService]:
    """A running DHT node, closed (and its state saved to ``state_path``) on exit.

    ``bind`` lists ``HOST:PORT`` (one per family; port 0 picks a free one). The node ID
    comes from ``state_path`` when it holds one that suits ``external_ip`` (BEP 42), else
    from ``external_ip``, else from chance; once running, ``service.node.external_host``
    says what address other nodes (and the other witnesses sharing ``address_vote``) see,
    and the node takes a BEP 42 ID for it. The saved nodes are tried first, ``bootstrap`` only
    while the table is empty. With ``join`` the node bootstraps before the block runs.
    Raises ``UsageError`` for a bad endpoint and ``OSError`` when a socket cannot be bound.
    """
    rng = random.SystemRandom()
    node_id: bytes | None = None
    saved: list[Address] = []
    if state_path is not None and state_path.exists():
        try:
            state = load_state(state_path.read_bytes())
        except KRPCError as error:
            log.warning("%s: ignored (%s)", state_path, error)
        else:
            node_id = state.node_id
            saved = [node.address for node in state.nodes]
    if external_ip and (node_id is None or not is_valid_for(node_id, external_ip)):
        # A saved ID from another address would keep us out of enforcing nodes' tables.
        node_id = node_id_for(external_ip, rng)
    if node_id is None:
        node_id = rng.randbytes(20)
    endpoints = [parse_endpoint(text) for text in bind]
    families = {family_of(host) for host, _ in endpoints}
    if len(families) != len(endpoints):
        raise UsageError("one bind address per address family")
    loop = asyncio.get_running_loop()
    node = DHTNode(
        node_id, rng, loop.time(), families=families, read_only=read_only, enforce_node_id=enforce_node_id,
        address_vote=address_vote,
    )  # fmt: skip
    for text in bootstrap:
        parse_endpoint(text)  # a malformed endpoint is the caller's error now, not a silent miss later
    service = DHTService(node, bootstrap=bootstrap, saved=saved)
    bound = False
    try:
        for host, port in endpoints:
            await service._bind(host, port)
        bound = True
        async with asyncio.TaskGroup() as group:
            timers = group.create_task(service.run_timers())
            try:
                if join and service.can_bootstrap:
                    await service.bootstrap()
                yield service
            finally:
                timers.cancel()
    finally:
        service.close()
        # A node that never listened learned nothing: the saved table stays as it was.
        if state_path is not None and bound:
            service.save(state_path)


async def run_dht_node(
    bind: Sequence[str],
    bootstrap: Sequence[str],
    state_path: Path | None,
    read_only: bool = False,
    *,
    enforce_node_id: bool = False,
    on_ready: Callable[[DHTService], None] | None = None,
    save_interval_s: float = SAVE_INTERVAL_S,
) -> None:
    """Run a standalone DHT node until cancelled (the CLI's ``bitswarm dht``).

    Binds ``bind`` (e.g. ``["0.0.0.0:6881", "[::]:6881"]``), joins through ``bootstrap``
    (``HOST:PORT`` strings), calls ``on_ready(service)`` once joined (print
    ``service.addresses`` there), saves the table to ``state_path`` every
    ``save_interval_s`` and on exit, and bootstraps again whenever the table is empty.
    """
    async with open_dht(
        bind, bootstrap, state_path=state_path, read_only=read_only, enforce_node_id=enforce_node_id
    ) as service:
        if on_ready is not None:
            on_ready(service)
        last_save = service.now()
        while True:
            await asyncio.sleep(min(REBOOTSTRAP_S, save_interval_s))
            if service.can_bootstrap and not service.has_nodes:
                with contextlib.suppress(TimeoutError):
                    await service.bootstrap()
            if state_path is not None and service.now() - last_save >= save_interval_s:
                service.save(state_path)
                last_save = service.now()
