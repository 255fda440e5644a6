"""BEP 19 web seeds in the session: a real HTTP server on loopback feeds pieces."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session
from webseed_http import serve_folder


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
