"""UPnP IGD port mappings, through async-upnp-client (Home Assistant's asyncio UPnP library).

``open_upnp_gateway`` finds an Internet Gateway Device with one SSDP M-SEARCH (to
239.255.255.250:1900, waiting ``search_s`` for the first answer), reads its description
and the SCPD of its WAN connection service (WANIPConnection:2, then :1, then
WANPPPConnection:1) and returns an ``UpnpGateway`` whose ``add``, ``delete`` and
``external_address`` call AddPortMapping (AddAnyPortMapping when the port is taken and
the service has it), DeletePortMapping and GetExternalIPAddress.

The library parses SSDP, the XML (with defusedxml) and SOAP; what answers on the LAN is
still untrusted, so its HTTP goes through ``BoundedRequester``: only to the host that
answered the search (a description naming another host, or a redirect, is refused:
nothing on the LAN can make us fetch from elsewhere), each body at most
``MAX_BODY_BYTES``, each request within ``HTTP_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from async_upnp_client.client import UpnpRequester, UpnpService
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.const import HttpRequest, HttpResponse
from async_upnp_client.exceptions import UpnpActionError, UpnpCommunicationError, UpnpError
from async_upnp_client.search import SsdpSearchListener
from async_upnp_client.utils import CaseInsensitiveDict

from bitswarm.errors import PortMappingError
from bitswarm.portmap.pcp import MappingProtocol

log = logging.getLogger(__name__)

IGD_SEARCH_TARGET = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
# In order of preference: IGD v2's service has AddAnyPortMapping.
WAN_SERVICES = (
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)
# SSDP's MX: devices answer within this many seconds (a home router answers at once).
SEARCH_S = 2
# A router's description is a few KiB and an SCPD some tens.
MAX_BODY_BYTES = 256 << 10
HTTP_TIMEOUT_S = 5.0
DESCRIPTION = "bitswarm"
# UPnP IGD error codes (WANIPConnection:2, section 2.4.16).
CONFLICT_IN_MAPPING_ENTRY = 718
ONLY_PERMANENT_LEASES_SUPPORTED = 725


class BoundedRequester(UpnpRequester):
    """HTTP for the library, to one host only, with bounded bodies and time."""

    def __init__(self, host: str, *, max_body_bytes: int = MAX_BODY_BYTES, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def async_http_request(self, http_request: HttpRequest) -> HttpResponse:
        """Do the request; raises UpnpCommunicationError for another host, a body too long,
        a timeout or a failed connection."""
        url = urllib.parse.urlsplit(http_request.url)
        if url.scheme != "http" or url.hostname != self.host:
            raise UpnpCommunicationError(f"UPnP: refused to fetch from another host than {self.host}")
        timeout = aiohttp.ClientTimeout(total=http_request.timeout or self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(
                    http_request.method,
                    http_request.url,
                    headers=dict(http_request.headers or {}),
                    data=http_request.body,
                    allow_redirects=False,
                ) as response,
            ):
                body = bytearray()
                async for block in response.content.iter_chunked(16 << 10):
                    body += block
                    if len(body) > self.max_body_bytes:
                        raise UpnpCommunicationError(f"UPnP: a body longer than {self.max_body_bytes} bytes")
                text = body.decode(response.charset or "utf-8", "replace")
                return HttpResponse(response.status, dict(response.headers), text)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            if isinstance(error, UpnpCommunicationError):
                raise
            raise UpnpCommunicationError(f"UPnP: {type(error).__name__}: {error}") from None


@dataclass(frozen=True, slots=True)
class UpnpGrant:
    """What AddPortMapping (or AddAnyPortMapping) granted: the external port and the lease
    (0: permanent, when the router takes no other)."""

    external_port: int
    lifetime_s: int


def _local_address_towards(host: str) -> str:
    """Our address on the route to ``host`` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 1900))
        address: str = probe.getsockname()[0]
        return address


class UpnpGateway:
    """One IGD's WAN connection service; made by ``open_upnp_gateway``."""

    def __init__(self, service: UpnpService, host: str) -> None:
        self.service = service
        self.host = host
        self.client_address = _local_address_towards(host)

    async def _call(self, action: str, **arguments: Any) -> Mapping[str, Any]:
        if not self.service.has_action(action):
            raise PortMappingError(f"port mapping: the router's UPnP service has no {action}")
        try:
            return await self.service.action(action).async_call(**arguments)
        except UpnpActionError as error:
            raise PortMappingError(f"port mapping: UPnP {action} refused: {error}", error.error_code) from None
        except (UpnpError, ValueError, KeyError) as error:  # a malformed SOAP answer, as above
            raise PortMappingError(f"port mapping: UPnP {action}: {error!r}") from None

    async def external_address(self) -> str | None:
        """The router's external IPv4 address, or None when it gives none that parses."""
        answer = await self._call("GetExternalIPAddress")
        text = answer.get("NewExternalIPAddress")
        try:
            return str(ipaddress.IPv4Address(text)) if isinstance(text, str) else None
        except ValueError:
            return None

    async def add(
        self, protocol: MappingProtocol, internal_port: int, external_port: int, lifetime_s: int
    ) -> UpnpGrant:
        """Map ``external_port`` to our ``internal_port``; returns what was granted. Raises
        PortMappingError when the router refuses."""
        arguments = {
            "NewRemoteHost": "",
            "NewProtocol": protocol.name,
            "NewInternalPort": internal_port,
            "NewInternalClient": self.client_address,
            "NewEnabled": True,
            "NewPortMappingDescription": DESCRIPTION,
        }
        try:
            await self._call("AddPortMapping", NewExternalPort=external_port, NewLeaseDuration=lifetime_s, **arguments)
            return UpnpGrant(external_port, lifetime_s)
        except PortMappingError as error:
            if error.code == ONLY_PERMANENT_LEASES_SUPPORTED and lifetime_s:
                # IGD v1 routers may take only lease 0; removed at exit all the same.
                await self._call("AddPortMapping", NewExternalPort=external_port, NewLeaseDuration=0, **arguments)
                return UpnpGrant(external_port, 0)
            if error.code != CONFLICT_IN_MAPPING_ENTRY or not self.service.has_action("AddAnyPortMapping"):
                raise
        # The port is another host's: let the router choose one (IGD v2).
        answer = await self._call("AddAnyPortMapping", NewExternalPort=external_port, NewLeaseDuration=lifetime_s,
                                  **arguments)  # fmt: skip
        reserved = answer.get("NewReservedPort")
        if not isinstance(reserved, int) or not 0 < reserved <= 0xFFFF:
            raise PortMappingError(f"port mapping: UPnP AddAnyPortMapping gave port {reserved!r}")
        return UpnpGrant(reserved, lifetime_s)

    async def delete(self, protocol: MappingProtocol, external_port: int) -> None:
        """Remove our mapping of ``external_port``; raises PortMappingError if the router refuses."""
        await self._call(
            "DeletePortMapping", NewRemoteHost="", NewExternalPort=external_port, NewProtocol=protocol.name
        )


async def search_igd(search_s: float = SEARCH_S) -> tuple[str, str] | None:
    """Send one SSDP search for an IGD; returns the first answer's (host, location) whose
    location is plain HTTP on the host that answered, or None after ``search_s``."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[tuple[str, str]] = loop.create_future()

    def on_answer(headers: CaseInsensitiveDict) -> None:
        location = headers.get("location")
        remote = headers.get("_remote_addr")
        if found.done() or not isinstance(location, str) or not remote:
            return
        host = str(remote[0])
        try:
            url = urllib.parse.urlsplit(location)
        except ValueError:
            return
        if url.scheme == "http" and url.hostname == host:
            found.set_result((host, location))
        else:
            log.info("port mapping: ignored an SSDP answer whose location is not on its own host")

    listener = SsdpSearchListener(callback=on_answer, search_target=IGD_SEARCH_TARGET, timeout=max(1, round(search_s)))
    await listener.async_start()
    try:
        listener.async_search()
        async with asyncio.timeout(search_s):
            return await found
    except TimeoutError:
        return None
    finally:
        listener.async_stop()


async def open_upnp_gateway(search_s: float = SEARCH_S) -> UpnpGateway:
    """Find the LAN's IGD and its WAN connection service.

    Raises PortMappingError when none answers, its description cannot be had or read, or
    it has no WAN connection service; OSError when no SSDP socket can be opened.
    """
    answer = await search_igd(search_s)
    if answer is None:
        raise PortMappingError("port mapping: no UPnP gateway answered")
    host, location = answer
    factory = UpnpFactory(BoundedRequester(host), non_strict=True)
    try:
        device = await factory.async_create_device(location)
    except (UpnpError, ValueError, KeyError) as error:
        # ValueError and KeyError too: what the library raises on some malformed
        # descriptions, and a description is whatever a device on the LAN sends.
        raise PortMappingError(f"port mapping: UPnP description unreadable: {error!r}") from None
    for device_or_child in device.all_devices:
        for service_type in WAN_SERVICES:
            if service_type in device_or_child.services:
                return UpnpGateway(device_or_child.services[service_type], host)
    raise PortMappingError("port mapping: the UPnP gateway has no WAN connection service")
