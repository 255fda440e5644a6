"""BEP 19 web seed planner: which URLs and byte ranges hold a piece; a seed's backoff and ban."""

from __future__ import annotations

from bitswarm.engine.webseed import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    MAX_BAD_PIECES,
    PadBytes,
    RangeRequest,
    WebSeedState,
    file_url,
    plan_piece,
    response_body_is_acceptable,
)
from bitswarm.metainfo import FileEntry
from bitswarm.storage.layout import Layout


def test_single_file_torrent_uses_the_url_itself() -> None:
    layout = Layout([FileEntry(("movie.mkv",), 100, 0)], 64)
    assert plan_piece("http://h/files/movie.mkv", "movie.mkv", layout, 1, is_multi_file=False) == [
        RangeRequest("http://h/files/movie.mkv", 64, 36, 100)
    ]


def test_single_file_url_with_trailing_slash_gets_the_name() -> None:
    assert file_url("http://h/files/", "a b.iso", ("a b.iso",), is_multi_file=False) == "http://h/files/a%20b.iso"


def test_multi_file_piece_spanning_two_files() -> None:
    files = [FileEntry(("album", "one.flac"), 50, 0), FileEntry(("album", "two.flac"), 70, 50)]
    layout = Layout(files, 64)
    assert plan_piece("http://h/seed/", "album", layout, 0, is_multi_file=True) == [
        RangeRequest("http://h/seed/album/one.flac", 0, 50, 50),
        RangeRequest("http://h/seed/album/two.flac", 0, 14, 70),
    ]
    assert plan_piece("http://h/seed", "album", layout, 1, is_multi_file=True) == [
        RangeRequest("http://h/seed/album/two.flac", 14, 56, 70),
    ]


def test_path_elements_are_percent_encoded_each() -> None:
    url = file_url("http://h/", "my album", ("my album", "dir/x?", "naïve #1.txt"), is_multi_file=True)
    assert url == "http://h/my%20album/dir%2Fx%3F/na%C3%AFve%20%231.txt"


def test_pad_files_are_zeros_not_requests() -> None:
    files = [
        FileEntry(("t", "a"), 40, 0),
        FileEntry(("t", ".pad", "24"), 24, 40, is_pad=True, attr="p"),
        FileEntry(("t", "b"), 64, 64),
    ]
    layout = Layout(files, 128)
    assert plan_piece("http://h/", "t", layout, 0, is_multi_file=True) == [
        RangeRequest("http://h/t/a", 0, 40, 40),
        PadBytes(24),
        RangeRequest("http://h/t/b", 0, 64, 64),
    ]


def test_range_header_is_inclusive() -> None:
    assert RangeRequest("http://h/x", 10, 5, 100).header == "bytes=10-14"


def test_only_the_exact_range_is_accepted() -> None:
    part = RangeRequest("http://h/x", 10, 5, 100)
    assert response_body_is_acceptable(part, 206, "bytes 10-14/100", 5)
    assert not response_body_is_acceptable(part, 206, "bytes 0-4/100", 5)
    assert not response_body_is_acceptable(part, 206, "bytes 10-14/100", 4)
    assert not response_body_is_acceptable(part, 200, None, 5)  # a whole file for a part
    whole = RangeRequest("http://h/x", 0, 100, 100)
    assert response_body_is_acceptable(whole, 200, None, 100)
    assert not response_body_is_acceptable(whole, 404, None, 100)


def test_failures_back_off_doubling_up_to_a_ceiling() -> None:
    state = WebSeedState("http://h/")
    assert state.may_request(0.0)
    state.request_failed(0.0)
    assert state.retry_at == BACKOFF_FIRST_S
    assert not state.may_request(1.0)
    state.request_failed(10.0)
    assert state.retry_at == 10.0 + 2 * BACKOFF_FIRST_S
    for _ in range(40):
        state.request_failed(100.0)
    assert state.retry_at == 100.0 + BACKOFF_MAX_S
    state.piece_served()
    assert state.may_request(100.0)


def test_seed_is_banned_after_repeated_bad_pieces() -> None:
    state = WebSeedState("http://h/")
    for _ in range(MAX_BAD_PIECES - 1):
        state.piece_failed_hash()
    assert not state.is_banned
    state.piece_failed_hash()
    assert state.is_banned
    assert not state.may_request(1e9)
