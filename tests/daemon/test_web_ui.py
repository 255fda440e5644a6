"""The daemon's web UI driven in-process as a browser would: forms with their CSRF tokens,
the event stream, the player's range server, and the same gate as the RPC (issue 13,
point 3). Each test runs ``serve_daemon`` on loopback (DHT and local discovery off)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bitswarm.daemon import ui
from bitswarm.daemon.clients import client_name
from bitswarm.daemon.config import DaemonConfig
from bitswarm.daemon.run import serve_daemon

from .conftest import make_torrent

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
STEP_TIMEOUT_S = 15.0


@dataclass
class Visitor:
    base: str
    http: aiohttp.ClientSession
    session_id: str = ""

    async def get(self, path: str, **options: Any) -> tuple[int, str]:
        async with self.http.get(self.base + path.lstrip("/"), **options) as response:
            return response.status, await response.text()

    async def form(self, path: str, fields: dict[str, Any], *, from_page: str = "/") -> tuple[int, str, str]:
        """(status, final path, body) of the form at ``path`` sent from ``from_page``."""
        _status, page = await self.get(from_page)
        token = CSRF.search(page)
        assert token is not None, f"{from_page} has no form with a CSRF token"
        data = aiohttp.FormData()
        data.add_field("csrf_token", token.group(1))
        for name, value in fields.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, tuple):
                    data.add_field(name, item[1], filename=item[0], content_type="application/x-bittorrent")
                else:
                    data.add_field(name, str(item))
        async with self.http.post(self.base + path.lstrip("/"), data=data) as response:
            return response.status, response.url.path, await response.text()

    async def rpc(self, method: str, **arguments: Any) -> dict[str, Any]:
        body = json.dumps({"method": method, "arguments": arguments})
        for _ in range(2):
            headers = {"X-Transmission-Session-Id": self.session_id}
            async with self.http.post(self.base + "transmission/rpc", data=body, headers=headers) as response:
                if response.status == 409:
                    self.session_id = response.headers["X-Transmission-Session-Id"]
                    continue
                answer: dict[str, Any] = await response.json()
                assert answer["result"] == "success", answer
                return dict(answer["arguments"])
        raise AssertionError("409 twice")


@asynccontextmanager
async def serving(tmp: Path, **config: Any) -> AsyncIterator[tuple[Visitor, Path]]:
    downloads = tmp / "downloads"
    settings = DaemonConfig(
        rpc="127.0.0.1:0", download_dir=str(downloads), peer_port=0, dht=False, lsd=False, port_mapping=False
    )
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_daemon(replace(settings, **config), tmp / "state", ready=ready.set_result,
                                            stop=stop))  # fmt: skip
    try:
        base = await asyncio.wait_for(ready, STEP_TIMEOUT_S)
        jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1, as a browser keeps them
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP_TIMEOUT_S), cookie_jar=jar) as http:
            yield Visitor(base.replace("localhost", "127.0.0.1"), http), downloads
    finally:
        stop.set()
        await asyncio.wait_for(task, STEP_TIMEOUT_S)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def poll(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


def test_pages_carry_the_csp_and_a_form_without_its_token_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (visitor, _downloads):
            async with visitor.http.get(visitor.base) as response:
                assert response.status == 200
                assert "script-src 'self'" in response.headers["Content-Security-Policy"]
                assert response.headers["X-Frame-Options"] == "DENY"
                assert "No torrents yet" in await response.text()
            async with visitor.http.post(visitor.base + "add", data={"link": "magnet:?xt=urn:btih:" + "a" * 40}) as r:
                assert r.status == 403
            status, _where, body = await visitor.form("/add", {"link": "/etc/passwd"}, from_page="/add")
            assert status == 400
            assert "magnet link or an http(s) URL" in body
            assert (await visitor.rpc("torrent-get", fields=["id"]))["torrents"] == []
            status, _page = await visitor.get("static/../../daemon/ui.py")
            assert status == 404

    run(scenario)


def test_the_gate_is_the_rpcs_host_address_and_credentials(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path / "a", rpc_username="me", rpc_password="pass word") as (visitor, _):
            status, _page = await visitor.get("")
            assert status == 401
            async with visitor.http.get(visitor.base) as response:
                assert response.headers["WWW-Authenticate"].startswith("Basic")
            signed_in = {"Authorization": aiohttp.encode_basic_auth("me", "pass word")}
            status, page = await visitor.get("", headers=signed_in)
            assert status == 200
            assert "<h1>Torrents</h1>" in page
            wrong = {"Authorization": aiohttp.encode_basic_auth("me", "wrong")}
            status, _page = await visitor.get("events", headers=wrong)
            assert status == 401
            status, _page = await visitor.get("", headers={"Host": "rebound.example:9091"})
            assert status == 421
        async with serving(tmp_path / "b", rpc_whitelist=("10.0.0.0/8",)) as (visitor, _):
            for path in ("", "add", "static/daemon.js", "events"):
                status, _page = await visitor.get(path)
                assert status == 403, path

    run(scenario)


def test_add_by_upload_set_files_pause_resume_verify_and_remove_with_data(tmp_path: Path) -> None:
    made = make_torrent(tmp_path / "src", "<script>Holiday", {"film.mp4": 70_000, "notes.txt": 3_000})

    async def scenario() -> None:
        async with serving(tmp_path / "d") as (visitor, downloads):
            # The data is already in the folder: the torrent seeds once added.
            (downloads / made.name).mkdir(parents=True)
            for name in ("film.mp4", "notes.txt"):
                (downloads / made.name / name).write_bytes((made.content / name).read_bytes())
            torrent = ("holiday.torrent", made.path.read_bytes())
            status, where, page = await visitor.form("/add", {"torrent": torrent}, from_page="/add")
            assert (status, where) == (200, "/")
            assert "&lt;script&gt;Holiday" in page  # the torrent's name, escaped
            assert "<script>Holiday" not in page
            [row] = (await visitor.rpc("torrent-get", fields=["id", "status"]))["torrents"]
            number = row["id"]

            async def seeding() -> bool:
                return bool((await visitor.rpc("torrent-get", fields=["status"]))["torrents"][0]["status"] == 6)

            await poll(seeding, "seeding what was in the folder")
            status, page = await visitor.get(f"torrents/{number}")
            assert status == 200
            assert f'href="/torrents/{number}/play/0"' in page  # the video; not the text file
            assert "/play/1" not in page
            assert "not asked yet" in page or "127.0.0.1:1/announce" in page

            # Files: the notes unwanted, the film high.
            status, where, _page = await visitor.form(
                f"/torrents/{number}/files",
                {"file": [0, 1], "wanted": [0], "priority-0": "high", "priority-1": "low"},
                from_page=f"/torrents/{number}",
            )
            assert (status, where) == (200, f"/torrents/{number}")
            [row] = (await visitor.rpc("torrent-get", fields=["wanted", "priorities"]))["torrents"]
            assert row["wanted"] == [1, 0]
            assert row["priorities"] == [1, -1]

            # The player: its page, and the bytes with a range.
            status, page = await visitor.get(f"torrents/{number}/play/0")
            assert status == 200
            assert f'src="/torrents/{number}/files/0/film.mp4"' in page
            async with visitor.http.get(visitor.base + f"torrents/{number}/files/0/film.mp4",
                                        headers={"Range": "bytes=100-199"}) as response:  # fmt: skip
                assert response.status == 206
                assert await response.read() == (made.content / "film.mp4").read_bytes()[100:200]

            for action, wanted in (("stop", 0), ("start", 6)):
                status, _where, _page = await visitor.form(f"/torrents/{number}/{action}", {})
                assert status == 200

                async def reached(wanted: int = wanted) -> bool:
                    torrents = (await visitor.rpc("torrent-get", fields=["status"]))["torrents"]
                    return bool(torrents[0]["status"] == wanted)

                await poll(reached, f"status {wanted} after {action}")
            status, where, _page = await visitor.form(f"/torrents/{number}/verify", {"back": "torrent"})
            assert (status, where) == (200, f"/torrents/{number}")

            status, page = await visitor.get(f"torrents/{number}/remove")
            assert "Remove and delete its files" in page
            status, where, page = await visitor.form(f"/torrents/{number}/remove", {"delete": "1"},
                                                     from_page=f"/torrents/{number}/remove")  # fmt: skip
            assert (status, where) == (200, "/")
            assert "No torrents yet" in page
            assert not (downloads / made.name / "film.mp4").exists()
            status, _page = await visitor.get(f"torrents/{number}")
            assert status == 404

    run(scenario)


def test_limits_and_the_alternative_speeds_are_the_sessions(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (visitor, _downloads):
            fields = {"speed-limit-down": 300, "speed-limit-down-enabled": 1, "speed-limit-up": 40,
                      "alt-speed-down": 20, "alt-speed-up": 10}  # fmt: skip
            status, where, page = await visitor.form("/settings", fields)
            assert (status, where) == (200, "/")
            session = await visitor.rpc("session-get")
            assert session["speed-limit-down"] == 300
            assert session["speed-limit-down-enabled"] is True
            assert session["speed-limit-up-enabled"] is False
            assert session["alt-speed-down"] == 20
            assert "Turn alternative speeds on" in page
            status, _where, page = await visitor.form("/alt-speed", {"enabled": 1})
            assert (await visitor.rpc("session-get"))["alt-speed-enabled"] is True
            assert "Turn alternative speeds off" in page
            status, _where, page = await visitor.form("/settings", {**fields, "speed-limit-up": "-5"})
            assert status == 400
            assert "whole number" in page

    run(scenario)


def test_the_event_stream_sends_changed_rows_and_streams_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui, "MAX_EVENT_STREAMS", 2)
    made = make_torrent(tmp_path / "src", "live", {"a.bin": 40_000})

    async def read_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
        event = await asyncio.wait_for(response.content.readline(), STEP_TIMEOUT_S)
        assert event == b"event: torrents\n"
        data = await response.content.readline()
        await response.content.readline()
        decoded: dict[str, Any] = json.loads(data.removeprefix(b"data: "))
        return decoded

    async def scenario() -> None:
        async with serving(tmp_path / "d") as (visitor, _downloads):
            first = await visitor.http.get(visitor.base + "events")
            assert first.headers["Content-Type"] == "text/event-stream"
            assert (await read_event(first))["rows"] == []
            second = await visitor.http.get(visitor.base + "events")
            status, _page = await visitor.get("events")
            assert status == 503
            metainfo = base64.b64encode(made.path.read_bytes()).decode()
            number = (await visitor.rpc("torrent-add", metainfo=metainfo, paused=True))["torrent-added"]["id"]
            # The rows are computed once a second for every stream: one computed before the
            # add may be the next sent, so events are read until the torrent's row comes.
            rows: list[dict[str, Any]] = []
            for _event in range(5):
                rows = [row for row in (await read_event(first))["rows"] if row["id"] == number]
                if rows:
                    break
            [row] = rows
            assert (row["id"], row["name"], row["state"], row["size"]) == (number, "live", "Stopped", "40.0 kB")
            await visitor.rpc("torrent-remove", ids=[number])
            removed: list[int] = []
            for _event in range(5):
                removed = (await read_event(first)).get("removed", [])
                if removed:
                    break
            assert removed == [number]
            first.close()
            second.close()

            async def freed() -> bool:
                async with visitor.http.get(visitor.base + "events") as response:
                    return response.status == 200

            await poll(freed, "a closed stream's place free again")

    run(scenario)


def test_client_names_come_from_peer_ids() -> None:
    assert client_name(b"-LT2080-abcdefghijkl") == "libtorrent 2.0.8"
    assert client_name(b"-TR4060-abcdefghijkl") == "Transmission 4.0.6"
    assert client_name(b"M7-4-0--abcdefghijkl") == "BitTorrent 7.4.0"
    assert client_name(b"\x00\x01<script>") == "unknown (<scrip)"  # the first 8 bytes, printable ones
    assert client_name(None) == ""


def test_the_pieces_map_has_one_cell_per_run_of_pieces() -> None:
    bits = base64.b64encode(bytes([0b11110000, 0])).decode()
    assert ui.piece_map(bits, 16) == [(0, 4, 1.0)]
    assert ui.piece_map(base64.b64encode(bytes([0b10110000, 0])).decode(), 16) == [(0, 1, 1.0), (2, 2, 1.0)]
    many = base64.b64encode(bytes([0xFF] * 124 + [0xF0])).decode()
    # 1000 pieces in 400 cells of 2 or 3; pieces 996 to 999 missing: cell 398 (995, 996)
    # is half there, cell 399 (997 to 999) not at all.
    assert ui.piece_map(many, 1000) == [(0, 398, 1.0), (398, 1, 0.5)]
    assert ui.piece_map("", 0) == []
