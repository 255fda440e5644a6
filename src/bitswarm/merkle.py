"""BEP 52 merkle trees: SHA-256 over 16 KiB blocks, padded with zero hashes.

A file's tree has as leaves the hashes of its 16 KiB blocks (the last one may be short),
padded to a power of two with 32 zero bytes. A piece's hash is the root of the subtree
over its blocks; the piece layer is the row of those roots, and padding it takes the
root of an all-zero subtree of one piece's width.

Proofs (BEP 52 hash messages): a run of ``count`` nodes of one layer (a power of two,
aligned to its length) hashes up to the root of its own subtree; each uncle hash beyond
that, lowest first, is the sibling of the ancestor reached so far, and the last ancestor
must be the file's pieces root.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def piece_width(file_length: int, piece_length: int) -> int:
    """Leaves under one piece hash of a file: a piece's blocks, or for a file of at most
    one piece its whole tree (BEP 52: such a file's pieces root is its piece hash)."""
    if file_length > piece_length:
        return piece_length // BLOCK_SIZE
    return next_power_of_two(-(-file_length // BLOCK_SIZE))


def piece_root(data: bytes | memoryview, file_length: int, piece_length: int) -> bytes:
    """The v2 hash of one piece of a file of ``file_length`` bytes: ``data`` is the
    file's bytes in that piece (the alignment gap after a file's end left out)."""
    return root(block_hashes(data), piece_width(file_length, piece_length))


def block_hashes(data: bytes | memoryview) -> list[bytes]:
    """SHA-256 of each 16 KiB block of ``data``; the last block may be short."""
    view = memoryview(data)
    return [sha256(view[at : at + BLOCK_SIZE]).digest() for at in range(0, len(view), BLOCK_SIZE)]


def split_layer(layer: bytes) -> list[bytes]:
    return [layer[at : at + HASH_SIZE] for at in range(0, len(layer), HASH_SIZE)]


def layers_above(hashes: Sequence[bytes], width: int, leaf_width: int = 1) -> list[list[bytes]]:
    """Every layer of the tree over ``hashes`` padded to ``width`` (a power of two) nodes,
    from that padded row up to ``[root]``; ``leaf_width`` as for ``root``."""
    if len(hashes) > width:
        raise ValueError(f"{len(hashes)} hashes do not fit a tree {width} wide")
    layer = [*hashes, *([pad_hash(leaf_width)] * (width - len(hashes)))]
    layers = [layer]
    while len(layer) > 1:
        layer = [sha256(layer[at] + layer[at + 1]).digest() for at in range(0, len(layer), 2)]
        layers.append(layer)
    return layers


def uncles(layers: Sequence[Sequence[bytes]], index: int, count: int, proof_layers: int) -> list[bytes]:
    """The uncle hashes proving ``count`` nodes of ``layers[0]`` from ``index``: one for each
    of ``proof_layers`` layers above them that the nodes do not make up themselves."""
    first = count.bit_length() - 1
    return [layers[level][(index >> level) ^ 1] for level in range(first, proof_layers + 1)]


def root_from_proof(hashes: Sequence[bytes], index: int, uncle_hashes: Sequence[bytes]) -> bytes:
    """The root that ``hashes`` (a power of two of them, from ``index``, a multiple of their
    count) and their ``uncle_hashes`` hash up to."""
    count = len(hashes)
    node = root(list(hashes), count)
    position = index // count
    for uncle in uncle_hashes:
        node = sha256(node + uncle if position % 2 == 0 else uncle + node).digest()
        position //= 2
    return node
