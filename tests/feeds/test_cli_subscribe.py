"""``bitswarm subscribe`` end to end, as a user runs it (``python -m bitswarm``): add, list,
remove, and ``run --once`` into a watch folder and into the real transmission-daemon."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bitswarm.metainfo import TorrentVersion
from feeds.support import rss, static_server, torrent_file
from interop.trackers import run_transmission

SRC = Path(__file__).resolve().parents[2] / "src"
MAGNET_HASH = "cd" * 20


async def bitswarm(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(SRC)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bitswarm", *args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, stdout.decode(), stderr.decode())


def serve_show_feed(folder: Path, base: str) -> str:
    """A feed of one .torrent episode and one magnet episode of "Show Name" (and a 720p
    one the quality rule leaves out); the .torrent's info-hash. The torrent is v1 only:
    transmission-daemon 3.00 refuses hybrid torrents as "invalid or corrupt"."""
    data, info_hash = torrent_file(folder / "work", "Show.Name.S01E01.1080p.WEB.H264-GRP", TorrentVersion.V1)
    (folder / "e1.torrent").write_bytes(data)
    items = [
        {"title": "Show.Name.S01E01.1080p.WEB.H264-GRP", "guid": "1", "enclosure": f"{base}/files/e1.torrent"},
        {"title": "Show.Name.S01E02.1080p.WEB.H264-GRP", "guid": "2", "magnet": f"magnet:?xt=urn:btih:{MAGNET_HASH}"},
        {"title": "Show.Name.S01E02.720p.HDTV.x264-LOL", "guid": "3", "magnet": f"magnet:?xt=urn:btih:{'9' * 40}"},
    ]
    (folder / "feed.xml").write_bytes(rss(items))
    return info_hash


def test_add_list_remove_and_a_run_into_a_watch_folder(tmp_path: Path) -> None:
    served, state, watch = tmp_path / "served", str(tmp_path / "state"), tmp_path / "watch"
    served.mkdir()

    async def main() -> None:
        async with static_server(served) as base:
            info_hash = serve_show_feed(served, base)
            added = await bitswarm("subscribe", "--state", state, "add", f"{base}/files/feed.xml?passkey=hush",
                                   "--series", "Show Name", "--quality", "1080p", "--label", "tv")  # fmt: skip
            assert added.returncode == 0, added.stderr
            assert added.stdout.split("\t")[0] == "1"
            other = await bitswarm("subscribe", "--state", state, "add", f"{base}/files/none.xml", "--match", "x")
            assert other.stdout.startswith("2\t")
            listed = await bitswarm("subscribe", "--state", state, "list")
            lines = listed.stdout.splitlines()
            assert lines[0] == f"1\t{base}/files/feed.xml\tseries Show Name; quality 1080p; labels tv"
            assert "hush" not in listed.stdout
            removed = await bitswarm("subscribe", "--state", state, "remove", "2")
            assert removed.stdout.strip() == "removed 2"
            as_json = json.loads((await bitswarm("subscribe", "--state", state, "list", "--json")).stdout)
            assert [s["id"] for s in as_json] == [1]

            run = await bitswarm("subscribe", "--state", state, "run", "--once", "--watch-dir", str(watch))
            assert run.returncode == 0, run.stderr
            assert {p.name for p in watch.iterdir()} == {f"{info_hash}.torrent", f"{MAGNET_HASH}.magnet"}
            again = await bitswarm("subscribe", "--state", state, "run", "--once", "--force", "--watch-dir", str(watch))
            assert again.returncode == 0, again.stderr
            assert "added" not in again.stderr

            bad = await bitswarm("subscribe", "--state", state, "add", f"{base}/x", "--match", "(")
            assert bad.returncode == 2
            assert bad.stderr.startswith("bitswarm: subscribe add: --match: ")
            assert "Traceback" not in bad.stderr

    asyncio.run(main())


@pytest.mark.interop
def test_run_once_adds_the_torrent_and_the_magnet_to_transmission_daemon(tmp_path: Path) -> None:
    served, state = tmp_path / "served", str(tmp_path / "state")
    served.mkdir()
    download_dir = str(tmp_path / "tv")

    async def main(rpc_url: str) -> None:
        async with static_server(served) as base:
            serve_show_feed(served, base)
            rules = ["--series", "Show Name", "--quality", "1080p", "--download-dir", download_dir, "--label", "tv"]
            added = await bitswarm("subscribe", "--state", state, "add", f"{base}/files/feed.xml", *rules)
            assert added.returncode == 0, added.stderr
            run = await bitswarm("subscribe", "--state", state, "run", "--once", "--rpc", rpc_url)
            assert run.returncode == 0, run.stderr

    with run_transmission(tmp_path / "transmission") as daemon:
        asyncio.run(main(daemon.rpc_url))
        torrents = daemon.rpc("torrent-get", fields=["hashString", "downloadDir", "labels"])["torrents"]
    info_hash = torrent_file(tmp_path / "again", "Show.Name.S01E01.1080p.WEB.H264-GRP", TorrentVersion.V1)[1]
    by_hash = {t["hashString"]: t for t in torrents}
    assert set(by_hash) == {info_hash, MAGNET_HASH}
    for torrent in by_hash.values():
        assert torrent["downloadDir"] == download_dir
        assert torrent["labels"] == ["tv"]
