"""The tracker's batched UDP path (recvmmsg/sendmmsg): many datagrams per wake-up, the
datagram endpoint's answers, and the fallback to that endpoint."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable

import pytest

from bitswarm.net import mmsg
from bitswarm.net import tracker as tracker_module
from bitswarm.net.tracker import TrackerServer, TrackerService
from bitswarm.tracker.config import TrackerConfig
from bitswarm.tracker.memory import MemoryStore
from bitswarm.tracker.server import MAX_UDP_DATAGRAM_BYTES, UDP_PROTOCOL_ID
from bitswarm.tracker.store import TrackerStore
from bitswarm.tracker.swarm import AnnounceRequest, SwarmCounts, SwarmView

pytestmark = pytest.mark.skipif(not mmsg.AVAILABLE, reason="recvmmsg and sendmmsg need Linux with glibc")

INFO_HASH = bytes(range(20))
OTHER_HASH = bytes(range(1, 21))
SECRET = "batch-test-secret-0123456789"
NOW = 1_700_000_000.0
CONFIG = TrackerConfig(http=(), udp=("127.0.0.1:0",), udp_secret=SECRET)
_ANNOUNCE = struct.Struct(">8sII20s20sQQQIIIiH")

Scenario = Callable[[TrackerServer], Awaitable[None]]


def run(scenario: Scenario, config: TrackerConfig = CONFIG, *, store: TrackerStore | None = None) -> None:
    """Serve with a fixed clock (so connection IDs repeat) and a seeded memory store."""

    async def main() -> None:
        tracker_store = store or MemoryStore(peer_timeout_s=config.peer_timeout_s, rng=random.Random(3))
        server = TrackerServer(TrackerService(config, tracker_store, clock=lambda: NOW))
        await server.start()
        try:
            await asyncio.wait_for(scenario(server), timeout=30)
        finally:
            await server.close()

    asyncio.run(main())


def client(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def connect_request(transaction: int) -> bytes:
    return struct.pack(">QII", UDP_PROTOCOL_ID, 0, transaction)


def announce(
    connection_id: bytes, transaction: int, port: int, *, left: int = 5, info_hash: bytes = INFO_HASH
) -> bytes:
    return _ANNOUNCE.pack(connection_id, 1, transaction, info_hash, b"q" * 20, 0, left, 0, 2, 0, 0, -1, port)


async def receive(sock: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    return [await asyncio.wait_for(loop.sock_recv(sock, 65536), 5) for _ in range(count)]


async def connection_id(sock: socket.socket, target: tuple[str, int]) -> bytes:
    sock.sendto(connect_request(0xC0FFEE), target)
    (reply,) = await receive(sock, 1)
    assert reply[:8] == struct.pack(">II", 0, 0xC0FFEE)
    return reply[8:16]


def target_of(server: TrackerServer, host: str = "127.0.0.1") -> tuple[str, int]:
    return host, server.udp_addresses[0][1]


def test_many_datagrams_in_one_wakeup_are_answered_and_garbage_gets_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    non_empty_receives = []
    original = mmsg.DatagramBatch.receive

    def counted(batch: mmsg.DatagramBatch) -> list[tuple[bytes, bytes]]:
        received = original(batch)
        if received:
            non_empty_receives.append(len(received))
        return received

    monkeypatch.setattr(mmsg.DatagramBatch, "receive", counted)

    async def scenario(server: TrackerServer) -> None:
        assert server.udp_batched
        assert not server.udp_transports
        sock = client()
        target = target_of(server)
        cid = await connection_id(sock, target)
        non_empty_receives.clear()
        # All queued before the tracker's loop runs again: a few wake-ups' worth at most.
        for number in range(150):
            sock.sendto(announce(cid, number, 10_000 + number), target)
            if number % 10 == 0:
                sock.sendto(b"garbage %d" % number, target)  # too short: silence
                sock.sendto(bytes(8) + struct.pack(">II", 9, number), target)  # no such action: silence
        replies = await receive(sock, 150)
        answered = sorted(struct.unpack_from(">II", reply)[1] for reply in replies)
        assert answered == list(range(150))
        assert all(struct.unpack_from(">I", reply)[0] == 1 for reply in replies)
        # 150 announces and 30 garbage datagrams took a few system calls, not 180.
        assert sum(non_empty_receives) == 180
        assert len(non_empty_receives) <= 6
        stats = server.service.stats()
        assert (stats["announces"]["udp"], stats["udp_connects"], stats["peers"]) == (150, 1, 150)
        assert stats["errors"] == {"udp_size": 15, "udp_action": 15}
        # The last announcer of the swarm sees 50 others (the default numwant).
        sock.sendto(announce(cid, 999, 10_149), target)
        (last,) = await receive(sock, 1)
        assert struct.unpack_from(">IIIII", last) == (1, 999, 1800, 150, 0)
        assert len(last) == 20 + 50 * 6
        sock.close()

    run(scenario)


def test_an_oversized_datagram_is_refused_unread() -> None:
    async def scenario(server: TrackerServer) -> None:
        sock = client()
        target = target_of(server)
        cid = await connection_id(sock, target)
        sock.sendto(cid + struct.pack(">II", 2, 7) + INFO_HASH * 200, target)  # a 4,016-byte scrape
        sock.sendto(cid + struct.pack(">II", 2, 8) + INFO_HASH, target)
        (reply,) = await receive(sock, 1)
        assert struct.unpack(">IIIII", reply) == (2, 8, 0, 0, 0)
        assert server.service.counters.errors == {"udp_size": 1}
        sock.close()

    run(scenario)


def test_rate_limit_is_per_address_within_a_batch() -> None:
    config = TrackerConfig(http=(), udp=("[::]:0",), udp_secret=SECRET, rate_limit_per_s=0.001, rate_limit_burst=3)

    async def scenario(server: TrackerServer) -> None:
        port = server.udp_addresses[0][1]
        four, six = client(), client(socket.AF_INET6, "::1")
        for transaction in range(5):
            four.sendto(connect_request(transaction), ("127.0.0.1", port))
        for transaction in range(2):
            six.sendto(connect_request(100 + transaction), ("::1", port))
        assert sorted(struct.unpack_from(">II", reply)[1] for reply in await receive(four, 3)) == [0, 1, 2]
        assert sorted(struct.unpack_from(">II", reply)[1] for reply in await receive(six, 2)) == [100, 101]
        assert server.service.counters.errors == {"rate_limited": 2}
        four.close()
        six.close()

    run(scenario, config)


def test_dual_stack_socket_keeps_ipv4_and_ipv6_peers_apart() -> None:
    config = TrackerConfig(http=(), udp=("[::]:0",), udp_secret=SECRET)

    async def scenario(server: TrackerServer) -> None:
        port = server.udp_addresses[0][1]
        four, six = client(), client(socket.AF_INET6, "::1")
        four_target, six_target = ("127.0.0.1", port), ("::1", port)
        cid4 = await connection_id(four, four_target)
        cid6 = await connection_id(six, six_target)
        four.sendto(announce(cid4, 1, 7001, left=0), four_target)
        six.sendto(announce(cid6, 2, 7002, left=0), six_target)
        await receive(four, 1)
        await receive(six, 1)
        four.sendto(announce(cid4, 3, 7003), four_target)
        (reply4,) = await receive(four, 1)
        six.sendto(announce(cid6, 4, 7004), six_target)
        (reply6,) = await receive(six, 1)
        # An IPv4 client of the dual-stack socket (::ffff:127.0.0.1) is an IPv4 peer; the
        # counts are the swarm's, the peers the asker's family.
        assert struct.unpack_from(">IIIII", reply4) == (1, 3, 1800, 1, 2)
        assert reply4[20:] == bytes([127, 0, 0, 1]) + (7001).to_bytes(2, "big")
        assert struct.unpack_from(">IIIII", reply6) == (1, 4, 1800, 2, 2)
        assert reply6[20:] == bytes(15) + b"\x01" + (7002).to_bytes(2, "big")
        four.close()
        six.close()

    run(scenario, config)


def _exchange_script(cid: bytes) -> list[bytes]:
    """Datagrams covering every kind of answer, each sent after the previous one's reply."""
    return [
        announce(cid, 1, 6001, left=0),
        announce(cid, 2, 6002),
        b"short",
        _ANNOUNCE.pack(cid, 1, 3, INFO_HASH, b"q" * 20, 0, 5, 0, 7, 0, 0, -1, 6003),  # event 7: error datagram
        _ANNOUNCE.pack(cid, 1, 4, INFO_HASH, b"q" * 20, 0, 5, 0, 0, 0, 0, -1, 0),  # port 0: error datagram
        cid + struct.pack(">II", 2, 5) + INFO_HASH + OTHER_HASH,
        cid + struct.pack(">II", 2, 6) + INFO_HASH[:7],  # not whole hashes: error datagram
        bytes(8) + struct.pack(">II", 1, 7) + bytes(90),  # wrong connection ID: silence
        announce(cid, 8, 6002, info_hash=OTHER_HASH),
        announce(cid, 9, 6001),
        connect_request(10),
    ]


def test_both_udp_paths_give_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: dict[bool, list[bytes]] = {}
    for is_batched in (True, False):
        monkeypatch.setattr(tracker_module, "BATCHED_UDP", is_batched)

        async def scenario(server: TrackerServer, is_batched: bool = is_batched) -> None:
            assert bool(server.udp_batched) is is_batched
            sock = client()
            target = target_of(server)
            cid = await connection_id(sock, target)
            for datagram in _exchange_script(cid):
                sock.sendto(datagram, target)
            # Nine answers, the silent ones left out, in arrival order on both paths.
            answers[is_batched] = await receive(sock, 9)
            sock.close()

        run(scenario)
    # A connection ID is the client's own (its port differs between the runs).
    assert answers[True][:-1] == answers[False][:-1]
    assert [struct.unpack_from(">II", answer)[1] for answer in answers[True]] == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert [struct.unpack_from(">I", answer)[0] for answer in answers[True]] == [1, 1, 3, 3, 2, 3, 1, 1, 0]


class _WaitingStore:
    """A store that is not the memory store (as Redis is not): the endpoint path serves it."""

    def __init__(self) -> None:
        self.inner = MemoryStore(peer_timeout_s=100, rng=random.Random(3))

    async def announce(self, request: AnnounceRequest, now: float) -> SwarmView:
        return self.inner.announce_now(request, now)

    async def scrape(self, info_hashes: Iterable[bytes]) -> dict[bytes, SwarmCounts]:
        return self.inner.scrape_now(info_hashes)

    async def full_scrape(self) -> dict[bytes, SwarmCounts]:
        return self.inner.full_scrape_now()

    async def expire(self, now: float, *, max_swarms: int) -> int:
        return self.inner.expire_now(now, max_swarms=max_swarms)

    async def user_totals(self) -> dict[str, tuple[int, int]]:
        return self.inner.user_totals_now()

    async def close(self) -> None:
        return None


def test_a_store_that_waits_is_served_by_the_datagram_endpoint() -> None:
    async def scenario(server: TrackerServer) -> None:
        assert not server.udp_batched
        assert server.udp_transports
        sock = client()
        target = target_of(server)
        cid = await connection_id(sock, target)
        sock.sendto(announce(cid, 1, 6001), target)
        (reply,) = await receive(sock, 1)
        assert struct.unpack(">IIIII", reply) == (1, 1, 1800, 1, 0)
        sock.close()

    run(scenario, store=_WaitingStore())


# -- DatagramBatch on its own -------------------------------------------------------------


@pytest.fixture
def pair() -> Iterable[tuple[socket.socket, socket.socket]]:
    server, other = client(), client()
    yield server, other
    server.close()
    other.close()


def test_batch_reads_up_to_capacity_with_sources_and_cuts_long_datagrams(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, other = pair
    batch = mmsg.DatagramBatch(server, max_datagram_bytes=MAX_UDP_DATAGRAM_BYTES, capacity=8)
    assert batch.receive() == []
    for number in range(10):
        other.sendto(b"datagram %d" % number, server.getsockname())
    other.sendto(b"x" * 5000, server.getsockname())
    first, second = batch.receive(), batch.receive()
    assert (len(first), len(second), batch.receive()) == (8, 3, [])
    assert [payload for _, payload in first[:2]] == [b"datagram 0", b"datagram 1"]
    assert len(second[-1][1]) == MAX_UDP_DATAGRAM_BYTES + 1
    assert {mmsg.decode_sockaddr(name) for name, _ in first + second} == {other.getsockname()}


def test_batch_sends_more_replies_than_fit_one_call(pair: tuple[socket.socket, socket.socket]) -> None:
    server, other = pair
    batch = mmsg.DatagramBatch(server, max_datagram_bytes=100, capacity=4, send_buffer_bytes=1000)
    other.sendto(b"hello", server.getsockname())
    ((name, _),) = batch.receive()
    payloads = [bytes([number]) * 300 for number in range(11)]
    assert batch.send([name] * len(payloads), payloads) == 0
    received = []
    for _ in payloads:
        received.append(other.recv(1000))
    assert received == payloads
    with pytest.raises(ValueError, match="does not fit"):
        batch.send([name], [bytes(1001)])
    with pytest.raises(ValueError, match="sockaddr"):
        batch.send([name[:16]], [b"short name"])


def test_decode_sockaddr_reads_both_families() -> None:
    four = struct.pack("=H", socket.AF_INET) + struct.pack(">H", 6881) + bytes([192, 0, 2, 7]) + bytes(20)
    mapped = (
        struct.pack("=H", socket.AF_INET6)
        + struct.pack(">HI", 6882, 0)
        + bytes(10)
        + b"\xff\xff"
        + bytes([192, 0, 2, 8])
        + struct.pack("=I", 0)
    )
    assert mmsg.decode_sockaddr(four) == ("192.0.2.7", 6881)
    assert mmsg.decode_sockaddr(mapped) == ("::ffff:192.0.2.8", 6882, 0, 0)
    assert mmsg.decode_sockaddr(struct.pack("=H", socket.AF_UNIX) + bytes(26)) is None


def test_batch_needs_a_non_blocking_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocking, pytest.raises(ValueError, match="non-blocking"):
        mmsg.DatagramBatch(blocking, max_datagram_bytes=100)
