"""Helpers of the subscription tests: feeds written as files, served by aiohttp from a
temporary folder beside a few hostile routes, and torrents made by bitswarm's creator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web

from bitswarm.metainfo import TorrentVersion, read_torrent_file
from index.support import make_torrent


def _laughs(level: int) -> str:
    previous = f"lol{level - 1}" if level > 1 else "lol"
    return f'<!ENTITY lol{level} "{f"&{previous};" * 10}">\n'


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(_laughs(level) for level in range(1, 10))
    + ']>\n<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title></item></channel></rss>'
).encode()


def torrent_file(folder: Path, name: str, version: TorrentVersion = TorrentVersion.HYBRID) -> tuple[bytes, str]:
    """(.torrent bytes, v1 info-hash hex) of a small one-file torrent called ``name``."""
    data = make_torrent(folder, name, {"": name.encode() * 100}, version)
    digest = read_torrent_file(data).info_hash_v1
    assert digest is not None
    return data, digest.hex()


def rss(items: list[dict[str, str]], *, ttl_min: int | None = None) -> bytes:
    """An RSS 2.0 document with the ezRSS namespace; each item's keys: title, guid,
    enclosure (a .torrent URL), magnet, hash, size."""
    parts = []
    for item in items:
        fields = [f"<title>{escape(item['title'])}</title>", f'<guid isPermaLink="false">{escape(item["guid"])}</guid>']
        if "enclosure" in item:
            url = escape(item["enclosure"], {'"': "&quot;"})
            fields.append(f'<enclosure url="{url}" length="1000" type="application/x-bittorrent"/>')
        if "magnet" in item:
            fields.append(f"<torrent:magnetURI>{escape(item['magnet'])}</torrent:magnetURI>")
        if "hash" in item:
            fields.append(f"<torrent:infoHash>{item['hash']}</torrent:infoHash>")
        if "size" in item:
            fields.append(f"<torrent:contentLength>{item['size']}</torrent:contentLength>")
        parts.append("<item>" + "".join(fields) + "</item>")
    ttl = f"<ttl>{ttl_min}</ttl>" if ttl_min is not None else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" xmlns:torrent="http://xmlns.ezrss.it/0.1/">'
        f"<channel><title>test</title><link>http://127.0.0.1/</link><description>d</description>{ttl}"
        + "".join(parts)
        + "</channel></rss>"
    ).encode()


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
    await response.prepare(request)
    await response.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
    block = b"x" * 65536
    with contextlib.suppress(ConnectionError):  # the client hanging up is the end we expect
        while True:
            await response.write(block)
    return response


async def _enormous(_request: web.Request) -> web.Response:
    # Says a huge length, so the refusal must come before reading.
    return web.Response(body=b"<rss/>", headers={"Content-Length": str(1 << 40)})


async def _loop(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"/loop?n={int(request.query.get('n', '0')) + 1}")


@asynccontextmanager
async def static_server(folder: Path) -> AsyncIterator[str]:
    """http://127.0.0.1:PORT serving ``folder`` at /files/, and /endless, /enormous, /loop."""
    app = web.Application()
    app.router.add_static("/files/", folder)
    app.router.add_get("/endless", _endless)
    app.router.add_get("/enormous", _enormous)
    app.router.add_get("/loop", _loop)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(runner.cleanup(), timeout=10)
