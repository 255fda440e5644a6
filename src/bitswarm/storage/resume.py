"""Resume data: which pieces are verified *and on disk*, replaced atomically.

The write protocol (THREATS 7): the storage is flushed first, then a temporary file is
written, flushed and renamed over the old one, and the folder is flushed. The record
therefore always lags the disk: after ``kill -9`` every piece it names is really there,
and pieces it does not name are hashed again from disk rather than fetched again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from bitswarm import bencode
from bitswarm.errors import DecodeError
from bitswarm.storage.atomic import replace_durably

FORMAT = 1
# Beside the content, one file per torrent named by its info-hash.
RESUME_FOLDER = ".bitswarm-resume"


@dataclass(frozen=True, slots=True)
class ResumeData:
    info_hash: bytes
    # One bit per piece, most significant bit first, as in the wire protocol's bitfield.
    pieces: bytes

    def has(self, index: int) -> bool:
        return bool(self.pieces[index >> 3] & (0x80 >> (index & 7)))


def bitfield(have: bytearray | list[int], num_pieces: int) -> bytes:
    bits = bytearray((num_pieces + 7) // 8)
    for index in range(num_pieces):
        if have[index]:
            bits[index >> 3] |= 0x80 >> (index & 7)
    return bytes(bits)


def save(path: Path, data: ResumeData) -> None:
    """Replace ``path`` atomically and durably with ``data``."""
    replace_durably(path, bencode.encode({b"format": FORMAT, b"info hash": data.info_hash, b"pieces": data.pieces}))


def load(path: Path, *, info_hash: bytes, num_pieces: int) -> ResumeData | None:
    """The saved record, or None when there is none or it does not fit this torrent.

    A damaged or foreign file is not an error: it only means every piece is checked.
    """
    with contextlib.suppress(FileNotFoundError):
        raw = path.read_bytes()
        try:
            value = bencode.decode(raw)
        except DecodeError:
            return None
        if not isinstance(value, dict) or value.get(b"format") != FORMAT:
            return None
        pieces = value.get(b"pieces")
        if value.get(b"info hash") != info_hash or not isinstance(pieces, bytes):
            return None
        if len(pieces) != (num_pieces + 7) // 8:
            return None
        return ResumeData(info_hash, pieces)
    return None
