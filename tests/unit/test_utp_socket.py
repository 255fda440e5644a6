"""The uTP socket and connection cores against hostile and unlucky datagrams (BEP 29).

Every forged or broken datagram costs that datagram: it is counted and dropped, the
connection it names carries on, and a SYN is never answered with more than one packet.
"""

from __future__ import annotations

import random

import pytest

from bitswarm.errors import UsageError
from bitswarm.wire.utp import MAX_PACKET_BYTES, MIN_PACKET_BYTES, UTPConnection, UTPState
from bitswarm.wire.utp_packet import HEADER_BYTES, Packet, PacketType, decode, encode_sack
from bitswarm.wire.utp_socket import ConnectionClosed, ConnectionEstablished, UTPSocket

A = ("10.0.0.1", 6881)
B = ("10.0.0.2", 6881)


def syn(connection_id: int = 100, seq_nr: int = 1) -> bytes:
    return Packet(PacketType.SYN, connection_id, 1000, 0, 65536, seq_nr, 0).encode()


def deliver(source: UTPSocket, target: UTPSocket, source_address: tuple[str, int], now: float) -> list[object]:
    facts: list[object] = []
    for datagram in source.datagrams_to_send(now):
        facts += target.receive(source_address, datagram.payload, now)
    return facts


def connected_pair(now: float = 0.0) -> tuple[UTPSocket, UTPSocket, UTPConnection, UTPConnection]:
    a, b = UTPSocket(random.Random(1)), UTPSocket(random.Random(2))
    client = a.connect(B, now)
    client.write(b"hello")
    accepted: list[UTPConnection] = []
    for step in range(4):
        facts = deliver(a, b, A, now + step * 0.01) if step % 2 == 0 else deliver(b, a, B, now + step * 0.01)
        accepted += [f.connection for f in facts if isinstance(f, ConnectionEstablished) and f.connection.is_incoming]
    assert client.state is UTPState.CONNECTED
    (server,) = accepted
    assert server.read() == b"hello"
    b.touch(server)
    deliver(b, a, B, now + 0.05)
    return a, b, client, server


def test_connection_ids_follow_bep_29() -> None:
    _a, _b, client, server = connected_pair()
    assert client.send_id == (client.recv_id + 1) & 0xFFFF
    assert server.recv_id == client.send_id
    assert server.send_id == client.recv_id


def test_a_syn_is_answered_with_one_state_and_nothing_more() -> None:
    b = UTPSocket(random.Random(2))
    assert b.receive(A, syn(), 0.0) == []
    (reply,) = b.datagrams_to_send(0.0)
    assert len(reply.payload) == HEADER_BYTES
    assert decode(reply.payload).type is PacketType.STATE
    assert b.datagrams_to_send(1.0) == []
    # The SYN again (our STATE lost): one STATE again.
    b.receive(A, syn(), 1.0)
    assert len(b.datagrams_to_send(1.0)) == 1
    # Timers never make a half-open connection send anything; it is forgotten quietly.
    for now in (5.0, 10.0, 11.0):
        b.tick(now)
        assert b.datagrams_to_send(now) == []
    assert not b.connections


def test_a_syn_flood_holds_a_bounded_number_of_half_open_connections() -> None:
    b = UTPSocket(random.Random(2), max_half_open=16)
    replies = 0
    for index in range(1000):
        assert b.receive((f"10.1.{index // 250}.{index % 250}", 1000 + index), syn(index), 0.0) == []
        replies += len(b.datagrams_to_send(0.0))
    assert replies == 1000
    assert len(b.connections) == 16
    assert b.dropped["half-open connection evicted"] == 1000 - 16


def test_a_follow_up_that_does_not_know_our_sequence_number_is_not_accepted() -> None:
    b = UTPSocket(random.Random(2))
    b.receive(A, syn(100), 0.0)
    state = decode(b.datagrams_to_send(0.0)[0].payload)
    wrong = (state.seq_nr - 5) & 0xFFFF  # a forger who never saw the STATE
    forged = Packet(PacketType.DATA, 101, 0, 0, 65536, 2, wrong, None, b"x").encode()
    assert b.receive(A, forged, 0.1) == []
    (connection,) = b.connections.values()
    assert connection.state is UTPState.SYN_RECEIVED
    assert b.datagrams_to_send(0.1) == []
    right = Packet(PacketType.DATA, 101, 0, 0, 65536, 2, (state.seq_nr - 1) & 0xFFFF, None, b"x").encode()
    (fact,) = b.receive(A, right, 0.2)
    assert isinstance(fact, ConnectionEstablished)
    assert fact.connection.read() == b"x"


def test_a_packet_for_an_unknown_connection_gets_no_answer() -> None:
    b = UTPSocket(random.Random(2))
    for kind in (PacketType.STATE, PacketType.FIN, PacketType.RESET):
        assert b.receive(A, Packet(kind, 555, 0, 0, 0, 1, 1).encode(), 0.0) == []
    assert b.datagrams_to_send(0.0) == []
    assert b.dropped["unknown connection"] == 3


def test_a_socket_that_does_not_accept_ignores_syns() -> None:
    b = UTPSocket(random.Random(2), accept=False)
    b.receive(A, syn(), 0.0)
    assert b.datagrams_to_send(0.0) == []
    assert not b.connections


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x02" + b"\0" * 19,
        b"\x51" + b"\0" * 19,
        b"\x01\x01" + b"\0" * 18,
        b"d1:q4:ping1:t2:aa1:y1:qe",
    ],
    ids=["empty", "version-2", "type-5", "sack-missing", "krpc"],
)
def test_a_malformed_datagram_costs_only_itself(datagram: bytes) -> None:
    _a, b, _client, server = connected_pair()
    assert b.receive(A, datagram, 1.0) == []
    assert b.datagrams_to_send(1.0) == []
    assert server.state is UTPState.CONNECTED
    assert sum(b.dropped.values()) == 1


def test_an_ack_for_data_never_sent_is_dropped() -> None:
    _a, b, client, server = connected_pair()
    ahead = (server.seq_nr + 10) & 0xFFFF
    forged = Packet(PacketType.STATE, server.recv_id, 0, 0, 65536, client.seq_nr, ahead).encode()
    assert b.receive(A, forged, 1.0) == []
    assert server.dropped["acknowledges data never sent"] == 1
    assert server.state is UTPState.CONNECTED


def test_a_selective_ack_beyond_what_was_sent_is_dropped() -> None:
    _a, b, client, server = connected_pair()
    server.write(b"y" * 3000)
    b.touch(server)
    assert len(b.datagrams_to_send(1.0)) >= 1
    sack = encode_sack([200])
    forged = Packet(PacketType.STATE, server.recv_id, 0, 0, 65536, client.seq_nr, server.ack_nr, sack).encode()
    before = server.buffered_bytes
    assert b.receive(A, forged, 1.1) == []
    assert server.dropped["acknowledges data never sent"] == 1
    assert server.buffered_bytes == before


def test_data_beyond_the_receive_window_is_dropped() -> None:
    a, b = UTPSocket(random.Random(1)), UTPSocket(random.Random(2), recv_buffer_bytes=4000)
    client = a.connect(B, 0.0)
    client.write(b"z")
    deliver(a, b, A, 0.0)
    deliver(b, a, B, 0.0)
    (fact,) = deliver(a, b, A, 0.0)
    assert isinstance(fact, ConnectionEstablished)
    server = fact.connection
    # A peer that ignores our window: far more than 4000 bytes in one go.
    for index in range(10):
        packet = Packet(
            PacketType.DATA,
            server.recv_id,
            0,
            0,
            65536,
            (client.seq_nr + index) & 0xFFFF,
            (server.seq_nr - 1) & 0xFFFF,
            None,
            b"q" * 1000,
        )
        b.receive(A, packet.encode(), 0.1)
    assert server.readable_bytes <= 4000
    assert server.dropped["beyond the receive window"] >= 6


def test_data_far_beyond_the_reorder_buffer_is_dropped() -> None:
    _a, b, client, server = connected_pair()
    far = (client.seq_nr + 5000) & 0xFFFF
    packet = Packet(PacketType.DATA, server.recv_id, 0, 0, 65536, far, (server.seq_nr - 1) & 0xFFFF, None, b"q")
    b.receive(A, packet.encode(), 0.1)
    assert server.dropped["beyond the reorder buffer"] == 1


def test_packets_in_any_order_give_the_same_stream() -> None:
    a, b, client, server = connected_pair()
    data = random.Random(3).randbytes(20_000)
    client.write(data)
    client.cwnd = 1e6
    client.peer_wnd = 1 << 20
    datagrams = a.datagrams_to_send(0.5)
    assert len(datagrams) > 10
    for order in range(3):
        shuffled = list(datagrams)
        random.Random(order).shuffle(shuffled)
        _, b2, _, server2 = _replay_pair()
        for datagram in shuffled:
            b2.receive(A, datagram.payload, 0.6)
        assert server2.read() == data
    # One datagram at a time, twice each: the same.
    for datagram in datagrams:
        b.receive(A, datagram.payload, 0.6)
        b.receive(A, datagram.payload, 0.6)
    assert server.read() == data


def _replay_pair() -> tuple[UTPSocket, UTPSocket, UTPConnection, UTPConnection]:
    return connected_pair()


def test_three_duplicate_acks_resend_the_hole_and_halve_the_window() -> None:
    a, b, client, _server = connected_pair()
    client.write(b"w" * 12_000)
    client.cwnd = 20_000.0
    client.peer_wnd = 1 << 20
    datagrams = a.datagrams_to_send(1.0)
    assert len(datagrams) >= 5
    # The second is lost (the first is an MTU probe, whose loss says nothing of congestion).
    first = decode(datagrams[1].payload).seq_nr
    for datagram in datagrams[:1] + datagrams[2:]:
        b.receive(A, datagram.payload, 1.05)
    acks = [decode(d.payload) for d in b.datagrams_to_send(1.05)]
    assert acks
    assert acks[-1].sack is not None
    for ack in acks:
        a.receive(B, ack.encode(), 1.1)
    resent = [decode(d.payload) for d in a.datagrams_to_send(1.1)]
    assert [p.seq_nr for p in resent if p.type is PacketType.DATA][:1] == [first]
    assert client.cwnd <= 10_000.0


def test_a_lost_mtu_probe_falls_back_to_the_floor_without_halving_the_window() -> None:
    a, b, client, _server = connected_pair()
    client.write(b"p" * 12_000)
    client.cwnd = 20_000.0
    client.peer_wnd = 1 << 20
    datagrams = a.datagrams_to_send(1.0)
    assert len(datagrams[0].payload) == HEADER_BYTES + MAX_PACKET_BYTES
    for datagram in datagrams[1:]:
        b.receive(A, datagram.payload, 1.05)
    for ack in b.datagrams_to_send(1.05):
        a.receive(B, ack.payload, 1.1)
    assert client.packet_bytes == MIN_PACKET_BYTES
    assert client.cwnd >= 20_000.0
    resent = [decode(d.payload) for d in a.datagrams_to_send(1.1)]
    assert resent[0].seq_nr == decode(datagrams[0].payload).seq_nr


def test_a_reset_closes_the_connection() -> None:
    a, _b, client, server = connected_pair()
    reset = Packet(PacketType.RESET, client.recv_id, 0, 0, 0, server.seq_nr, 0).encode()
    (fact,) = a.receive(B, reset, 1.0)
    assert isinstance(fact, ConnectionClosed)
    assert fact.reason == "reset by peer"
    a.datagrams_to_send(1.0)
    assert not a.connections


def test_abort_sends_one_reset() -> None:
    _a, b, client, server = connected_pair()
    (reset,) = client.abort()
    (fact,) = b.receive(A, reset.payload, 1.0)
    assert isinstance(fact, ConnectionClosed)
    assert server.state is UTPState.CLOSED


def test_a_closed_connection_refuses_writes() -> None:
    _a, _b, client, _server = connected_pair()
    client.close()
    with pytest.raises(UsageError):
        client.write(b"late")


def test_the_window_advertised_shrinks_with_unread_data() -> None:
    a, b, client, server = connected_pair()
    client.write(b"r" * 5000)
    for datagram in a.datagrams_to_send(1.0):
        b.receive(A, datagram.payload, 1.0)
    acks = [decode(d.payload) for d in b.datagrams_to_send(1.0)]
    assert acks[-1].wnd_size == server.recv_buffer_bytes - server.readable_bytes
    assert server.readable_bytes > 0


def test_an_idle_connection_sends_keepalives() -> None:
    a, _b, _client, _server = connected_pair()
    a.datagrams_to_send(0.1)
    deadline = a.next_deadline()
    assert deadline is not None
    assert deadline <= 30.0
    a.tick(deadline)
    (keepalive,) = a.datagrams_to_send(deadline)
    assert decode(keepalive.payload).type is PacketType.STATE


def test_a_reset_naming_our_send_id_closes_the_connection_too() -> None:
    _, b, _, server = connected_pair()
    reset = Packet(PacketType.RESET, server.send_id, 0, 0, 0, 1, 0).encode()
    (fact,) = b.receive(A, reset, 1.0)
    assert isinstance(fact, ConnectionClosed)
    assert fact.reason == "reset by peer"


def test_end_packet_ends_a_packet_where_asked() -> None:
    # Transmission 3.00 reads past a handshake only when another packet comes, so the
    # peer layer ends a packet after its handshake; the bytes before go out on their own.
    a, _b, client, _server = connected_pair()
    client.end_packet()  # nothing written: no packet to end
    client.write(b"h" * 68)
    client.end_packet()
    client.end_packet()  # twice in a row is once
    client.write(b"e" * 100)
    client.end_packet()
    client.write(b"d" * 1000)
    payloads = [decode(datagram.payload).payload for datagram in a.datagrams_to_send(1.0)]
    assert payloads == [b"h" * 68, b"e" * 100, b"d" * 1000]


def test_without_end_packet_small_writes_share_a_packet() -> None:
    a, _b, client, _server = connected_pair()
    client.write(b"h" * 68)
    client.write(b"e" * 100)
    (datagram,) = a.datagrams_to_send(1.0)
    assert decode(datagram.payload).payload == b"h" * 68 + b"e" * 100
