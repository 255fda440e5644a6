from __future__ import annotations

import pytest

from bitswarm import bencode
from bitswarm.errors import DecodeError, UsageError


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"i0e", 0),
        (b"i-42e", -42),
        (b"i9223372036854775807e", (1 << 63) - 1),
        (b"i-9223372036854775808e", -(1 << 63)),
        (b"0:", b""),
        (b"4:spam", b"spam"),
        (b"le", []),
        (b"l4:spami3ee", [b"spam", 3]),
        (b"de", {}),
        (b"d3:bar4:spam3:fooi42ee", {b"bar": b"spam", b"foo": 42}),
        (b"d1:ad1:bl0:eee", {b"a": {b"b": [b""]}}),
    ],
)
def test_valid_values_decode(data: bytes, value: bencode.Value) -> None:
    assert bencode.decode(data) == value
    assert bencode.encode(value) == data


@pytest.mark.parametrize(
    ("data", "offset", "reason"),
    [
        (b"i03e", 0, "malformed integer"),
        (b"i-0e", 0, "malformed integer"),
        (b"i-e", 0, "malformed integer"),
        (b"ie", 0, "malformed integer"),
        (b"i+1e", 0, "malformed integer"),
        (b"i 1e", 0, "malformed integer"),
        (b"i1", 2, "unexpected end of data"),
        (b"i9223372036854775808e", 0, "64-bit"),
        (b"i123456789012345678901234e", 0, "integer too long"),
        (b"01:a", 0, "malformed string length"),
        (b"-1:a", 0, "unexpected byte"),
        (b"5:abc", 0, "runs past the end"),
        (b"3", 1, "unexpected end of data"),
        (b"l", 1, "unexpected end of data in list"),
        (b"d", 1, "unexpected end of data in dictionary"),
        (b"d1:a", 4, "unexpected end of data"),
        (b"di1ei2ee", 1, "key is not a string"),
        (b"d1:bi1e1:ai2ee", 7, "out of order"),
        (b"d1:ai1e1:ai2ee", 7, "duplicate"),
        (b"i1ei2e", 3, "trailing data"),
        (b"4:spamx", 6, "trailing data"),
        (b"", 0, "unexpected end of data"),
        (b"x", 0, "unexpected byte"),
    ],
)
def test_non_canonical_or_broken_input_is_rejected_with_its_offset(data: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as caught:
        bencode.decode(data)
    assert caught.value.offset == offset
    assert f"at byte {offset}" in str(caught.value)


def test_nesting_deeper_than_the_limit_is_rejected() -> None:
    depth = bencode.MAX_DEPTH
    assert bencode.decode(b"l" * depth + b"e" * depth) is not None
    with pytest.raises(DecodeError, match="nested deeper") as caught:
        bencode.decode(b"l" * (depth + 1) + b"e" * (depth + 1))
    assert caught.value.offset == depth


def test_nesting_of_a_hundred_thousand_levels_costs_one_error_not_a_crash() -> None:
    with pytest.raises(DecodeError, match="nested deeper"):
        bencode.decode(b"l" * 100_000)


def test_token_limit_is_enforced() -> None:
    data = b"l" + b"i1e" * 50 + b"e"
    assert len(bencode.decode(data, max_tokens=51)) == 50  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="too many values"):
        bencode.decode(data, max_tokens=50)


def test_huge_declared_string_length_is_rejected_before_allocating() -> None:
    with pytest.raises(DecodeError, match="runs past the end"):
        bencode.decode(b"999999999999:x")
    with pytest.raises(DecodeError, match="string length too long"):
        bencode.decode(b"9999999999999999999:x")


def test_unsorted_keys_are_accepted_only_when_asked_and_reported() -> None:
    data = b"d1:bi1e1:ai2ee"
    document = bencode.decode_document(data, allow_unsorted_keys=True)
    assert document.value == {b"b": 1, b"a": 2}
    assert document.unsorted_at == 7


def test_duplicate_keys_are_rejected_even_when_unsorted_keys_are_allowed() -> None:
    # The duplicate of "b" comes after an out-of-order "a", so it is not next to its twin.
    with pytest.raises(DecodeError, match="duplicate"):
        bencode.decode_document(b"d1:bi1e1:ai2e1:bi3ee", allow_unsorted_keys=True)


def test_spans_give_the_exact_bytes_of_each_top_level_value() -> None:
    data = b"d8:announce3:url4:infod4:name1:xee"
    document = bencode.decode_document(data)
    start, end = document.spans[b"info"]
    assert data[start:end] == b"d4:name1:xe"
    start, end = document.spans[b"announce"]
    assert data[start:end] == b"3:url"


def test_decode_needs_bytes() -> None:
    with pytest.raises(UsageError):
        bencode.decode("i1e")  # type: ignore[arg-type]


def test_encode_sorts_keys_and_writes_text_as_utf8() -> None:
    assert bencode.encode({"zeta": 1, b"alpha": "\u00e9"}) == b"d5:alpha2:\xc3\xa94:zetai1ee"


@pytest.mark.parametrize("value", [1.5, None, {1: 2}, {"a": 1, b"a": 2}])
def test_encode_refuses_what_bencode_cannot_carry(value: object) -> None:
    with pytest.raises(UsageError):
        bencode.encode(value)
