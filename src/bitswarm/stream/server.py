"""The HTTP side of ``bitswarm stream``: a torrent's files as a small web server.

- ``/files/INDEX/NAME``: the file, ``GET`` and ``HEAD``, with ``Accept-Ranges: bytes``,
  206 for a single range, 416 for an unsatisfiable one, 200 for the whole file
  (``bitswarm.stream.ranges``); a strong ``ETag`` (a torrent's file never changes: it is
  named by its info-hash) and ``Last-Modified``; ``If-None-Match`` and ``If-Range``.
  Every byte comes through a ``FileReader``: verified pieces only, and while a response is
  being sent its reader's window makes the engine fetch the pieces under it first. A
  client that goes away cancels its handler, and the reader's deadlines go with it.
- ``/``: the files with links; ``/play/INDEX``: an HTML5 player for a media file with the
  subtitles beside it as ``<track>``; ``/subtitles/INDEX.vtt``: an ``.srt`` or ``.vtt``
  file of the torrent as WebVTT; ``/playlist.m3u``: every media file's absolute URL;
  ``/stats.json``: progress, rates, peers and each file's verified byte ranges.

Limits: at most ``MAX_STREAMS`` file responses at once (more get 503); a response holds
one read (``CHUNK_BYTES``) in memory and waits while the client does not read, so a
reader that never reads pins nothing; subtitles over ``MAX_SUBTITLE_BYTES`` are refused.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import mimetypes
import posixpath
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from bitswarm.errors import BitswarmError
from bitswarm.metainfo import FileEntry
from bitswarm.stream import matroska, mp4
from bitswarm.stream.mp4 import MP4_EXTENSIONS
from bitswarm.stream.ranges import ByteRange, Unsatisfiable, parse_range
from bitswarm.stream.reader import FileReader
from bitswarm.web.app import create_app, render
from bitswarm.web.security import SECURITY_HEADERS

if TYPE_CHECKING:
    from bitswarm.bundle import format as fmt
    from bitswarm.net.session import TorrentRuntime
    from bitswarm.stream.sealed import SealedFileReader

    # A torrent's file as it is, or a bundle's file as plaintext. (The bundle modules, and
    # the crypto library under them, load only when a bundle is served.)
    Reader = FileReader | SealedFileReader

MAX_STREAMS = 256
CHUNK_BYTES = 64 * 1024
MAX_SUBTITLE_BYTES = 2 << 20
# How long one response waits for a piece before it ends (the player may ask again).
READ_TIMEOUT_S = 120.0
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".ogv", ".ts", ".mpg", ".mpeg", ".wmv"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac", ".wav"})
SUBTITLE_EXTENSIONS = frozenset({".srt", ".vtt"})
# Types Python's table lacks or gets wrong for players.
EXTRA_TYPES = {
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".m4v": "video/mp4",
    ".ogv": "video/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".srt": "application/x-subrip",
    ".vtt": "text/vtt",
    ".ts": "video/mp2t",
}
TEMPLATES = Path(__file__).parent / "templates"


def content_type(name: str) -> str:
    extension = posixpath.splitext(name)[1].lower()
    return EXTRA_TYPES.get(extension) or mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def media_kind(name: str) -> str | None:
    """'video', 'audio' or None, by the file's extension."""
    extension = posixpath.splitext(name)[1].lower()
    return "video" if extension in VIDEO_EXTENSIONS else "audio" if extension in AUDIO_EXTENSIONS else None


@dataclass(frozen=True, slots=True)
class ServedFile:
    index: int
    entry: FileEntry
    path: str  # below the torrent's name, as users see it
    name: str  # the last element, in the URL
    # A bundle's file: its plaintext is served, opened segment by segment with this.
    sealer: fmt.FileSealer | None = None

    @property
    def length(self) -> int:
        return self.sealer.plain_size if self.sealer is not None else self.entry.length

    @property
    def url_path(self) -> str:
        return f"/files/{self.index}/{quote(self.name, safe='')}"

    @property
    def kind(self) -> str | None:
        return media_kind(self.name)


class StreamServer:
    """The files of one running torrent, served over HTTP (see the module's docstring)."""

    def __init__(
        self,
        runtime: TorrentRuntime,
        *,
        read_timeout_s: float = READ_TIMEOUT_S,
        max_streams: int = MAX_STREAMS,
        content_key: bytes | None = None,
    ) -> None:
        self.runtime = runtime
        self.read_timeout_s = read_timeout_s
        self.max_streams = max_streams
        self.started_at = time.time()
        self.streams = 0
        self._prefetch: FileReader | None = None
        # Each media file's rate (bytes a second, from its container; None: unknown), found
        # once, and the readers of each file to tell it.
        self._media_rates: dict[int, float | None] = {}
        self._probes: dict[int, asyncio.Task[None]] = {}
        self._readers: dict[int, set[Reader]] = {}
        single = len(runtime.torrent.files) == 1
        self.title = runtime.torrent.name
        self.files = [
            ServedFile(index, entry, "/".join(entry.path if single else entry.path[1:]), entry.path[-1])
            for index, entry in enumerate(runtime.torrent.data_files())
        ]
        if content_key is not None:
            self._open_bundle(content_key)

    def _open_bundle(self, content_key: bytes) -> None:
        """Serve the plaintext of an encrypted bundle: names and sizes from its manifest."""
        from bitswarm.bundle import files as bundle_files  # noqa: PLC0415
        from bitswarm.bundle import format as fmt  # noqa: PLC0415

        torrent = self.runtime.torrent
        header = bundle_files.header_of(torrent)
        manifest = bundle_files.manifest_of(torrent, content_key)
        self.title = manifest.title
        self.files = [
            ServedFile(index, served.entry, "/".join(item.path), item.path[-1],
                       fmt.FileSealer(fmt.file_key(content_key, header.bundle_id, index), item.size))
            for index, (served, item) in enumerate(zip(self.files, manifest.files, strict=True))
        ]  # fmt: skip

    def open_reader(self, served: ServedFile, *, head_and_tail: bool = True) -> Reader:
        """A reader of ``served`` (its plaintext, for a bundle) with this server's timeout."""
        reader = self.runtime.open(served.entry, timeout_s=self.read_timeout_s, head_and_tail=head_and_tail)
        if served.sealer is None:
            return reader
        from bitswarm.stream.sealed import SealedFileReader  # noqa: PLC0415

        return SealedFileReader(reader, served.sealer)

    @property
    def etag_base(self) -> str:
        return self.runtime.info_hash.hex()[:24]

    @property
    def last_modified(self) -> str:
        created = self.runtime.torrent.creation_date
        stamp = created if created is not None and 0 < created <= self.started_at else self.started_at
        return email.utils.formatdate(stamp, usegmt=True)

    def app(self, *, allowed_hosts: tuple[str, ...] = ()) -> web.Application:
        app = create_app(allowed_hosts=allowed_hosts, template_folders=[TEMPLATES])
        app.router.add_get("/", self.index_page)
        app.router.add_get("/files/{index}/{name}", self.file, allow_head=True)
        app.router.add_get("/play/{index}", self.player_page)
        app.router.add_get("/subtitles/{index}.vtt", self.subtitles)
        app.router.add_get("/playlist.m3u", self.playlist)
        app.router.add_get("/stats.json", self.stats)
        return app

    async def start(self, host: str, port: int, *, allowed_hosts: tuple[str, ...] = ()) -> tuple[web.AppRunner, str]:
        """Serve on ``host``:``port`` (0: any free port); returns the runner (``cleanup()``
        it to stop) and the server's URL. Raises BitswarmError when it cannot listen."""
        # Handler cancellation: a player that hangs up cancels its handler, and its reader's
        # deadlines go at once. No access log: who watches what is nobody's business.
        runner = web.AppRunner(self.app(allowed_hosts=allowed_hosts), handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise BitswarmError(f"--bind {host}:{port}: {error.strerror or error}") from None
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        return runner, f"http://{shown}:{bound_port}/"

    def prefetch(self, served: ServedFile) -> None:
        """Set the deadlines of a reader at the start of ``served`` (its first and last
        pieces first) until a player asks for that file: the first requests to peers are
        then the ones the player will need, not rarest-first ones from all over the file."""
        self.stop_prefetch()
        self._prefetch = self.runtime.open(served.entry)  # the sealed bytes are the same pieces

    def stop_prefetch(self) -> None:
        if self._prefetch is not None:
            self._prefetch.close()
            self._prefetch = None

    def close(self) -> None:
        """Stop the prefetch and the media probes (the readers end with their responses)."""
        self.stop_prefetch()
        for probe in self._probes.values():
            probe.cancel()

    def follow_media_rate(self, served: ServedFile, reader: Reader) -> None:
        """Tell ``reader`` the media rate of its file once it is known; the first reader of
        an MP4 or a Matroska file starts finding it out (from its duration)."""
        rate = self._media_rates.get(served.index)
        if rate is not None:
            reader.set_media_rate(rate)
            return
        if media_probe(served.name) is None or served.index in self._media_rates:
            return
        self._readers.setdefault(served.index, set()).add(reader)
        if served.index not in self._probes:
            self._probes[served.index] = asyncio.get_running_loop().create_task(self._probe(served))

    def _unfollow_media_rate(self, served: ServedFile, reader: Reader) -> None:
        """``reader`` is done; a probe that no reader waits for any more stops (its own
        deadlines must not outlive the players)."""
        waiting = self._readers.get(served.index)
        if waiting is None:
            return
        waiting.discard(reader)
        if not waiting:
            del self._readers[served.index]
            probe = self._probes.pop(served.index, None)
            if probe is not None:
                probe.cancel()

    async def _probe(self, served: ServedFile) -> None:
        reader = self.open_reader(served, head_and_tail=False)
        try:
            probe = media_probe(served.name)
            seconds = await probe(reader) if probe is not None else None
        except (BitswarmError, OSError):
            seconds = None  # unknown: the readers go by their read rates
        finally:
            reader.close()
        rate = served.length / seconds if seconds else None
        self._media_rates[served.index] = rate
        for waiting in self._readers.pop(served.index, set()):
            if rate is not None:
                waiting.set_media_rate(rate)

    # -- lookups -----------------------------------------------------------------------

    def _file(self, request: web.Request) -> ServedFile:
        text = request.match_info["index"]
        if not text.isdigit() or len(text) > 9 or int(text) >= len(self.files):
            raise web.HTTPNotFound(text="404: no such file\n")
        return self.files[int(text)]

    def subtitles_for(self, video: ServedFile) -> list[ServedFile]:
        """Subtitle files in the video's folder whose names start with the video's stem."""
        folder, stem = posixpath.dirname(video.path), posixpath.splitext(video.name)[0].lower()
        return [
            served
            for served in self.files
            if posixpath.splitext(served.name)[1].lower() in SUBTITLE_EXTENSIONS
            and posixpath.dirname(served.path) == folder
            and served.name.lower().startswith(stem)
        ]

    def main_file(self) -> ServedFile:
        """The file a player opens by default: the largest video, else the largest media
        file, else the largest file."""
        for kinds in (("video",), ("video", "audio"), (None, "video", "audio")):
            candidates = [served for served in self.files if served.kind in kinds]
            if candidates:
                return max(candidates, key=lambda served: served.length)
        raise BitswarmError("the torrent has no files")

    # -- pages -------------------------------------------------------------------------

    async def index_page(self, request: web.Request) -> web.Response:
        return render(request, "stream_index.html", name=self.title, files=self.files,
                      status=self.runtime.status())  # fmt: skip

    async def player_page(self, request: web.Request) -> web.Response:
        served = self._file(request)
        if served.kind is None:
            raise web.HTTPNotFound(text="404: not a media file\n")
        return render(request, "stream_player.html", file=served, subtitles=self.subtitles_for(served),
                      type=content_type(served.name))  # fmt: skip

    async def playlist(self, request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        lines = ["#EXTM3U"]
        for served in self.files:
            if served.kind is not None:
                title = served.path.replace("\n", " ").replace("\r", " ")
                lines += [f"#EXTINF:-1,{title}", origin + served.url_path]
        return web.Response(text="\n".join(lines) + "\n", content_type="audio/x-mpegurl", charset="utf-8")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats_facts(), dumps=lambda value: json.dumps(value, ensure_ascii=False))

    def stats_facts(self) -> dict[str, Any]:
        status = self.runtime.status()
        files = [
            {
                "index": served.index,
                "path": served.path,
                "length": served.length,
                "url": served.url_path,
                "buffered": self.buffered_ranges(served),
            }
            for served in self.files
        ]
        return {
            "name": status["name"],
            "progress": round(status["pieces"] / max(status["num_pieces"], 1), 4),
            "pieces": status["pieces"],
            "num_pieces": status["num_pieces"],
            "download_rate": round(status["download_rate"]),
            "upload_rate": round(status["upload_rate"]),
            "downloaded": status["downloaded"],
            "uploaded": status["uploaded"],
            "peers": status["peers"],
            "seeds": status["seeds"],
            "streams": self.streams,
            "files": files,
        }

    def buffered_ranges(self, served: ServedFile) -> list[list[int]]:
        """The file's verified bytes as [first, last] ranges (inclusive), in order (of the
        plaintext, for a bundle: its pieces hold whole segments)."""
        entry = served.entry
        piece_length = self.runtime.torrent.piece_length
        ranges: list[list[int]] = []
        if not entry.length:
            return ranges

        def plain(position: int) -> int:
            if served.sealer is None:
                return position
            segment, plain_segment = served.sealer.segment_sizes
            return min(served.length, position // segment * plain_segment)

        for index in range(entry.offset // piece_length, (entry.offset + entry.length - 1) // piece_length + 1):
            if not self.runtime.has_piece(index):
                continue
            first = plain(max(0, index * piece_length - entry.offset))
            last = plain(min(entry.length, (index + 1) * piece_length - entry.offset)) - 1
            if served.sealer is not None and index * piece_length + piece_length >= entry.offset + entry.length:
                last = served.length - 1
            if ranges and ranges[-1][1] + 1 == first:
                ranges[-1][1] = last
            else:
                ranges.append([first, last])
        return ranges

    async def subtitles(self, request: web.Request) -> web.Response:
        served = self._file(request)
        if posixpath.splitext(served.name)[1].lower() not in SUBTITLE_EXTENSIONS:
            raise web.HTTPNotFound(text="404: not a subtitle file\n")
        if served.length > MAX_SUBTITLE_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_SUBTITLE_BYTES, served.length)
        async with self.open_reader(served) as reader:
            try:
                data = await reader.readexactly(served.length)
            except BitswarmError as error:  # no source in time, or the disk failed
                raise web.HTTPServiceUnavailable(text=f"503: {error}\n") from None
        text = data.decode("utf-8-sig", errors="replace")
        import pysubs2  # noqa: PLC0415 - only when a player asks for subtitles (a 20 ms import)

        try:
            vtt = pysubs2.SSAFile.from_string(text).to_string("vtt")
        except (pysubs2.exceptions.Pysubs2Error, ValueError):
            raise web.HTTPUnprocessableEntity(text="422: not a subtitle file this server can read\n") from None
        return web.Response(text=vtt, content_type="text/vtt", charset="utf-8")

    # -- the bytes ---------------------------------------------------------------------

    async def file(self, request: web.Request) -> web.StreamResponse:
        served = self._file(request)
        if request.match_info["name"] != served.name:
            raise web.HTTPNotFound(text="404: no such file\n")
        if self._prefetch is not None and self._prefetch.entry is served.entry:
            self.stop_prefetch()  # the player's own reader takes over
        size = served.length
        etag = f'"{self.etag_base}-{served.index}"'
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Last-Modified": self.last_modified,
            "Content-Type": content_type(served.name),
            "Cache-Control": "no-cache",
        }
        if etag in _etags(request.headers.get("If-None-Match")):
            return web.Response(status=304, headers=headers)
        wanted = parse_range(request.headers.get("Range"), size)
        if_range = request.headers.get("If-Range")
        if if_range is not None and if_range.strip() != etag:
            wanted = None  # RFC 9110 13.1.5: the file changed (or we cannot tell): all of it
        if isinstance(wanted, Unsatisfiable):
            return web.Response(status=416, headers={**headers, "Content-Range": wanted.content_range})
        span = wanted if isinstance(wanted, ByteRange) else ByteRange(0, size - 1, size)
        if self.streams >= self.max_streams:
            raise web.HTTPServiceUnavailable(text="503: too many streams at once\n", headers={"Retry-After": "5"})
        response = web.StreamResponse(status=206 if wanted is not None else 200, headers=headers)
        if wanted is not None:
            response.headers["Content-Range"] = span.content_range
        response.content_length = span.length if size else 0
        response.headers.update(SECURITY_HEADERS)  # sent before the middleware sees the response
        if request.method == "HEAD" or not size:
            await response.prepare(request)
            await response.write_eof()
            return response
        self.streams += 1
        try:
            await self._send(request, response, served, span)
        except ConnectionError:
            pass  # the player hung up (it seeks by opening another request): normal
        finally:
            self.streams -= 1
        return response

    async def _send(
        self, request: web.Request, response: web.StreamResponse, served: ServedFile, span: ByteRange
    ) -> None:
        reader = self.open_reader(served)
        self.follow_media_rate(served, reader)
        try:
            reader.seek(span.first)
            left = span.length
            # The first piece before the headers: a 206 is only promised once a byte is here
            # (a source that has none ends as a 503, not as a cut-off body).
            try:
                data = await reader.read(min(CHUNK_BYTES, left))
            except BitswarmError as error:  # no source in time, or the disk failed
                raise web.HTTPServiceUnavailable(text=f"503: {error}\n") from None
            await response.prepare(request)
            while data:
                left -= len(data)
                await response.write(data)  # waits while the client does not read
                if left <= 0:
                    break
                try:
                    data = await reader.read(min(CHUNK_BYTES, left))
                except BitswarmError:
                    # Headers are out: all that can be said is to close the connection short.
                    if request.transport is not None:
                        request.transport.close()
                    return
            await response.write_eof()
        finally:
            reader.close()
            self._unfollow_media_rate(served, reader)


def _etags(header: str | None) -> list[str]:
    if not header:
        return []
    return [tag.strip() for tag in header.split(",")[:16]]


async def mp4_seconds(reader: Reader) -> float | None:
    """How long the MP4 ``reader`` reads plays (its ``moov``/``mvhd``), or None: a few box
    headers are read, where the file's first and last pieces are."""
    top = await _find_box(reader, b"moov", 0, reader.length)
    if top is None:
        return None
    mvhd = await _find_box(reader, b"mvhd", top.payload, top.end)
    if mvhd is None:
        return None
    reader.seek(mvhd.payload)
    return mp4.mvhd_seconds(await reader.readexactly(min(mp4.MVHD_BYTES, mvhd.end - mvhd.payload)))


async def _find_box(reader: Reader, kind: bytes, start: int, limit: int) -> mp4.Box | None:
    at = start
    for _ in range(mp4.MAX_BOXES):
        reader.seek(at)
        box = mp4.read_box(await reader.readexactly(min(mp4.HEADER_BYTES, limit - at)), at, limit)
        if box is None:
            return None
        if box.kind == kind:
            return box
        at = box.end
        if at >= limit:
            return None
    return None


async def matroska_seconds(reader: Reader) -> float | None:
    """How long the Matroska or WebM file ``reader`` reads plays (its Segment's ``Info``),
    or None: a few element headers near the start are read."""
    header = await _element_at(reader, 0, reader.length)
    if header is None or header.element_id != matroska.EBML_HEADER:
        return None
    segment = await _element_at(reader, header.end, reader.length)
    if segment is None or segment.element_id != matroska.SEGMENT:
        return None
    at = segment.payload
    for _ in range(matroska.MAX_ELEMENTS):
        child = await _element_at(reader, at, segment.end)
        if child is None or child.element_id == matroska.CLUSTER:
            return None
        if child.element_id == matroska.INFO:
            reader.seek(child.payload)
            return matroska.info_seconds(await reader.readexactly(min(child.size, matroska.MAX_INFO_BYTES)))
        at = child.end
    return None


async def _element_at(reader: Reader, at: int, limit: int) -> matroska.Element | None:
    if at >= limit:
        return None
    reader.seek(at)
    return matroska.read_element(await reader.readexactly(min(matroska.HEADER_BYTES, limit - at)), at, limit)


def media_probe(name: str) -> Callable[[Reader], Awaitable[float | None]] | None:
    """How to find out how long a file of this name plays, if its container is one we read."""
    extension = posixpath.splitext(name)[1].lower()
    if extension in MP4_EXTENSIONS:
        return mp4_seconds
    if extension in matroska.MATROSKA_EXTENSIONS:
        return matroska_seconds
    return None
