"""The test vectors of docs/bundle-format.md (tests/bundle/vectors.json), recomputed.

The vectors were checked once against independent implementations (``openssl kdf`` for
HKDF, Node.js's aes-256-gcm for the segments and the manifest): see the document."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bitswarm import bencode
from bitswarm.bundle import format as fmt
from bitswarm.bundle import links

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text())
DOC = Path(__file__).resolve().parents[2] / "docs" / "bundle-format.md"


def pattern(size: int) -> bytes:
    return bytes((position * 7 + 3) & 0xFF for position in range(size))


PLAINTEXTS = [b"hello, bundle", pattern(fmt.PLAIN_SEGMENT + 1), b""]


def test_the_keys_segments_manifest_and_info_entry_match_the_vectors() -> None:
    key, bundle = bytes.fromhex(VECTORS["content_key"]), bytes.fromhex(VECTORS["bundle_id"])
    assert links.key_text(key) == VECTORS["content_key_text"]
    assert fmt.manifest_key(key, bundle).hex() == VECTORS["manifest_key"]
    for vector, plaintext in zip(VECTORS["files"], PLAINTEXTS, strict=True):
        file_key = fmt.file_key(key, bundle, vector["index"])
        assert file_key.hex() == vector["file_key"]
        segments = list(fmt.FileSealer(file_key, len(plaintext)).seal_all(plaintext))
        whole = b"".join(segments)
        assert len(whole) == vector["sealed_size"]
        assert hashlib.sha256(whole).hexdigest() == vector["sealed_sha256"]
        assert vector.get("sealed", whole.hex()) == whole.hex()
        assert vector.get("last_segment", segments[-1].hex()) == segments[-1].hex()
    manifest = fmt.decode_manifest(VECTORS["manifest"].encode())
    sealed = fmt.seal_manifest(manifest, key, bundle)
    assert sealed.hex() == VECTORS["sealed_manifest"]
    entry = bencode.encode(fmt.header_value(fmt.BundleHeader(bundle, sealed)))
    assert entry.hex() == VECTORS["info_entry"]
    assert fmt.open_manifest(fmt.BundleHeader(bundle, sealed), key) == manifest


def test_the_document_carries_the_same_vectors() -> None:
    text = DOC.read_text()
    for value in (VECTORS["manifest_key"], VECTORS["sealed_manifest"], VECTORS["files"][0]["sealed"]):
        assert value in text
