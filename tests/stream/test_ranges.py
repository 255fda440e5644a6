"""HTTP byte ranges: what a ``Range`` header asks of a file."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswarm.stream.ranges import MAX_RANGE_HEADER_BYTES, ByteRange, Unsatisfiable, parse_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 99, SIZE)),
        ("bytes=100-", ByteRange(100, 999, SIZE)),
        ("bytes=-100", ByteRange(900, 999, SIZE)),
        ("bytes=-5000", ByteRange(0, 999, SIZE)),
        ("bytes=990-5000", ByteRange(990, 999, SIZE)),
        ("bytes=999-999", ByteRange(999, 999, SIZE)),
        (" bytes=1-2 ", ByteRange(1, 2, SIZE)),
    ],
)
def test_a_single_range_is_served_as_206(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_past_the_end_is_unsatisfiable(header: str) -> None:
    answer = parse_range(header, SIZE)
    assert answer == Unsatisfiable(SIZE)
    assert isinstance(answer, Unsatisfiable)
    assert answer.content_range == "bytes */1000"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=500-100",  # reversed
        "bytes=0-1,5-9",  # several ranges
        "bytes=0-1," * 1000,  # enormous
        "items=0-10",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=1-2-3",
        "bytes=0x10-20",
        "bytes=" + "9" * 19 + "-",  # overflowing
        "bytes=-" + "9" * 40,
        "bytes=\x00-1",
        "bytes = 0-1",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits: \d without ASCII would take them
        "",
    ],
)
def test_a_malformed_header_is_ignored_and_the_whole_file_served(header: str) -> None:
    assert parse_range(header, SIZE) is None


def test_no_header_is_the_whole_file() -> None:
    assert parse_range(None, SIZE) is None


def test_an_empty_file_satisfies_no_range() -> None:
    assert parse_range("bytes=0-", 0) == Unsatisfiable(0)
    assert parse_range("bytes=-1", 0) == Unsatisfiable(0)


@given(st.text(max_size=MAX_RANGE_HEADER_BYTES + 20), st.integers(min_value=0, max_value=1 << 40))
def test_any_header_gives_a_range_inside_the_file_or_none_or_416(header: str, size: int) -> None:
    answer = parse_range(header, size)
    if isinstance(answer, ByteRange):
        assert 0 <= answer.first <= answer.last < size
        assert answer.length == answer.last - answer.first + 1
    else:
        assert answer is None or answer == Unsatisfiable(size)
