"""Property tests for the strict bencode codec (BEP 3).

Round trips, byte spans of top-level values, and the promise that hostile bytes only
ever raise ``DecodeError`` with an offset inside the input. Non-canonical encodings
(leading zeros, ``-0``, unsorted or duplicate keys, trailing data) must be refused.
"""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bitswarm import bencode
from bitswarm.errors import DecodeError

INTEGERS = st.integers(min_value=bencode.INT_MIN, max_value=bencode.INT_MAX)
KEYS = st.binary(max_size=12)


def _extend(children: st.SearchStrategy[bencode.Value]) -> st.SearchStrategy[bencode.Value]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(KEYS, children, max_size=5),
    )


# Leaves and containers; st.recursive bounds the size, and so the depth, of each value.
VALUES: st.SearchStrategy[bencode.Value] = st.recursive(
    st.one_of(INTEGERS, st.binary(max_size=40)), _extend, max_leaves=30
)
DICTS: st.SearchStrategy[dict[bytes, bencode.Value]] = st.dictionaries(KEYS, VALUES, max_size=6)


def _dict_bytes(items: list[tuple[bytes, bencode.Value]]) -> tuple[bytes, list[int]]:
    """A dictionary encoded with its items in the order given; also each key's offset."""
    out = bytearray(b"d")
    key_offsets = []
    for key, value in items:
        key_offsets.append(len(out))
        out += bencode.encode(key) + bencode.encode(value)
    out += b"e"
    return bytes(out), key_offsets


def _decode_both_modes(data: bytes) -> None:
    """Decode ``data`` strictly and tolerantly; only DecodeError may escape, with a sane offset."""
    for allow_unsorted in (False, True):
        try:
            bencode.decode_document(data, allow_unsorted_keys=allow_unsorted)
        except DecodeError as error:
            offset = error.offset
        else:
            continue
        assert 0 <= offset <= len(data), (offset, len(data))


@settings(max_examples=300)
@given(VALUES)
def test_decode_inverts_encode(value: bencode.Value) -> None:
    data = bencode.encode(value)
    assert bencode.decode(data) == value
    document = bencode.decode_document(data)
    assert document.value == value
    assert document.unsorted_at is None


@settings(max_examples=200)
@given(DICTS)
def test_spans_cover_exactly_each_top_level_value(value: dict[bytes, bencode.Value]) -> None:
    data = bencode.encode(value)
    document = bencode.decode_document(data)
    assert set(document.spans) == set(value)
    for key, (start, end) in document.spans.items():
        assert 0 < start < end < len(data)
        assert data[start:end] == bencode.encode(value[key])


@settings(max_examples=300)
@given(st.binary(max_size=4096))
@example(b"l" * 5000)
@example(b"d1:a" * 5000)
@example(b"i" + b"9" * 5000 + b"e")
@example(b"9" * 5000 + b":")
@example(b"")
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    _decode_both_modes(data)


@settings(max_examples=300)
@given(VALUES, st.data())
def test_damaged_encodings_decode_or_raise_decode_error(value: bencode.Value, data: st.DataObject) -> None:
    # Arbitrary bytes rarely look like bencode; damaging a real encoding reaches deeper.
    encoded = bytearray(bencode.encode(value))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        position = data.draw(st.integers(min_value=0, max_value=len(encoded)))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = data.draw(st.sampled_from([*b"0123456789-ilde:", 0x00, 0xFF]))
        if action == "insert":
            encoded.insert(position, byte)
        elif position < len(encoded):
            if action == "replace":
                encoded[position] = byte
            else:
                del encoded[position]
    damaged = bytes(encoded)
    _decode_both_modes(damaged)
    # Strict means canonical: whatever the strict decoder accepts re-encodes to the same bytes.
    with contextlib.suppress(DecodeError):
        assert bencode.encode(bencode.decode(damaged)) == damaged


@settings(max_examples=200)
@given(st.binary(max_size=2048))
def test_accepted_bytes_are_canonical(data: bytes) -> None:
    try:
        value = bencode.decode(data)
    except DecodeError:
        return
    assert bencode.encode(value) == data


@pytest.mark.parametrize("depth", [1, 50, bencode.MAX_DEPTH - 1, bencode.MAX_DEPTH])
def test_nesting_up_to_the_limit_decodes(depth: int) -> None:
    data = b"l" * depth + b"e" * depth
    value = bencode.decode(data)
    for _ in range(depth - 1):
        assert isinstance(value, list)
        value = value[0]
    assert value == []


@pytest.mark.parametrize("depth", [bencode.MAX_DEPTH + 1, 1000, 100_000])
def test_nesting_beyond_the_limit_is_a_decode_error(depth: int) -> None:
    for data in (b"l" * depth + b"e" * depth, b"d1:a" * depth + b"e" * depth):
        with pytest.raises(DecodeError, match="nested deeper") as caught:
            bencode.decode(data)
        assert 0 <= caught.value.offset <= len(data)


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=bencode.INT_MAX), st.integers(min_value=1, max_value=3), st.booleans())
def test_integers_with_leading_zeros_are_refused(number: int, zeros: int, negative: bool) -> None:
    text = b"0" * zeros + str(number).encode()
    data = b"i" + (b"-" if negative else b"") + text + b"e"
    with pytest.raises(DecodeError) as caught:
        bencode.decode(data)
    assert caught.value.offset == 0
    # Inside a list the offset points at the integer, not at the list.
    with pytest.raises(DecodeError) as caught:
        bencode.decode(b"l" + data + b"e")
    assert caught.value.offset == 1


def test_minus_zero_is_refused() -> None:
    for data in (b"i-0e", b"li-0ee", b"d1:ai-0ee"):
        with pytest.raises(DecodeError, match="malformed integer"):
            bencode.decode(data)
        with pytest.raises(DecodeError, match="malformed integer"):
            bencode.decode_document(data, allow_unsorted_keys=True)


@settings(max_examples=200)
@given(st.binary(max_size=30), st.integers(min_value=1, max_value=3))
def test_string_lengths_with_leading_zeros_are_refused(text: bytes, zeros: int) -> None:
    data = b"0" * zeros + str(len(text)).encode() + b":" + text
    with pytest.raises(DecodeError) as caught:
        bencode.decode(data)
    assert caught.value.offset == 0


@settings(max_examples=200)
@given(INTEGERS.filter(lambda n: n != 0), st.integers(min_value=0))
def test_out_of_range_integers_are_refused(sign_source: int, excess: int) -> None:
    number = (bencode.INT_MAX + 1 + excess) if sign_source > 0 else (bencode.INT_MIN - 1 - excess)
    data = b"i" + str(number).encode() + b"e"
    with pytest.raises(DecodeError) as caught:
        bencode.decode(data)
    assert 0 <= caught.value.offset <= len(data)


@settings(max_examples=200)
@given(DICTS.filter(lambda d: len(d) >= 2), st.randoms(use_true_random=False))
def test_unsorted_keys_are_refused_strictly_and_reported_tolerantly(
    value: dict[bytes, bencode.Value], rng: random.Random
) -> None:
    items = sorted(value.items())
    # Any permutation other than the sorted one; the reversed order is one.
    shuffled = list(items)
    rng.shuffle(shuffled)
    if shuffled == items:
        shuffled.reverse()
    data, key_offsets = _dict_bytes(shuffled)
    with pytest.raises(DecodeError, match="out of order") as caught:
        bencode.decode(data)
    first_unsorted = next(i for i in range(1, len(shuffled)) if shuffled[i][0] < shuffled[i - 1][0])
    assert caught.value.offset == key_offsets[first_unsorted]

    document = bencode.decode_document(data, allow_unsorted_keys=True)
    assert document.value == value
    assert document.unsorted_at == key_offsets[first_unsorted]
    for key, (start, end) in document.spans.items():
        assert data[start:end] == bencode.encode(value[key])


@settings(max_examples=200)
@given(DICTS.filter(bool), st.data())
def test_duplicate_keys_are_refused_in_every_mode(value: dict[bytes, bencode.Value], data: st.DataObject) -> None:
    items = list(value.items())
    duplicated = data.draw(st.sampled_from(items))
    other_value = data.draw(VALUES)
    items.insert(data.draw(st.integers(min_value=0, max_value=len(items))), (duplicated[0], other_value))
    if data.draw(st.booleans()):
        items.sort(key=lambda item: item[0])
    encoded, _ = _dict_bytes(items)
    for allow_unsorted in (False, True):
        with pytest.raises(DecodeError) as caught:
            bencode.decode_document(encoded, allow_unsorted_keys=allow_unsorted)
        assert 0 <= caught.value.offset <= len(encoded)
        if allow_unsorted:
            assert "duplicate" in str(caught.value)


@settings(max_examples=200)
@given(VALUES, st.binary(min_size=1, max_size=20))
def test_trailing_data_is_refused(value: bencode.Value, trailer: bytes) -> None:
    encoded = bencode.encode(value)
    data = encoded + trailer
    for allow_unsorted in (False, True):
        with pytest.raises(DecodeError) as caught:
            bencode.decode_document(data, allow_unsorted_keys=allow_unsorted)
        # The value itself is whole: the error is where the trailing data starts.
        assert caught.value.offset == len(encoded)
        assert "trailing" in str(caught.value)
