"""The memory store's HTTP fast path: answered on accept, or handed to the ordinary connection."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from typing import Any

import pytest
from test_tracker_server import LOOPBACK, _one_response, announce_url, body_of, get, run

from bitswarm import bencode
from bitswarm.net import tracker as net_tracker
from bitswarm.net.tracker import MAX_URL_BYTES, TrackerServer, _FastHttpListener, fast_request
from bitswarm.tracker import server as tracker_server
from bitswarm.tracker._http_fast import request_head

pytestmark = pytest.mark.skipif(not net_tracker.FAST_HTTP, reason="the fast path needs POSIX sockets")


class Spy:
    """Counts the fast path's wake-ups and the connections it handed to the slow path."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.wakeups = 0
        self.handed: list[bytes] = []
        readable = _FastHttpListener._readable
        hand_over = _FastHttpListener._hand_over

        def counting_readable(listener: _FastHttpListener) -> None:
            self.wakeups += 1
            readable(listener)

        def counting_hand_over(listener: _FastHttpListener, fd: int, data: bytes) -> None:
            self.handed.append(data)
            hand_over(listener, fd, data)

        monkeypatch.setattr(_FastHttpListener, "_readable", counting_readable)
        monkeypatch.setattr(_FastHttpListener, "_hand_over", counting_hand_over)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await reader.read(1 << 20)


def test_the_memory_store_listens_through_the_fast_path() -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        assert server.http_fast
        assert not server.http_servers
        assert address == server.http_fast[0].sock.getsockname()[:2]

    run(scenario)


def test_a_connection_close_announce_is_answered_on_accept_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        for request in (get(announce_url(1001)), get(announce_url(1002)).replace(b"HTTP/1.1", b"HTTP/1.0")):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(request)
            await writer.drain()
            response = await asyncio.wait_for(read_all(reader), 5)  # the server closes
            writer.close()
            assert response.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Connection: close\r\n" in response
            reply = bencode.decode(body_of(response))
            assert isinstance(reply, dict)
            assert b"interval" in reply
        assert server.service.counters.announces["http"] == 2
        assert not server.connections

    run(scenario)
    assert spy.handed == []


def test_a_scrape_with_connection_close_is_answered() -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(get(announce_url(1001)))
        await read_all(reader)
        writer.close()
        reader, writer = await asyncio.open_connection(*address)
        writer.write(get("/scrape?info_hash=" + announce_url(1)[len("/announce?info_hash=") :].split("&")[0]))
        response = await asyncio.wait_for(read_all(reader), 5)
        writer.close()
        reply = bencode.decode(body_of(response))
        assert isinstance(reply, dict)
        files = reply[b"files"]
        assert isinstance(files, dict)
        assert len(files) == 1
        assert server.service.counters.scrapes["http"] == 1

    run(scenario)


def test_a_keep_alive_client_gets_several_answers_on_one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        for port in (1001, 1002, 1003):
            writer.write(get(announce_url(port), close=False))
            response = await asyncio.wait_for(_one_response(reader), 5)
            assert response.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Connection: close" not in response
        assert len(server.connections) == 1
        writer.close()
        assert server.service.counters.announces["http"] == 3

    run(scenario)
    assert len(spy.handed) == 1


def test_a_request_in_two_segments_takes_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        request = get(announce_url(1001))
        reader, writer = await asyncio.open_connection(*address)
        writer.write(request[:20])
        await writer.drain()
        while not spy.handed:  # the listener read the first part and handed the connection on
            await asyncio.sleep(0.01)  # polling an observable state
        writer.write(request[20:])
        response = await asyncio.wait_for(read_all(reader), 5)
        writer.close()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"interval" in body_of(response)

    run(scenario)
    assert len(spy.handed) == 1
    assert spy.handed[0] in (b"", get(announce_url(1001))[:20])


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"\x00\x01garbage\r\n\r\n", b"400"),
        (b"GET /announce?" + b"a" * (MAX_URL_BYTES + 10) + b" HTTP/1.1\r\nConnection: close\r\n\r\n", b"414"),
        (b"GET /announce\x01x HTTP/1.1\r\nConnection: close\r\n\r\n", b"400"),
        (b"POST /announce HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", b"405"),
        (b"GET /nowhere HTTP/1.1\r\nConnection: close\r\n\r\n", b"404"),
        (b"GET /announce/a/b HTTP/1.1\r\nConnection: close\r\n\r\n", b"404"),
        (b"GET /announce HTTP/1.1\r\nBad Header: x\r\nConnection: close\r\n\r\n", b"400"),
    ],
)
def test_hostile_requests_get_the_same_status(raw: bytes, status: bytes) -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(raw)
        response = await asyncio.wait_for(read_all(reader), 5)
        writer.close()
        assert response.split(b" ")[1] == status

    run(scenario)


def test_two_pipelined_requests_with_close_are_both_seen_by_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(get(announce_url(1001), close=False) + get(announce_url(1002)))
        response = await asyncio.wait_for(read_all(reader), 5)
        writer.close()
        assert response.count(b"HTTP/1.1 200 OK") == 2

    run(scenario)
    assert len(spy.handed) == 1


def test_many_connections_are_answered_in_few_wakeups(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    count = 90  # under the listen backlog, so connect() completes without the server

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        clients: list[socket.socket] = []
        try:
            # Connect and send on every socket before the loop runs the server once.
            for index in range(count):
                client = socket.create_connection(address)
                client.sendall(get(announce_url(2000 + index)))
                clients.append(client)
            for client in clients:
                client.setblocking(False)
            responses: list[bytes] = []
            for client in clients:
                chunks: list[Any] = []
                while True:
                    chunk = await asyncio.wait_for(loop.sock_recv(client, 1 << 16), 5)
                    if not chunk:
                        break
                    chunks.append(chunk)
                responses.append(b"".join(chunks))
        finally:
            for client in clients:
                client.close()
        assert all(response.startswith(b"HTTP/1.1 200 OK\r\n") for response in responses)
        assert server.service.counters.announces["http"] == count

    run(scenario)
    assert spy.handed == []
    assert spy.wakeups <= 4  # 64 accepted per wake-up


def test_rate_limit_applies_on_the_fast_path() -> None:
    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        bodies = []
        for port in range(1001, 1006):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(get(announce_url(port)))
            bodies.append(body_of(await asyncio.wait_for(read_all(reader), 5)))
            writer.close()
        assert [b"rate limit" in body for body in bodies] == [False, False, True, True, True]
        assert server.service.counters.errors["rate_limited"] == 3

    run(scenario, replace(LOOPBACK, rate_limit_per_s=0.001, rate_limit_burst=2))


@pytest.mark.parametrize(
    ("raw", "fast"),
    [
        (b"GET /announce?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", True),
        (b"GET /announce/key?x=1 HTTP/1.0\r\n\r\n", True),
        (b"GET /scrape HTTP/1.1\r\nConnection: Close\r\n\r\n", True),
        (b"GET /announce HTTP/1.1\r\nHost: t\r\n\r\n", False),  # keep-alive by default
        (b"GET /announce HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
        (b"GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET /announce HTTP/1.1\r\nConnection: close\r\n", False),  # not complete
        (b"GET /announce HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", False),
        (b"GET /announce HTTP/1.1\r\nConnection: close\r\n\r\nGET /announce HTTP/1.1\r\n\r\n", False),
        (b"GET /announce HTTP/1.1\r\n folded\r\nConnection: close\r\n\r\n", False),
    ],
)
@pytest.mark.parametrize("head_of", [fast_request, request_head], ids=["python", "compiled"])
def test_which_requests_take_the_fast_path(raw: bytes, fast: bool, head_of: Any) -> None:
    assert (head_of(raw) is not None) is fast


@pytest.mark.parametrize("head_of", [fast_request, request_head], ids=["python", "compiled"])
def test_the_authorization_header_is_passed_on(head_of: Any) -> None:
    request = b"GET /announce HTTP/1.1\r\nAuthorization: Bearer x \r\nConnection: close\r\n\r\n"
    assert head_of(request) == (b"/announce", b"Bearer x")


def _answers_to_a_few_announces(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    spy = Spy(monkeypatch)
    bodies: list[bytes] = []

    async def scenario(server: TrackerServer, address: tuple[str, int]) -> None:
        requests = [
            get(announce_url(1001, left=0)),
            get(announce_url(1002) + "&event=started&numwant=5&compact=1&key=ab%2Bc"),
            get(announce_url(1003) + "&compact=0"),
            get(announce_url(1004) + "&port=1"),  # repeated: a failure
            get(announce_url(1005).replace("left=10", "left=-1")),
        ]
        for request in requests:
            reader, writer = await asyncio.open_connection(*address)
            writer.write(request)
            bodies.append(body_of(await asyncio.wait_for(read_all(reader), 5)))
            writer.close()

    run(scenario)
    assert spy.handed == []
    return bodies


def test_an_install_without_the_compiled_checks_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pip found no C compiler the Python checks serve alone, byte for byte the same."""
    compiled = _answers_to_a_few_announces(monkeypatch)
    monkeypatch.setattr(tracker_server, "_compiled_plain_announce", None)
    monkeypatch.setattr(net_tracker, "_request_head", fast_request)
    assert _answers_to_a_few_announces(monkeypatch) == compiled
    assert [b"failure reason" in body for body in compiled] == [False, False, False, True, True]
    assert b"5:peers6:" in compiled[1]  # compact, the seeder's address
    assert b"5:peersld2:ip" in compiled[2]  # a dictionary list
