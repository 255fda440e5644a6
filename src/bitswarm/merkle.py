"""BEP 52 merkle trees: SHA-256 over 16 KiB blocks, padded with zero hashes.

A file's tree has as leaves the hashes of its 16 KiB blocks (the last one may be short),
padded to a power of two with 32 zero bytes. A piece's hash is the root of the subtree
over its blocks; the piece layer is the row of those roots, and padding it takes the
root of an all-zero subtree of one piece's width.
"""

from __future__ import annotations

from functools import cache
from hashlib import sha256

BLOCK_SIZE = 16 * 1024
HASH_SIZE = 32


def next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


@cache
def pad_hash(width: int) -> bytes:
    """Root of a subtree of ``width`` (a power of two) leaves that are all zero hashes."""
    if width == 1:
        return bytes(HASH_SIZE)
    half = pad_hash(width // 2)
    return sha256(half + half).digest()


def root(hashes: list[bytes], width: int, leaf_width: int = 1) -> bytes:
    """Root over ``hashes`` padded to ``width`` nodes (a power of two).

    ``leaf_width`` is how many blocks each given hash covers (1 for block hashes,
    blocks-per-piece for a piece layer), which decides the padding hash.
    """
    if len(hashes) > width:
        raise ValueError(f"{len(hashes)} hashes do not fit a tree {width} wide")
    layer = hashes
    pad = pad_hash(leaf_width)
    while width > 1:
        if len(layer) % 2:
            layer = [*layer, pad]
        layer = [sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        pad = sha256(pad + pad).digest()
        width //= 2
    return layer[0] if layer else pad


def block_hashes(data: bytes | memoryview) -> list[bytes]:
    """SHA-256 of each 16 KiB block of ``data``; the last block may be short."""
    view = memoryview(data)
    return [sha256(view[at : at + BLOCK_SIZE]).digest() for at in range(0, len(view), BLOCK_SIZE)]


def split_layer(layer: bytes) -> list[bytes]:
    return [layer[at : at + HASH_SIZE] for at in range(0, len(layer), HASH_SIZE)]
