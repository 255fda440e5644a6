"""The tracker behind a real reverse proxy (Debian's nginx): peers announcing through it
from several loopback addresses see each other's own addresses, and the per-address
budget falls on each client, not on the proxy. Without the proxy trusted, the headers
count for nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest

from bitswarm import bencode
from bitswarm.net.tracker import TrackerServer, TrackerService
from bitswarm.tracker.config import TrackerConfig
from bitswarm.tracker.memory import MemoryStore
from webseed_nginx import nginx_binary, serve_with_nginx

INFO_HASH = b"\x42" * 20
BEHIND_PROXY = TrackerConfig(http=("127.0.0.1:0",), udp=(), trusted_proxies=("127.0.0.1",))
PROXY = """
        location / {{
            proxy_pass http://127.0.0.1:{port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
        }}
"""


def announce_request(peer_port: int, extra_headers: str = "") -> bytes:
    url = (
        f"/announce?info_hash={quote_from_bytes(INFO_HASH)}&peer_id={str(peer_port).ljust(20, 'x')}"
        f"&port={peer_port}&uploaded=0&downloaded=0&left=5&compact=1"
    )
    return f"GET {url} HTTP/1.1\r\nHost: tracker.example\r\n{extra_headers}Connection: close\r\n\r\n".encode()


async def announce_from(source: str, port: int, peer_port: int, extra_headers: str = "") -> Mapping[bytes, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(announce_request(peer_port, extra_headers))
    await writer.drain()
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:100]
    reply = bencode.decode(response.split(b"\r\n\r\n", 1)[1])
    assert isinstance(reply, dict)
    return reply


def compact_peers(reply: Mapping[bytes, object]) -> set[tuple[str, int]]:
    peers = reply[b"peers"]
    assert isinstance(peers, bytes)
    return {
        (".".join(str(byte) for byte in peers[at : at + 4]), int.from_bytes(peers[at + 4 : at + 6], "big"))
        for at in range(0, len(peers), 6)
    }


Scenario = Callable[[TrackerServer, int], Awaitable[None]]


def run_behind_nginx(tmp_path: Path, config: TrackerConfig, scenario: Scenario) -> None:
    binary = nginx_binary()
    assert binary is not None, "nginx-light is installed by scripts/test"

    async def main() -> None:
        store = MemoryStore(peer_timeout_s=config.peer_timeout_s, rng=random.Random(5))
        server = TrackerServer(TrackerService(config, store))
        await server.start()
        try:
            with ExitStack() as stack:
                body = PROXY.format(port=server.http_addresses[0][1])
                nginx = stack.enter_context(serve_with_nginx(tmp_path, tmp_path / "nginx", binary, server_body=body))
                proxy_port = int(nginx.url.rsplit(":", 1)[1].strip("/"))
                await asyncio.wait_for(scenario(server, proxy_port), timeout=30)
        finally:
            await server.close()

    asyncio.run(main())


def test_peers_announcing_through_the_proxy_see_each_others_own_addresses(tmp_path: Path) -> None:
    async def scenario(server: TrackerServer, proxy_port: int) -> None:
        await announce_from("127.0.0.2", proxy_port, 6002)
        await announce_from("127.0.0.3", proxy_port, 6003)
        # A client that names someone else in its own header is still itself.
        reply = await announce_from("127.0.0.4", proxy_port, 6004, "X-Forwarded-For: 198.51.100.66\r\n")
        assert compact_peers(reply) == {("127.0.0.2", 6002), ("127.0.0.3", 6003)}

    run_behind_nginx(tmp_path, BEHIND_PROXY, scenario)


def test_the_per_address_budget_falls_on_each_client_not_on_the_proxy(tmp_path: Path) -> None:
    config = replace(BEHIND_PROXY, rate_limit_per_s=0.001, rate_limit_burst=3)

    async def scenario(server: TrackerServer, proxy_port: int) -> None:
        replies = [await announce_from("127.0.0.5", proxy_port, 6005) for _ in range(5)]
        assert [b"failure reason" in reply for reply in replies] == [False, False, False, True, True]
        other = await announce_from("127.0.0.6", proxy_port, 6006)
        assert b"failure reason" not in other
        assert server.service.counters.errors["rate_limited"] == 2

    run_behind_nginx(tmp_path, config, scenario)


@pytest.mark.parametrize("trusted", [(), ("10.0.0.0/8",)])
def test_forwarding_headers_from_an_untrusted_address_are_ignored(trusted: tuple[str, ...]) -> None:
    config = replace(BEHIND_PROXY, trusted_proxies=trusted)

    async def main() -> None:
        server = TrackerServer(TrackerService(config, MemoryStore(peer_timeout_s=3900, rng=random.Random(5))))
        await server.start()
        port = server.http_addresses[0][1]
        try:
            spoof = "X-Forwarded-For: 198.51.100.7\r\nX-Real-IP: 198.51.100.8\r\n"
            await announce_from("127.0.0.7", port, 6007, spoof)
            reply = await announce_from("127.0.0.8", port, 6008)
            assert compact_peers(reply) == {("127.0.0.7", 6007)}
        finally:
            await server.close()

    asyncio.run(main())
