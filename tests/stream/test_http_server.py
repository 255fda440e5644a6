"""The stream server's HTTP side, in-process on loopback: ranges, pages, and hostile requests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentRuntime
from bitswarm.stream.server import StreamServer

SRT = "1\n00:00:01,000 --> 00:00:02,500\nHello <b>there</b>\n\n2\n00:00:03,000 --> 00:00:04,000\nBye\n"
FILES = {
    "film.mp4": 600_000,
    "film.en.srt": None,
    "<img src=x onerror=alert(1)>.txt": 10,
    "sound.ogg": 5000,
    "empty.mkv": 0,
    "big.bin": 8 << 20,
}


@dataclass
class Served:
    url: str
    server: StreamServer
    runtime: TorrentRuntime
    content: dict[str, bytes]
    port: int


def make_content(root: Path) -> dict[str, bytes]:
    rng = random.Random(5)
    content = {}
    for name, size in FILES.items():
        data = SRT.encode() if size is None else rng.randbytes(size)
        (root / "show").mkdir(parents=True, exist_ok=True)
        (root / "show" / name).write_bytes(data)
        content[name] = data
    return content


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, *, complete: bool = True, **server_options: float) -> AsyncIterator[Served]:
    """A session holding the torrent (complete, or with nothing downloaded and no peer) and
    its stream server on 127.0.0.1."""
    content = make_content(tmp_path / "seed")
    torrent = Torrent.decode(create(tmp_path / "seed" / "show", CreateOptions(version=TorrentVersion.V1,
                                                                            piece_length=32 * 1024)))  # fmt: skip
    session = Session(port=0, host="127.0.0.1", strict=True)
    await session.start()
    try:
        runtime = await session.add(torrent, tmp_path / ("seed" if complete else "empty"))
        server = StreamServer(runtime, **server_options)  # type: ignore[arg-type]
        runner, url = await server.start("127.0.0.1", 0)
        try:
            yield Served(url, server, runtime, content, int(url.rsplit(":", 1)[1].strip("/")))
        finally:
            await runner.cleanup()
    finally:
        await session.close()
    assert not session.failures


def file_url(served: Served, name: str) -> str:
    index = next(f.index for f in served.server.files if f.name == name)
    return served.url.rstrip("/") + served.server.files[index].url_path


async def raw(port: int, request: bytes, *, read_limit: int = 1 << 16) -> bytes:
    """Send ``request`` bytes as they are and return what comes back until the server closes
    or ``read_limit`` bytes are in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = b""
        async with asyncio.timeout(10):
            while len(data) < read_limit:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
        return data
    finally:
        writer.close()


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def status_of(reply: bytes) -> int:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    assert match is not None, reply[:200]
    return int(match.group(1))


def run(tmp_path: Path, body: Callable[[Served], Awaitable[None]], **options: object) -> None:
    async def scenario() -> None:
        async with serving(tmp_path, **options) as served:  # type: ignore[arg-type]
            await body(served)

    asyncio.run(scenario())


def test_whole_file_ranges_head_and_validators(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        url, film = file_url(served, "film.mp4"), served.content["film.mp4"]
        async with aiohttp.ClientSession() as client:
            async with client.get(url) as reply:
                assert reply.status == 200
                assert reply.headers["Accept-Ranges"] == "bytes"
                assert reply.headers["Content-Type"] == "video/mp4"
                assert await reply.read() == film
                etag = reply.headers["ETag"]
                assert reply.headers["Last-Modified"].endswith("GMT")
            async with client.get(url, headers={"Range": "bytes=100000-199999"}) as reply:
                assert reply.status == 206
                assert reply.headers["Content-Range"] == f"bytes 100000-199999/{len(film)}"
                assert await reply.read() == film[100000:200000]
            async with client.get(url, headers={"Range": "bytes=-1000"}) as reply:
                assert reply.status == 206
                assert await reply.read() == film[-1000:]
            async with client.get(url, headers={"Range": "bytes=590000-"}) as reply:
                assert await reply.read() == film[590000:]
            async with client.get(url, headers={"Range": f"bytes={len(film)}-"}) as reply:
                assert reply.status == 416
                assert reply.headers["Content-Range"] == f"bytes */{len(film)}"
            async with client.get(url, headers={"Range": "bytes=0-1,5-9"}) as reply:
                assert reply.status == 200  # several ranges: ignored, the whole file
                assert len(await reply.read()) == len(film)
            async with client.head(url) as reply:
                assert reply.status == 200
                assert reply.headers["Content-Length"] == str(len(film))
                assert await reply.read() == b""
            async with client.get(url, headers={"If-None-Match": etag}) as reply:
                assert reply.status == 304
            async with client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'}) as reply:
                assert reply.status == 200
            async with client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}) as reply:
                assert reply.status == 206
            async with client.get(file_url(served, "empty.mkv")) as reply:
                assert reply.status == 200
                assert await reply.read() == b""

    run(tmp_path, body)


def test_pages_escape_names_and_carry_the_security_policy(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        async with aiohttp.ClientSession() as client:
            async with client.get(served.url) as reply:
                page = await reply.text()
                assert reply.status == 200
                assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
                assert reply.headers["X-Frame-Options"] == "DENY"
            assert "<img src=x" not in page
            assert "&lt;img src=x onerror=alert(1)&gt;.txt" in page
            assert "<script" not in page  # no inline script at all
            film = next(f for f in served.server.files if f.name == "film.mp4")
            async with client.get(f"{served.url}play/{film.index}") as reply:
                player = await reply.text()
            assert f'src="{film.url_path}"' in player
            subtitle = next(f for f in served.server.files if f.name == "film.en.srt")
            assert f'<track kind="subtitles" src="/subtitles/{subtitle.index}.vtt"' in player
            async with client.get(f"{served.url}subtitles/{subtitle.index}.vtt") as reply:
                assert reply.headers["Content-Type"].startswith("text/vtt")
                vtt = await reply.text()
            assert vtt.startswith("WEBVTT")
            assert "00:00:01.000 --> 00:00:02.500" in vtt
            async with client.get(f"{served.url}subtitles/{film.index}.vtt") as reply:
                assert reply.status == 404
            text_file = next(f for f in served.server.files if f.name.endswith(".txt"))
            async with client.get(f"{served.url}play/{text_file.index}") as reply:
                assert reply.status == 404

    run(tmp_path, body)


def test_playlist_lists_every_media_file_by_absolute_url_in_order(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        async with aiohttp.ClientSession() as client, client.get(f"{served.url}playlist.m3u") as reply:
            assert reply.headers["Content-Type"].startswith("audio/x-mpegurl")
            lines = (await reply.text()).splitlines()
        assert lines[0] == "#EXTM3U"
        urls = [line for line in lines if not line.startswith("#")]
        media = [f for f in served.server.files if f.kind is not None]
        assert urls == [served.url.rstrip("/") + f.url_path for f in media]
        assert {f.name for f in media} == {"film.mp4", "sound.ogg", "empty.mkv"}

    run(tmp_path, body)


def test_stats_give_progress_peers_and_buffered_ranges(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        async with aiohttp.ClientSession() as client, client.get(f"{served.url}stats.json") as reply:
            stats = await reply.json()
        assert stats["progress"] == 1.0
        assert stats["peers"] == 0
        film = next(entry for entry in stats["files"] if entry["path"] == "film.mp4")
        assert film["buffered"] == [[0, 599_999]]

    run(tmp_path, body)


@pytest.mark.parametrize(
    "target",
    [
        "/files/0/../../../etc/passwd",
        "/files/0/%2e%2e/%2e%2e/etc/passwd",
        "/files/0/..%2f..%2fetc%2fpasswd",
        "/files/%2e%2e/passwd",
        "/files/0/film.mp4%00",
        "/files/0/wrong-name.mp4",
        "/files/99/film.mp4",
        "/files/-1/film.mp4",
        "/files/99999999999999999999/film.mp4",
        "/play/9999",
        "/subtitles/../../etc/passwd.vtt",
        "/static/../stream/server.py",
        "/static/%2e%2e/%2e%2e/cli/__init__.py",
        "/nothing",
    ],
)
def test_paths_outside_the_torrent_are_not_found(tmp_path: Path, target: str) -> None:
    async def body(served: Served) -> None:
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        reply = await raw(served.port, request)
        assert status_of(reply) in (400, 403, 404)
        assert b"root:" not in reply
        assert b"def " not in reply

    run(tmp_path, body)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
def test_methods_other_than_get_and_head_are_refused(tmp_path: Path, method: str) -> None:
    async def body(served: Served) -> None:
        target = served.server.files[0].url_path
        request = f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        assert status_of(await raw(served.port, request.encode())) == 405

    run(tmp_path, body)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:8080", True),
        ("localhost", True),
        ("LOCALHOST:80", True),
        ("127.5.6.7", True),
        ("[::1]:9", True),
        ("evil.example", False),
        ("evil.example:80", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("192.168.1.20", False),
        ("[::1", False),
        ("localhost:abc", False),
        ("x" * 300, False),
    ],
)
def test_only_loopback_hosts_are_answered(tmp_path: Path, host: str, allowed: bool) -> None:
    async def body(served: Served) -> None:
        request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        code = status_of(await raw(served.port, request))
        assert (code == 200) if allowed else (code in (400, 403))

    run(tmp_path, body)


def test_a_request_without_host_is_refused(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        assert status_of(await raw(served.port, b"GET / HTTP/1.0\r\n\r\n")) == 403

    run(tmp_path, body)


@pytest.mark.parametrize(
    "range_header",
    [
        "bytes=500-100",
        "bytes=0-1," * 700,
        "bytes=" + "9" * 30 + "-",
        "bytes=-" + "9" * 30,
        "chunks=0-5",
    ],
)
def test_hostile_range_headers_get_the_whole_file(tmp_path: Path, range_header: str) -> None:
    async def body(served: Served) -> None:
        target = file_url(served, "sound.ogg").split(str(served.port), 1)[1]
        request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nRange: {range_header}\r\nConnection: close\r\n\r\n"
        reply = await raw(served.port, request.encode())
        assert status_of(reply) == 200
        assert reply.endswith(served.content["sound.ogg"])

    run(tmp_path, body)


def test_a_control_character_in_a_header_is_a_bad_request(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        target = file_url(served, "sound.ogg").split(str(served.port), 1)[1]
        request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nRange: bytes=\x01-2\r\nConnection: close\r\n\r\n"
        assert status_of(await raw(served.port, request.encode())) == 400

    run(tmp_path, body)


def test_an_enormous_header_is_refused_and_the_server_goes_on(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        target = file_url(served, "sound.ogg").split(str(served.port), 1)[1]
        huge = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nRange: bytes={'1' * 100_000}-\r\n\r\n".encode()
        assert status_of(await raw(served.port, huge)) in (400, 431)
        request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        assert (await raw(served.port, request)).endswith(served.content["sound.ogg"])

    run(tmp_path, body)


def test_a_piece_no_source_has_ends_as_503_and_drops_its_deadlines(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        async with aiohttp.ClientSession() as client, client.get(file_url(served, "film.mp4")) as reply:
            assert reply.status == 503
            assert "not received within" in await reply.text()
        assert served.runtime.swarm is not None
        assert not served.runtime.swarm.picker.has_deadlines

    run(tmp_path, body, complete=False, read_timeout_s=0.2)


def test_a_player_that_hangs_up_drops_its_deadlines_at_once(tmp_path: Path) -> None:
    async def body(served: Served) -> None:
        swarm = served.runtime.swarm
        assert swarm is not None
        target = file_url(served, "film.mp4").split(str(served.port), 1)[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nRange: bytes=300000-\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            while not swarm.picker.has_deadlines:
                await asyncio.sleep(0.01)  # polling an observable state
        film = next(f for f in served.server.files if f.name == "film.mp4")
        assert swarm.picker.deadline_of((film.entry.offset + 300_000) // (32 * 1024)) is not None
        writer.close()
        async with asyncio.timeout(10):
            while swarm.picker.has_deadlines:
                await asyncio.sleep(0.01)
        assert served.server.streams == 0

    run(tmp_path, body, complete=False)


def test_hundreds_of_readers_that_never_read_are_bounded(tmp_path: Path) -> None:
    """300 connections ask for the film and never read: 256 are served (and wait on their
    socket, holding one read each), the rest get 503; when they go, a reader gets it all."""

    async def body(served: Served) -> None:
        target = file_url(served, "big.bin").split(str(served.port), 1)[1]
        request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        resident_before = resident_bytes()
        sockets = []
        try:
            for _ in range(300):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that does not read
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", served.port))
                await asyncio.get_running_loop().sock_sendall(sock, request)
                sockets.append(sock)
            async with asyncio.timeout(20):
                while served.server.streams < served.server.max_streams:
                    await asyncio.sleep(0.02)  # polling an observable state
            # Each stalled response holds one read and aiohttp's write buffer: tens of MiB for
            # all of them, not their 2 GiB of file.
            assert resident_bytes() - resident_before < 96 << 20
            statuses = []
            for sock in sockets:
                head = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 12), 10)
                statuses.append(int(head[9:12]))
            assert statuses.count(200) == 256
            assert statuses.count(503) == 44
            assert served.server.streams == 256
        finally:
            for sock in sockets:
                sock.close()
        async with asyncio.timeout(20):
            while served.server.streams:
                await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as client, client.get(file_url(served, "film.mp4")) as reply:
            assert await reply.read() == served.content["film.mp4"]

    run(tmp_path, body)
