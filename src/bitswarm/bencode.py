"""Bencode (BEP 3): a strict decoder and a canonical encoder.

Strict means there is exactly one encoding of every value: integers without leading
zeros or ``-0``, dictionary keys in sorted order and unique, nothing after the value.
Because of that, two programs that accept the same bytes see the same content.

Real .torrent files with unsorted keys exist, so ``decode_document`` can accept them
(reporting where) while the info-hash is still taken over the bytes as received, for
which it records the byte span of every top-level value. Duplicate keys are refused in
every mode: with them a website and a client could show different content.

Every limit is explicit and checked before anything is allocated for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import bencode2

from bitswarm.errors import DecodeError, UsageError

Value: TypeAlias = int | bytes | list["Value"] | dict[bytes, "Value"]

# libtorrent's default nesting limit; far beyond any real file tree, well within the stack.
MAX_DEPTH = 100
# A torrent of 100,000 files has about 600,000 tokens; each costs ~100 bytes of Python objects.
MAX_TOKENS = 2_000_000
# Integers are 64-bit signed in every BitTorrent implementation; 19 digits and a sign.
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
_MAX_INT_TEXT = 20
# A string length of more than 12 digits is over a terabyte: no input of ours is that big.
_MAX_LENGTH_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Document:
    """A decoded top-level value plus what a reader of files needs beyond the value.

    ``spans`` maps each top-level dictionary key to the (start, end) byte offsets of its
    value, so a hash can be taken over the bytes exactly as received. ``unsorted_at`` is
    the offset of the first key out of order, or None when the input was canonical.
    """

    value: Value
    spans: dict[bytes, tuple[int, int]]
    unsorted_at: int | None


class _Decoder:
    __slots__ = ("allow_unsorted", "data", "end", "max_depth", "spans", "tokens_left", "unsorted_at")

    def __init__(self, data: bytes, max_depth: int, max_tokens: int, allow_unsorted: bool) -> None:
        self.data = data
        self.end = len(data)
        self.max_depth = max_depth
        self.tokens_left = max_tokens
        self.allow_unsorted = allow_unsorted
        self.unsorted_at: int | None = None
        self.spans: dict[bytes, tuple[int, int]] = {}

    def value(self, i: int, depth: int) -> tuple[Value, int]:
        self.tokens_left -= 1
        if self.tokens_left < 0:
            raise DecodeError("too many values", i)
        if i >= self.end:
            raise DecodeError("unexpected end of data", i)
        lead = self.data[i]
        if 0x30 <= lead <= 0x39:  # '0'..'9': a byte string
            return self.string(i)
        if lead == 0x69:  # 'i'
            return self.integer(i)
        if lead in (0x6C, 0x64):  # 'l', 'd'
            if depth >= self.max_depth:
                raise DecodeError(f"nested deeper than {self.max_depth} levels", i)
            return self.list(i, depth) if lead == 0x6C else self.dict(i, depth)
        raise DecodeError(f"unexpected byte {bytes([lead])!r}", i)

    def integer(self, i: int) -> tuple[int, int]:
        stop = self.data.find(b"e", i + 1, i + 2 + _MAX_INT_TEXT)
        if stop < 0:
            if self.data.find(b"e", i + 1) < 0:
                raise DecodeError("unexpected end of data in integer", self.end)
            raise DecodeError("integer too long", i)
        text = self.data[i + 1 : stop]
        digits = text[1:] if text[:1] == b"-" else text
        # bytes.isdigit is ASCII-only; no leading zeros, and no "-0".
        if not digits.isdigit() or (digits[0] == 0x30 and (len(digits) > 1 or digits is not text)):
            raise DecodeError(f"malformed integer {text!r}", i)
        number = int(text)
        if not INT_MIN <= number <= INT_MAX:
            raise DecodeError("integer outside the 64-bit range", i)
        return number, stop + 1

    def string(self, i: int) -> tuple[bytes, int]:
        colon = self.data.find(b":", i, i + _MAX_LENGTH_DIGITS + 1)
        if colon < 0:
            if self.data.find(b":", i) < 0:
                raise DecodeError("unexpected end of data in string length", self.end)
            raise DecodeError("string length too long", i)
        text = self.data[i:colon]
        if not text.isdigit() or (text[0] == 0x30 and colon - i > 1):
            raise DecodeError(f"malformed string length {text!r}", i)
        start = colon + 1
        stop = start + int(text)
        if stop > self.end:
            raise DecodeError(f"string of {stop - start} bytes runs past the end of data", i)
        return self.data[start:stop], stop

    def list(self, i: int, depth: int) -> tuple[list[Value], int]:
        items: list[Value] = []
        i += 1
        while i < self.end and self.data[i] != 0x65:  # 'e'
            item, i = self.value(i, depth + 1)
            items.append(item)
        if i >= self.end:
            raise DecodeError("unexpected end of data in list", i)
        return items, i + 1

    def dict(self, i: int, depth: int) -> tuple[dict[bytes, Value], int]:
        items: dict[bytes, Value] = {}
        previous: bytes | None = None
        i += 1
        while i < self.end and self.data[i] != 0x65:  # 'e'
            if not 0x30 <= self.data[i] <= 0x39:
                raise DecodeError("dictionary key is not a string", i)
            key_at = i
            self.tokens_left -= 1
            key, i = self.string(i)
            if previous is not None and key <= previous:
                if key == previous or key in items:
                    raise DecodeError(f"duplicate dictionary key {key[:40]!r}", key_at)
                if not self.allow_unsorted:
                    raise DecodeError(f"dictionary key {key[:40]!r} out of order", key_at)
                if self.unsorted_at is None:
                    self.unsorted_at = key_at
            elif key in items:  # only possible after an earlier key out of order
                raise DecodeError(f"duplicate dictionary key {key[:40]!r}", key_at)
            value_at = i
            items[key], i = self.value(i, depth + 1)
            if depth == 0:
                self.spans[key] = (value_at, i)
            previous = key
        if i >= self.end:
            raise DecodeError("unexpected end of data in dictionary", i)
        return items, i + 1


def decode_document(
    data: bytes,
    *,
    allow_unsorted_keys: bool = False,
    max_depth: int = MAX_DEPTH,
    max_tokens: int = MAX_TOKENS,
) -> Document:
    """Decode one whole bencoded value, recording top-level spans.

    Returns a ``Document``. Raises ``DecodeError`` (with the byte offset) for anything but
    exactly one well-formed value; unsorted keys are allowed only when asked for.
    """
    if not isinstance(data, bytes):
        raise UsageError(f"bencode input must be bytes, not {type(data).__name__}")
    decoder = _Decoder(data, max_depth, max_tokens, allow_unsorted_keys)
    value, end = decoder.value(0, 0)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} bytes of trailing data", end)
    return Document(value, decoder.spans, decoder.unsorted_at)


def decode_prefix(
    data: bytes,
    *,
    allow_unsorted_keys: bool = False,
    max_depth: int = MAX_DEPTH,
    max_tokens: int = MAX_TOKENS,
) -> tuple[Value, int]:
    """Decode the one value ``data`` starts with; returns it and the offset just past it.

    For messages that carry raw bytes after a bencoded header (BEP 9 metadata pieces).
    Raises ``DecodeError`` when ``data`` does not start with a well-formed value.
    """
    if not isinstance(data, bytes):
        raise UsageError(f"bencode input must be bytes, not {type(data).__name__}")
    return _Decoder(data, max_depth, max_tokens, allow_unsorted_keys).value(0, 0)


def decode(data: bytes, *, max_depth: int = MAX_DEPTH, max_tokens: int = MAX_TOKENS) -> Value:
    """Decode one whole canonical bencoded value; raises ``DecodeError`` otherwise."""
    return decode_document(data, max_depth=max_depth, max_tokens=max_tokens).value


# What ``encode`` takes: ints, bytes, str, lists, tuples and dicts keyed by bytes or str.
# Checked at run time: list and dict invariance would make a precise recursive type
# unusable for callers building nested values.
Encodable: TypeAlias = object


def encode(value: Encodable) -> bytes:
    """Encode ``value`` canonically (keys sorted); ``str`` is written as UTF-8.

    bencode2 does the work: measured 10x faster than a Python encoder here (bench/RESULTS.md).
    Raises ``UsageError`` for a type bencode cannot carry or two keys equal once encoded.
    """
    try:
        return bencode2.bencode(value)
    except (bencode2.BencodeEncodeError, TypeError, OverflowError) as error:
        raise UsageError(f"cannot bencode: {error}") from None
