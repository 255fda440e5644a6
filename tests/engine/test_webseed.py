"""BEP 19 web seeds in the session: a real HTTP server on loopback feeds pieces; hostile
servers cost only their own web seed."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.engine import webseed as webseed_plan
from bitswarm.engine.webseed import RangeRequest
from bitswarm.errors import WebSeedError
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net import webseed
from bitswarm.net.session import TorrentOptions
from bitswarm.net.webseed import WebSeedConnection
from webseed_http import Hostile, serve_folder, serve_hostile, serve_redirect

from .conftest import running_sessions


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


def same_album(album: Path, copy: Path) -> bool:
    return all(
        (copy / path.relative_to(album)).read_bytes() == path.read_bytes()
        for path in album.rglob("*")
        if path.is_file()
    )


def test_multi_file_torrent_from_a_web_seed_alone(tmp_path: Path) -> None:
    album = make_album(tmp_path / "www")
    with serve_folder(tmp_path / "www") as base:
        options = CreateOptions(version=TorrentVersion.V1, piece_length=32 * 1024, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))
        assert torrent.web_seeds == (base,)

        async def scenario() -> None:
            async with running_sessions(1) as (session,):
                download = await session.add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), 60)
                assert download.webseed_bytes == torrent.stream_size

        asyncio.run(scenario())
    assert same_album(album, tmp_path / "get" / album.name)


def test_web_seed_serving_wrong_bytes_is_banned_and_a_peer_finishes(tmp_path: Path) -> None:
    album = make_album(tmp_path / "www")
    with serve_folder(tmp_path / "www", corrupt=lambda path: path.endswith("two.bin")) as base:
        options = CreateOptions(version=TorrentVersion.V1, piece_length=16 * 1024, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))

        async def scenario() -> None:
            async with running_sessions(2) as (seeder, leecher):
                await seeder.add(torrent, album.parent)
                download = await leecher.add(torrent, tmp_path / "get")
                state = download.webseed_states[base]
                await wait_until(lambda: state.is_banned, "the web seed banned")
                assert not download.finished.is_set()
                assert download.webseed_bytes < torrent.stream_size
                await download.connect(("127.0.0.1", seeder.port))
                await asyncio.wait_for(download.finished.wait(), 60)

        asyncio.run(scenario())
    assert same_album(album, tmp_path / "get" / album.name)


def test_a_web_seed_behind_a_redirect_is_followed(tmp_path: Path) -> None:
    album = make_album(tmp_path / "www")
    served: list[str] = []
    redirected: list[str] = []
    with serve_folder(tmp_path / "www", requests=served) as target, serve_redirect(target, redirected) as base:
        options = CreateOptions(version=TorrentVersion.V1, piece_length=16 * 1024, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))

        async def scenario() -> None:
            async with running_sessions(1) as (session,):
                download = await session.add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), 30)
                assert download.webseed_bytes == torrent.stream_size

        asyncio.run(scenario())
    files = {"/" + path.relative_to(tmp_path / "www").as_posix() for path in album.rglob("*") if path.is_file()}
    assert set(redirected) == set(served) == files
    assert same_album(album, tmp_path / "get" / album.name)


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
            async with running_sessions(2) as (seeder, leecher):
                await seeder.add(torrent, album.parent)
                download = await leecher.add(torrent, tmp_path / "get")
                state = download.webseed_states[base]
                await wait_until(lambda: state.failures >= 1, "the web seed's first failure", 10.0)
                assert state.retry_at > time.monotonic()  # it waits before asking again
                await download.connect(("127.0.0.1", seeder.port))
                await asyncio.wait_for(download.finished.wait(), 30)
                assert download.webseed_bytes == 0
                assert not state.is_banned  # it answered wrongly, not with wrong bytes

        asyncio.run(scenario())
    assert log.requests <= 2  # backing off: one request, and at most one retry on a new connection
    assert log.bytes_sent < 16 << 20
    assert same_album(album, tmp_path / "get" / album.name)


V2_PIECE = 32 * 1024


def make_v2_album(root: Path) -> Path:
    """Files ending mid-piece, one of less than a block, an empty one, one of exactly two
    pieces: a v2 torrent aligns each to a piece boundary with no pad files between."""
    album = root / "v2 album"
    (album / "disc 1").mkdir(parents=True)
    rng = random.Random(52)
    sizes = {"disc 1/one.bin": 150_000, "disc 1/two.bin": 2 * V2_PIECE, "three.bin": 5_000, "four.bin": 0}
    sizes["five.bin"] = 40_000
    for name, size in sizes.items():
        (album / name).write_bytes(rng.randbytes(size))
    return album


def test_v2_only_multi_file_torrent_from_a_web_seed_alone(tmp_path: Path) -> None:
    album = make_v2_album(tmp_path / "www")
    with serve_folder(tmp_path / "www") as base:
        options = CreateOptions(version=TorrentVersion.V2, piece_length=V2_PIECE, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))
        assert torrent.version is TorrentVersion.V2

        async def scenario() -> None:
            async with running_sessions(1) as (session,):
                download = await session.add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), 60)
                assert download.webseed_bytes == torrent.total_size
                assert download.webseed_states[base].bad_pieces == 0

        asyncio.run(scenario())
    assert same_album(album, tmp_path / "get" / album.name)


def test_v2_pieces_wait_for_their_piece_layer_before_the_web_seed_fetches_them(tmp_path: Path) -> None:
    # As from a btmh-only magnet link: the info without the piece layers. Files of one
    # piece (their root is their hash) come from the web seed at once; the others only
    # once a peer (a slow one) has given their layer, and then from the web seed.
    album = make_v2_album(tmp_path / "www")
    with serve_folder(tmp_path / "www") as base:
        options = CreateOptions(version=TorrentVersion.V2, piece_length=V2_PIECE, web_seeds=[base])
        torrent = Torrent.decode(create(album, options))
        bare = dataclasses.replace(torrent, piece_layers={})
        one_piece = [entry for entry in torrent.data_files() if 0 < entry.length <= V2_PIECE]
        one_piece_bytes = sum(entry.length for entry in one_piece)

        async def scenario() -> None:
            async with running_sessions(2) as (seeder, session):
                slow = TorrentOptions(max_up=4096, super_seed=False, web_seeds=False)
                await seeder.add(torrent, album.parent, slow)
                download = await session.add(bare, tmp_path / "get")
                await wait_until(lambda: download.webseed_bytes == one_piece_bytes, "one-piece files")
                assert download.status()["pieces"] == len(one_piece)
                assert download.webseed_states[base].bad_pieces == 0  # nothing fetched before its hash
                await download.connect(("127.0.0.1", seeder.port))
                swarm = download.swarm
                assert swarm is not None
                await wait_until(lambda: swarm.hash_fetch is None, "the piece layers")
                # The slow peer would hold the blocks it was asked for: it goes, they return.
                await seeder.close()
                await asyncio.wait_for(download.finished.wait(), 60)
                assert download.webseed_bytes > one_piece_bytes
                assert download.webseed_states[base].bad_pieces == 0

        asyncio.run(scenario())
    assert same_album(album, tmp_path / "get" / album.name)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [(Hostile.SHORT_BODY, "closed in the middle of a reply"), (Hostile.CHUNKED, "without Content-Length")],
)
def test_a_reply_cut_short_or_without_a_length_is_refused_for_its_reason(behaviour: str, reason: str) -> None:
    with serve_hostile(behaviour) as (base, log):

        async def fetch() -> None:
            connection = WebSeedConnection()
            with pytest.raises(WebSeedError, match=reason):
                await connection.fetch([RangeRequest(base + "f.bin", 16_384, 16_384, 1 << 30)])
            assert not connection.is_open

        asyncio.run(fetch())
    assert log.requests == 1


def test_a_server_that_allows_one_connection_keeps_the_seed_at_one_without_a_wait(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(40 * 16 * 1024)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f.bin").write_bytes(data)
    refused: list[tuple[str, int]] = []
    clients: list[tuple[str, int]] = []
    with serve_folder(
        tmp_path / "www", keep_alive_requests=1000, max_connections=1, refused=refused, clients=clients
    ) as base:
        options = CreateOptions(version=TorrentVersion.V1, piece_length=16 * 1024, web_seeds=[base + "f.bin"])
        torrent = Torrent.decode(create(tmp_path / "www" / "f.bin", options))

        async def scenario() -> None:
            async with running_sessions(1) as (session,):
                download = await session.add(torrent, tmp_path / "get")
                await asyncio.wait_for(download.finished.wait(), 30)
                state = download.webseed_states[base + "f.bin"]
                assert state.max_connections == 1  # learnt from the 503
                assert state.failures == 0  # the first connection never failed: no backoff
                assert download.webseed_bytes == len(data)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(webseed_plan, "MAX_SPAN_BYTES", 4 * 16 * 1024)  # ten runs
            asyncio.run(scenario())
    assert (tmp_path / "get" / "f.bin").read_bytes() == data
    # The extra connections opened before the first refusal came back, and no more after it.
    assert 1 <= len(refused) <= webseed_plan.MAX_CONNECTIONS - 1
    assert len(set(clients) - set(refused)) == 1  # everything else over the first
