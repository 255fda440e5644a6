"""Bundles on `bitswarm index`: published by `bitswarm bundle publish`, a free link, a voucher
bought with the site's signature, the grant's page, and keys that a tampered row cannot
release. Every program is the real command; the visitor is an HTTP client with cookies."""

from __future__ import annotations

import http.cookiejar
import re
import sqlite3
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from bitswarm.bundle import links
from index.conftest import free_port
from index.test_cli_index import bitswarm, command_and_environment

PASSWORD = "a long enough password"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
SHARE = re.compile(r'id="share-text" size="60"|value="(magnet:\?[^"]+)"')


class Visitor:
    """A browser's cookie jar and redirects, no JavaScript."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, url: str) -> tuple[int, str, dict[str, str]]:
        try:
            with self.opener.open(url, timeout=20) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)

    def post_form(self, url: str, page: str, **fields: str) -> tuple[int, str, dict[str, str]]:
        token = CSRF.search(page)
        assert token is not None, "the page has no form"
        body = urllib.parse.urlencode({"csrf_token": token.group(1), **fields}).encode()
        try:
            request = urllib.request.Request(url, data=body)  # noqa: S310 - our own loopback server
            with self.opener.open(request, timeout=20) as response:
                return response.status, response.read().decode(), {**dict(response.headers), "url": response.url}
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)


class Mailbox:
    """aiosmtpd's handler: every message the site sends, as received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback (aiosmtpd) and its port."""
    handler = Mailbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def site(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Iterator[tuple[str, str]]:
    """A running `bitswarm index` on a SQLite file, with an uploader account, mailing through
    the test's SMTP server: (URL, db URL)."""
    db = f"sqlite:///{tmp_path / 'site.db'}"
    made = bitswarm("index", "account", "add", "artist", "--password-stdin", "--db", db, cwd=tmp_path,
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    config = tmp_path / "site.toml"
    config.write_text(f'smtp_host = "127.0.0.1"\nsmtp_port = {mailbox[1]}\nsmtp_from = "site@example.org"\n')
    command, environment = command_and_environment("index", "--bind", "127.0.0.1:0", "--db", db, "--config", config)
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env=environment)  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("bitswarm index: http://127.0.0.1:"), line
        yield line.split(": ", 1)[1].strip().rstrip("/"), db
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0
        assert "Traceback" not in (server.stderr.read() if server.stderr else "")


def make_bundle(tmp_path: Path, name: str, gate: str) -> tuple[Path, bytes]:
    content = tmp_path / name
    content.mkdir()
    (content / "song.flac").write_bytes(bytes(range(256)) * 300)
    out = tmp_path / f"{name}.torrent"
    made = bitswarm("bundle", "create", str(content), "-o", str(out), "--gate", gate, "--title", f"{name} (live)",
                    cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    key_text = made.stdout.strip().partition("#k=")[2] or out.with_suffix(".key").read_text().strip()
    return out, links.parse_key(key_text)


def publish(tmp_path: Path, site_url: str, torrent: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return bitswarm("bundle", "publish", str(torrent), "--index", site_url, "--user", "artist", "--password-stdin",
                    *args, cwd=tmp_path, stdin=PASSWORD + "\n")  # fmt: skip


def shared_key(page: str) -> tuple[str, bytes]:
    found = re.search(r'value="(magnet:\?[^"]+)"', page)
    assert found is not None, "no share link on the page"
    link = found.group(1).replace("&amp;", "&")
    return link, links.parse_key(link)


def test_a_free_bundle_is_published_and_its_page_gives_the_link_with_the_key(
    tmp_path: Path, site: tuple[str, str]
) -> None:
    site_url, _ = site
    torrent, key = make_bundle(tmp_path, "free", "free")
    published = publish(tmp_path, site_url, torrent, "--key", links.key_text(key), "--description", "Thanks!")
    assert published.returncode == 0, published.stderr
    page_url = published.stdout.strip()
    assert re.fullmatch(rf"{re.escape(site_url)}/b/\d+", page_url)
    status, page, headers = Visitor().get(page_url)
    assert status == 200
    assert "free (live)" in page
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    link, shown_key = shared_key(page)
    assert shown_key == key
    opened = bitswarm("bundle", "info", str(torrent), "--key", link, cwd=tmp_path)
    assert opened.returncode == 0
    assert "song.flac" in opened.stdout
    # Published twice: refused; with a key that does not open it: refused before listing.
    assert publish(tmp_path, site_url, torrent, "--key", links.key_text(key)).returncode == 1
    other, _ = make_bundle(tmp_path, "other", "free")
    wrong = publish(tmp_path, site_url, other, "--key", links.key_text(bytes(32)))
    assert wrong.returncode == 2
    assert "does not open" in wrong.stderr


def test_a_priced_bundle_is_bought_once_with_a_voucher_the_site_signed(tmp_path: Path, site: tuple[str, str]) -> None:
    site_url, db = site
    torrent, key = make_bundle(tmp_path, "priced", "price=9.95")
    published = publish(tmp_path, site_url, torrent, "--gate", "price=9.95")
    assert published.returncode == 0, published.stderr
    page_url = published.stdout.strip()
    entry_id = page_url.rsplit("/", 1)[1]
    visitor = Visitor()
    status, page, _ = visitor.get(page_url)
    assert status == 200
    assert "9.95" in page
    assert "#k=" not in page
    assert links.key_text(key) not in page

    issued = bitswarm("index", "voucher", entry_id, "--db", db, cwd=tmp_path)
    assert issued.returncode == 0, issued.stderr
    voucher = issued.stdout.strip()
    status, grant_page, headers = visitor.post_form(f"{page_url}/redeem", page, voucher=voucher)
    assert status == 200, grant_page
    assert re.fullmatch(rf"{re.escape(site_url)}/b/keys/[A-Za-z0-9_-]+", headers["url"])
    assert headers["Referrer-Policy"] == "same-origin"
    link, shown_key = shared_key(grant_page)
    assert shown_key == key
    passkey = re.search(r"announce%2F([0-9a-f]{32})", link)
    assert passkey is not None, link
    # The grant's page stays the buyer's; the voucher buys once.
    assert visitor.get(headers["url"])[0] == 200
    status, page, _ = visitor.get(page_url)
    assert visitor.post_form(f"{page_url}/redeem", page, voucher=voucher)[0] == 409
    forged = voucher[:-4] + ("AAAA" if not voucher.endswith("AAAA") else "BBBB")
    status, refused, _ = visitor.post_form(f"{page_url}/redeem", page, voucher=forged)
    assert status == 400
    assert "refused" in refused.lower()
    assert visitor.get(f"{site_url}/b/keys/{'x' * 43}")[0] == 404
    with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
        sales = connection.execute("SELECT gross, platform, artist FROM bundle_sales").fetchall()
        grants = connection.execute("SELECT kind, passkey FROM bundle_grants").fetchall()
        # A tampered wrapped key (in the database, by whoever can write it) is never used.
        connection.execute("UPDATE bundle_grants SET kind = kind")  # the grant stays valid
        blob = bytearray(connection.execute("SELECT wrapped_key FROM bundles WHERE entry_id = ?", (entry_id,))
                         .fetchone()[0])  # fmt: skip
        blob[-3] ^= 1
        connection.execute("UPDATE bundles SET wrapped_key = ? WHERE entry_id = ?", (bytes(blob), entry_id))
    assert sales == [("9.95", "1.00", "8.95")]
    assert grants == [("sale", passkey.group(1))]
    status, body, _ = visitor.get(headers["url"])
    assert status == 503
    assert links.key_text(key) not in body


def test_publishing_needs_an_account(tmp_path: Path, site: tuple[str, str]) -> None:
    site_url, _ = site
    torrent, key = make_bundle(tmp_path, "anon", "free")
    refused = bitswarm("bundle", "publish", str(torrent), "--index", site_url, "--user", "artist", "--password-stdin",
                       "--key", links.key_text(key), cwd=tmp_path, stdin="wrong password\n")  # fmt: skip
    assert refused.returncode == 1
    assert "401" in refused.stderr
    # A browser's form post (no API header, no CSRF token) is refused too.
    request = urllib.request.Request(f"{site_url}/api/bundles", data=b"x=1", method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - our own loopback server
    assert caught.value.code == 403


def test_the_email_gate_mails_a_link_that_gives_the_key_and_keeps_addresses_only_with_consent(
    tmp_path: Path, site: tuple[str, str], mailbox: tuple[Mailbox, int]
) -> None:
    site_url, db = site
    torrent, key = make_bundle(tmp_path, "fans", "email")
    published = publish(tmp_path, site_url, torrent, "--gate", "email")
    assert published.returncode == 0, published.stderr
    page_url = published.stdout.strip()
    fan, shy = Visitor(), Visitor()
    status, page, _ = fan.get(page_url)
    assert status == 200
    assert links.key_text(key) not in page
    status, said, _ = fan.post_form(f"{page_url}/email", page, address="Fan@Example.ORG", consent="yes")
    assert status == 200, said
    assert "Check your mail" in said
    [mail] = mailbox[0].messages
    assert mail["To"] == "Fan@example.org"
    assert mail["From"] == "site@example.org"
    found = re.search(rf"{re.escape(site_url)}/b/confirm/[A-Za-z0-9_-]+", mail.get_content())
    assert found is not None, mail.get_content()
    status, grant_page, _ = fan.get(found.group(0))
    assert status == 200
    assert shared_key(grant_page)[1] == key
    # Asked again within minutes: no second mail.
    assert fan.post_form(f"{page_url}/email", page, address="fan@example.org")[0] == 429
    assert len(mailbox[0].messages) == 1
    status, page, _ = shy.get(page_url)
    assert shy.post_form(f"{page_url}/email", page, address="shy@example.net")[0] == 200
    assert shy.post_form(f"{page_url}/email", page, address="not an address")[0] == 400
    with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
        rows = connection.execute("SELECT address, address_digest FROM bundle_emails ORDER BY id").fetchall()
    assert [address for address, _ in rows] == ["Fan@example.org", None]
    assert all(len(digest) == 32 and b"shy" not in digest for _, digest in rows)
    # The artist's export: the consenting, confirmed address only; nobody else may read it.
    entry_id = page_url.rsplit("/", 1)[1]
    assert Visitor().get(f"{site_url}/b/{entry_id}/fans.csv")[0] == 403
    artist = Visitor()
    status, login_page, _ = artist.get(f"{site_url}/login")
    status, _, _ = artist.post_form(f"{site_url}/login", login_page, name="artist", password=PASSWORD)
    status, csv, _ = artist.get(f"{site_url}/b/{entry_id}/fans.csv")
    assert status == 200
    assert csv.splitlines() == ["address", "Fan@example.org"]
