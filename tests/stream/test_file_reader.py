"""The file API: ``TorrentRuntime.open`` reads verified bytes while the torrent downloads."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.errors import StreamTimeout, UsageError
from bitswarm.magnet import Magnet
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentOptions
from engine.conftest import running_sessions

PIECE = 32 * 1024


def make_torrent(folder: Path, sizes: dict[str, int], *, version: TorrentVersion = TorrentVersion.V1) -> Torrent:
    rng = random.Random(11)
    for name, size in sizes.items():
        target = folder / "movie" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(size))
    return Torrent.decode(create(folder / "movie", CreateOptions(version=version, piece_length=PIECE)))


@pytest.mark.parametrize("version", [TorrentVersion.V1, TorrentVersion.V2, TorrentVersion.HYBRID])
def test_reader_returns_the_files_bytes_while_a_rate_limited_seed_sends_them(
    tmp_path: Path, version: TorrentVersion
) -> None:
    torrent = make_torrent(tmp_path / "seed", {"a.bin": 70_000, "film.mp4": 1_500_000}, version=version)
    expected = (tmp_path / "seed" / "movie" / "film.mp4").read_bytes()

    async def scenario() -> None:
        async with running_sessions(2) as (seeder, viewer):
            seeder.up_limit.rate = 2_000_000
            await seeder.add(torrent, tmp_path / "seed")
            runtime = await viewer.add(torrent, tmp_path / "view")
            await runtime.connect(("127.0.0.1", seeder.port))
            async with runtime.open("film.mp4", timeout_s=30) as reader:
                assert reader.length == len(expected)
                reader.seek(-1000, os.SEEK_END)
                assert await reader.readexactly(1000) == expected[-1000:]
                reader.seek(700_000)
                assert await reader.readexactly(50_000) == expected[700_000:750_000]
                reader.seek(0)
                assert await reader.readexactly(len(expected)) == expected
                assert await reader.read() == b""
            await asyncio.wait_for(runtime.finished.wait(), 60)

    asyncio.run(scenario())


def test_reader_raises_a_clear_timeout_when_no_source_has_the_piece(tmp_path: Path) -> None:
    torrent = make_torrent(tmp_path / "seed", {"film.mp4": 300_000})

    async def scenario() -> None:
        async with running_sessions(1) as (viewer,):
            runtime = await viewer.add(torrent, tmp_path / "view")
            reader = runtime.open(0, timeout_s=0.3)
            with pytest.raises(StreamTimeout, match=r"piece 0 not received within 0\.3 s"):
                await reader.read()
            reader.close()
            with pytest.raises(UsageError, match="closed"):
                await reader.read()
            assert runtime.swarm is not None
            assert not runtime.swarm.picker.has_deadlines

    asyncio.run(scenario())


def test_open_names_a_file_by_index_path_or_refuses(tmp_path: Path) -> None:
    torrent = make_torrent(tmp_path / "seed", {"a.bin": 10, "sub/b.bin": 20})

    async def scenario() -> None:
        session = Session(port=0, host="127.0.0.1", strict=True)
        await session.start()
        try:
            runtime = await session.add(torrent, tmp_path / "seed", TorrentOptions())
            assert runtime.open(1).name == "movie/sub/b.bin"
            assert runtime.open("sub/b.bin").length == 20
            with pytest.raises(UsageError, match="files are 0 to 1"):
                runtime.open(2)
            with pytest.raises(UsageError, match="no file"):
                runtime.open("../etc/passwd")
            # A complete torrent reads straight from its verified pieces.
            async with runtime.open("a.bin") as reader:
                assert await reader.read() == (tmp_path / "seed" / "movie" / "a.bin").read_bytes()
        finally:
            await session.close()
        assert not session.failures

    asyncio.run(scenario())


def test_a_file_left_out_of_the_download_streams_when_read(tmp_path: Path) -> None:
    torrent = make_torrent(tmp_path / "seed", {"a.bin": 40_000, "b.mp4": 200_000})
    expected = (tmp_path / "seed" / "movie" / "b.mp4").read_bytes()

    async def scenario() -> None:
        async with running_sessions(2) as (seeder, viewer):
            await seeder.add(torrent, tmp_path / "seed")
            positions = {"/".join(entry.path): index for index, entry in enumerate(torrent.files)}
            options = TorrentOptions(wanted_files={positions["movie/a.bin"]})
            runtime = await viewer.add(torrent, tmp_path / "view", options)
            await runtime.connect(("127.0.0.1", seeder.port))
            await asyncio.wait_for(runtime.finished.wait(), 30)  # a.bin alone
            async with runtime.open("b.mp4", timeout_s=30) as reader:
                assert await reader.readexactly(len(expected)) == expected

    asyncio.run(scenario())


def test_a_hybrid_magnet_link_streams_from_its_metadata(tmp_path: Path) -> None:
    torrent = make_torrent(tmp_path / "seed", {"film.mp4": 600_000}, version=TorrentVersion.HYBRID)
    expected = (tmp_path / "seed" / "movie" / "film.mp4").read_bytes()

    async def scenario() -> None:
        async with running_sessions(2) as (seeder, viewer):
            await seeder.add(torrent, tmp_path / "seed")
            link = Magnet(torrent.info_hash_v1, torrent.info_hash_v2, peers=(("127.0.0.1", seeder.port),))
            fetching = await viewer.add_magnet(link, tmp_path / "view")
            runtime = await asyncio.wait_for(fetching.wait_for_torrent(), 30)
            async with runtime.open("film.mp4", timeout_s=30) as reader:
                reader.seek(-5000, os.SEEK_END)
                assert await reader.readexactly(5000) == expected[-5000:]
                reader.seek(0)
                assert await reader.readexactly(len(expected)) == expected
            assert runtime.closed_reasons == {}

    asyncio.run(scenario())


def test_a_file_is_named_by_index_path_below_the_name_whole_path_or_file_name(tmp_path: Path) -> None:
    torrent = make_torrent(tmp_path / "seed", {"a.bin": 10, "sub/b.mkv": 20})
    assert [torrent.data_file_index(spec) for spec in ("1", "sub/b.mkv", "movie/sub/b.mkv", "b.mkv")] == [1, 1, 1, 1]
    assert [torrent.data_file_index(spec) for spec in ("2", "c.mkv", "sub", "../a.bin")] == [None] * 4


def test_a_seek_made_while_a_read_waits_wins(tmp_path: Path) -> None:
    torrent = make_torrent(tmp_path / "seed", {"film.mp4": 300_000})
    expected = (tmp_path / "seed" / "movie" / "film.mp4").read_bytes()

    async def scenario() -> None:
        async with running_sessions(2) as (seeder, viewer):
            runtime = await viewer.add(torrent, tmp_path / "view")
            reader = runtime.open(0, timeout_s=30)
            waiting = asyncio.ensure_future(reader.read(1000))
            await asyncio.sleep(0)  # one turn: the read runs until it waits for piece 0 (no peer yet)
            reader.seek(200_000)
            await seeder.add(torrent, tmp_path / "seed")
            await runtime.connect(("127.0.0.1", seeder.port))
            assert await waiting == expected[:1000]  # what was asked, from where it was asked
            assert reader.tell() == 200_000
            assert await reader.readexactly(1000) == expected[200_000:201_000]
            reader.close()

    asyncio.run(scenario())
