"""The tracker's asyncio layer on loopback: real sockets, one event loop per test."""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest

from bitswarm import bencode
from bitswarm.net.tracker import MAX_URL_BYTES, TrackerServer, TrackerService
from bitswarm.tracker.config import TrackerConfig, load_config
from bitswarm.tracker.memory import MemoryStore

INFO_HASH = bytes(range(20))
LOOPBACK = TrackerConfig(http=("127.0.0.1:0",), udp=("127.0.0.1:0",))

Scenario = Callable[[TrackerServer, tuple[str, int]], Awaitable[None]]


def run(scenario: Scenario, config: TrackerConfig = LOOPBACK) -> None:
    async def main() -> None:
        store = MemoryStore(peer_timeout_s=config.peer_timeout_s, rng=random.Random(3))
        server = TrackerServer(TrackerService(config, store))
        await server.start()
        try:
            await asyncio.wait_for(scenario(server, server.http_addresses[0]), timeout=30)
        finally:
            await server.close()

    asyncio.run(main())


async def exchange(address: tuple[str, int], raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes or a full response arrived."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(raw)
    await writer.drain()
    try:
        return await reader.read(1 << 20) if b"Connection: close" in raw else await _one_response(reader)
    finally:
        writer.close()


async def _one_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


def announce_url(port: int, left: int = 10, path: str = "/announce", info_hash: bytes = INFO_HASH) -> str:
    return (
        f"{path}?info_hash={quote_from_bytes(info_hash)}&peer_id={'p' * 20}&port={port}"
        f"&uploaded=0&downloaded=0&left={left}"
    )


def get(url: str, *, extra: str = "", close: bool = True) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return f"GET {url} HTTP/1.1\r\nHost: t\r\n{extra}{connection}\r\n".encode()


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


def test_announce_and_scrape_over_http() -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        await exchange(address, get(announce_url(1001, left=0)))
        reply = bencode.decode(body_of(await exchange(address, get(announce_url(1002)))))
        assert isinstance(reply, dict)
        assert (reply[b"complete"], reply[b"incomplete"]) == (1, 1)
        assert reply[b"peers"] == bytes([127, 0, 0, 1]) + (1001).to_bytes(2, "big")
        scrape = bencode.decode(
            body_of(await exchange(address, get(f"/scrape?info_hash={quote_from_bytes(INFO_HASH)}")))
        )
        assert scrape == {b"files": {INFO_HASH: {b"complete": 1, b"downloaded": 0, b"incomplete": 1}}}

    run(scenario)


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(get(announce_url(1001), close=False) + get("/nowhere", close=False) + get("/stats", close=False))
        first, second, third = [await _one_response(reader) for _ in range(3)]
        writer.close()
        assert first.startswith(b"HTTP/1.1 200")
        assert b"interval" in first
        assert second.startswith(b"HTTP/1.1 404")
        assert json.loads(body_of(third))["announces"]["http"] == 1

    run(scenario)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"GET /" + b"a" * (MAX_URL_BYTES + 10) + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"v" * 20000 + b"\r\n\r\n", b"431"),
        (b"POST /announce HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 1_100_000, b"413"),
        (b"POST /announce HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", b"405"),
    ],
    ids=["garbage", "long-url", "huge-headers", "huge-body", "wrong-method"],
)
def test_hostile_http_costs_one_connection(raw: bytes, status: bytes) -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(raw)
        await writer.drain()
        response = await reader.read(1 << 16)
        assert response.startswith(b"HTTP/1.1 " + status)
        assert await reader.read() == b""  # closed
        writer.close()
        # The tracker still serves everyone else.
        assert b"interval" in await exchange(address, get(announce_url(2000)))

    run(scenario)


def test_bad_announce_is_a_bencoded_failure_with_status_200_and_is_counted() -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        response = await exchange(address, get("/announce?info_hash=abc&port=1"))
        assert response.startswith(b"HTTP/1.1 200")
        assert bencode.decode(body_of(response)) == {b"failure reason": b"invalid info_hash: 3 bytes, not 20"}
        metrics = body_of(await exchange(address, get("/metrics"))).decode()
        assert 'bitswarm_tracker_errors_total{reason="http_request"} 1' in metrics
        assert 'bitswarm_tracker_announces_total{protocol="http"} 1' in metrics

    run(scenario)


def test_rate_limit_per_address() -> None:
    config = replace(LOOPBACK, rate_limit_per_s=0.001, rate_limit_burst=3)

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        bodies = [body_of(await exchange(address, get(announce_url(1000 + n)))) for n in range(5)]
        assert [b"rate limit" in body for body in bodies] == [False, False, False, True, True]
        assert server.service.counters.errors["rate_limited"] == 2

    run(scenario, config)


async def udp_client(server: TrackerServer) -> tuple[asyncio.DatagramTransport, asyncio.Queue[bytes]]:
    """A datagram socket to the tracker and the queue its replies land in."""
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            replies.put_nowait(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=server.udp_addresses[0])
    return transport, replies


def test_udp_round_trip_through_the_socket() -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        transport, replies = await udp_client(server)
        transport.sendto(struct.pack(">QII", 0x41727101980, 0, 1))
        connection_id = (await replies.get())[8:]
        transport.sendto(
            connection_id + struct.pack(">II20s20sQQQIIIiH", 1, 2, INFO_HASH, b"q" * 20, 0, 0, 0, 2, 0, 0, -1, 7000)
        )
        assert struct.unpack(">IIIII", await replies.get()) == (1, 2, 1800, 0, 1)
        transport.sendto(b"garbage that gets no answer")
        transport.sendto(connection_id + struct.pack(">II", 2, 3) + INFO_HASH)
        assert struct.unpack(">IIIII", await replies.get()) == (2, 3, 1, 0, 0)
        transport.close()

    run(scenario)


def test_admin_api_needs_the_token_and_edits_the_whitelist_file(tmp_path: Path) -> None:
    whitelist = tmp_path / "whitelist"
    whitelist.write_text("# swarms\n" + INFO_HASH.hex() + "\n")
    config = replace(LOOPBACK, whitelist_file=str(whitelist), admin_token="s3cret-token")
    other = bytes(20)

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        assert b"not registered" in await exchange(address, get(announce_url(1, info_hash=other)))
        assert (
            await exchange(
                address, f"PUT /admin/whitelist/{other.hex()} HTTP/1.1\r\nConnection: close\r\n\r\n".encode()
            )
        ).startswith(b"HTTP/1.1 401")
        wrong = "Authorization: Bearer nope\r\n"
        assert (
            await exchange(
                address, f"PUT /admin/whitelist/{other.hex()} HTTP/1.1\r\n{wrong}Connection: close\r\n\r\n".encode()
            )
        ).startswith(b"HTTP/1.1 401")
        auth = "Authorization: Bearer s3cret-token\r\n"
        added = await exchange(
            address, f"PUT /admin/whitelist/{other.hex()} HTTP/1.1\r\n{auth}Connection: close\r\n\r\n".encode()
        )
        assert added.startswith(b"HTTP/1.1 200")
        assert b"interval" in await exchange(address, get(announce_url(1, info_hash=other)))
        listed = json.loads(body_of(await exchange(address, get("/admin/whitelist", extra=auth))))
        assert listed == sorted([INFO_HASH.hex(), other.hex()])
        assert sorted(whitelist.read_text().split()) == listed
        removed = await exchange(
            address, f"DELETE /admin/whitelist/{INFO_HASH.hex()} HTTP/1.1\r\n{auth}Connection: close\r\n\r\n".encode()
        )
        assert removed.startswith(b"HTTP/1.1 200")
        assert b"not registered" in await exchange(address, get(announce_url(1)))

    run(scenario, config)


def test_whitelist_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    whitelist = tmp_path / "whitelist"
    whitelist.write_text("")
    service = TrackerService(
        replace(LOOPBACK, whitelist_file=str(whitelist)), MemoryStore(peer_timeout_s=10, rng=random.Random())
    )
    assert service.policy.whitelist == frozenset()
    whitelist.write_text(INFO_HASH.hex() + "\n")
    os.utime(whitelist, ns=(1, 2_000_000_000_000_000_000))  # a new mtime, whatever the clock's resolution
    service.reload_lists()
    assert service.policy.whitelist == frozenset([INFO_HASH])
    whitelist.unlink()
    service.reload_lists()  # a file being replaced keeps the last good list
    assert service.policy.whitelist == frozenset([INFO_HASH])


def test_private_mode_counts_each_users_transfer(tmp_path: Path) -> None:
    passkeys = tmp_path / "passkeys"
    passkeys.write_text("alice\nbob\n")
    config = replace(LOOPBACK, passkeys_file=str(passkeys), admin_token="t" * 20)

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        def url(uploaded: int, event: str = "") -> str:
            base = announce_url(1234, path="/announce/alice").replace("uploaded=0", f"uploaded={uploaded}")
            return base + (f"&event={event}" if event else "")

        assert b"unknown passkey" in await exchange(address, get(announce_url(1, path="/announce/eve")))
        assert b"unknown passkey" in await exchange(address, get(announce_url(1)))
        for uploaded, event in ((100, "started"), (250, ""), (40, ""), (90, "stopped")):
            assert b"interval" in await exchange(address, get(url(uploaded, event)))
        users = json.loads(
            body_of(await exchange(address, get("/admin/users", extra=f"Authorization: Bearer {'t' * 20}\r\n")))
        )
        # 100, then +150, then a restart counting from 0 (+40), then +50.
        assert users == {"alice": {"uploaded": 340, "downloaded": 0}}

    run(scenario, config)


def test_config_file_settings_and_their_errors() -> None:
    config = load_config(
        'http = "127.0.0.1:7000"\nudp = []\ninterval_s = 600\nmin_interval_s = 60\npeer_timeout_s = 1300\n'
    )
    assert (config.http, config.udp, config.interval_s) == (("127.0.0.1:7000",), (), 600)
    assert config.validate() is config
    from bitswarm.errors import UsageError

    for text, message in (
        ("intervall_s = 5", "unknown setting"),
        ('interval_s = "soon"', "must be a number"),
        ("full_scrape = 1", "true or false"),
        ("http = [1]", "list of strings"),
        ("= broken", "config"),
    ):
        with pytest.raises(UsageError, match=message):
            load_config(text)
    with pytest.raises(UsageError, match="neither HTTP nor UDP"):
        load_config("http = []\nudp = []").validate()


def test_ipv6_over_http_and_udp() -> None:
    config = TrackerConfig(http=("[::1]:0",), udp=("[::1]:0",))

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        await exchange(address, get(announce_url(1001, left=0)))
        reply = bencode.decode(body_of(await exchange(address, get(announce_url(1002)))))
        assert isinstance(reply, dict)
        assert reply[b"peers6"] == bytes(15) + b"\x01" + (1001).to_bytes(2, "big")
        transport, replies = await udp_client(server)
        transport.sendto(struct.pack(">QII", 0x41727101980, 0, 1))
        connection_id = (await replies.get())[8:]
        transport.sendto(
            connection_id + struct.pack(">II20s20sQQQIIIiH", 1, 2, INFO_HASH, b"q" * 20, 0, 5, 0, 2, 0, 0, -1, 7000)
        )
        reply_datagram = await replies.get()
        assert struct.unpack(">IIIII", reply_datagram[:20]) == (1, 2, 1800, 2, 1)
        # BEP 15 over IPv6: 18-byte peers, seeders first.
        assert reply_datagram[20:38] == bytes(15) + b"\x01" + (1001).to_bytes(2, "big")
        assert len(reply_datagram) == 20 + 18 * 2
        transport.close()

    run(scenario, config)


def test_a_client_re_announcing_a_thousand_torrents_at_start_up_is_not_refused_by_default() -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        failures = 0
        for number in range(1000):
            info_hash = number.to_bytes(20, "big")
            reply = bencode.decode(body_of(await exchange(address, get(announce_url(7000, info_hash=info_hash)))))
            assert isinstance(reply, dict)
            failures += b"failure reason" in reply
        assert failures == 0
        assert server.service.counters.errors.get("rate_limited", 0) == 0

    run(scenario)
