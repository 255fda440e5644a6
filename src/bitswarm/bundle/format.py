"""The encrypted bundle format, version 1 (docs/bundle-format.md). Sans-IO.

A bundle is an ordinary v2 or hybrid torrent whose files are ciphertext. Each plaintext
file is cut into segments of ``PLAIN_SEGMENT`` bytes, and each segment is sealed with
AES-256-GCM into ``SEGMENT`` bytes (the last one shorter), in the STREAM
construction of Hoang, Reyhanitabar, Rogaway and Vizár as age uses it: the nonce is an
11-byte big-endian segment counter and a flag byte that is 1 on the file's last segment
only. Each file has its own key, derived with HKDF-SHA256 from the bundle's content key,
salted with the bundle's random id and bound to the file's index, so a segment moved to
another place, another file or another bundle fails to open, and a file cut short at a
segment boundary lacks its flagged last segment. ``SEGMENT`` divides every piece length
allowed, and v2 files start on piece boundaries, so every piece opens on its own.

The names, sizes, media types and title live in a manifest sealed with a key of its own
(derived the same way), carried in the info dictionary under ``bitswarm bundle``: the
info-hash covers it, other clients ignore the key, and a magnet link's metadata brings
it. The torrent's own file names say nothing (``0000.bin``, ``0001.bin``, ...).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bitswarm import bencode, paths
from bitswarm.errors import BitswarmError, DecodeError, UnsafePathError

VERSION = 1
CIPHER = "aes-256-gcm"
INFO_KEY = b"bitswarm bundle"
KEY_BYTES = 32
ID_BYTES = 16
TAG_BYTES = 16
SEGMENT = 64 * 1024  # ciphertext bytes of every segment but a file's last
PLAIN_SEGMENT = SEGMENT - TAG_BYTES
COUNTER_BYTES = 11
LAST_SEGMENT = b"\x01"
MIDDLE_SEGMENT = b"\x00"
# Pieces of a bundle hold whole segments: at least one, a power of two as BEP 52 wants.
MIN_PIECE_LENGTH = SEGMENT
_LABEL = b"bitswarm-bundle-v1 "
# A manifest is names and sizes: tens of bytes a file. A bound for hostile torrents.
MAX_MANIFEST_BYTES = 16 << 20
MAX_FILES = 100_000
MAX_TITLE_CHARS = 500
MAX_TYPE_CHARS = 255


class BundleError(BitswarmError):
    """A bundle that does not open: a wrong key, a tampered segment or manifest, a bad format."""


@dataclass(frozen=True, slots=True)
class ManifestFile:
    path: tuple[str, ...]  # relative to the bundle's folder, checked like a torrent's paths
    size: int  # plaintext bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class Manifest:
    title: str
    files: tuple[ManifestFile, ...]


@dataclass(frozen=True, slots=True)
class BundleHeader:
    """What the info dictionary says in clear: enough to check sizes, nothing about content
    but an optional cover image, which is public on purpose (a shop window)."""

    bundle_id: bytes
    sealed_manifest: bytes
    cover: bytes | None = None
    cover_type: str | None = None


def ciphertext_size(plain_size: int) -> int:
    """Bytes of the sealed file: every segment gains a tag; an empty file is one empty segment."""
    if plain_size < 0:
        raise ValueError("a size is not negative")
    return plain_size + TAG_BYTES * segment_count(plain_size)


def segment_count(plain_size: int) -> int:
    return max(1, -(-plain_size // PLAIN_SEGMENT))


def plain_size_of(sealed_size: int) -> int:
    """The plaintext size a sealed file of ``sealed_size`` bytes holds; BundleError if none does."""
    segments = max(1, -(-sealed_size // SEGMENT))
    plain = sealed_size - TAG_BYTES * segments
    if plain < 0 or ciphertext_size(plain) != sealed_size:
        raise BundleError(f"{sealed_size} bytes is not the size of a sealed file")
    return plain


def _hkdf(content_key: bytes, bundle_id: bytes, info: bytes) -> bytes:
    if len(content_key) != KEY_BYTES:
        raise BundleError(f"a content key is {KEY_BYTES} bytes, not {len(content_key)}")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=bundle_id, info=_LABEL + info).derive(content_key)


def file_key(content_key: bytes, bundle_id: bytes, index: int) -> bytes:
    """The key of file ``index`` (its place in the manifest and the torrent)."""
    return _hkdf(content_key, bundle_id, b"file " + index.to_bytes(4, "big"))


def manifest_key(content_key: bytes, bundle_id: bytes) -> bytes:
    return _hkdf(content_key, bundle_id, b"manifest")


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(COUNTER_BYTES, "big") + (LAST_SEGMENT if last else MIDDLE_SEGMENT)


class FileSealer:
    """Seals and opens the segments of one file of a bundle."""

    def __init__(self, key: bytes, plain_size: int) -> None:
        self._aead = AESGCM(key)
        self.plain_size = plain_size
        self.segments = segment_count(plain_size)
        self.sealed_size = ciphertext_size(plain_size)

    @property
    def segment_sizes(self) -> tuple[int, int]:
        """(sealed, plain) bytes of a full segment."""
        return SEGMENT, PLAIN_SEGMENT

    def _check_index(self, index: int) -> bool:
        if not 0 <= index < self.segments:
            raise BundleError(f"segment {index} is outside the file's {self.segments}")
        return index == self.segments - 1

    def plain_length(self, index: int) -> int:
        last = self._check_index(index)
        return self.plain_size - index * PLAIN_SEGMENT if last else PLAIN_SEGMENT

    def seal(self, index: int, plaintext: bytes) -> bytes:
        if len(plaintext) != self.plain_length(index):
            raise BundleError(f"segment {index} takes {self.plain_length(index)} bytes, not {len(plaintext)}")
        return self._aead.encrypt(_nonce(index, index == self.segments - 1), plaintext, None)

    def seal_into(self, index: int, plaintext: memoryview, out: memoryview) -> None:
        """``seal`` written into ``out`` (exactly the sealed segment's length), with no new buffer."""
        if len(plaintext) != self.plain_length(index):
            raise BundleError(f"segment {index} takes {self.plain_length(index)} bytes, not {len(plaintext)}")
        self._aead.encrypt_into(_nonce(index, index == self.segments - 1), plaintext, None, out)

    def open(self, index: int, sealed: bytes) -> bytes:
        """The plaintext of segment ``index``; BundleError unless it authenticates there."""
        last = self._check_index(index)
        if len(sealed) != self.plain_length(index) + TAG_BYTES:
            raise BundleError(f"segment {index} is {len(sealed)} bytes: cut short or too long")
        try:
            return self._aead.decrypt(_nonce(index, last), sealed, None)
        except InvalidTag:
            raise BundleError(f"segment {index} does not authenticate: a wrong key or tampered data") from None

    def seal_all(self, plaintext: bytes) -> Iterator[bytes]:
        """Every sealed segment of ``plaintext`` (the whole file), in order."""
        if len(plaintext) != self.plain_size:
            raise BundleError(f"the file is {self.plain_size} bytes, not {len(plaintext)}")
        for index in range(self.segments):
            start = index * PLAIN_SEGMENT
            yield self.seal(index, plaintext[start : start + PLAIN_SEGMENT])

    def open_all(self, sealed: bytes) -> bytes:
        """The whole plaintext of a whole sealed file; BundleError for any fault, the length included."""
        if len(sealed) != self.sealed_size:
            raise BundleError(f"the sealed file is {len(sealed)} bytes, not {self.sealed_size}")
        return b"".join(
            self.open(index, sealed[index * SEGMENT : (index + 1) * SEGMENT]) for index in range(self.segments)
        )


def media_type(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def encode_manifest(manifest: Manifest) -> bytes:
    files = [
        {b"path": [element.encode() for element in item.path], b"size": item.size, b"type": item.media_type.encode()}
        for item in manifest.files
    ]
    return bencode.encode({b"title": manifest.title.encode(), b"files": files})


def seal_manifest(manifest: Manifest, content_key: bytes, bundle_id: bytes) -> bytes:
    """The sealed manifest. Its key is used once (the bundle id is new for every bundle), so
    a fixed nonce is safe; the bundle id and version are bound in as associated data."""
    aead = AESGCM(manifest_key(content_key, bundle_id))
    return aead.encrypt(bytes(12), encode_manifest(manifest), _manifest_aad(bundle_id))


def _manifest_aad(bundle_id: bytes) -> bytes:
    return _LABEL + b"manifest " + bundle_id


def open_manifest(header: BundleHeader, content_key: bytes) -> Manifest:
    """The manifest of a bundle; BundleError for a wrong key, a tampered or malformed one."""
    aead = AESGCM(manifest_key(content_key, header.bundle_id))
    try:
        raw = aead.decrypt(bytes(12), header.sealed_manifest, _manifest_aad(header.bundle_id))
    except InvalidTag:
        raise BundleError("the manifest does not open: a wrong key, or the torrent was tampered with") from None
    return decode_manifest(raw)


def decode_manifest(raw: bytes) -> Manifest:
    """A manifest from its bencoded form, checked as strictly as a torrent's file list."""
    try:
        value = bencode.decode(raw)
    except DecodeError as error:
        raise BundleError(f"manifest: {error}") from None
    if not isinstance(value, dict) or set(value) != {b"title", b"files"}:
        raise BundleError("manifest: not a dictionary of title and files")
    title = _text(value[b"title"], "title", MAX_TITLE_CHARS)
    items = value[b"files"]
    if not isinstance(items, list) or not items or len(items) > MAX_FILES:
        raise BundleError(f"manifest: files must be a list of 1 to {MAX_FILES}")
    files = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {b"path", b"size", b"type"}:
            raise BundleError("manifest: a file is not a dictionary of path, size and type")
        raw_path = item[b"path"]
        size = item[b"size"]
        if not isinstance(raw_path, list) or not all(isinstance(element, bytes) for element in raw_path):
            raise BundleError("manifest: a path is not a list of names")
        path = [element for element in raw_path if isinstance(element, bytes)]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError("manifest: a size is not a non-negative integer")
        try:
            safe = paths.safe_path(path, "manifest")
        except UnsafePathError as error:
            raise BundleError(f"manifest: {error}") from None
        if [element.encode() for element in safe] != path:
            raise BundleError(f"manifest: {'/'.join(safe)!r} is not a portable path")
        files.append(ManifestFile(safe, size, _text(item[b"type"], "type", MAX_TYPE_CHARS)))
    try:
        paths.check_collisions((item.path for item in files), "manifest")
    except UnsafePathError as error:
        raise BundleError(f"manifest: {error}") from None
    return Manifest(title, tuple(files))


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, bytes):
        raise BundleError(f"manifest: {field} is not a string")
    try:
        text = value.decode()
    except UnicodeDecodeError:
        raise BundleError(f"manifest: {field} is not UTF-8") from None
    if len(text) > limit:
        raise BundleError(f"manifest: {field} is longer than {limit} characters")
    return text


# A cover is a small public picture: these types, told by their first bytes, and this size.
MAX_COVER_BYTES = 512 * 1024
COVER_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"RIFF": "image/webp"}


def cover_type(data: bytes) -> str:
    """The media type of a cover image from its first bytes; BundleError if it is none we take."""
    if not 0 < len(data) <= MAX_COVER_BYTES:
        raise BundleError(f"a cover is an image of at most {MAX_COVER_BYTES // 1024} KiB")
    for magic, media in COVER_TYPES.items():
        if data.startswith(magic) and (media != "image/webp" or data[8:12] == b"WEBP"):
            return media
    raise BundleError("a cover is a JPEG, PNG or WebP image")


def header_value(header: BundleHeader) -> dict[bytes, Any]:
    """The ``bitswarm bundle`` entry of the info dictionary."""
    value: dict[bytes, Any] = {
        b"version": VERSION,
        b"cipher": CIPHER.encode(),
        b"segment": SEGMENT,
        b"id": header.bundle_id,
        b"manifest": header.sealed_manifest,
    }
    if header.cover is not None:
        value[b"cover"] = header.cover
        value[b"cover type"] = cover_type(header.cover).encode()
    return value


def read_header(info: dict[bytes, Any]) -> BundleHeader | None:
    """The bundle header of a decoded info dictionary, None when it is no bundle; BundleError
    for a bundle of another version or a malformed header."""
    value = info.get(INFO_KEY)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BundleError("bundle header: not a dictionary")
    if value.get(b"version") != VERSION:
        raise BundleError(f"bundle format version {value.get(b'version')!r}: this bitswarm reads version {VERSION}")
    if value.get(b"cipher") != CIPHER.encode() or value.get(b"segment") != SEGMENT:
        raise BundleError("bundle header: an unknown cipher or segment size")
    bundle_id = value.get(b"id")
    sealed = value.get(b"manifest")
    if not isinstance(bundle_id, bytes) or len(bundle_id) != ID_BYTES:
        raise BundleError(f"bundle header: the id is not {ID_BYTES} bytes")
    if not isinstance(sealed, bytes) or not TAG_BYTES <= len(sealed) <= MAX_MANIFEST_BYTES:
        raise BundleError("bundle header: the manifest is missing or too large")
    cover, declared = value.get(b"cover"), value.get(b"cover type")
    if cover is None and declared is None:
        return BundleHeader(bundle_id, sealed)
    if not isinstance(cover, bytes) or not isinstance(declared, bytes) or cover_type(cover).encode() != declared:
        raise BundleError("bundle header: a cover that is not the image its type says")
    return BundleHeader(bundle_id, sealed, cover, declared.decode())


def sealed_name(index: int, count: int) -> str:
    """The torrent's name for file ``index`` of ``count``: its place, nothing more."""
    return f"{index:0{max(4, len(str(count - 1)))}d}.bin"


def check_sizes(manifest: Manifest, sealed_sizes: Sequence[int]) -> None:
    """The torrent's files must be the manifest's, sealed, in order."""
    if len(sealed_sizes) != len(manifest.files):
        raise BundleError(f"the torrent has {len(sealed_sizes)} files, the manifest {len(manifest.files)}")
    for index, (item, size) in enumerate(zip(manifest.files, sealed_sizes, strict=True)):
        if ciphertext_size(item.size) != size:
            raise BundleError(
                f"file {index} is {size} bytes sealed; {'/'.join(item.path)!r} needs {ciphertext_size(item.size)}"
            )
