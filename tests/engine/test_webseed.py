"""BEP 19 web seeds in the session: a real HTTP server on loopback feeds pieces; hostile
servers cost only their own web seed."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.engine.webseed import RangeRequest
from bitswarm.errors import WebSeedError
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net import webseed
from bitswarm.net.session import Session
from bitswarm.net.webseed import WebSeedConnection
from webseed_http import Hostile, serve_folder, serve_hostile, serve_redirect


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)  # polling an observable state


def make_album(root: Path) -> Path:
    album = root / "my album"
    (album / "disc 1").mkdir(parents=True)
    rng = random.Random(19)
    (album / "disc 1" / "one #1.bin").write_bytes(rng.randbytes(70_000))
    (album / "disc 1" / "two.bin").write_bytes(rng.randbytes(90_001))
    (album / "naïve.txt").write_bytes(rng.randbytes(33_333))
    return album


def test_multi_file_torrent_from_a_web_seed_alone(tmp_path: Path) -> None:
    album = make_album(tmp_path / "www")
    with serve_folder(tmp_path / "www") as base:
        options = CreateOptions(version=TorrentVersion.V1, piece_length=32 * 1024, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))
        assert torrent.web_seeds == (base,)

        async def scenario() -> None:
            session = Session(port=0, host="127.0.0.1", strict=True)
            await session.start()
            try:
                download = await session.add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), 60)
                assert download.webseed_bytes == torrent.stream_size
            finally:
                await session.close()

        asyncio.run(scenario())
    for path in album.rglob("*"):
        if path.is_file():
            assert (tmp_path / "get" / path.relative_to(album.parent)).read_bytes() == path.read_bytes()


def test_web_seed_serving_wrong_bytes_is_banned_and_a_peer_finishes(tmp_path: Path) -> None:
    album = make_album(tmp_path / "www")
    with serve_folder(tmp_path / "www", corrupt=lambda path: path.endswith("two.bin")) as base:
        options = CreateOptions(version=TorrentVersion.V1, piece_length=16 * 1024, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))

        async def scenario() -> None:
            seeder = Session(port=0, host="127.0.0.1", strict=True)
            leecher = Session(port=0, host="127.0.0.1", strict=True)
            await seeder.start()
            await leecher.start()
            try:
                await seeder.add(torrent, album.parent)
                download = await leecher.add(torrent, tmp_path / "get")
                state = download.webseed_states[base]
                await wait_until(lambda: state.is_banned, "the web seed banned")
                assert not download.finished.is_set()
                assert download.webseed_bytes < torrent.stream_size
                await download.connect(("127.0.0.1", seeder.port))
                await asyncio.wait_for(download.finished.wait(), 60)
            finally:
                await leecher.close()
                await seeder.close()

        asyncio.run(scenario())
    for path in album.rglob("*"):
        if path.is_file():
            assert (tmp_path / "get" / path.relative_to(album.parent)).read_bytes() == path.read_bytes()


def test_a_web_seed_behind_a_redirect_is_followed(tmp_path: Path) -> None:
    album = make_album(tmp_path / "www")
    served: list[str] = []
    redirected: list[str] = []
    with serve_folder(tmp_path / "www", requests=served) as target, serve_redirect(target, redirected) as base:
        options = CreateOptions(version=TorrentVersion.V1, piece_length=16 * 1024, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))

        async def scenario() -> None:
            session = Session(port=0, host="127.0.0.1", strict=True)
            await session.start()
            try:
                download = await session.add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), 30)
                assert download.webseed_bytes == torrent.stream_size
            finally:
                await session.close()

        asyncio.run(scenario())
    files = {"/" + path.relative_to(tmp_path / "www").as_posix() for path in album.rglob("*") if path.is_file()}
    assert set(redirected) == set(served) == files
    for path in album.rglob("*"):
        if path.is_file():
            assert (tmp_path / "get" / path.relative_to(album.parent)).read_bytes() == path.read_bytes()


def test_one_connection_carries_many_requests_and_is_reopened_when_the_server_drops_it(tmp_path: Path) -> None:
    data = random.Random(5).randbytes(10_000)
    (tmp_path / "f.bin").write_bytes(data)
    clients: list[tuple[str, int]] = []
    with serve_folder(tmp_path, keep_alive_requests=3, clients=clients) as base:

        async def fetch_all() -> list[bytes]:
            connection = WebSeedConnection()
            try:
                first = await connection.fetch([RangeRequest(base + "f.bin", i * 1000, 1000, 10_000) for i in range(5)])
                return first + await connection.fetch(
                    [RangeRequest(base + "f.bin", i * 1000, 1000, 10_000) for i in (5, 6)]
                )
            finally:
                connection.close()

        parts = asyncio.run(fetch_all())
    assert parts == [data[i * 1000 : (i + 1) * 1000] for i in range(7)]
    # Three requests a connection (the server then drops it unannounced): 3 + 3 + 1.
    assert len(clients) == 7
    assert len(set(clients)) == 3


@pytest.mark.parametrize("target", ["file:///etc", "gopher://127.0.0.1:1"])
def test_a_redirect_away_from_http_is_refused(target: str) -> None:
    asked: list[str] = []
    with serve_redirect(target, asked) as base:

        async def fetch() -> None:
            connection = WebSeedConnection()
            with pytest.raises(WebSeedError, match="redirect to no http"):
                await connection.fetch([RangeRequest(base + "f.bin", 0, 10, 100)])

        asyncio.run(fetch())
    assert asked == ["/f.bin"]


@pytest.mark.parametrize("behaviour", Hostile.ALL)
def test_a_hostile_reply_is_refused_quickly_and_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch, behaviour: str
) -> None:
    monkeypatch.setattr(webseed, "REQUEST_TIMEOUT_S", 1.0)
    with serve_hostile(behaviour) as (base, log):

        async def fetch() -> None:
            connection = WebSeedConnection()
            started = time.monotonic()
            with pytest.raises(WebSeedError):
                await connection.fetch([RangeRequest(base + "f.bin", 16_384, 16_384, 1 << 30)])
            assert time.monotonic() - started < 3.0
            assert not connection.is_open  # closed: the stream's state is unknown

        asyncio.run(fetch())
    # The client stopped reading: a few socket buffers' worth, not the terabyte on offer.
    assert log.bytes_sent < 16 << 20


@pytest.mark.parametrize("behaviour", Hostile.ALL)
def test_hostile_web_seed_costs_only_itself_and_a_peer_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, behaviour: str
) -> None:
    monkeypatch.setattr(webseed, "REQUEST_TIMEOUT_S", 1.0)
    album = make_album(tmp_path / "www")
    with serve_hostile(behaviour) as (base, log):
        options = CreateOptions(version=TorrentVersion.V1, piece_length=32 * 1024, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))

        async def scenario() -> None:
            seeder = Session(port=0, host="127.0.0.1", strict=True)
            leecher = Session(port=0, host="127.0.0.1", strict=True)
            await seeder.start()
            await leecher.start()
            try:
                await seeder.add(torrent, album.parent)
                download = await leecher.add(torrent, tmp_path / "get")
                state = download.webseed_states[base]
                await wait_until(lambda: state.failures >= 1, "the web seed's first failure", 10.0)
                assert state.retry_at > time.monotonic()  # it waits before asking again
                await download.connect(("127.0.0.1", seeder.port))
                await asyncio.wait_for(download.finished.wait(), 30)
                assert download.webseed_bytes == 0
                assert not state.is_banned  # it answered wrongly, not with wrong bytes
            finally:
                await leecher.close()
                await seeder.close()

        asyncio.run(scenario())
    assert log.requests <= 2  # backing off: one request, and at most one retry on a new connection
    assert log.bytes_sent < 16 << 20
    for path in album.rglob("*"):
        if path.is_file():
            assert (tmp_path / "get" / path.relative_to(album.parent)).read_bytes() == path.read_bytes()
