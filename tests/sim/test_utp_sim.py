"""Two uTP cores over a simulated path: the byte stream arrives whole and in order
through loss, reordering, duplication and delay, and LEDBAT keeps a bottleneck's queue
near its 100 ms target. The seed is in each test's id, so a failure replays exactly."""

from __future__ import annotations

import random
import statistics

import pytest

from bitswarm.wire.utp import TARGET_DELAY_US, UTPConnection, UTPState
from bitswarm.wire.utp_simnet import Direction, SimPath


def transfer(path: SimPath, size: int, *, limit_s: float = 600.0, both_ways: bool = False) -> tuple[bytes, bytes]:
    """Send ``size`` random bytes from a to b (and b to a with ``both_ways``); returns
    (what was sent, what arrived) for the a-to-b stream, after checking the other."""
    data = random.Random(size).randbytes(size)
    back = random.Random(size + 1).randbytes(size // 2) if both_ways else b""
    client = path.connect()
    received, received_back = bytearray(), bytearray()
    offset = offset_back = 0
    server: UTPConnection | None = None
    while path.now < limit_s:
        if offset < len(data) and client.state is not UTPState.CLOSED:
            offset += client.write(data[offset : offset + 65536])
            path.a.touch(client)
        if server is None and path.accepted:
            server = path.accepted[0]
        if server is not None:
            received += server.read()
            path.b.touch(server)
            if offset_back < len(back):
                offset_back += server.write(back[offset_back : offset_back + 65536])
        received_back += client.read()
        path.flush()
        if len(received) == len(data) and len(received_back) == len(back):
            break
        path.step(limit_s)
    assert bytes(received_back) == back
    return data, bytes(received)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_clean_path_delivers_the_stream(seed: int) -> None:
    path = SimPath(seed)
    sent, got = transfer(path, 300_000, both_ways=True)
    assert got == sent


@pytest.mark.parametrize(
    ("seed", "loss", "duplicate", "jitter_s"),
    [
        pytest.param(3, 0.05, 0.0, 0.0, id="seed3-loss5%"),
        pytest.param(4, 0.0, 0.1, 0.0, id="seed4-duplicates10%"),
        pytest.param(5, 0.0, 0.0, 0.030, id="seed5-reorder30ms"),
        pytest.param(6, 0.03, 0.03, 0.020, id="seed6-all-at-once"),
        pytest.param(7, 0.15, 0.05, 0.050, id="seed7-hostile-path"),
    ],
)
def test_a_faulty_path_delivers_the_stream_whole_and_in_order(
    seed: int, loss: float, duplicate: float, jitter_s: float
) -> None:
    faults = {"loss": loss, "duplicate": duplicate, "jitter_s": jitter_s, "delay_s": 0.040}
    path = SimPath(seed, Direction(**faults), Direction(**faults))  # type: ignore[arg-type]
    sent, got = transfer(path, 200_000, both_ways=True)
    assert got == sent


@pytest.mark.parametrize("seed", [11, 12])
def test_ledbat_keeps_a_bottleneck_queue_near_the_target(seed: int) -> None:
    """A 1 Mbit/s uplink with half a second of buffer (a DSL modem): without delay-based
    control a sender fills the buffer; LEDBAT holds the queue near 100 ms and the link busy."""
    rate = 125_000.0
    path = SimPath(seed, Direction(delay_s=0.020, rate_bytes_s=rate, queue_s=0.5), Direction(delay_s=0.020))
    duration_s = 60.0
    data = random.Random(seed).randbytes(int(rate * duration_s * 2))
    client = path.connect()
    offset = delivered = 0
    while path.now < duration_s:
        offset += client.write(data[offset : offset + 65536])
        path.a.touch(client)
        for server in path.accepted:
            delivered += len(server.read())
            path.b.touch(server)
        path.flush()
        path.step(duration_s)
    settled = [waited for entered, waited in path.forward.queueing if entered > duration_s / 2]
    median_ms = statistics.median(settled) * 1000
    target_ms = TARGET_DELAY_US / 1000
    assert 0.5 * target_ms <= median_ms <= 1.3 * target_ms, median_ms
    assert path.forward.dropped <= 5
    assert delivered >= 0.85 * rate * duration_s * (len(settled) > 0)


def test_closing_both_sides_ends_both_connections() -> None:
    path = SimPath(21)
    sent, got = transfer(path, 50_000)
    assert got == sent
    client, server = path.a.connections, path.accepted[0]
    (connection,) = client.values()
    connection.close()
    path.a.touch(connection)
    path.flush()
    while not server.at_eof and path.step(path.now + 5):
        pass
    assert server.at_eof
    server.close()
    path.b.touch(server)
    path.flush()
    while path.step(path.now + 30):
        pass
    assert connection.state is UTPState.CLOSED
    assert connection.close_reason == "closed"
    assert server.state is UTPState.CLOSED
    assert server.close_reason == "closed"
    assert not path.a.connections
    assert not path.b.connections


def test_a_peer_that_vanishes_times_out() -> None:
    path = SimPath(22)
    client = path.connect()
    client.write(b"hello")
    while not path.accepted and path.step(10.0):
        pass
    assert path.accepted
    path.forward.loss = 1.0
    client.write(b"x" * 10_000)
    path.a.touch(client)
    path.flush()
    while path.step(600.0) and client.state is not UTPState.CLOSED:
        pass
    assert client.state is UTPState.CLOSED
    assert client.close_reason == "timed out"
    assert path.now < 120.0


def test_a_dial_without_an_answer_fails_in_seconds() -> None:
    path = SimPath(23, Direction(loss=1.0))
    client = path.connect()
    while path.step(60.0) and client.state is not UTPState.CLOSED:
        pass
    assert client.close_reason == "connect timed out"
    assert path.now <= 3.5
