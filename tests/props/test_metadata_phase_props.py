"""Property tests for the metadata phase: a metadata-mode peer core and a MetadataSwarm fed
anything a peer can send raise only ``PeerProtocolError`` (the core) or turn it into a
closed connection (the swarm), and the swarm completes only with bytes that hash to the
info-hash."""

from __future__ import annotations

import contextlib
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from bitswarm.engine.magnet import MetadataReceived, MetadataSwarm
from bitswarm.engine.swarm import BanPeer, ClosePeer
from bitswarm.errors import PeerProtocolError
from bitswarm.wire.extension import UT_METADATA, MetadataData, MetadataReject, encode_handshake, encode_metadata
from bitswarm.wire.messages import EXTENSION_PROTOCOL, FAST_EXTENSION, Extended, Handshake, encode, reserved_bits
from bitswarm.wire.peer import PeerProtocol, PeerState

INFO_HASH = b"h" * 20
HANDSHAKE = Handshake(INFO_HASH, b"-XX0000-propertypeer", reserved_bits(FAST_EXTENSION, EXTENSION_PROTOCOL)).encode()


def metadata_core() -> PeerProtocol:
    return PeerProtocol(
        info_hash=INFO_HASH, peer_id=b"-SW0100-ourselves000", num_pieces=None,
        piece_size=lambda index: 0, have_piece=lambda index: False, now=0.0,
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_a_metadata_mode_core_only_ever_raises_peer_protocol_error(chunks: list[bytes]) -> None:
    core = metadata_core()
    core.receive(HANDSHAKE, 0.0)
    with contextlib.suppress(PeerProtocolError):
        for chunk in chunks:
            core.receive(chunk, 0.0)
        return
    assert core.state is PeerState.CLOSED


messages = st.one_of(
    st.builds(MetadataData, st.integers(0, 3), st.integers(0, 70_000), st.binary(max_size=600)),
    st.builds(MetadataReject, st.integers(0, 3)),
)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 70_000), st.lists(st.one_of(messages, st.binary(max_size=64)), max_size=12))
def test_a_metadata_swarm_fed_anything_closes_or_bans_and_never_completes_wrong(
    metadata_size: int, inputs: list[MetadataData | MetadataReject | bytes]
) -> None:
    info = b"the real info dictionary"
    swarm = MetadataSwarm(info_hash_v1=hashlib.sha1(info).digest(), info_hash_v2=None)
    core = metadata_core()
    swarm.add_peer("peer", core)
    handshake = encode(Extended(0, encode_handshake(extensions={UT_METADATA: 3}, metadata_size=metadata_size)))
    actions = swarm.handle("peer", core.receive(HANDSHAKE + handshake, 0.0), 0.0)
    for item in inputs:
        payload = item if isinstance(item, bytes) else encode_metadata(item)
        try:
            events = core.receive(encode(Extended(1, payload)), 1.0)
        except PeerProtocolError:
            break
        actions += swarm.handle("peer", events, 1.0)
        if any(isinstance(action, ClosePeer | BanPeer) for action in actions):
            break
    for action in actions:
        assert isinstance(action, ClosePeer | BanPeer | MetadataReceived)
        if isinstance(action, MetadataReceived):
            assert action.info == info
