"""BEP 5 in the peer wire core: the DHT bit in our handshake, the peer's read into
``HandshakeCompleted``, and PORT messages passed up (port 0 is no port)."""

from __future__ import annotations

import pytest

from bitswarm.wire.messages import DHT_PORT, EXTENSION_PROTOCOL, FAST_EXTENSION, Handshake, Port, encode, reserved_bits
from bitswarm.wire.peer import HandshakeCompleted, PeerProtocol

INFO_HASH = b"i" * 20
OURS = b"-SW0100-" + b"o" * 12
THEIRS = b"-LT2080-" + b"t" * 12


def core(*, dht: bool) -> PeerProtocol:
    return PeerProtocol(
        info_hash=INFO_HASH, peer_id=OURS, num_pieces=4, piece_size=lambda index: 16384,
        have_piece=lambda index: False, now=0.0, dht=dht,
    )  # fmt: skip


def test_our_handshake_sets_the_dht_bit_only_when_asked() -> None:
    assert Handshake.decode(core(dht=True).handshake()).supports(DHT_PORT)
    assert not Handshake.decode(core(dht=False).handshake()).supports(DHT_PORT)
    assert Handshake.decode(core(dht=True).handshake()).supports(FAST_EXTENSION)


@pytest.mark.parametrize("bytewise", [False, True])
@pytest.mark.parametrize("theirs_has_dht", [False, True])
def test_the_peers_dht_bit_and_its_port_message_come_up(bytewise: bool, theirs_has_dht: bool) -> None:
    flags = [FAST_EXTENSION, EXTENSION_PROTOCOL, *([DHT_PORT] if theirs_has_dht else [])]
    data = Handshake(INFO_HASH, THEIRS, reserved_bits(*flags)).encode() + encode(Port(6881)) + encode(Port(0))
    peer = core(dht=True)
    chunks = [data[at : at + 1] for at in range(len(data))] if bytewise else [data]
    events = [event for chunk in chunks for event in peer.receive(chunk, now=1.0)]
    assert events == [HandshakeCompleted(THEIRS, True, True, theirs_has_dht), Port(6881)]
