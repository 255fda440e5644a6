"""Opening our listening ports on the home router: PCP or NAT-PMP first, then UPnP IGD.

A ``PortMapper`` runs as one task of the session. It asks the default gateway in PCP
(falling back to NAT-PMP, ``bitswarm.net.natpmp``): one datagram to a known address, no
multicast and no XML. When the gateway runs neither, it looks for a UPnP Internet
Gateway Device (``bitswarm.net.upnp``). Whichever answers maps the TCP listening port
and, when the session has one, the UDP port (the DHT's, which uTP shares), asking for the
same external port numbers, with a lease of ``lifetime_s``. The leases are renewed on
``bitswarm.portmap.lease``'s schedule; a mapping that could not be renewed before it
expired is mapped afresh. Leaving (the task is cancelled when the session closes)
deletes the mappings, within ``REMOVE_TIMEOUT_S``.

What the router granted is one plain value, ``PortMapped`` (the method, the external
address it reported and the external ports), in ``PortMapper.current`` and given to the
``on_change`` callback at every change (None: no mapping any more). The session
announces the external TCP port; the external address is one input of the vote on our
own address.

A router that refuses, or that runs none of these services, costs one log line: the
mapper tries again every ``RETRY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bitswarm.errors import PortMappingError
from bitswarm.net.natpmp import GatewayClient, default_gateway, open_gateway_client
from bitswarm.portmap.lease import Lease, LeaseState
from bitswarm.portmap.pcp import SERVER_PORT, MappingProtocol

if TYPE_CHECKING:
    # UPnP's libraries (aiohttp among them) take a tenth of a second to import: only a
    # session that maps its port, and then only when PCP and NAT-PMP failed, pays that.
    from bitswarm.net.upnp import UpnpGateway

log = logging.getLogger(__name__)

# Two hours, as RFC 6886 section 3.3 recommends; renewed after one to one and a quarter.
LIFETIME_S = 7200
# After a failure (no router service, a refusal, a lease lost): try again this much later.
RETRY_S = 600.0
REMOVE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class PortMapped:
    """The router's grant: ``method`` is "pcp", "nat-pmp" or "upnp"; the ports are the
    external ones (None: that protocol is not mapped); ``external_address`` is the address
    the router says it has on the internet side (None if it did not say)."""

    method: str
    external_address: str | None
    tcp_port: int | None
    udp_port: int | None


OnChange = Callable[[PortMapped | None], None]


@dataclass(frozen=True, slots=True)
class _Grant:
    external_port: int
    lifetime_s: int
    external_address: str | None


class _Router(Protocol):
    @property
    def method(self) -> str: ...

    async def map(self, protocol: MappingProtocol, internal_port: int, external_port: int) -> _Grant: ...

    async def unmap(self, protocol: MappingProtocol, internal_port: int, external_port: int) -> None: ...


class _GatewayRouter:
    """PCP or NAT-PMP, as the gateway speaks."""

    def __init__(self, client: GatewayClient, lifetime_s: int) -> None:
        self.client = client
        self.lifetime_s = lifetime_s

    @property
    def method(self) -> str:
        return self.client.method

    async def map(self, protocol: MappingProtocol, internal_port: int, external_port: int) -> _Grant:
        mapped = await self.client.map(protocol, internal_port, external_port, self.lifetime_s)
        return _Grant(mapped.external_port, mapped.lifetime_s, mapped.external_address)

    async def unmap(self, protocol: MappingProtocol, internal_port: int, external_port: int) -> None:
        # RFC 6886 section 3.4: lifetime 0 and suggested external port 0 delete.
        await self.client.map(protocol, internal_port, 0, 0)


class _UpnpRouter:
    method = "upnp"

    def __init__(self, gateway: UpnpGateway, lifetime_s: int) -> None:
        self.gateway = gateway
        self.lifetime_s = lifetime_s

    async def map(self, protocol: MappingProtocol, internal_port: int, external_port: int) -> _Grant:
        grant = await self.gateway.add(protocol, internal_port, external_port, self.lifetime_s)
        try:
            address = await self.gateway.external_address()
        except PortMappingError:
            address = None
        return _Grant(grant.external_port, grant.lifetime_s, address)

    async def unmap(self, protocol: MappingProtocol, internal_port: int, external_port: int) -> None:
        await self.gateway.delete(protocol, external_port)


class PortMapper:
    """Keeps ``tcp_port`` (and ``udp_port``) mapped on the router while ``run`` runs."""

    def __init__(
        self,
        tcp_port: int,
        udp_port: int | None,
        on_change: OnChange | None = None,
        *,
        rng: random.Random | None = None,
        lifetime_s: int = LIFETIME_S,
        gateway: str | None = None,
        gateway_port: int = SERVER_PORT,
        pmp: bool = True,
        upnp: bool = True,
        search_s: float | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        """``gateway`` and ``gateway_port`` override the default route's gateway and port
        5351 (for PCP and NAT-PMP; tests use them); ``pmp`` and ``upnp`` choose the methods
        tried; ``search_s`` bounds the UPnP search [``bitswarm.net.upnp.SEARCH_S``]."""
        self.ports = {MappingProtocol.TCP: tcp_port}
        if udp_port is not None:
            self.ports[MappingProtocol.UDP] = udp_port
        self.on_change = on_change
        self.rng = rng or random.Random()
        self.lifetime_s = lifetime_s
        self.gateway = gateway
        self.gateway_port = gateway_port
        self.pmp = pmp
        self.upnp = upnp
        self.search_s = search_s
        self.retry_s = retry_s
        self.current: PortMapped | None = None
        # Set once the first attempt has ended, with a mapping or without.
        self.settled = asyncio.Event()
        self._last_failure = ""

    def _report(self, mapped: PortMapped | None) -> None:
        if mapped == self.current:
            return
        self.current = mapped
        if mapped is not None:
            log.info("port mapping: %s: external TCP port %s, UDP port %s", mapped.method, mapped.tcp_port,
                     mapped.udp_port)  # fmt: skip
        if self.on_change is not None:
            self.on_change(mapped)

    async def run(self) -> None:
        """Map, renew and map again until cancelled; the mappings are deleted on the way out."""
        try:
            while True:
                await self._attempt()
                self._report(None)
                self.settled.set()
                await asyncio.sleep(self.retry_s)
        finally:
            self.settled.set()

    async def _attempt(self) -> None:
        """Hold a mapping through the first method that grants one, until it is lost."""
        failures: list[str] = []
        gateway = self.gateway or (default_gateway() if self.pmp else None)
        if self.pmp and gateway is not None:
            try:
                async with open_gateway_client(gateway, self.gateway_port) as client:
                    await self._hold(_GatewayRouter(client, self.lifetime_s))
                return
            except (PortMappingError, OSError) as error:
                failures.append(f"PCP and NAT-PMP: {_reason(error)}")
        elif self.pmp:
            failures.append("PCP and NAT-PMP: no default gateway")
        if self.upnp:
            try:
                from bitswarm.net.upnp import SEARCH_S, open_upnp_gateway  # noqa: PLC0415

                upnp = await open_upnp_gateway(SEARCH_S if self.search_s is None else self.search_s)
                await self._hold(_UpnpRouter(upnp, self.lifetime_s))
                return
            except (PortMappingError, OSError) as error:
                failures.append(f"UPnP: {_reason(error)}")
        said = "; ".join(failures) or "no method on"
        if said != self._last_failure:  # once, not at every retry
            log.info("port mapping: none (%s)", said)
            self._last_failure = said

    async def _hold(self, router: _Router) -> None:
        """Map every port through ``router`` and keep the leases; returns when one expired.

        Raises PortMappingError or OSError when the TCP port cannot be mapped at first.
        """
        loop = asyncio.get_running_loop()
        granted: dict[MappingProtocol, _Grant] = {}
        leases: dict[MappingProtocol, Lease] = {}
        try:
            for protocol, port in self.ports.items():
                try:
                    grant = await router.map(protocol, port, port)
                except (PortMappingError, OSError) as error:
                    if protocol is MappingProtocol.TCP:
                        raise
                    log.info("port mapping: %s: %s not mapped: %s", router.method, protocol.name, _reason(error))
                    continue
                granted[protocol] = grant
                leases[protocol] = lease = Lease(self.rng)
                lease.granted(grant.lifetime_s, loop.time())
            self._last_failure = ""
            self._report(self._mapped(router.method, granted))
            self.settled.set()
            while True:
                deadlines = [d for lease in leases.values() if (d := lease.next_deadline()) is not None]
                if not deadlines:
                    await asyncio.Future()  # permanent mappings: until cancelled
                await asyncio.sleep(max(0.0, min(deadlines) - loop.time()))
                for protocol, lease in leases.items():
                    if not lease.tick(loop.time()):
                        continue
                    try:
                        port = self.ports[protocol]
                        granted[protocol] = await router.map(protocol, port, granted[protocol].external_port)
                        lease.granted(granted[protocol].lifetime_s, loop.time())
                    except (PortMappingError, OSError) as error:
                        log.info("port mapping: %s: %s renewal failed: %s", router.method, protocol.name,
                                 _reason(error))  # fmt: skip
                        lease.failed(loop.time())
                if any(lease.state is LeaseState.EXPIRED for lease in leases.values()):
                    log.info("port mapping: %s: a lease expired unrenewed; mapping again", router.method)
                    return
                self._report(self._mapped(router.method, granted))
        finally:
            await self._remove(router, granted)

    def _mapped(self, method: str, granted: dict[MappingProtocol, _Grant]) -> PortMapped:
        addresses = [grant.external_address for grant in granted.values() if grant.external_address]
        tcp, udp = granted.get(MappingProtocol.TCP), granted.get(MappingProtocol.UDP)
        return PortMapped(
            method,
            addresses[0] if addresses else None,
            tcp.external_port if tcp else None,
            udp.external_port if udp else None,
        )

    async def _remove(self, router: _Router, granted: dict[MappingProtocol, _Grant]) -> None:
        """Delete what was granted, each within REMOVE_TIMEOUT_S; a failure is a log line."""
        for protocol, grant in granted.items():
            try:
                async with asyncio.timeout(REMOVE_TIMEOUT_S):
                    await router.unmap(protocol, self.ports[protocol], grant.external_port)
            except (PortMappingError, OSError, TimeoutError) as error:
                log.info("port mapping: %s: %s mapping not removed: %s", router.method, protocol.name, _reason(error))
        if granted:
            log.info("port mapping: %s: mappings removed", router.method)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
