"""The compiled HTTP tracker checks against their Python references: on any input the
compiled one gives the reference's answer or leaves the request to it (None), and on the
requests clients really send it answers itself."""

from __future__ import annotations

from random import Random
from urllib.parse import quote_from_bytes

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bitswarm.net.tracker import fast_request
from bitswarm.tracker._http_fast import plain_announce, request_head
from bitswarm.tracker.server import AnnounceQuery, TrackerRequestError, parse_announce_query

KNOWN_NAMES = [
    b"info_hash", b"peer_id", b"port", b"event", b"key", b"ip", b"numwant", b"compact", b"left", b"uploaded",
    b"downloaded",
]  # fmt: skip
NAMES = st.sampled_from([*KNOWN_NAMES, b"corrupt", b"supportcrypto", b"no_peer_id", b"info%5Fhash", b"pe+er", b""])
ESCAPED_BYTES = st.binary(min_size=17, max_size=23).map(lambda raw: quote_from_bytes(raw, safe="").encode())
DIGITS = st.text("0123456789", min_size=0, max_size=21).map(str.encode)
LONG = st.binary(min_size=62, max_size=67).map(lambda raw: quote_from_bytes(raw, safe="").encode())
TRICKY = st.binary(max_size=30).map(lambda raw: bytes(b for b in raw if b not in b"&"))
QUERY_TEXT = st.text("%+=&0123456789abcdefABCDEFxyz_", max_size=40).map(str.encode)
VALUES = st.one_of(
    ESCAPED_BYTES,
    DIGITS,
    st.sampled_from([b"", b"0", b"1", b"%30", b"%31", b"started", b"stopped", b"completed", b"paused", b"sta%72ted"]),
    st.sampled_from([b"%", b"%4", b"%zz", b"+", b"65535", b"65536", b"0%31", b"1.5", b"-1"]),
    TRICKY,
    LONG,
    st.text("a", min_size=60, max_size=70).map(str.encode),
)
PAIRS = st.lists(st.tuples(NAMES, st.one_of(st.none(), VALUES)), max_size=16)


def _query(pairs: list[tuple[bytes, bytes | None]]) -> bytes:
    return b"&".join(name if value is None else name + b"=" + value for name, value in pairs)


def _reference(query: bytes) -> AnnounceQuery | None:
    try:
        return parse_announce_query(query)
    except TrackerRequestError:
        return None


def _agrees(query: bytes) -> AnnounceQuery | None:
    compiled = plain_announce(query)
    if compiled is not None:
        assert compiled == _reference(query)
    return compiled


VALID = {
    b"info_hash": quote_from_bytes(bytes(range(20)), safe="").encode(),
    b"peer_id": b"-BS0001-%2B%2F+abcdefghi",
    b"port": b"6881",
    b"uploaded": b"0",
    b"downloaded": b"12",
    b"left": b"345",
}


@settings(max_examples=3000)
@given(
    st.dictionaries(NAMES, st.one_of(st.none(), VALUES), max_size=3),
    st.lists(st.tuples(NAMES, st.one_of(st.none(), VALUES)), max_size=2),
    st.randoms(use_true_random=False),
)
@example({b"key": b"a" * 64}, [], Random(0))  # the limits, each side
@example({b"key": b"a" * 65}, [], Random(0))
@example({b"key": b"%61" * 65}, [], Random(0))
@example({b"left": b"9" * 18}, [], Random(0))
@example({b"left": b"9" * 19}, [], Random(0))
@example({b"uploaded": b"9" * 20}, [], Random(0))
@example({b"compact": b"%30"}, [], Random(0))
@example({b"port": b"65536"}, [], Random(0))
def test_plain_announce_gives_the_reference_answer_or_none(
    changes: dict[bytes, bytes | None], repeats: list[tuple[bytes, bytes | None]], rng: Random
) -> None:
    """A valid announce with a few parameters changed, added or repeated."""
    pairs: list[tuple[bytes, bytes | None]] = [*{**VALID, **changes}.items(), *repeats]
    rng.shuffle(pairs)
    _agrees(_query(pairs))


@settings(max_examples=300)
@given(PAIRS)
def test_plain_announce_on_random_parameters(pairs: list[tuple[bytes, bytes | None]]) -> None:
    _agrees(_query(pairs))


@settings(max_examples=500)
@given(QUERY_TEXT)
@example(b"")
@example(b"&&&")
@example(b"info_hash=%")
def test_plain_announce_on_bare_query_text(query: bytes) -> None:
    _agrees(query)


@settings(max_examples=500)
@given(
    info_hash=st.binary(min_size=20, max_size=20),
    peer_id=st.binary(min_size=20, max_size=20),
    port=st.integers(1, 65535),
    counts=st.tuples(*[st.integers(0, 10**18 - 1)] * 3),
    event=st.sampled_from([None, b"started", b"stopped", b"completed", b"paused", b""]),
    numwant=st.one_of(st.none(), st.integers(0, 10**6)),
    compact=st.sampled_from([None, b"0", b"1"]),
    extra=st.lists(st.sampled_from([b"corrupt=0", b"supportcrypto=1", b"no_peer_id=1", b"key=1a2b3c4d"]), unique=True),
    data=st.data(),
)
def test_the_announces_clients_send_are_answered_by_the_compiled_path(
    info_hash: bytes,
    peer_id: bytes,
    port: int,
    counts: tuple[int, int, int],
    event: bytes | None,
    numwant: int | None,
    compact: bytes | None,
    extra: list[bytes],
    data: st.DataObject,
) -> None:
    left, uploaded, downloaded = counts
    parts = [
        b"info_hash=" + quote_from_bytes(info_hash, safe="").encode(),
        b"peer_id=" + quote_from_bytes(peer_id, safe="").encode(),
        b"port=%d" % port,
        b"uploaded=%d&downloaded=%d&left=%d" % (uploaded, downloaded, left),
        *extra,
    ]
    if event is not None:
        parts.append(b"event=" + event)
    if numwant is not None:
        parts.append(b"numwant=%d" % numwant)
    if compact is not None:
        parts.append(b"compact=" + compact)
    query = b"&".join(data.draw(st.permutations(parts)))
    answer = _agrees(query)
    assert answer is not None
    assert answer[:2] == (info_hash, peer_id)
    assert answer[4:7] == counts


# Mostly requests the fast path takes, so that each header's effect is seen.
HEAD_LINES = st.sampled_from([
    b"GET /announce?info_hash=%01&x=1 HTTP/1.1", b"GET /announce HTTP/1.0", b"GET /scrape?info_hash=a HTTP/1.1",
    b"GET /announce/passkey?x HTTP/1.0", b"GET /announce HTTP/1.1", b"GET /scrape HTTP/1.0",
    b"GET /stats HTTP/1.1", b"POST /announce HTTP/1.1", b"get /announce HTTP/1.1", b"GET /announce HTTP/2.0",
    b"GET /announce  HTTP/1.1", b"GET /announce\x7f HTTP/1.1", b"GET /scrapex HTTP/1.0", b"GET /announc HTTP/1.0",
    b"GET / HTTP/1.0", b"GET /announce HTTP/1.1 ",
])  # fmt: skip
HEADER_NAMES = st.one_of(
    st.sampled_from([b"Connection", b"connection", b"CONNECTION"]),
    st.sampled_from(
        [
            b"Host",
            b"Content-Length",
            b"Transfer-Encoding",
            b"Upgrade",
            b"Expect",
            b"Authorization",
            b"authorization",
            b"User-Agent",
            b"X(bad)",
            b"",
            b"Conn ection",
            b"content-lengtH",
        ]
    ),
    st.binary(max_size=6),
)
HEADER_VALUES = st.one_of(
    st.lists(
        st.sampled_from(
            [b"close", b"Close", b"keep-alive", b"Keep-Alive", b"upgrade", b"Upgrade", b"te", b"", b"clos e"]
        ),
        min_size=1,
        max_size=3,
    ).flatmap(lambda tokens: st.sampled_from([b",", b", ", b" ,\t"]).map(lambda comma: comma.join(tokens))),
    st.sampled_from([b" close ", b"\tclose\t", b"Bearer abc ", b" Bearer\tx\t", b"\x7f", b"\x80", b"a\rb"]),
    st.binary(max_size=12),
)
HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4)
ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"", b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"])


@settings(max_examples=3000)
@given(HEAD_LINES, HEADERS, ENDINGS, st.booleans())
@example(b"GET /announce HTTP/1.0", [(b"Connection", b"close")], b"\r\n", False)
@example(b"GET /announce HTTP/1.0", [(b"X\x00", b"1")], b"\r\n", False)
@example(b"GET /announce HTTP/1.0", [(b"Connection", b"close, upgrade")], b"\r\n", False)
@example(b"GET /announce HTTP/1.0", [(b"Connection", b"close, keep-alive")], b"\r\n", False)
@example(b"GET /announce HTTP/1.1", [(b"Connection", b"keep-alive"), (b"Connection", b"close")], b"\r\n", False)
def test_request_head_gives_the_reference_answer(
    line: bytes, headers: list[tuple[bytes, bytes]], ending: bytes, bare_newlines: bool
) -> None:
    newline = b"\n" if bare_newlines else b"\r\n"
    head = line + b"\r\n" + b"".join(name + b":" + value + newline for name, value in headers) + ending
    assert request_head(head) == fast_request(head)


@settings(max_examples=2000)
@given(st.binary(max_size=120), st.integers(0, 120))
@example(b"\r\n\r\n", 0)
@example(b"GET /announce HTTP/1.0\r\n\r\n", 0)
def test_request_head_on_mangled_bytes(noise: bytes, at: int) -> None:
    base = b"GET /announce?a=1 HTTP/1.0\r\nHost: t\r\nConnection: close\r\n\r\n"
    for head in (noise, base[:at] + noise + base[at:], base[: at % len(base)] + b"\r\n\r\n"):
        assert request_head(head) == fast_request(head)
