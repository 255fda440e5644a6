"""Bundles on `bitswarm index`: published by `bitswarm bundle publish`, a free link, a voucher
bought with the site's signature, the grant's page, and keys that a tampered row cannot
release. Every program is the real command; the visitor is an HTTP client with cookies."""

from __future__ import annotations

import http.cookiejar
import json
import re
import sqlite3
import subprocess
import time
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

from bitswarm.bundle import links, webhooks
from bitswarm.metainfo import Torrent
from index.conftest import free_port
from index.test_cli_index import bitswarm, command_and_environment

from .test_format import tiny_png

PASSWORD = "a long enough password"
# The payment provider the site is configured with: its checkout is never followed here (the
# test reads where the site sends the buyer), and the test makes its signed calls.
PROVIDER = "http://payments.invalid"
WEBHOOK_SECRET = "whsec-shared-with-the-provider"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
SHARE = re.compile(r'id="share-text" size="60"|value="(magnet:\?[^"]+)"')


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Visitor:
    """A browser's cookie jar and redirects, no JavaScript."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def post_form_staying(self, url: str, page: str, **fields: str) -> tuple[int, dict[str, str]]:
        """The form's answer itself (a redirect is not followed)."""
        token = CSRF.search(page)
        assert token is not None, "the page has no form"
        body = urllib.parse.urlencode({"csrf_token": token.group(1), **fields}).encode()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)
        request = urllib.request.Request(url, data=body)  # noqa: S310 - our own loopback server
        try:
            with opener.open(request, timeout=20) as response:
                return response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers)

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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[Mailbox, int]) -> Iterator[tuple[str, str]]:
    """A running `bitswarm index` on a SQLite file, with an uploader account, mailing through
    the test's SMTP server: (URL, db URL). One per module: its tests publish bundles of
    their own."""
    tmp_path = tmp_path_factory.mktemp("site")
    db = f"sqlite:///{tmp_path / 'site.db'}"
    made = bitswarm("index", "account", "add", "artist", "--password-stdin", "--db", db, cwd=tmp_path,
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    config = tmp_path / "site.toml"
    config.write_text(
        f'smtp_host = "127.0.0.1"\nsmtp_port = {mailbox[1]}\nsmtp_from = "site@example.org"\n'
        f'payment_checkout_url = "{PROVIDER}/checkout"\npayment_webhook_secret = "{WEBHOOK_SECRET}"\n'
    )
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


def make_bundle(tmp_path: Path, name: str, gate: str, *, cover: bytes | None = None) -> tuple[Path, bytes]:
    content = tmp_path / name
    content.mkdir()
    (content / "song.flac").write_bytes(bytes(range(256)) * 300)
    out = tmp_path / f"{name}.torrent"
    extra = []
    if cover is not None:
        (tmp_path / f"{name}-cover.png").write_bytes(cover)
        extra = ["--cover", str(tmp_path / f"{name}-cover.png")]
    made = bitswarm("bundle", "create", str(content), "-o", str(out), "--gate", gate, "--title", f"{name} (live)",
                    *extra, cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    key_text = made.stdout.strip().partition("#k=")[2] or out.with_suffix(".key").read_text().strip()
    return out, links.parse_key(key_text)


def publish(tmp_path: Path, site_url: str, torrent: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return bitswarm("bundle", "publish", str(torrent), "--index", site_url, "--user", "artist", "--password-stdin",
                    *args, cwd=tmp_path, stdin=PASSWORD + "\n")  # fmt: skip


def announce(site_url: str, torrent: Path, passkey: str | None = None) -> bytes:
    """One announce to the site's own tracker (over HTTP, with ``passkey`` in the path)."""
    info_hash = Torrent.decode(torrent.read_bytes()).info_hash_v1
    assert info_hash is not None
    query = urllib.parse.urlencode({"info_hash": info_hash, "peer_id": b"-XX0001-" + bytes(12), "port": 6881,
                                    "uploaded": 0, "downloaded": 0, "left": 0, "compact": 1})  # fmt: skip
    path = "/announce" if passkey is None else f"/announce/{passkey}"
    with urllib.request.urlopen(f"{site_url}{path}?{query}", timeout=10) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
        return body


def shared_key(page: str) -> tuple[str, bytes]:
    found = re.search(r'value="(magnet:\?[^"]+)"', page)
    assert found is not None, "no share link on the page"
    link = found.group(1).replace("&amp;", "&")
    return link, links.parse_key(link)


def test_a_free_bundle_is_published_and_its_page_gives_the_link_with_the_key(
    tmp_path: Path, site: tuple[str, str]
) -> None:
    site_url, _ = site
    torrent, key = make_bundle(tmp_path, "free", "free", cover=tiny_png())
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
    assert f"cover: image/png, {len(tiny_png())} bytes" in opened.stdout
    assert f'src="/b/{page_url.rsplit("/", 1)[1]}/cover"' in page
    with urllib.request.urlopen(f"{page_url}/cover", timeout=10) as response:  # noqa: S310 - our own loopback server
        assert response.headers["Content-Type"] == "image/png"
        assert response.read() == tiny_png()
    bad_cover = tmp_path / "not-a-picture.png"
    bad_cover.write_bytes(b"<svg onload=alert(1)>")
    refused = bitswarm("bundle", "create", str(tmp_path / "free"), "-o", str(tmp_path / "x.torrent"),
                       "--cover", str(bad_cover), cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2
    assert "JPEG, PNG or WebP" in refused.stderr
    assert b"interval" in announce(site_url, torrent)  # a free bundle's swarm is open
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
    # A sold bundle's swarm is private on the site's tracker: its passkeys only.
    assert b"unknown passkey" in announce(site_url, torrent)
    assert b"unknown passkey" in announce(site_url, torrent, "0" * 32)
    answer = announce(site_url, torrent, passkey.group(1))
    assert b"interval" in answer, answer
    assert "private on the site's tracker" in published.stderr
    artist_passkey = re.search(r"/announce/([0-9a-f]{32})", published.stderr)
    assert artist_passkey is not None
    assert b"interval" in announce(site_url, torrent, artist_passkey.group(1))
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
        sales = connection.execute("SELECT gross, platform, artist FROM bundle_sales WHERE entry_id = ?",
                                   (entry_id,)).fetchall()  # fmt: skip
        grants = connection.execute(
            "SELECT kind, passkey FROM bundle_grants WHERE entry_id = ? AND kind = 'sale'", (entry_id,)
        ).fetchall()
        # A tampered wrapped key (in the database, by whoever can write it) is never used.
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
    sent_before = len(mailbox[0].messages)
    status, said, _ = fan.post_form(f"{page_url}/email", page, address="Fan@Example.ORG", consent="yes")
    assert status == 200, said
    assert "Check your mail" in said
    [mail] = mailbox[0].messages[sent_before:]
    assert mail["To"] == "Fan@example.org"
    assert mail["From"] == "site@example.org"
    found = re.search(rf"{re.escape(site_url)}/b/confirm/[A-Za-z0-9_-]+", mail.get_content())
    assert found is not None, mail.get_content()
    status, grant_page, _ = fan.get(found.group(0))
    assert status == 200
    assert shared_key(grant_page)[1] == key
    # Asked again within minutes: no second mail.
    assert fan.post_form(f"{page_url}/email", page, address="fan@example.org")[0] == 429
    assert len(mailbox[0].messages) == sent_before + 1
    status, page, _ = shy.get(page_url)
    assert shy.post_form(f"{page_url}/email", page, address="shy@example.net")[0] == 200
    assert shy.post_form(f"{page_url}/email", page, address="not an address")[0] == 400
    with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
        rows = connection.execute(
            "SELECT address, address_digest FROM bundle_emails WHERE entry_id = ? ORDER BY id",
            (page_url.rsplit("/", 1)[1],),
        ).fetchall()
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


def test_a_providers_checkout_and_signed_webhook_sell_the_key_once(tmp_path: Path, site: tuple[str, str]) -> None:
    site_url, db = site
    torrent, key = make_bundle(tmp_path, "card", "price=9.95")
    published = publish(tmp_path, site_url, torrent, "--gate", "price=9.95")
    assert published.returncode == 0, published.stderr
    page_url = published.stdout.strip()
    entry_id = page_url.rsplit("/", 1)[1]
    buyer = Visitor()
    status, page, _ = buyer.get(page_url)
    assert 'id="checkout"' in page
    status, headers = buyer.post_form_staying(f"{page_url}/checkout", page)
    assert status == 303
    sent_to = urllib.parse.urlsplit(headers["Location"])
    assert f"{sent_to.scheme}://{sent_to.netloc}{sent_to.path}" == f"{PROVIDER}/checkout"
    asked = dict(urllib.parse.parse_qsl(sent_to.query))
    assert (asked["bundle"], asked["amount"]) == (entry_id, "9.95")
    status, waiting, _ = buyer.get(asked["return"])
    assert status == 200
    assert "Waiting for the payment" in waiting

    def call(event: dict[str, str], *, at: int | None = None, body: bytes | None = None) -> tuple[int, str]:
        data = json.dumps(event).encode()
        signature = webhooks.sign(WEBHOOK_SECRET.encode(), data, at if at is not None else int(time.time()))
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{site_url}/payments/webhook", data=body if body is not None else data, method="POST",
            headers={"Bitswarm-Signature": signature, "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    paid = {"id": "evt_1", "payment": "pay_1", "bundle": entry_id, "amount": "9.95", "order": asked["order"]}
    assert call({**paid, "amount": "0.01"})[0] == 400  # not the price
    assert call(paid, body=json.dumps({**paid, "amount": "0.01"}).encode())[0] == 400  # signature broken
    assert call(paid, at=int(time.time()) - 3600)[0] == 400  # too old
    assert call({**paid, "order": "0" * 32})[0] == 400  # no such order
    assert call(paid) == (200, '{"taken": true}')
    assert call(paid) == (200, '{"taken": false}')  # the provider retries: nothing twice
    status, key_page, _ = buyer.get(asked["return"])
    assert status == 200
    assert shared_key(key_page)[1] == key
    with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
        sales = connection.execute(
            "SELECT reference, gross FROM bundle_sales WHERE entry_id = ?", (entry_id,)
        ).fetchall()
    assert sales == [("pay_1", "9.95")]


BUNDLE_KEYS = "SELECT wrapped_key, owner_wrapped_key FROM bundles ORDER BY entry_id"


def test_the_artists_own_key_copies_open_with_their_password_and_survive_a_password_change(
    tmp_path: Path, site: tuple[str, str]
) -> None:
    site_url, db = site
    torrent, key = make_bundle(tmp_path, "mine", "price=9.95")
    published = publish(tmp_path, site_url, torrent, "--gate", "price=9.95")
    assert published.returncode == 0, published.stderr
    entry_id = published.stdout.strip().rsplit("/", 1)[1]
    artist = Visitor()
    assert artist.get(f"{site_url}/account/keys")[0] == 200  # the sign-in page it is sent to
    status, login_page, _ = artist.get(f"{site_url}/login")
    artist.post_form(f"{site_url}/login", login_page, name="artist", password=PASSWORD)
    status, form, _ = artist.get(f"{site_url}/account/keys")
    assert 'id="my-keys"' in form
    assert artist.post_form(f"{site_url}/account/keys", form, password="not the password")[0] == 403
    status, shown, _ = artist.post_form(f"{site_url}/account/keys", form, password=PASSWORD)
    assert status == 200
    assert links.key_text(key) in shown

    database = db.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        bundles_before = connection.execute(
            "SELECT wrapped_key, owner_wrapped_key FROM bundles ORDER BY entry_id"
        ).fetchall()
        keys_before = connection.execute("SELECT sealed_keys FROM account_keys").fetchall()
    new_password = "another long enough password"
    changed = bitswarm("index", "account", "password", "artist", "--password-stdin", "--db", db, cwd=tmp_path,
                       stdin=f"{PASSWORD}\n{new_password}\n")  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    with sqlite3.connect(database) as connection:
        bundles_after = connection.execute(
            "SELECT wrapped_key, owner_wrapped_key FROM bundles ORDER BY entry_id"
        ).fetchall()
        keys_after = connection.execute("SELECT sealed_keys FROM account_keys").fetchall()
    assert bundles_after == bundles_before  # no bundle key was touched
    assert keys_after != keys_before  # the master key, wrapped again
    status, form, _ = artist.get(f"{site_url}/account/keys")
    assert artist.post_form(f"{site_url}/account/keys", form, password=PASSWORD)[0] == 403
    status, shown, _ = artist.post_form(f"{site_url}/account/keys", form, password=new_password)
    assert status == 200
    assert links.key_text(key) in shown
    assert f"/b/{entry_id}" in shown
    back = bitswarm("index", "account", "password", "artist", "--password-stdin", "--db", db, cwd=tmp_path,
                    stdin=f"{new_password}\n{PASSWORD}\n")  # fmt: skip
    assert back.returncode == 0, back.stderr
    # A rotation after a compromise: a new master key, the owner copies wrapped again, the
    # site's own copies (for the gates) and the bundles' ciphertext untouched.
    rotated = bitswarm("index", "account", "rotate-keys", "artist", "--password-stdin", "--db", db, cwd=tmp_path,
                       stdin=PASSWORD + "\n")  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    assert "wrapped again" in rotated.stdout
    with sqlite3.connect(database) as connection:
        bundles_rotated = connection.execute(BUNDLE_KEYS).fetchall()
    assert [site_copy for site_copy, _ in bundles_rotated] == [site_copy for site_copy, _ in bundles_before]
    assert all(after != before for (_, after), (_, before) in zip(bundles_rotated, bundles_before, strict=True))
    status, form, _ = artist.get(f"{site_url}/account/keys")
    status, shown, _ = artist.post_form(f"{site_url}/account/keys", form, password=PASSWORD)
    assert status == 200
    assert links.key_text(key) in shown


def test_the_artist_seeds_the_private_swarm_with_the_printed_passkey_url_and_a_buyer_opens_it(
    tmp_path: Path, site: tuple[str, str]
) -> None:
    """The whole walk-through of the README on one machine: create, publish behind a price,
    seed with `--tracker` the passkey URL that publish printed, buy, open with the link."""
    site_url, db = site
    torrent, _ = make_bundle(tmp_path, "walk", "price=4.50")
    published = publish(tmp_path, site_url, torrent, "--gate", "price=4.50")
    assert published.returncode == 0, published.stderr
    printed = re.search(r"--tracker (\S+)", published.stderr)
    assert printed is not None, published.stderr
    page_url = published.stdout.strip()
    issued = bitswarm("index", "voucher", page_url.rsplit("/", 1)[1], "--db", db, cwd=tmp_path)
    visitor = Visitor()
    _, page, _ = visitor.get(page_url)
    status, grant_page, _ = visitor.post_form(f"{page_url}/redeem", page, voucher=issued.stdout.strip())
    assert status == 200, grant_page
    link, _ = shared_key(grant_page)
    command, environment = command_and_environment(
        "seed", str(torrent), str(tmp_path / "walk"), "--tracker", printed.group(1), "--port", "0",
        "--no-dht", "--no-lsd", "--json",
    )  # fmt: skip
    seed = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        assert seed.stdout is not None
        assert json.loads(seed.stdout.readline())["event"] == "started"
        opened = bitswarm("bundle", "open", link, "-o", str(tmp_path / "bought"), "--port", "0", "--no-dht",
                          "--no-lsd", cwd=tmp_path)  # fmt: skip
    finally:
        seed.terminate()
        _, seed_errors = seed.communicate(timeout=30)
    assert opened.returncode == 0, opened.stderr
    assert (tmp_path / "bought" / "song.flac").read_bytes() == bytes(range(256)) * 300, seed_errors
