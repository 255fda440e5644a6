"""Small torrents built by hand, for tests."""

from __future__ import annotations

import hashlib

from bitswarm import bencode

PIECE = 16 * 1024


def v1_info(
    files: dict[str, bytes] | None = None, *, name: str = "sample", piece_length: int = PIECE
) -> dict[bytes, bencode.Encodable]:
    """A v1 info dictionary for ``files`` (path with '/' -> content); single-file if files is None."""
    if files is None:
        content = b"x" * 40000
        return {
            b"name": name.encode(),
            b"piece length": piece_length,
            b"length": len(content),
            b"pieces": _pieces(content, piece_length),
        }
    stream = b"".join(files.values())
    return {
        b"name": name.encode(),
        b"piece length": piece_length,
        b"files": [
            {b"length": len(data), b"path": [part.encode() for part in path.split("/")]} for path, data in files.items()
        ],
        b"pieces": _pieces(stream, piece_length),
    }


def _pieces(stream: bytes, piece_length: int) -> bytes:
    return b"".join(hashlib.sha1(stream[at : at + piece_length]).digest() for at in range(0, len(stream), piece_length))


def torrent_bytes(info: dict[bytes, bencode.Encodable], **top: bencode.Encodable) -> bytes:
    """The .torrent bytes for ``info``; ``announce_list`` and ``url_list`` take a hyphen, other keys a space."""
    hyphenated = {"announce_list", "url_list"}
    document: dict[bytes, bencode.Encodable] = {
        key.replace("_", "-" if key in hyphenated else " ").encode(): value for key, value in top.items()
    }
    document[b"info"] = info
    return bencode.encode(document)
