"""BEP 19 web seed planner: which URLs and byte ranges hold a piece; a seed's backoff and ban."""

from __future__ import annotations

from bitswarm.engine.webseed import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    DEADLINE_SPAN_BYTES,
    FIRST_SPAN_BYTES,
    MAX_BAD_PIECES,
    MAX_CONNECTIONS,
    MAX_SPAN_BYTES,
    MIN_SPAN_BYTES,
    RUN_TARGET_S,
    BodySlice,
    PadBytes,
    RangeRequest,
    RunPlan,
    WebSeedState,
    file_url,
    plan_piece,
    plan_run,
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


def _serve(content: dict[str, bytes], requests: tuple[RangeRequest, ...]) -> list[bytes]:
    """What a web seed holding ``content`` (URL -> file bytes) answers to ``requests``."""
    return [content[request.url][request.first : request.first + request.length] for request in requests]


def _fill(run: RunPlan, piece_sizes: list[int], bodies: list[bytes]) -> list[bytes]:
    """The pieces as the I/O layer fills them: zeroed buffers, each body cut by its slices."""
    pieces = [bytearray(size) for size in piece_sizes]
    for body, parts in zip(bodies, run.slices, strict=True):
        assert sum(part.length for part in parts) == len(body)
        at = 0
        for part in parts:
            assert part.begin + part.length <= piece_sizes[part.piece]
            pieces[part.piece][part.begin : part.begin + part.length] = body[at : at + part.length]
            at += part.length
    return [bytes(piece) for piece in pieces]


def _torrent_bytes(files: list[FileEntry], content: dict[str, bytes]) -> bytes:
    return b"".join(bytes(entry.length) if entry.is_pad else content["http://h/t/" + entry.path[-1]] for entry in files)


def test_a_run_of_pieces_of_one_file_is_one_request_whose_body_fills_its_pieces() -> None:
    layout = Layout([FileEntry(("movie.mkv",), 300, 0)], 64)
    run = plan_run("http://h/m", "movie.mkv", layout, [1, 2, 3, 4], is_multi_file=False)
    assert run.requests == (RangeRequest("http://h/m", 64, 236, 300),)  # pieces 1..4, the last one short
    assert run.slices == ((BodySlice(0, 0, 64), BodySlice(1, 0, 64), BodySlice(2, 0, 64), BodySlice(3, 0, 44)),)
    assert run.sizes == (64, 64, 64, 44)
    content = bytes(range(256)) + bytes(range(44))
    assert _fill(run, [64, 64, 64, 44], _serve({"http://h/m": content}, run.requests)) == [
        content[64:128],
        content[128:192],
        content[192:256],
        content[256:300],
    ]


def test_pieces_that_are_not_consecutive_are_separate_requests() -> None:
    layout = Layout([FileEntry(("movie.mkv",), 300, 0)], 64)
    run = plan_run("http://h/m", "movie.mkv", layout, [0, 2], is_multi_file=False)
    assert run.requests == (RangeRequest("http://h/m", 0, 64, 300), RangeRequest("http://h/m", 128, 64, 300))
    assert run.slices == ((BodySlice(0, 0, 64),), (BodySlice(1, 0, 64),))


def test_a_run_across_files_and_a_pad_file_asks_each_file_once_and_keeps_pad_bytes_zeros() -> None:
    files = [
        FileEntry(("t", "a"), 100, 0),
        FileEntry(("t", "b"), 40, 100),
        FileEntry(("t", ".pad", "52"), 52, 140, is_pad=True, attr="p"),
        FileEntry(("t", "c"), 90, 192),
    ]
    content = {
        "http://h/t/a": bytes(range(1, 101)),
        "http://h/t/b": bytes(range(101, 141)),
        "http://h/t/c": bytes(range(141, 231)),
    }
    layout = Layout(files, 64)
    indexes = list(range(layout.num_pieces))
    run = plan_run("http://h/", "t", layout, indexes, is_multi_file=True)
    assert run.requests == (
        RangeRequest("http://h/t/a", 0, 100, 100),
        RangeRequest("http://h/t/b", 0, 40, 40),
        RangeRequest("http://h/t/c", 0, 90, 90),
    )
    sizes = [layout.piece_size(index) for index in indexes]
    assert list(run.sizes) == sizes  # pad bytes included
    pieces = _fill(run, sizes, _serve(content, run.requests))
    whole = _torrent_bytes(files, content)
    assert pieces == [whole[at : at + 64] for at in range(0, len(whole), 64)]
    assert pieces[2][12:] == bytes(52)  # the pad file's bytes, never fetched
    # The same bytes as asking piece by piece.
    single = []
    for index in indexes:
        alone = plan_run("http://h/", "t", layout, [index], is_multi_file=True)
        single += _fill(alone, [layout.piece_size(index)], _serve(content, alone.requests))
    assert single == pieces


def test_a_v2_files_last_piece_leaves_its_tail_to_the_buffers_zeros() -> None:
    # v2: each file starts on a piece boundary, with no pad file between (BEP 52).
    files = [FileEntry(("t", "a"), 100, 0), FileEntry(("t", "b"), 30, 128)]
    layout = Layout(files, 64)
    run = plan_run("http://h/", "t", layout, [1, 2], is_multi_file=True)
    assert run.requests == (RangeRequest("http://h/t/a", 64, 36, 100), RangeRequest("http://h/t/b", 0, 30, 30))
    assert run.slices == ((BodySlice(0, 0, 36),), (BodySlice(1, 0, 30),))
    assert run.sizes == (36, 30)


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


def test_a_seed_gains_a_connection_per_run_served_up_to_the_cap_and_loses_one_per_failure() -> None:
    state = WebSeedState("http://h/")
    assert state.connections_wanted == 1
    wanted = []
    for _ in range(MAX_CONNECTIONS + 2):
        state.run_served(1 << 20, 0.01)
        wanted.append(state.connections_wanted)
    assert wanted == [min(MAX_CONNECTIONS, count) for count in range(2, MAX_CONNECTIONS + 4)]
    state.request_failed(0.0)
    assert state.connections_wanted == MAX_CONNECTIONS - 1
    for _ in range(MAX_CONNECTIONS + 2):
        state.request_failed(0.0)
    assert state.connections_wanted == 1  # never none: the first connection waits out the backoff


def test_a_failed_extra_connection_lowers_the_cap_without_a_wait() -> None:
    state = WebSeedState("http://h/")
    state.run_served(1 << 20, 0.01)
    state.run_served(1 << 20, 0.01)
    assert state.connections_wanted == 3
    state.extra_connection_failed()  # the third was refused: two work
    assert (state.connections_wanted, state.max_connections) == (2, 2)
    assert state.may_request(0.0)  # the others carry on at once
    assert state.failures == 0
    state.run_served(1 << 20, 0.01)
    assert state.connections_wanted == 2  # the cap holds
    state.extra_connection_failed()
    state.extra_connection_failed()
    assert (state.connections_wanted, state.max_connections) == (1, 1)


def test_a_seed_held_to_one_connection_never_asks_for_a_second() -> None:
    state = WebSeedState("http://h/", max_connections=1)
    for _ in range(5):
        state.run_served(1 << 20, 0.01)
    assert state.connections_wanted == 1


def test_seed_is_banned_after_repeated_bad_pieces() -> None:
    state = WebSeedState("http://h/")
    for _ in range(MAX_BAD_PIECES - 1):
        state.piece_failed_hash()
    assert not state.is_banned
    state.piece_failed_hash()
    assert state.is_banned
    assert not state.may_request(1e9)


def test_a_run_is_sized_to_the_seeds_pace_between_its_bounds_and_halved_by_a_failure() -> None:
    state = WebSeedState("http://h/")
    assert state.span_bytes == FIRST_SPAN_BYTES  # the pace is not known yet
    state.run_served(1 << 20, 1.0)  # 1 MiB/s
    assert state.span_bytes == int(RUN_TARGET_S * (1 << 20))
    state.run_served(1 << 20, 0.001)  # loopback
    assert state.span_bytes == MAX_SPAN_BYTES
    state.run_served(16 * 1024, 10.0)  # a crawl: the least run still asks for more than a piece
    assert state.span_bytes == MIN_SPAN_BYTES
    state.run_served(1 << 20, 1.0)
    state.request_failed(0.0)
    assert state.span_bytes == int(RUN_TARGET_S * (1 << 20)) // 2
    for _ in range(20):
        state.request_failed(0.0)
    assert state.span_bytes == MIN_SPAN_BYTES


def test_a_run_is_short_while_a_reader_waits_for_pieces() -> None:
    state = WebSeedState("http://h/")
    state.run_served(1 << 20, 0.001)
    assert state.next_span_bytes(reader_waits=False) == MAX_SPAN_BYTES
    assert state.next_span_bytes(reader_waits=True) == DEADLINE_SPAN_BYTES < MAX_SPAN_BYTES
    state.run_served(16 * 1024, 10.0)  # slower than the short run already
    assert state.next_span_bytes(reader_waits=True) == MIN_SPAN_BYTES
