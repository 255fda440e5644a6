"""The port mapper over loopback, against a small NAT-PMP gateway written here from RFC 6886,
and the session's announced port. Nothing is sent but to 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any, cast

import pytest

from bitswarm.net.portmap import PortMapped, PortMapper
from bitswarm.net.session import Session

EXTERNAL = bytes((11, 77, 0, 1))


class NatPmpGateway(asyncio.DatagramProtocol):
    """Speaks NAT-PMP only: a PCP request gets version 0's "unsupported version" (RFC 6887
    section 9); maps every port to itself plus 1000; records the requests."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.requests.append(data)
        if data[0] != 0:
            self.transport.sendto(struct.pack("!BBHI", 0, 128 + (data[1] & 0x7F), 1, 7), addr)
        elif data[1] == 0:
            self.transport.sendto(struct.pack("!BBHI", 0, 128, 0, 7) + EXTERNAL, addr)
        else:
            _, opcode, _, internal, _, lifetime = struct.unpack("!BBHHHI", data)
            external = internal + 1000 if lifetime else 0
            self.transport.sendto(struct.pack("!BBHIHHI", 0, 128 + opcode, 0, 7, internal, external, lifetime), addr)


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_nat_pmp_gateway_is_asked_again_in_nat_pmp_and_the_mappings_are_deleted_on_exit() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, gateway = await loop.create_datagram_endpoint(NatPmpGateway, local_addr=("127.0.0.1", 0))
        seen: list[PortMapped | None] = []
        mapper = PortMapper(6881, 6882, seen.append, gateway="127.0.0.1",
                            gateway_port=transport.get_extra_info("sockname")[1], upnp=False)  # fmt: skip
        task = loop.create_task(mapper.run())
        async with asyncio.timeout(10):
            await mapper.settled.wait()
        assert mapper.current == PortMapped("nat-pmp", "11.77.0.1", 7881, 7882)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        transport.close()
        assert seen == [mapper.current]
        versions = [request[0] for request in gateway.requests]
        assert versions[0] == 2  # PCP first, then NAT-PMP only
        assert set(versions[1:]) == {0}
        deletions = [struct.unpack("!BBHHHI", request) for request in gateway.requests if len(request) == 12]
        assert {(opcode, internal) for _, opcode, _, internal, _, lifetime in deletions if lifetime == 0} == {
            (2, 6881),  # TCP
            (1, 6882),  # UDP
        }

    asyncio.run(scenario())


def test_no_gateway_service_costs_one_log_line_and_no_mapping(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        mapper = PortMapper(6881, None, gateway="127.0.0.1", gateway_port=closed_udp_port(), upnp=False)
        task = asyncio.get_running_loop().create_task(mapper.run())
        async with asyncio.timeout(10):
            await mapper.settled.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert mapper.current is None

    with caplog.at_level(logging.INFO, logger="bitswarm.net.portmap"):
        asyncio.run(scenario())
    lines = [record for record in caplog.records if record.name == "bitswarm.net.portmap"]
    assert len(lines) == 1
    assert lines[0].getMessage().startswith("port mapping: none (PCP and NAT-PMP:")
    assert lines[0].exc_info is None


def test_the_session_announces_the_mapped_port_and_wakes_its_announcers_when_it_changes() -> None:
    async def scenario() -> None:
        session = Session(port=6881)  # not started: no socket is opened
        reported: list[PortMapped | None] = []
        session.on_port_mapped = reported.append
        assert session.announce_port == 6881
        waiting = asyncio.get_running_loop().create_task(session.wait_for_announce_port(6881, 60.0))
        await asyncio.sleep(0)
        mapped = PortMapped("upnp", "11.77.0.1", 40000, 40001)
        session._port_mapping_changed(mapped)
        async with asyncio.timeout(1):
            await waiting  # woken at once, not after 60 s
        assert session.announce_port == 40000
        session._port_mapping_changed(None)
        assert session.announce_port == 6881
        assert reported == [mapped, None]
        session.disk.shutdown()
        session.readers.shutdown()

    asyncio.run(scenario())


def test_upnp_http_goes_only_to_the_host_that_answered_and_bodies_are_bounded() -> None:
    from aiohttp import web
    from async_upnp_client.const import HttpRequest
    from async_upnp_client.exceptions import UpnpCommunicationError

    from bitswarm.net.upnp import BoundedRequester

    async def scenario() -> None:
        async def small(_request: web.Request) -> web.Response:
            return web.Response(text="<root/>")

        async def huge(_request: web.Request) -> web.Response:
            return web.Response(body=b"x" * 300_000)

        async def moved(_request: web.Request) -> web.Response:
            raise web.HTTPFound("http://10.9.9.9/evil.xml")

        app = web.Application()
        app.router.add_get("/small.xml", small)
        app.router.add_get("/huge.xml", huge)
        app.router.add_get("/moved", moved)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        requester = BoundedRequester("127.0.0.1", max_body_bytes=256 << 10)
        request = HttpRequest("GET", f"http://127.0.0.1:{port}/small.xml", {}, None)
        try:
            answer = await requester.async_http_request(request)
            assert (answer.status_code, answer.body) == (200, "<root/>")
            with pytest.raises(UpnpCommunicationError, match="longer than"):
                await requester.async_http_request(HttpRequest("GET", f"http://127.0.0.1:{port}/huge.xml", {}, None))
            with pytest.raises(UpnpCommunicationError, match="another host"):
                await requester.async_http_request(HttpRequest("GET", "http://10.9.9.9/rootDesc.xml", {}, None))
            to_moved = HttpRequest("GET", f"http://127.0.0.1:{port}/moved", {}, None)
            redirect = await requester.async_http_request(to_moved)
            assert redirect.status_code == 302  # not followed
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
