"""Property tests for the MSE handshake core: hostile bytes, in any split, only ever raise
``PeerProtocolError``, and the core never holds more than its windows allow."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bitswarm.errors import PeerProtocolError
from bitswarm.wire.mse import (
    KEY_BYTES,
    MAX_INITIAL_PAYLOAD_BYTES,
    MAX_PAD_BYTES,
    PRIME,
    REQ1_WINDOW_BYTES,
    EncryptionPolicy,
    MseHandshake,
    MseState,
)

INFO_HASH = bytes(range(20))
# Whatever comes, a core still waiting holds at most: a key, the sync window, the fixed
# fields and the largest pad or initial payload it may still be reading (plus one read).
MOST_HELD_BYTES = KEY_BYTES + REQ1_WINDOW_BYTES + 20 + 14 + MAX_PAD_BYTES + 2 + MAX_INITIAL_PAYLOAD_BYTES

chunks = st.lists(st.binary(min_size=1, max_size=700), max_size=12)


def _feed(core: MseHandshake, pieces: list[bytes]) -> None:
    for piece in pieces:
        try:
            outcome = core.receive(piece)
        except PeerProtocolError:
            assert core.state is MseState.FAILED
            return
        if outcome is not None:
            return
        assert len(core._buffer) <= MOST_HELD_BYTES + len(piece)


@settings(max_examples=300, deadline=None)
@given(chunks)
def test_receiver_only_raises_protocol_errors(pieces: list[bytes]) -> None:
    core = MseHandshake.accept(info_hashes=lambda: [INFO_HASH], policy=EncryptionPolicy.PREFER, rng=random.Random(0))
    _feed(core, pieces)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=2, max_value=PRIME - 2), chunks)
def test_initiator_after_a_valid_key_only_raises_protocol_errors(key: int, pieces: list[bytes]) -> None:
    core = MseHandshake.initiate(info_hash=INFO_HASH, policy=EncryptionPolicy.REQUIRE, rng=random.Random(0))
    _feed(core, [key.to_bytes(KEY_BYTES, "big"), *pieces])
