"""A magnet link pasted into ``bitswarm index`` gets its metadata from a real libtorrent
seed (Debian's python3-libtorrent, ``lt_driver.py seed``), found through the site's own
tracker: the entry waits, then becomes complete, its .torrent hashing as the seed's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from bitswarm.index.config import IndexConfig
from bitswarm.metainfo import Torrent, read_torrent_file
from index.test_site import Browser, serving

from .payload import write_payload
from .test_peer_interop import START_TIMEOUT_S, bitswarm_create, read_line
from .tools import lt_process

METADATA_DEADLINE_S = 60.0


def test_a_pasted_magnet_link_gets_its_metadata_from_a_libtorrent_seed(tmp_path: Path) -> None:
    content = write_payload(tmp_path / "seed", seed=12)
    config = IndexConfig(bind="127.0.0.1:0", db=f"sqlite:///{tmp_path / 'index.db'}", secret_key="m" * 40)

    async def main() -> None:
        async with serving(config, fetch_metadata=True) as site:
            torrent_path = tmp_path / "payload.torrent"
            await asyncio.to_thread(bitswarm_create, content, torrent_path, f"{site}/announce")
            original = Torrent.decode(torrent_path.read_bytes())
            seed = lt_process("seed", torrent_path, content.parent, "--timeout", "120")
            try:
                report = json.loads(await asyncio.to_thread(read_line, seed, START_TIMEOUT_S, "lt_driver seed"))
                assert report["stage"] == "seeding", report
                jar = aiohttp.CookieJar(unsafe=True)
                async with aiohttp.ClientSession(cookie_jar=jar) as http:
                    browser = Browser(site, http)
                    link = original.magnet().format()
                    status, path, page = await browser.form("/upload", {"magnet": link, "title": "From a magnet"})
                    assert status == 200
                    assert "waiting for metadata" in page
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + METADATA_DEADLINE_S
                    while "waiting for metadata" in page and loop.time() < deadline:
                        await asyncio.sleep(0.2)  # polling the page for the state it shows
                        _status, page = await browser.get(path)
                    assert "waiting for metadata" not in page, "the metadata never came"
                    names = [entry.path[-1] for entry in original.data_files()]
                    assert all(name in page for name in names)
                    async with http.get(f"{site}{path}/download.torrent") as response:
                        listed = read_torrent_file(await response.read())
                    assert listed.info == original.info
            finally:
                seed.kill()
                seed.communicate()

    asyncio.run(asyncio.wait_for(main(), 180))
