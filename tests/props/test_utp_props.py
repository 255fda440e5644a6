"""Properties of the uTP codec and socket: arbitrary datagrams only ever cost themselves."""

from __future__ import annotations

import contextlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bitswarm.errors import UTPError
from bitswarm.wire.utp import UTPConnection, UTPState
from bitswarm.wire.utp_packet import Packet, PacketType, decode, encode_sack, sack_offsets
from bitswarm.wire.utp_socket import ConnectionEstablished, UTPSocket

U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    kind = draw(st.sampled_from(list(PacketType)))
    payload = draw(st.binary(min_size=1, max_size=64)) if kind is PacketType.DATA else b""
    offsets = draw(st.lists(st.integers(0, 1023), max_size=20))
    sack = encode_sack(offsets) or None if draw(st.booleans()) else None
    return Packet(kind, draw(U16), draw(U32), draw(U32), draw(U32), draw(U16), draw(U16), sack, payload)


@given(packets())
def test_decode_inverts_encode(packet: Packet) -> None:
    assert decode(packet.encode()) == packet


@given(st.lists(st.integers(0, 1023), unique=True))
def test_sack_offsets_invert_encode_sack(offsets: list[int]) -> None:
    assert sack_offsets(encode_sack(offsets)) == sorted(offsets)


@given(st.binary(max_size=300))
def test_decoder_only_ever_raises_utp_error(data: bytes) -> None:
    with contextlib.suppress(UTPError):
        decode(data)


@given(st.binary(max_size=40).map(lambda tail: b"\x01" + tail))
def test_decoder_on_data_packets_only_ever_raises_utp_error(data: bytes) -> None:
    with contextlib.suppress(UTPError):
        decode(data)


SOURCE, TARGET = ("10.0.0.1", 1), ("10.0.0.2", 2)


def connected(a: UTPSocket, b: UTPSocket) -> UTPConnection:
    """``a`` at SOURCE dials ``b`` at TARGET and says hello; the connection ``b`` accepted."""
    client = a.connect(TARGET, 0.0)
    client.write(b"hello")
    accepted = []
    for step in range(3):
        sender, receiver, origin = (a, b, SOURCE) if step % 2 == 0 else (b, a, TARGET)
        for datagram in sender.datagrams_to_send(step * 0.01):
            accepted += [
                f.connection
                for f in receiver.receive(origin, datagram.payload, step * 0.01)
                if isinstance(f, ConnectionEstablished) and f.connection.is_incoming
            ]
    (server,) = accepted
    return server


@settings(max_examples=200)
@given(st.lists(st.one_of(packets().map(Packet.encode), st.binary(max_size=80)), max_size=30), st.integers(0, 3))
def test_a_connected_socket_survives_any_datagrams(datagrams: list[bytes], seed: int) -> None:
    a, b = UTPSocket(random.Random(seed)), UTPSocket(random.Random(seed + 1))
    server = connected(a, b)
    for index, hostile in enumerate(datagrams):
        b.receive(SOURCE, hostile, 1.0 + index * 0.01)
        b.datagrams_to_send(1.0 + index * 0.01)
        b.tick(1.0 + index * 0.01)
    assert len(b.connections) <= 1 + b.max_half_open
    if server.state is not UTPState.CLOSED:
        assert server.readable_bytes <= server.recv_buffer_bytes


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(PacketType)),
            st.integers(-40, 40),
            st.integers(-40, 40),
            st.lists(st.integers(0, 300), max_size=5),
            st.binary(min_size=1, max_size=2000),
        ),
        max_size=40,
    )
)
def test_forged_packets_on_a_live_connection_never_break_its_rules(
    forged: list[tuple[PacketType, int, int, list[int], bytes]],
) -> None:
    """Packets with the right connection id and sequence numbers near the live ones: the
    connection never holds more than its window, never counts unsent bytes as acked."""
    a, b = UTPSocket(random.Random(5)), UTPSocket(random.Random(6), recv_buffer_bytes=8000)
    server = connected(a, b)
    server.write(b"s" * 5000)
    b.touch(server)
    b.datagrams_to_send(0.05)
    for index, (kind, seq_delta, ack_delta, offsets, payload) in enumerate(forged):
        now = 1.0 + index * 0.01
        packet = Packet(
            kind,
            server.recv_id if kind is not PacketType.SYN else server.send_id,
            0,
            0,
            1 << 20,
            (server.ack_nr + seq_delta) & 0xFFFF,
            (server.seq_nr - 1 + ack_delta) & 0xFFFF,
            encode_sack(offsets) or None,
            payload if kind is PacketType.DATA else b"",
        )
        b.receive(SOURCE, packet.encode(), now)
        for datagram in b.datagrams_to_send(now):
            assert len(datagram.payload) <= 20 + 2 + 64 + 1400
        if server.state is UTPState.CLOSED:
            return
        assert server.readable_bytes <= server.recv_buffer_bytes
        assert 0 <= server.buffered_bytes <= 5000
