"""BEP 19 web seeds served by a real nginx (Debian's nginx-light) on 127.0.0.1.

`bitswarm get` (the CLI, a subprocess) downloads a multi-file torrent whose names hold
spaces, '#', '?', '%' and non-ASCII letters from the web seed alone, and from a magnet
link whose `ws` names the web seed and whose only peer serves the metadata and no piece.
libtorrent (Debian's python3-libtorrent, tests/lt_webseed.py) downloads the same torrent
from the same nginx: both must ask for the same files (nginx finds every one of them) and
end with the same bytes. nginx runs with its own configuration under tmp_path and is
stopped by its PID (tests/webseed_nginx.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.engine.webseed import MAX_CONNECTIONS
from bitswarm.magnet import Magnet
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentOptions
from webseed_nginx import serve_with_nginx

from .tools import SYSTEM_PYTHON, require
from .trackers import wait_for

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
NO_DISCOVERY = ["--no-dht", "--no-lsd"]
LT_WEBSEED = Path(__file__).parent.parent / "lt_webseed.py"
DEADLINE_S = 60
NAME = "Web seed #1 naïve"
# Relative to NAME; sizes straddle the 32 KiB pieces, and one file is empty.
FILES = {
    "a b/one #1.bin": 70_000,
    "a b/what?.bin": 33_333,
    "100% ünïcödé ☃.txt": 90_001,
    "empty": 0,
    "z.bin": 5,
}


def make_content(www: Path, base_url: str, version: TorrentVersion) -> tuple[Path, Torrent]:
    rng = random.Random(19)
    for relative, size in FILES.items():
        target = www / NAME / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(size))
    data = create(www / NAME, CreateOptions(version=version, piece_length=32 * 1024, web_seeds=[base_url]))
    torrent_path = www.parent / "web.torrent"
    torrent_path.write_bytes(data)
    return torrent_path, Torrent.decode(data)


def same_content(folder: Path, www: Path) -> bool:
    return all(
        (folder / NAME / relative).is_file()
        and (folder / NAME / relative).read_bytes() == (www / NAME / relative).read_bytes()
        for relative in FILES
    )


def requested_paths(rows: list[tuple[int, int, int, int, str]]) -> set[str]:
    """The decoded paths of the requests in nginx's access log (all must have succeeded)."""
    assert rows, "nginx saw no request"
    assert all(status in (200, 206) for _, _, status, _, _ in rows), rows
    return {unquote(request.split(" ")[1], errors="strict") for *_, request in rows}


def expected_paths() -> set[str]:
    return {f"/{NAME}/{relative}" for relative, size in FILES.items() if size}


def bitswarm_get(source: str, folder: Path) -> list[dict[str, object]]:
    got = subprocess.run(
        [*BITSWARM, "get", source, "-o", str(folder), "--port", "0", "--no-seed", "--json", *NO_DISCOVERY],
        capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    return [json.loads(line) for line in got.stdout.splitlines()]


@pytest.mark.parametrize(
    "version", [TorrentVersion.V1, TorrentVersion.HYBRID, TorrentVersion.V2], ids=["v1", "hybrid", "v2"]
)
def test_bitswarm_and_libtorrent_download_the_same_torrent_from_nginx_alone(
    tmp_path: Path, nginx_path: str, version: TorrentVersion
) -> None:
    www = tmp_path / "www"
    with serve_with_nginx(www, tmp_path / "nginx", nginx_path) as nginx:
        torrent_path, torrent = make_content(www, nginx.url, version)
        (tmp_path / "lt").mkdir()
        libtorrent = subprocess.run(
            [require(SYSTEM_PYTHON), str(LT_WEBSEED), str(torrent_path), str(tmp_path / "lt"), "--timeout", "30"],
            capture_output=True, text=True, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
        assert libtorrent.returncode == 0, libtorrent.stdout + libtorrent.stderr
        assert json.loads(libtorrent.stdout)["web_seeds"] == [nginx.url]
        wait_for(lambda: same_content(tmp_path / "lt", www), "libtorrent's files")
        by_libtorrent = nginx.requests()

        events = bitswarm_get(str(torrent_path), tmp_path / "get")
        assert "finished" in [event["event"] for event in events]
        assert same_content(tmp_path / "get", www)
        by_bitswarm = nginx.requests()[len(by_libtorrent) :]
    # Pad files (hybrid) are zeros of our own making: neither client asks for them.
    assert requested_paths(by_libtorrent) == requested_paths(by_bitswarm) == expected_paths()
    # No peer, one web seed: every byte came from nginx, and only once, over a few connections.
    assert sum(sent for _, _, _, sent, _ in by_bitswarm) == sum(FILES.values())
    assert 1 <= len({connection for connection, *_ in by_bitswarm}) <= MAX_CONNECTIONS
    assert torrent.name == NAME


def test_bitswarm_get_magnet_with_ws_and_a_peer_that_serves_only_metadata(tmp_path: Path, nginx_path: str) -> None:
    www = tmp_path / "www"
    with serve_with_nginx(www, tmp_path / "nginx", nginx_path) as nginx:
        _, torrent = make_content(www, nginx.url, TorrentVersion.V1)
        assert torrent.info_hash_v1 is not None

        async def scenario() -> dict[str, object]:
            # The peer has the torrent, wants none of its files and has none of its pieces:
            # all it can give is the info dictionary (ut_metadata).
            peer = Session(port=0, host="127.0.0.1", strict=True)
            await peer.start()
            try:
                empty = tmp_path / "peer"
                empty.mkdir()
                runtime = await peer.add(torrent, empty, TorrentOptions(wanted_files=set(), web_seeds=False))
                link = Magnet(
                    info_hash_v1=torrent.info_hash_v1, web_seeds=(nginx.url,), peers=(("127.0.0.1", peer.port),)
                ).format()
                process = await asyncio.create_subprocess_exec(
                    *BITSWARM, "get", link, "-o", str(tmp_path / "get"), "--port", "0", "--no-seed", "--json",
                    *NO_DISCOVERY, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )  # fmt: skip
                stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE_S)
                assert process.returncode == 0, stderr.decode()
                status = runtime.status()
                status["events"] = [json.loads(line)["event"] for line in stdout.decode().splitlines()]
                return status
            finally:
                await peer.close()

        status = asyncio.run(scenario())
        by_bitswarm = nginx.requests()
    events = status["events"]
    assert isinstance(events, list)
    assert events[:3] == ["fetching", "metadata", "started"]
    assert "finished" in events
    assert status["uploaded"] == 0  # not one piece came from the peer
    assert same_content(tmp_path / "get", www)
    assert requested_paths(by_bitswarm) == expected_paths()
    assert sum(sent for _, _, _, sent, _ in by_bitswarm) == sum(FILES.values())
