"""The media rate a stream reader models its player with: an MP4's duration from its mvhd,
a Matroska or WebM file's from its Segment Info."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session
from bitswarm.stream import matroska, mp4
from bitswarm.stream.server import StreamServer, matroska_seconds, mp4_seconds
from stream.media import make_mp4, make_webm, probe, require


def test_mvhd_of_both_versions() -> None:
    v0 = bytes(4) + bytes(8) + (600).to_bytes(4, "big") + (6000).to_bytes(4, "big") + bytes(12)
    assert mp4.mvhd_seconds(v0) == 10.0
    v1 = b"\x01" + bytes(3) + bytes(16) + (1000).to_bytes(4, "big") + (90_500).to_bytes(8, "big")
    assert mp4.mvhd_seconds(v1) == 90.5
    assert mp4.mvhd_seconds(b"\x02" + bytes(31)) is None  # an unknown version
    assert mp4.mvhd_seconds(bytes(4) + bytes(8) + bytes(4) + (5).to_bytes(4, "big") + bytes(12)) is None  # timescale 0
    assert mp4.mvhd_seconds(v0[:20]) is None


@pytest.mark.parametrize(
    ("header", "limit", "expected"),
    [
        ((24).to_bytes(4, "big") + b"ftyp", 100, mp4.Box(b"ftyp", 0, 8, 24)),
        ((1).to_bytes(4, "big") + b"mdat" + (40).to_bytes(8, "big"), 100, mp4.Box(b"mdat", 0, 16, 40)),
        ((0).to_bytes(4, "big") + b"mdat", 100, mp4.Box(b"mdat", 0, 8, 100)),
        ((200).to_bytes(4, "big") + b"moov", 100, None),  # runs past the file
        ((4).to_bytes(4, "big") + b"free", 100, None),  # smaller than its own header
        ((1).to_bytes(4, "big") + b"mdat" + (8).to_bytes(8, "big"), 100, None),
        ((16).to_bytes(4, "big") + b"mo\xffv", 100, None),
        (b"\x00\x00", 100, None),
    ],
)
def test_box_headers_are_read_strictly(header: bytes, limit: int, expected: mp4.Box | None) -> None:
    assert mp4.read_box(header, 0, limit) == expected


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=1 << 40))
def test_any_bytes_are_a_box_inside_the_limit_or_none(data: bytes, limit: int) -> None:
    box = mp4.read_box(data, 0, limit)
    assert box is None or (box.header <= box.size and box.end <= limit)
    seconds = mp4.mvhd_seconds(data)
    assert seconds is None or seconds > 0


@pytest.mark.parametrize("faststart", [False, True], ids=["moov-at-the-end", "faststart"])
def test_the_duration_of_a_real_mp4_is_ffprobes(tmp_path: Path, faststart: bool) -> None:
    (tmp_path / "seed").mkdir()
    movie = make_mp4(tmp_path / "seed" / "clip.mp4", seconds=6.0)
    if faststart:
        moved = tmp_path / "fast.mp4"
        ffmpeg = require("ffmpeg")
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(movie), "-c", "copy", "-movflags", "+faststart",
                        str(moved)], check=True, timeout=60)  # fmt: skip
        shutil.move(moved, movie)
    expected = probe(movie).duration_s
    torrent = Torrent.decode(create(movie, CreateOptions(version=TorrentVersion.V1, piece_length=16 * 1024)))

    async def scenario() -> None:
        session = Session(port=0, host="127.0.0.1", strict=True)
        await session.start()
        try:
            runtime = await session.add(torrent, movie.parent)
            async with runtime.open(0, head_and_tail=False) as reader:
                seconds = await mp4_seconds(reader)
            assert seconds == pytest.approx(expected, abs=0.1)
            server = StreamServer(runtime)
            runner, _ = await server.start("127.0.0.1", 0)
            try:
                reader = runtime.open(0)
                server.follow_media_rate(server.files[0], reader)  # as a response's reader does
                async with asyncio.timeout(10):
                    while reader.window.media_rate is None:
                        await asyncio.sleep(0.01)  # polling an observable state
                assert reader.window.media_rate == pytest.approx(movie.stat().st_size / expected, rel=0.02)
                reader.close()
            finally:
                server.close()
                await runner.cleanup()
        finally:
            await session.close()
        assert not session.failures

    asyncio.run(scenario())


def ebml(element_id: bytes, payload: bytes) -> bytes:
    assert len(payload) < 127
    return element_id + bytes([0x80 | len(payload)]) + payload


def test_matroska_info_gives_seconds_by_its_timestamp_scale() -> None:
    scale = ebml(b"\x2a\xd7\xb1", (1_000_000).to_bytes(3, "big"))
    assert matroska.info_seconds(scale + ebml(b"\x44\x89", struct.pack(">d", 12_500.0))) == 12.5
    assert matroska.info_seconds(ebml(b"\x44\x89", struct.pack(">f", 2000.0))) == 2.0  # the default scale
    assert matroska.info_seconds(scale) is None  # no duration (a live recording)
    assert matroska.info_seconds(ebml(b"\x44\x89", struct.pack(">d", float("nan")))) is None
    assert matroska.info_seconds(ebml(b"\x44\x89", struct.pack(">d", -1.0))) is None
    assert matroska.info_seconds(b"\x44\x89\x88" + bytes(3)) is None  # runs past the payload


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"\x1a\x45\xdf\xa3\x84", 100, matroska.Element(0x1A45DFA3, 0, 5, 4)),
        (b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff", 100, matroska.Element(0x18538067, 0, 12, 88)),
        (b"\x15\x49\xa9\x66\x40\x02", 100, matroska.Element(0x1549A966, 0, 6, 2)),
        (b"\x15\x49\xa9\x66\xff", 10, matroska.Element(0x1549A966, 0, 5, 5)),  # unknown size: to the end
        (b"\x15\x49\xa9\x66\xff", 4, None),  # not even its header fits
        (b"\x15\x49\xa9\x66\x90", 10, None),  # runs past the limit
        (b"\x00\x80", 100, None),  # no length marker
        (b"\x1a\x45", 100, None),  # cut short
    ],
)
def test_ebml_element_headers_are_read_strictly(data: bytes, limit: int, expected: matroska.Element | None) -> None:
    assert matroska.read_element(data, 0, limit) == expected


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=1 << 40))
def test_any_bytes_are_an_element_inside_the_limit_or_none(data: bytes, limit: int) -> None:
    element = matroska.read_element(data, 0, limit)
    assert element is None or element.end <= limit
    seconds = matroska.info_seconds(data)
    assert seconds is None or seconds > 0


def test_the_duration_of_a_real_webm_is_ffprobes(tmp_path: Path) -> None:
    (tmp_path / "seed").mkdir()
    movie = make_webm(tmp_path / "seed" / "clip.webm", seconds=6.0)
    expected = probe(movie).duration_s
    torrent = Torrent.decode(create(movie, CreateOptions(version=TorrentVersion.V1, piece_length=16 * 1024)))

    async def scenario() -> None:
        session = Session(port=0, host="127.0.0.1", strict=True)
        await session.start()
        try:
            runtime = await session.add(torrent, movie.parent)
            async with runtime.open(0, head_and_tail=False) as reader:
                seconds = await matroska_seconds(reader)
            assert seconds == pytest.approx(expected, abs=0.1)
        finally:
            await session.close()
        assert not session.failures

    asyncio.run(scenario())
