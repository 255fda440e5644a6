"""BEP 19 web seeds against a real nginx (Debian's nginx-light): long ranges over a few
keep-alive connections, and servers that ignore ranges or close after each reply (one that
allows one connection per client: tests/engine/test_webseed.py). bitswarm runs
in-process; nginx's access log says what it was asked and over how many connections."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.engine import webseed as plan
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentRuntime
from webseed_nginx import serve_with_nginx

PIECE = 64 * 1024
SPAN = 8 * PIECE  # runs of 8 pieces (monkeypatched below), so a few MiB make many runs
SIZE = 3 * 1024 * 1024 + 12_345  # a short last piece
DEADLINE_S = 60.0


@pytest.fixture(autouse=True)
def short_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "MAX_SPAN_BYTES", SPAN)


def make_file(www: Path, size: int = SIZE) -> bytes:
    www.mkdir(parents=True, exist_ok=True)
    data = random.Random(19).randbytes(size)
    (www / "big.bin").write_bytes(data)
    return data


def web_torrent(www: Path, url: str, piece_length: int = PIECE) -> Torrent:
    options = CreateOptions(version=TorrentVersion.V1, piece_length=piece_length, web_seeds=[url + "big.bin"])
    return Torrent.decode(create(www / "big.bin", options))


@asynccontextmanager
async def open_session() -> AsyncIterator[Session]:
    session = Session(port=0, host="127.0.0.1", strict=True)
    await session.start()
    try:
        yield session
    finally:
        await session.close()
    assert not session.failures


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)  # polling an observable state: `what`


async def download(torrent: Torrent, folder: Path) -> TorrentRuntime:
    async with open_session() as session:
        runtime = await session.add(torrent, folder)
        await asyncio.wait_for(runtime.finished.wait(), DEADLINE_S)
        return runtime


def test_a_run_of_pieces_is_one_range_and_the_seed_opens_a_few_keep_alive_connections(
    tmp_path: Path, nginx_path: str
) -> None:
    data = make_file(tmp_path / "www")
    with serve_with_nginx(tmp_path / "www", tmp_path / "nginx", nginx_path) as nginx:
        torrent = web_torrent(tmp_path / "www", nginx.url)
        runtime = asyncio.run(download(torrent, tmp_path / "get"))
        rows = nginx.requests()
    assert (tmp_path / "get" / "big.bin").read_bytes() == data
    assert runtime.webseed_bytes == SIZE
    assert all(status == 206 for _, _, status, _, _ in rows)
    sizes = [sent for _, _, _, sent, _ in rows]
    assert sum(sizes) == SIZE  # every byte once
    pieces = torrent.num_pieces
    runs = -(-pieces // (SPAN // PIECE))
    # A run stops early only where another connection's run began: a handful more at most,
    # against one request per piece before.
    assert runs <= len(rows) <= runs + 2 * plan.MAX_CONNECTIONS
    assert max(sizes) == SPAN
    connections = {connection for connection, *_ in rows}
    # One at first, a second after the first run came whole, never more than the cap; each
    # carries several requests (keep-alive).
    assert 2 <= len(connections) <= plan.MAX_CONNECTIONS
    assert max(number for _, number, *_ in rows) >= 2


def test_a_server_that_ignores_ranges_is_refused_at_its_headers_and_the_seed_waits(
    tmp_path: Path, nginx_path: str
) -> None:
    make_file(tmp_path / "www")
    root = (tmp_path / "www").resolve()
    # max_ranges 0: nginx answers every Range with the whole file (200), as a server without
    # range support does.
    with serve_with_nginx(root, tmp_path / "nginx", nginx_path, server_body=f"root {root}; max_ranges 0;") as nginx:
        torrent = web_torrent(tmp_path / "www", nginx.url)

        async def scenario() -> None:
            async with open_session() as session:
                runtime = await session.add(torrent, tmp_path / "get")
                state = runtime.webseed_states[nginx.url + "big.bin"]
                await wait_until(lambda: state.failures >= 1, "the web seed's first failure")
                assert state.retry_at > time.monotonic()  # it waits before asking again
                assert runtime.webseed_bytes == 0
                assert not state.is_banned  # it answered wrongly, not with wrong bytes

        asyncio.run(scenario())
        rows = nginx.requests()
    # One request over one connection, answered 200, and nothing asked again meanwhile.
    assert [(status, number) for _, number, status, _, _ in rows] == [(200, 1)]


def test_a_whole_file_in_one_piece_is_taken_from_a_server_that_ignores_ranges(tmp_path: Path, nginx_path: str) -> None:
    data = make_file(tmp_path / "www", 40_000)
    root = (tmp_path / "www").resolve()
    with serve_with_nginx(root, tmp_path / "nginx", nginx_path, server_body=f"root {root}; max_ranges 0;") as nginx:
        torrent = web_torrent(tmp_path / "www", nginx.url)
        assert torrent.num_pieces == 1
        asyncio.run(download(torrent, tmp_path / "get"))
        rows = nginx.requests()
    assert (tmp_path / "get" / "big.bin").read_bytes() == data
    assert [status for _, _, status, _, _ in rows] == [200]  # the range was the whole file


def test_a_server_that_closes_after_each_reply_is_asked_again_on_new_connections(
    tmp_path: Path, nginx_path: str
) -> None:
    # Several files: a run spanning them pipelines one request per file, and the server
    # closes after the first reply; the rest are asked again on a new connection.
    www = tmp_path / "www"
    album = www / "album"
    album.mkdir(parents=True)
    rng = random.Random(3)
    files = {f"{number:02}.bin": rng.randbytes(rng.randrange(20_000, 150_000)) for number in range(8)}
    for name, content in files.items():
        (album / name).write_bytes(content)
    root = www.resolve()
    closing = f"root {root}; keepalive_requests 1;"
    with serve_with_nginx(root, tmp_path / "nginx", nginx_path, server_body=closing) as nginx:
        options = CreateOptions(version=TorrentVersion.V1, piece_length=PIECE, web_seeds=[nginx.url])
        torrent = Torrent.decode(create(album, options))
        runtime = asyncio.run(download(torrent, tmp_path / "get"))
        rows = nginx.requests()
    assert all((tmp_path / "get" / "album" / name).read_bytes() == content for name, content in files.items())
    assert runtime.webseed_bytes == sum(len(content) for content in files.values())
    assert all(status == 206 for _, _, status, _, _ in rows)
    assert all(number == 1 for _, number, *_ in rows)  # one reply per connection
    assert len({connection for connection, *_ in rows}) == len(rows)
    assert sum(sent for _, _, _, sent, _ in rows) == runtime.webseed_bytes  # nothing fetched twice
