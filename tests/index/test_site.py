"""The site served for real (``serve_index`` on loopback, its tracker included), driven by
an HTTP client as a browser would: forms with their CSRF tokens, cookies, redirects.

Each test runs on SQLite and on a throwaway PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import logging
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, urlsplit

import aiohttp
import feedparser  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bitswarm import bencode
from bitswarm.index.config import IndexConfig
from bitswarm.index.db import database_url, open_database
from bitswarm.index.run import serve_index
from bitswarm.metainfo import TorrentVersion, read_torrent_file
from index.conftest import PostgresServer
from index.support import make_torrent, run
from index.test_cli_index import command_and_environment

SECRET = "s" * 40
# The privacy test's visitor: an address of its own, so that finding it means storing it.
VISITOR = "127.0.0.9"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@dataclasses.dataclass
class Browser:
    """A visitor: one cookie jar, like a browser's."""

    base: str
    http: aiohttp.ClientSession

    async def get(self, path: str, **options: object) -> tuple[int, str]:
        async with self.http.get(self.base + path, **options) as response:  # type: ignore[arg-type]
            return response.status, await response.text()

    async def form(
        self, path: str, fields: dict[str, object], *, from_page: str | None = None, follow: bool = True
    ) -> tuple[int, str, str]:
        """Submit a form the way the page at ``from_page`` (or ``path``) offers it:
        (status, final URL path, body); with ``follow=False`` the redirect is not followed
        and the path is where it points."""
        _status, page = await self.get(from_page or path)
        token = CSRF.search(page)
        assert token is not None, "the page has a form with a CSRF token"
        data = aiohttp.FormData()
        data.add_field("csrf_token", token.group(1))
        for name, value in fields.items():
            if isinstance(value, tuple):
                data.add_field(name, value[1], filename=value[0], content_type="application/x-bittorrent")
            else:
                data.add_field(name, str(value))
        async with self.http.post(self.base + path, data=data, allow_redirects=follow) as response:
            where = response.url.path if follow else urlsplit(response.headers["Location"]).path
            return response.status, where, await response.text()


Scenario = Callable[[Browser, IndexConfig], Awaitable[None]]


@asynccontextmanager
async def serving(config: IndexConfig, *, fetch_metadata: bool = False) -> AsyncIterator[str]:
    stop = asyncio.Event()
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve_index(config, ready=url.set_result, stop=stop, fetch_metadata=fetch_metadata))
    waiters: set[asyncio.Future[Any]] = {server, url}
    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if server in done:
        server.result()  # raises what stopped it
    try:
        yield url.result().rstrip("/")
    finally:
        stop.set()
        await server


def site_test(index_url: str, scenario: Scenario, *, visitor: str = "127.0.0.1", **settings: object) -> None:
    """Run ``scenario`` against the site, the browser connecting from ``visitor``."""
    config = IndexConfig(bind="127.0.0.1:0", db=index_url, secret_key=SECRET, **settings)  # type: ignore[arg-type]

    async def main() -> None:
        async with serving(config) as base:
            jar = aiohttp.CookieJar(unsafe=True)
            connector = aiohttp.TCPConnector(local_addr=(visitor, 0))
            async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as http:
                await asyncio.wait_for(scenario(Browser(base, http), config), timeout=60)

    run(main())


def upload_fields(tmp_path: Path, name: str, files: dict[str, bytes], **fields: str) -> dict[str, object]:
    data = make_torrent(tmp_path, name, files, TorrentVersion.HYBRID)
    return {"torrent": (f"{name}.torrent", data), **fields}


def entry_id_of(path: str) -> int:
    match = re.fullmatch(r"/t/(\d+)", path)
    assert match is not None, path
    return int(match.group(1))


def test_an_upload_is_listed_found_by_a_file_name_and_downloadable_with_the_sites_tracker_first(
    index_url: str, tmp_path: Path
) -> None:
    fields = upload_fields(
        tmp_path, "Holiday Pictures", {"beach/sunset-over-the-bay.jpg": b"x" * 5000, "notes.txt": b"hello"},
        category="other", tags="photos summer", description="**Bold** words",
    )  # fmt: skip
    original = read_torrent_file(fields["torrent"][1])  # type: ignore[index]

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        status, path, page = await browser.form("/upload", fields)
        assert status == 200
        entry_id = entry_id_of(path)
        assert "Holiday Pictures" in page
        assert "sunset-over-the-bay.jpg" in page
        assert "<strong>Bold</strong>" in page  # Markdown, rendered
        status, listing = await browser.get("/")
        assert f'href="/t/{entry_id}"' in listing
        status, found = await browser.get("/search?q=sunset")
        assert status == 200
        assert f'href="/t/{entry_id}"' in found
        status, found = await browser.get("/search?q=sunse*&cat=other")
        assert f'href="/t/{entry_id}"' in found
        status, nothing = await browser.get("/search?q=sunset&cat=movies")
        assert f'href="/t/{entry_id}"' not in nothing
        async with browser.http.get(f"{browser.base}/t/{entry_id}/download.torrent") as response:
            assert response.content_type == "application/x-bittorrent"
            downloaded = read_torrent_file(await response.read())
        assert (downloaded.info_hash_v1, downloaded.info_hash_v2) == (original.info_hash_v1, original.info_hash_v2)
        assert downloaded.trackers[0] == (f"{browser.base}/announce",)

    site_test(index_url, scenario)


def test_a_duplicate_upload_names_the_listed_entry(index_url: str, tmp_path: Path) -> None:
    fields = upload_fields(tmp_path, "Same", {"a.bin": b"a" * 3000})

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        _status, path, _page = await browser.form("/upload", fields)
        status, _path, page = await browser.form("/upload", fields)
        assert status == 409
        assert f"listed already: {path}" in page

    site_test(index_url, scenario)


def test_a_form_without_its_token_or_from_another_site_is_refused(index_url: str, tmp_path: Path) -> None:
    fields = upload_fields(tmp_path, "Forged", {"a.bin": b"f" * 3000})

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        data = aiohttp.FormData()
        data.add_field("torrent", fields["torrent"][1], filename="x.torrent")  # type: ignore[index]
        async with browser.http.post(browser.base + "/upload", data=data) as response:
            assert response.status == 403
        status, _path, _page = await browser.form("/upload", {"magnet": "nonsense"})
        assert status == 400  # with a token: the form is read, the link refused
        async with browser.http.post(
            browser.base + "/upload", data={"magnet": "x"}, headers={"Origin": "https://evil.example"}
        ) as response:
            assert response.status == 403
        status, listing = await browser.get("/")
        assert "Forged" not in listing

    site_test(index_url, scenario)


def test_script_in_every_field_is_shown_as_text_on_pages_and_in_feeds(index_url: str, tmp_path: Path) -> None:
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>]]>'
    fields = upload_fields(
        tmp_path, "evil-name", {"<b>file</b>.txt": b"e" * 100}, title=evil, tags="<i>tag</i>",
        description=f"{evil} [link](javascript:alert(3))",
    )  # fmt: skip

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        status, _path, page = await browser.form("/upload", fields)
        assert status == 400  # a tag is a word: refused, and the refusal shows it as text
        assert "&lt;i&gt;tag&lt;/i&gt;" in page
        assert "<i>tag</i>" not in page
        status, _path, page = await browser.form("/upload", {**fields, "tags": "fine-tag"})
        assert status == 200
        for body in (page, (await browser.get("/"))[1], (await browser.get("/search?q=alert"))[1]):
            assert "<script>alert" not in body
            assert "<img" not in body
            assert 'href="javascript:' not in body
        assert html.escape(evil, quote=True).replace("&#x27;", "&#39;")[:20] in page
        status, feed = await browser.get("/rss")
        parsed = feedparser.parse(feed)
        assert parsed.bozo == 0
        assert parsed.entries[0].title == evil

    site_test(index_url, scenario)


def test_feeds_and_torznab_list_the_entries_with_enclosures(index_url: str, tmp_path: Path) -> None:
    fields = upload_fields(tmp_path, "Some.Show.S01E02.720p", {"episode.mkv": b"v" * 20000}, category="tv")

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        _status, path, _page = await browser.form("/upload", fields)
        entry_id = entry_id_of(path)
        for feed_path in ("/rss", "/rss?cat=tv", "/rss?q=episode"):
            status, feed = await browser.get(feed_path)
            parsed = feedparser.parse(feed)
            assert status == 200
            assert parsed.bozo == 0
            assert [item.link for item in parsed.entries] == [f"{browser.base}/t/{entry_id}"]
            assert parsed.entries[0].enclosures[0].type == "application/x-bittorrent"
        status, caps = await browser.get("/api?t=caps")
        assert "<caps>" in caps
        assert 'id="5000"' in caps
        status, results = await browser.get("/api?t=tvsearch&q=some%20show&season=1&ep=2&cat=5000")
        parsed = feedparser.parse(results)
        assert [item.title for item in parsed.entries] == ["Some.Show.S01E02.720p"]
        status, none = await browser.get("/api?t=tvsearch&q=some%20show&season=1&ep=3")
        assert feedparser.parse(none).entries == []
        status, error = await browser.get("/api?t=nonsense")
        assert 'code="202"' in error

    site_test(index_url, scenario)


def compact_announce(base: str, info_hash: bytes, port: int, left: int) -> str:
    return (
        f"{base}/announce?info_hash={quote_from_bytes(info_hash)}&peer_id={str(port).ljust(20, '-')}"
        f"&port={port}&uploaded=0&downloaded=0&left={left}&compact=1"
    )


def test_the_sites_tracker_counts_show_on_its_pages_and_it_answers_udp_on_the_same_port(
    index_url: str, tmp_path: Path
) -> None:
    fields = upload_fields(tmp_path, "Tracked", {"t.bin": b"t" * 4000})
    info_hash = read_torrent_file(fields["torrent"][1]).info_hash_v1  # type: ignore[index]
    assert info_hash is not None

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        _status, path, page = await browser.form("/upload", fields)
        assert "unknown" not in page.split("Swarm", 1)[1][:200]  # our own tracker knows: 0, not unknown
        for port, left in ((7001, 0), (7002, 0), (7003, 100)):
            async with browser.http.get(compact_announce(browser.base, info_hash, port, left)) as response:
                reply = bencode.decode(await response.read())
                assert isinstance(reply, dict)
                assert b"peers" in reply
        _status, page = await browser.get(path)
        assert '<span class="seeders">2</span> seeders, 1 leecher,' in page  # singular for one
        _status, listing = await browser.get("/")
        assert '<td class="num seeders">2</td>' in listing
        # BEP 15 connect on the site's port number, over UDP.
        port = int(browser.base.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                answer.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
        transport.sendto(struct.pack(">QII", 0x41727101980, 0, 0x1234))
        reply = await asyncio.wait_for(answer, 10)
        transport.close()
        assert struct.unpack(">II", reply[:8]) == (0, 0x1234)

    site_test(index_url, scenario)


def test_an_operator_hides_an_entry_and_reads_the_reports_visitors_filed(index_url: str, tmp_path: Path) -> None:
    fields = upload_fields(tmp_path, "Reported", {"r.bin": b"r" * 4000})

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        db = await open_database(config.db)
        async with db:
            await db.accounts.create("oper", "correct horse battery", "operator")
        _status, path, _page = await browser.form("/upload", fields)
        status, _p, page = await browser.form(f"{path}/report", {"reason": "not what it says"}, from_page=path)
        assert status == 200
        assert "Thank you" in page
        status, _p, page = await browser.form("/login", {"name": "oper", "password": "wrong password!"})
        assert status == 403
        status, _p, page = await browser.form("/login", {"name": "oper", "password": "correct horse battery"})
        assert status == 200
        assert "Sign out oper" in page
        _status, reports = await browser.get("/reports")
        assert "not what it says" in reports
        assert f'href="{path}"' in reports
        status, _p, _page = await browser.form(f"{path}/moderate", {"action": "hide"}, from_page=path)
        assert status == 200
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(browser.base + path) as response:
                assert response.status == 404
            async with anonymous.get(browser.base + "/") as response:
                assert "Reported" not in await response.text()
            async with anonymous.get(browser.base + "/reports") as response:
                assert response.status == 403

    site_test(index_url, scenario)


def test_a_foreign_host_name_is_refused(index_url: str) -> None:
    async def scenario(browser: Browser, config: IndexConfig) -> None:
        status, _body = await browser.get("/", headers={"Host": "evil.example"})
        assert status == 403

    site_test(index_url, scenario)


def test_uploads_beyond_the_hourly_budget_are_refused_and_others_still_browse(index_url: str, tmp_path: Path) -> None:
    torrents = [upload_fields(tmp_path, f"Flood {number}", {"f.bin": bytes([number]) * 3000}) for number in range(3)]

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        statuses = [(await browser.form("/upload", fields))[0] for fields in torrents]
        assert statuses == [200, 200, 429]
        status, listing = await browser.get("/")
        assert status == 200
        assert "Flood 1" in listing
        assert "Flood 2" not in listing

    site_test(index_url, scenario, uploads_per_hour=2)


def test_no_address_is_stored_after_uploads_searches_downloads_and_announces(
    index_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fields = upload_fields(tmp_path, "Private", {"p.bin": b"p" * 4000})
    info_hash = read_torrent_file(fields["torrent"][1]).info_hash_v1  # type: ignore[index]
    assert info_hash is not None

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        _status, path, _page = await browser.form("/upload", fields)
        await browser.form(f"{path}/report", {"reason": "test"}, from_page=path)
        await browser.get("/search?q=private")
        async with browser.http.get(f"{browser.base}{path}/download.torrent") as response:
            assert response.status == 200
        await browser.get("/rss")
        async with browser.http.get(compact_announce(browser.base, info_hash, 7100, 0)) as response:
            assert response.status == 200

    site_test(index_url, scenario, visitor=VISITOR)

    async def dump() -> str:
        engine = create_async_engine(database_url(index_url))
        texts = []
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
            for table in tables:
                rows = (await connection.execute(sa.text(f'SELECT * FROM "{table}"'))).all()  # noqa: S608 - table names from the schema
                texts.append(repr(rows))
        await engine.dispose()
        return "\n".join(texts)

    stored = run(dump())
    assert "Private" in stored  # the dump holds the data
    assert VISITOR not in stored
    assert caplog.records  # the logs were captured (the server logs at DEBUG)
    assert VISITOR not in caplog.text


@pytest.mark.postgres
def test_two_processes_on_one_postgresql_serve_the_same_site(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.new_database()
    fields = upload_fields(tmp_path, "Shared", {"shared-file.bin": b"s" * 4000})
    first = IndexConfig(bind="127.0.0.1:0", db=url, secret_key=SECRET)
    second = dataclasses.replace(first, bind="127.0.0.1:0")

    async def main() -> None:
        async with serving(first) as site_a, serving(second) as site_b:
            db = await open_database(url)
            async with db:
                await db.accounts.create("oper", "correct horse battery", "operator")
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                on_a, on_b = Browser(site_a, http), Browser(site_b, http)
                status, path, _page = await on_a.form("/upload", fields)
                assert status == 200
                _status, found = await on_b.get("/search?q=shared")
                assert f'href="{path}"' in found
                # Signed in on one process, an operator on the other (one secret, one database).
                await on_a.form("/login", {"name": "oper", "password": "correct horse battery"})
                jar_cookies = {cookie.key: cookie.value for cookie in jar}
                async with aiohttp.ClientSession() as other:
                    cookies = {"bitswarm_session": jar_cookies["bitswarm_session"]}
                    async with other.get(f"{site_b}/reports", cookies=cookies) as response:
                        assert response.status == 200

    run(asyncio.wait_for(main(), 60))


def test_entries_added_from_the_command_line_while_the_site_runs_are_listed(index_url: str, tmp_path: Path) -> None:
    torrent = tmp_path / "cli.torrent"
    torrent.write_bytes(make_torrent(tmp_path, "Added Meanwhile", {"m.bin": b"m" * 3000}))

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        command, environment = command_and_environment("index", "add", torrent, "--db", config.db, "--category", "tv")
        process = await asyncio.create_subprocess_exec(*command, env=environment, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)  # fmt: skip
        _out, errors = await process.communicate()
        assert process.returncode == 0, errors
        _status, listing = await browser.get("/browse/tv", allow_redirects=True)
        assert "Added Meanwhile" in listing

    site_test(index_url, scenario)


def test_oversized_uploads_and_too_many_files_are_refused_with_a_clear_message(index_url: str, tmp_path: Path) -> None:
    big = upload_fields(tmp_path, "Big", {f"f{number}.bin": bytes([number]) * 100 for number in range(60)})
    many = upload_fields(tmp_path, "Many", {"a.bin": b"a" * 100, "b.bin": b"b" * 100, "c.bin": b"c" * 100})
    assert len(big["torrent"][1]) > 4096  # type: ignore[index]

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        status, _path, page = await browser.form("/upload", big)
        assert status == 413
        assert "larger than" in page
        status, _path, page = await browser.form("/upload", many)
        assert status == 400
        assert "more than 2 files" in page
        status, listing = await browser.get("/")
        assert status == 200
        assert "Nothing here yet" in listing

    site_test(index_url, scenario, max_upload_bytes=4096, max_files=2)


HOSTILE_QUERIES = [
    '"', '""', "*", "a*", "NEAR(a b)", "title:x", "files:*", "a AND", "OR", ")", "(", "-", "-a", "^a", "!", "&|",
    ":*", "a & b | !c", "'; DROP TABLE entries; --", "\u202eexe.mp4", "zero\u200bwidth", "\x00", "x" * 300,
    "%", "_", "\\", "{}", "col:umn:", "a" * 5000,
]  # fmt: skip


def test_query_syntax_typed_in_the_search_box_is_text_and_every_page_answers(index_url: str, tmp_path: Path) -> None:
    fields = upload_fields(tmp_path, "Near Title Files", {"and-or-not.bin": b"q" * 3000})

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        await browser.form("/upload", fields)
        for query in HOSTILE_QUERIES:
            for path in ("/search", "/rss", "/api"):
                params = {"q": query, "t": "search"} if path == "/api" else {"q": query}
                async with browser.http.get(browser.base + path, params=params) as response:
                    assert response.status in (200, 400), (path, query, response.status)
                    body = await response.text()
                    assert "Traceback" not in body
        _status, found = await browser.get("/search", params={"q": '"near title"'})
        assert "Near Title Files" in found
        _status, found = await browser.get("/search", params={"q": "NEAR(title files)"})
        assert "Near Title Files" in found  # words, not FTS5's NEAR operator

    site_test(index_url, scenario)


def test_searches_by_seeders_see_the_sites_own_tracker(
    index_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bitswarm.index.run.OWN_COUNTS_EVERY_S", 0.05)
    seeded = upload_fields(tmp_path, "Seeded Swarm", {"s.bin": b"s" * 4000})
    lonely = upload_fields(tmp_path, "Lonely Swarm", {"l.bin": b"l" * 4000})
    info_hash = read_torrent_file(seeded["torrent"][1]).info_hash_v1  # type: ignore[index]
    assert info_hash is not None

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        await browser.form("/upload", seeded)
        await browser.form("/upload", lonely)
        async with browser.http.get(compact_announce(browser.base, info_hash, 7300, 0)) as response:
            assert response.status == 200
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        found = ""
        while "Seeded Swarm" not in found and loop.time() < deadline:
            await asyncio.sleep(0.05)  # polling for the recorded counts, written every 0.05 s here
            _status, found = await browser.get("/search?q=swarm&seeders=1")
        assert "Seeded Swarm" in found
        assert "Lonely Swarm" not in found
        _status, ordered = await browser.get("/search?q=swarm&sort=seeders")
        assert ordered.index("Seeded Swarm") < ordered.index("Lonely Swarm")

    site_test(index_url, scenario)


def test_an_operator_edits_and_deletes_an_entry(index_url: str, tmp_path: Path) -> None:
    fields = upload_fields(tmp_path, "Misnamed", {"m.bin": b"m" * 4000})

    async def scenario(browser: Browser, config: IndexConfig) -> None:
        db = await open_database(config.db)
        async with db:
            await db.accounts.create("editor", "correct horse battery", "operator")
        _status, path, _page = await browser.form("/upload", fields)
        status, _path, _page = await browser.form(f"{path}/edit", {"title": "x"}, from_page=path)
        assert status == 403  # not signed in
        await browser.form("/login", {"name": "editor", "password": "correct horse battery"})
        edit: dict[str, object] = {
            "title": "Properly Named", "description": "*now* described", "category": "books", "tags": "a b",
        }  # fmt: skip
        status, final, page = await browser.form(f"{path}/edit", edit, from_page=f"{path}/edit")
        assert status == 200
        assert final == path
        assert "Properly Named" in page
        assert "<em>now</em>" in page
        _status, found = await browser.get("/search?q=properly&cat=books")
        assert f'href="{path}"' in found
        status, final, _page = await browser.form(f"{path}/moderate", {"action": "delete"}, from_page=path)
        assert final == "/"
        status, _page = await browser.get(path)
        assert status == 404

    site_test(index_url, scenario)


def test_the_privacy_page_follows_the_running_configuration(index_url: str) -> None:
    async def scenario(browser: Browser, config: IndexConfig) -> None:
        _status, page = await browser.get("/privacy")
        assert "neither stored in the database nor written to any log" in page
        assert ("The tracker" in page) == config.tracker
        assert ("behind a proxy" in page) == bool(config.trusted_proxies)
        assert f"{config.searches_per_minute} a minute" in page

    site_test(index_url, scenario)
    site_test(index_url, scenario, tracker=False, trusted_proxies=("10.0.0.0/8",), searches_per_minute=77)


def test_an_entry_page_shows_changes_made_by_another_process_sharing_the_database(
    index_url: str, tmp_path: Path
) -> None:
    """Entry pages keep their rendered parts (bitswarm.index.entry_pages): a site that reads
    the entry on every visit (entry_page_fresh_s = 0) shows another process's edit, hide and
    delete on the next visit; one that trusts a read for a minute also shows its own at once."""
    fields = upload_fields(tmp_path, "Shared Page", {"page-file.bin": b"p" * 4000})
    writer = IndexConfig(bind="127.0.0.1:0", db=index_url, secret_key=SECRET, entry_page_fresh_s=60.0)
    reader = dataclasses.replace(writer, entry_page_fresh_s=0.0)

    async def main() -> None:
        async with serving(writer) as site_a, serving(reader) as site_b:
            db = await open_database(index_url)
            async with db:
                await db.accounts.create("oper", "correct horse battery", "operator")
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                on_a, on_b = Browser(site_a, http), Browser(site_b, http)
                _status, path, _page = await on_a.form("/upload", fields)
                for browser in (on_a, on_b):  # both keep the page's parts now
                    for _visit in range(2):
                        status, page = await browser.get(path)
                        assert (status, "Shared Page" in page, "page-file.bin" in page) == (200, True, True)
                await on_a.form("/login", {"name": "oper", "password": "correct horse battery"})
                edit: dict[str, object] = {
                    "title": "Renamed Page",
                    "description": "*edited*",
                    "category": "",
                    "tags": "",
                }
                await on_a.form(f"{path}/edit", edit, from_page=f"{path}/edit")
                async with aiohttp.ClientSession() as anonymous:
                    for base in (site_a, site_b):
                        async with anonymous.get(base + path) as response:
                            page = await response.text()
                            assert '<h1 dir="auto">Renamed Page</h1>' in page, base
                            assert "<em>edited</em>" in page, base
                    await on_a.form(f"{path}/moderate", {"action": "hide"}, from_page=path)
                    for base in (site_a, site_b):
                        async with anonymous.get(base + path) as response:
                            assert response.status == 404, base
                    await on_a.form(f"{path}/moderate", {"action": "unhide"}, from_page=path)
                    async with anonymous.get(site_b + path) as response:
                        assert response.status == 200
                    await on_a.form(f"{path}/moderate", {"action": "delete"}, from_page=path)
                    for base in (site_a, site_b):
                        async with anonymous.get(base + path) as response:
                            assert response.status == 404, base

    run(asyncio.wait_for(main(), 60))
