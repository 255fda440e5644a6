"""The bundle format's segments, keys and manifest (docs/bundle-format.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitswarm.bundle import format as fmt
from bitswarm.bundle import links
from bitswarm.magnet import parse as parse_magnet

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
BUNDLE = bytes(range(16))
OTHER_BUNDLE = bytes(range(2, 18))
P = fmt.PLAIN_SEGMENT
SIZES = [0, 1, P - 1, P, P + 1, 2 * P, 2 * P + 7, 3 * P - 1]


def sealer(size: int, index: int = 0, key: bytes = KEY, bundle: bytes = BUNDLE) -> fmt.FileSealer:
    return fmt.FileSealer(fmt.file_key(key, bundle, index), size)


def sealed(data: bytes, index: int = 0, key: bytes = KEY, bundle: bytes = BUNDLE) -> bytes:
    return b"".join(sealer(len(data), index, key, bundle).seal_all(data))


def plaintext(size: int) -> bytes:
    return bytes((position * 7 + 3) & 0xFF for position in range(size))


@pytest.mark.parametrize("size", SIZES)
def test_round_trips_at_segment_boundaries(size: int) -> None:
    data = plaintext(size)
    whole = sealed(data)
    assert len(whole) == fmt.ciphertext_size(size)
    assert fmt.plain_size_of(len(whole)) == size
    assert sealer(size).open_all(whole) == data
    # Each segment opens on its own (a piece at a time, for streaming).
    one = sealer(size)
    parts = [one.open(index, whole[index * fmt.SEGMENT : (index + 1) * fmt.SEGMENT]) for index in range(one.segments)]
    assert b"".join(parts) == data


@pytest.mark.parametrize("size", SIZES[1:])
def test_sealing_into_a_buffer_writes_what_seal_returns(size: int) -> None:
    """bundle create seals into a reused piece buffer; the bytes must be the format's."""
    data = plaintext(size)
    one = sealer(size)
    out = bytearray(fmt.ciphertext_size(size) + 5)
    at = 0
    for index in range(one.segments):
        chunk = memoryview(data)[index * P : index * P + one.plain_length(index)]
        one.seal_into(index, chunk, memoryview(out)[at : at + len(chunk) + fmt.TAG_BYTES])
        at += len(chunk) + fmt.TAG_BYTES
    assert bytes(out[:at]) == sealed(data)
    assert out[at:] == bytes(5)
    with pytest.raises(fmt.BundleError):
        one.seal_into(0, memoryview(data)[: one.plain_length(0) - 1], memoryview(out)[: one.plain_length(0) + 15])


def test_sizes_that_no_sealed_file_has_are_refused() -> None:
    for size in (0, 1, 15, fmt.SEGMENT + 1, fmt.SEGMENT + 16, fmt.SEGMENT + 15):
        with pytest.raises(fmt.BundleError):
            fmt.plain_size_of(size)


def test_every_single_byte_flip_is_detected() -> None:
    data = plaintext(200)
    whole = sealed(data)
    for position in range(len(whole)):
        tampered = bytearray(whole)
        tampered[position] ^= 0x01
        with pytest.raises(fmt.BundleError, match="does not authenticate"):
            sealer(200).open_all(bytes(tampered))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 3 * P + 100), position=st.integers(0), flip=st.integers(1, 255))
def test_a_flip_anywhere_in_a_longer_file_is_detected(size: int, position: int, flip: int) -> None:
    whole = bytearray(sealed(plaintext(size)))
    whole[position % len(whole)] ^= flip
    with pytest.raises(fmt.BundleError):
        sealer(size).open_all(bytes(whole))


@settings(max_examples=40, deadline=None)
@given(size=st.integers(2 * P + 1, 4 * P), cut=st.integers(1))
def test_truncation_anywhere_is_detected(size: int, cut: int) -> None:
    whole = sealed(plaintext(size))
    shorter = whole[: len(whole) - 1 - cut % (len(whole) - 1)]
    with pytest.raises(fmt.BundleError):
        sealer(size).open_all(shorter)
    # Cut at a segment boundary and presented as a shorter file: its last segment has no end flag.
    segments = len(shorter) // fmt.SEGMENT
    if segments:
        with pytest.raises(fmt.BundleError):
            sealer(segments * P).open_all(whole[: segments * fmt.SEGMENT])


def test_reordered_duplicated_and_swapped_segments_are_detected() -> None:
    size = 3 * P
    whole = sealed(plaintext(size))
    a, b, c = (whole[index * fmt.SEGMENT : (index + 1) * fmt.SEGMENT] for index in range(3))
    for arranged in (b + a + c, a + a + c, a + c + b, c + b + a):
        with pytest.raises(fmt.BundleError):
            sealer(size).open_all(arranged)


def test_segments_do_not_move_between_files_or_bundles() -> None:
    data = plaintext(P + 10)
    with pytest.raises(fmt.BundleError):
        sealer(len(data), index=0).open_all(sealed(data, index=1))
    with pytest.raises(fmt.BundleError):
        sealer(len(data)).open_all(sealed(data, bundle=OTHER_BUNDLE))
    with pytest.raises(fmt.BundleError):
        sealer(len(data)).open_all(sealed(data, key=OTHER_KEY))


def test_the_same_plaintext_seals_differently_in_each_file_and_bundle() -> None:
    data = plaintext(100)
    variants = {sealed(data), sealed(data, index=1), sealed(data, bundle=OTHER_BUNDLE), sealed(data, key=OTHER_KEY)}
    assert len(variants) == 4


MANIFEST = fmt.Manifest(
    "Live at the Roundhouse",
    (fmt.ManifestFile(("cd1", "01 Intro.flac"), 5, "audio/flac"), fmt.ManifestFile(("cover.jpg",), 0, "image/jpeg")),
)


def test_the_manifest_opens_only_with_its_key_and_bundle() -> None:
    header = fmt.BundleHeader(BUNDLE, fmt.seal_manifest(MANIFEST, KEY, BUNDLE))
    assert fmt.open_manifest(header, KEY) == MANIFEST
    with pytest.raises(fmt.BundleError, match="does not open"):
        fmt.open_manifest(header, OTHER_KEY)
    with pytest.raises(fmt.BundleError, match="does not open"):
        fmt.open_manifest(fmt.BundleHeader(OTHER_BUNDLE, header.sealed_manifest), KEY)
    for position in range(len(header.sealed_manifest)):
        tampered = bytearray(header.sealed_manifest)
        tampered[position] ^= 0x80
        with pytest.raises(fmt.BundleError):
            fmt.open_manifest(fmt.BundleHeader(BUNDLE, bytes(tampered)), KEY)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"le", "not a dictionary"),
        (b"d5:filesle5:title1:te", "files must be"),
        (b"d5:filesld4:pathl2:..e4:sizei1e4:type1:xee5:title1:te", "not allowed"),
        (b"d5:filesld4:pathl1:ae4:sizei-1e4:type1:xee5:title1:te", "non-negative"),
        (b"d5:filesld4:pathl1:ae4:sizei1e4:type1:xed4:pathl1:Ae4:sizei1e4:type1:xee5:title1:te", "collides"),
        (b"d5:filesld4:pathl3:CONe4:sizei1e4:type1:xee5:title1:te", "portable"),
        (b"d5:filesld5:extrai1e4:pathl1:ae4:sizei1e4:type1:xee5:title1:te", "path, size and type"),
        (b"d5:filesld4:pathl1:ae4:sizei1e4:type1:xee5:title2:\xff\xfee", "UTF-8"),
        (b"d5:filesld4:pathl1:ae4:sizei1e4:type1:xeee", "title and files"),
    ],
)
def test_malformed_manifests_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(fmt.BundleError, match=why):
        fmt.decode_manifest(raw)


@pytest.mark.parametrize(
    "value",
    [
        b"x",
        {b"version": 2, b"cipher": b"aes-256-gcm", b"segment": 65536, b"id": BUNDLE, b"manifest": bytes(32)},
        {b"version": 1, b"cipher": b"chacha20-poly1305", b"segment": 65536, b"id": BUNDLE, b"manifest": bytes(32)},
        {b"version": 1, b"cipher": b"aes-256-gcm", b"segment": 4096, b"id": BUNDLE, b"manifest": bytes(32)},
        {b"version": 1, b"cipher": b"aes-256-gcm", b"segment": 65536, b"id": b"short", b"manifest": bytes(32)},
        {b"version": 1, b"cipher": b"aes-256-gcm", b"segment": 65536, b"id": BUNDLE, b"manifest": b""},
    ],
)
def test_malformed_headers_are_refused(value: object) -> None:
    with pytest.raises(fmt.BundleError):
        fmt.read_header({fmt.INFO_KEY: value})


def test_keys_travel_as_43_characters_in_the_fragment() -> None:
    text = links.key_text(KEY)
    assert len(text) == 43
    assert links.parse_key(text) == KEY
    link = links.share_link("magnet:?xt=urn:btih:" + "ab" * 20 + "&tr=http%3A%2F%2Ft%2Fa", KEY)
    assert link.endswith("#k=" + text)
    assert links.split_link(link) == (link.partition("#")[0], KEY)
    assert links.parse_key(link) == KEY
    assert parse_magnet(link).trackers == ("http://t/a",)  # the fragment is not the query's
    for bad in ("", text[:-1], text + "A", text[:-1] + "B", "k=" + "!" * 43):
        with pytest.raises(fmt.BundleError):
            links.parse_key(bad)


def tiny_png() -> bytes:
    """A real 2x2 PNG (the standard library writes it)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x80\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_a_cover_travels_in_the_clear_part_of_the_header_checked_by_its_first_bytes() -> None:
    from bitswarm import bencode

    sealed = fmt.seal_manifest(MANIFEST, KEY, BUNDLE)
    cover = tiny_png()
    value = bencode.decode(bencode.encode(fmt.header_value(fmt.BundleHeader(BUNDLE, sealed, cover, "image/png"))))
    assert isinstance(value, dict)
    header = fmt.read_header({fmt.INFO_KEY: value})
    assert header == fmt.BundleHeader(BUNDLE, sealed, cover, "image/png")
    for bad_cover, declared in (
        (b"GIF89a...", b"image/gif"),
        (cover, b"image/jpeg"),
        (b"\xff\xd8\xff" * 200_000, b"image/jpeg"),
    ):
        with pytest.raises(fmt.BundleError):
            fmt.read_header({fmt.INFO_KEY: {**value, b"cover": bad_cover, b"cover type": declared}})
    without_type = {key: item for key, item in value.items() if key != b"cover type"}
    with pytest.raises(fmt.BundleError):
        fmt.read_header({fmt.INFO_KEY: without_type})
