"""The content every interop test shares: one small folder of awkward file sizes."""

from __future__ import annotations

import random
from pathlib import Path

PIECE_LENGTH = 32 * 1024
NAME = "payload"
# Sizes chosen around the piece length: a file shorter than a piece, a 0-byte file
# between two others, a file of exactly two pieces and files that end mid-piece.
FILE_SIZES = {
    "a.bin": 100_000,
    "c.bin": 3 * PIECE_LENGTH + 1234,
    "d.bin": 2 * PIECE_LENGTH,
    "empty": 0,
    "sub/b.bin": 40_000,
    "sub/e.bin": 777,
}
TRACKERS = ("http://127.0.0.1:1/announce", "udp://127.0.0.1:2/announce")


def write_payload(parent: Path, seed: int) -> Path:
    """Write the payload folder under ``parent`` with seeded random content; return it."""
    rng = random.Random(seed)
    root = parent / NAME
    for relative, size in FILE_SIZES.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(size))
    return root
