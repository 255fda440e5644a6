"""A piece's SHA-1 taken on the event loop as its blocks arrive, in whatever order."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given
from hypothesis import strategies as st

from bitswarm.net.session import TorrentRuntime, _PieceBuffer

BLOCK = 16 * 1024


@given(st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=BLOCK), st.randoms())
def test_blocks_in_any_order_give_the_pieces_sha1(blocks: int, last: int, rng: random.Random) -> None:
    size = (blocks - 1) * BLOCK + last
    piece = random.Random(size).randbytes(size)
    buffer = _PieceBuffer(bytearray(size + 100), size, sha1=hashlib.sha1())
    order = list(range(0, size, BLOCK))
    rng.shuffle(order)
    for begin in order:
        block = piece[begin : begin + BLOCK]
        buffer.data[begin : begin + len(block)] = block
        buffer.filled += len(block)
        TorrentRuntime._hash_ahead(buffer, begin, memoryview(block))
    # Every block came: the hash has reached the end, nothing is left waiting.
    assert buffer.hashed == size
    assert not buffer.early
    assert buffer.sha1.digest() == hashlib.sha1(piece).digest()


def test_a_block_before_its_turn_waits_and_is_hashed_when_the_gap_fills() -> None:
    piece = bytes(range(256)) * 192  # three blocks
    buffer = _PieceBuffer(bytearray(len(piece)), len(piece), sha1=hashlib.sha1())
    for begin in (2 * BLOCK, BLOCK):
        buffer.data[begin : begin + BLOCK] = piece[begin : begin + BLOCK]
        TorrentRuntime._hash_ahead(buffer, begin, piece[begin : begin + BLOCK])
    assert buffer.hashed == 0
    assert buffer.early == {BLOCK: BLOCK, 2 * BLOCK: BLOCK}
    buffer.data[:BLOCK] = piece[:BLOCK]
    TorrentRuntime._hash_ahead(buffer, 0, piece[:BLOCK])
    assert buffer.hashed == len(piece)
    assert buffer.sha1.digest() == hashlib.sha1(piece).digest()
