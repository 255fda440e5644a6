"""PCP (RFC 6887) and NAT-PMP (RFC 6886) to the default gateway: the UDP side of ``bitswarm.portmap.pcp``.

``open_gateway_client`` opens one UDP socket connected to the gateway's port 5351 (so the
kernel drops datagrams from anyone else, and an ICMP "port unreachable" from a gateway
that runs neither protocol ends the wait at once). ``GatewayClient.map`` asks in PCP
first; a gateway that answers in NAT-PMP's version is asked again, and from then on, in
NAT-PMP. Each request is sent again after 250 ms, 500 ms, 1 s and 2 s (RFC 6886 section
3.1's schedule, cut short: a gateway that has not answered within 4 s is taken to run
neither protocol, and UPnP is tried next).

The gateway is the IPv4 default route's, read from the kernel's table (``default_gateway``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bitswarm.errors import PortMappingError
from bitswarm.portmap.pcp import (
    PCP_NONCE_BYTES,
    SERVER_PORT,
    Mapped,
    MappingProtocol,
    PmpAddress,
    UnsupportedVersion,
    decode_answer,
    encode_pcp_map_request,
    encode_pmp_address_request,
    encode_pmp_map_request,
)

log = logging.getLogger(__name__)

ROUTE_TABLE = Path("/proc/net/route")
# The route table of a host is a few lines; a read is bounded anyway.
MAX_ROUTE_TABLE_BYTES = 1 << 20
_RTF_GATEWAY = 0x2
# RFC 6886 section 3.1: first retransmission after 250 ms, doubling.
FIRST_RETRY_S = 0.25
ATTEMPTS = 4
# Answers waiting to be read; the socket is connected, so only the gateway fills it.
MAX_QUEUED_ANSWERS = 16


def default_gateway(route_table: Path = ROUTE_TABLE) -> str | None:
    """The IPv4 default route's gateway (from Linux's /proc/net/route), or None when
    there is none (or the table cannot be read)."""
    try:
        with route_table.open("rb") as file:
            text = file.read(MAX_ROUTE_TABLE_BYTES).decode("ascii", "replace")
    except OSError:
        return None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, gateway, flags, mask = (int(fields[index], 16) for index in (1, 2, 3, 7))
        except ValueError:
            continue
        if destination == 0 and mask == 0 and flags & _RTF_GATEWAY and gateway:
            # The kernel prints the address as a host-order (little-endian) integer.
            return socket.inet_ntoa(struct.pack("<I", gateway))
    return None


class _Answers(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | OSError] = asyncio.Queue(MAX_QUEUED_ANSWERS)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like, on a connected socket.
        if isinstance(exc, OSError) and not self.queue.full():
            self.queue.put_nowait(exc)


class GatewayClient:
    """Requests to one gateway; made by ``open_gateway_client``."""

    def __init__(self, gateway: str, transport: asyncio.DatagramTransport, answers: _Answers) -> None:
        self.gateway = gateway
        self._transport = transport
        self._answers = answers
        sockname = transport.get_extra_info("sockname")
        # Our address on the gateway's link: PCP wants it in every request.
        self.client_address: str = sockname[0]
        self.speaks_pcp = True
        self._nonces: dict[MappingProtocol, bytes] = {}
        self._lock = asyncio.Lock()

    @property
    def method(self) -> str:
        return "pcp" if self.speaks_pcp else "nat-pmp"

    async def _exchange(self, request: bytes, accept: Any) -> PmpAddress | Mapped:
        """Send ``request`` until an answer that ``accept`` takes comes back; return it.

        Raises PortMappingError (a refusal, or a gateway that never answered), its
        UnsupportedVersion, or OSError when the gateway's host refuses the port.
        """
        async with self._lock:
            while not self._answers.queue.empty():  # late answers to an earlier request
                self._answers.queue.get_nowait()
            wait_s = FIRST_RETRY_S
            for _attempt in range(ATTEMPTS):
                self._transport.sendto(request)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + wait_s
                while (left := deadline - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(left):
                            item = await self._answers.queue.get()
                    except TimeoutError:
                        break
                    if isinstance(item, OSError):
                        raise item
                    try:
                        answer = decode_answer(item)
                    except UnsupportedVersion:
                        raise
                    except PortMappingError as error:
                        if error.code is not None:  # a refusal, well formed
                            raise
                        log.debug("port mapping: malformed answer ignored: %s", error)
                        continue
                    if accept(answer):
                        return answer
                wait_s *= 2
            raise PortMappingError(f"port mapping: no answer from the gateway in {self.method}")

    async def external_address(self) -> str:
        """The gateway's external IPv4 address (NAT-PMP's request; PCP answers carry it)."""
        answer = await self._exchange(encode_pmp_address_request(), lambda a: isinstance(a, PmpAddress))
        assert isinstance(answer, PmpAddress)
        return answer.external_address

    async def map(self, protocol: MappingProtocol, internal_port: int, external_port: int, lifetime_s: int) -> Mapped:
        """Ask for (or renew, or with lifetime 0 delete) a mapping of ``internal_port``.

        Returns the answer, with the external address filled in (asked separately in
        NAT-PMP). Raises PortMappingError when the gateway refuses or does not answer,
        OSError when its host refuses the port.
        """
        if self.speaks_pcp:
            try:
                return await self._map_pcp(protocol, internal_port, external_port, lifetime_s)
            except UnsupportedVersion as error:
                if error.version != 0:
                    raise
                log.info("port mapping: the gateway speaks NAT-PMP, not PCP")
                self.speaks_pcp = False
        mapped = await self._map_pmp(protocol, internal_port, external_port, lifetime_s)
        if lifetime_s == 0:
            return mapped
        address = await self.external_address()
        return Mapped(mapped.protocol, mapped.internal_port, mapped.external_port, mapped.lifetime_s,
                      mapped.epoch_s, address)  # fmt: skip

    async def _map_pcp(
        self, protocol: MappingProtocol, internal_port: int, external_port: int, lifetime_s: int
    ) -> Mapped:
        # RFC 6887 section 11.2: a renewal or deletion reuses the mapping's nonce.
        nonce = self._nonces.setdefault(protocol, secrets.token_bytes(PCP_NONCE_BYTES))
        request = encode_pcp_map_request(nonce, protocol, internal_port, external_port, lifetime_s, self.client_address)

        def ours(answer: PmpAddress | Mapped) -> bool:
            # RFC 6887 section 11.3: an answer whose nonce, protocol or port differ is not ours.
            return (
                isinstance(answer, Mapped)
                and answer.nonce == nonce
                and answer.protocol is protocol
                and answer.internal_port == internal_port
            )

        answer = await self._exchange(request, ours)
        assert isinstance(answer, Mapped)
        if lifetime_s == 0:
            self._nonces.pop(protocol, None)
        return answer

    async def _map_pmp(
        self, protocol: MappingProtocol, internal_port: int, external_port: int, lifetime_s: int
    ) -> Mapped:
        request = encode_pmp_map_request(protocol, internal_port, external_port, lifetime_s)

        def ours(answer: PmpAddress | Mapped) -> bool:
            return isinstance(answer, Mapped) and answer.protocol is protocol and answer.internal_port == internal_port

        answer = await self._exchange(request, ours)
        assert isinstance(answer, Mapped)
        return answer


@contextlib.asynccontextmanager
async def open_gateway_client(
    gateway: str, port: int = SERVER_PORT, *, pcp: bool = True
) -> AsyncIterator[GatewayClient]:
    """A client for ``gateway``'s ``port`` (5351: only tests pick another), asking in PCP
    first unless ``pcp`` is False; the socket closes on leaving. Raises OSError when no
    socket can be opened towards it (no route, for one)."""
    loop = asyncio.get_running_loop()
    transport, answers = await loop.create_datagram_endpoint(
        _Answers, remote_addr=(gateway, port), family=socket.AF_INET
    )
    try:
        client = GatewayClient(gateway, transport, answers)
        client.speaks_pcp = pcp
        yield client
    finally:
        transport.close()
