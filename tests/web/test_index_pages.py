"""The index site (``bitswarm index``, a subprocess on SQLite with its own tracker) as a
person uses it in Debian's chromium, driven by Playwright (issue 12, point 8), at a desktop
and a phone viewport.

A visitor uploads a .torrent through the form, finds it by a word of one of its file
names with the search box in the header, opens its page, copies the magnet link and
follows the RSS link of the results; an operator (an account made by ``bitswarm index
account add`` before the site starts) signs in and hides the entry, and a new anonymous
visitor no longer sees it. Every page is checked for console errors (a CSP violation is
one) and, on the phone, for a horizontal scroll bar and a visible search box.

Screenshots of the main pages go to $BITSWARM_ARTEFACTS/index-pages when that is set,
else to test-artifacts/index-pages at the repository's root. A missing chromium fails the
tests, never skips them; ``playwright install`` is never run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest

import bitswarm as bitswarm_package
from bitswarm import bencode
from bitswarm.metainfo import TorrentVersion
from index.support import make_torrent

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
# One step (the site starting, a page loading, an element appearing) is bounded by this.
STEP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
OPERATOR = "oper"
OPERATOR_PASSWORD = "correct horse battery staple"
REPOSITORY = Path(__file__).resolve().parents[2]

# The viewports: a laptop, and a phone of the usual width (390 CSS pixels: iPhone 12 to
# 14) with a mobile browser's meta-viewport handling and touch.
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "screen": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


def artefact_folder() -> Path:
    root = os.environ.get("BITSWARM_ARTEFACTS")
    folder = (Path(root) if root else REPOSITORY / "test-artifacts") / "index-pages"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def command_and_environment(*args: str | Path) -> tuple[list[str], dict[str, str]]:
    # The command from the sources under test (the worktree's when PYTHONPATH names it).
    sources = str(Path(bitswarm_package.__file__).resolve().parents[1])
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [sources, os.environ.get("PYTHONPATH")]))}
    return [sys.executable, "-m", "bitswarm", *map(str, args)], environment


@dataclass
class IndexSite:
    """A running ``bitswarm index``: its URL, its process and where its stderr goes."""

    url: str
    process: subprocess.Popen[str]
    stderr_path: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")[-3000:]


def _pump(pipe: TextIO, lines: queue.Queue[str | None]) -> None:
    for line in pipe:
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def index_site(folder: Path) -> Iterator[IndexSite]:
    """``bitswarm index --bind 127.0.0.1:0`` on a fresh SQLite database holding one
    operator account; ended by SIGTERM (its PID) at the end, which must end it cleanly."""
    db = f"sqlite:///{folder / 'index.db'}"
    command, environment = command_and_environment("index", "account", "add", OPERATOR, "--role", "operator",
                                                   "--password-stdin", "--db", db)  # fmt: skip
    created = subprocess.run(command, input=OPERATOR_PASSWORD + "\n", capture_output=True, text=True, cwd=folder,
                             env=environment, timeout=STEP_TIMEOUT_S, check=False)  # fmt: skip
    assert created.returncode == 0, created.stderr
    command, environment = command_and_environment("index", "--bind", "127.0.0.1:0", "--db", db)
    stderr_path = folder / "index.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                   text=True, cwd=folder, env=environment)  # fmt: skip
    site = IndexSite("", process, stderr_path)
    try:
        assert process.stdout is not None
        threading.Thread(target=_pump, args=(process.stdout, site.lines), daemon=True).start()
        try:
            line = site.lines.get(timeout=STEP_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"bitswarm index did not say its URL within {STEP_TIMEOUT_S} s:\n{site.stderr()}")
        if line is None or not line.startswith("bitswarm index: http://127.0.0.1:"):
            pytest.fail(f"bitswarm index: unexpected first line {line!r}:\n{site.stderr()}")
        site.url = line.split(": ", 1)[1].strip().rstrip("/")
        yield site
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_S)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0, site.stderr()
    assert "Traceback" not in site.stderr(), site.stderr()


def announce_seeder(site_url: str, info_hash: bytes) -> None:
    """A seeder's ``started`` announce to the site's ``/announce`` (BEP 3, compact)."""
    query = urllib.parse.urlencode({
        "info_hash": info_hash, "peer_id": b"-XX0001-pagetest0001", "port": 6881, "uploaded": 0, "downloaded": 0,
        "left": 0, "event": "started", "compact": 1,
    })  # fmt: skip
    with urllib.request.urlopen(f"{site_url}/announce?{query}", timeout=STEP_TIMEOUT_S) as answer:  # noqa: S310
        body = bencode.decode(answer.read())
    assert isinstance(body, dict), body
    assert b"failure reason" not in body, body


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright; fails (never skips) when either is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing (Debian package: chromium); the page tests need it", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class ConsoleErrors:
    """The console errors of every page of a context (a CSP violation is one), and its
    uncaught exceptions, each with the page's URL."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def watch(self, page: Any) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.messages.append(f"{page.url}: uncaught {error}"))
        # The console names no URL for a resource that failed to load: this does.
        page.on("response", lambda response: self._response(page, response))

    def _response(self, page: Any, response: Any) -> None:
        if response.status >= 400:
            self.messages.append(f"{page.url}: {response.status} from {response.url}")

    def _console(self, page: Any, message: Any) -> None:
        if message.type == "error":
            self.messages.append(f"{page.url}: {message.text}")


def new_context(browser: Any, viewport: str, base_url: str, errors: ConsoleErrors) -> Any:
    context = browser.new_context(base_url=base_url, **VIEWPORTS[viewport])
    context.set_default_timeout(STEP_TIMEOUT_S * 1000)
    context.on("page", errors.watch)
    return context


def assert_fits_the_screen(page: Any, viewport: str) -> None:
    """On the phone: no horizontal scrolling, and the header's search box in view."""
    from playwright.sync_api import expect

    if viewport != "phone":
        return
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths[0]} px wide in {widths[1]} px"
    search = page.locator("header form.search input[name=q]")
    expect(search).to_be_visible()
    assert search.bounding_box()["width"] >= 150, "the search box is too narrow to type in"


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_visitor_publishes_finds_copies_and_follows_the_feed_and_an_operator_hides_the_entry(
    viewport: str, browser: Any, tmp_path: Path
) -> None:
    """Issue 12, point 8, in chromium at ``viewport``."""
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_S * 1000)
    shots = artefact_folder()
    title = "Coastal Photographs 2024"
    torrent = tmp_path / "coastal.torrent"
    torrent.write_bytes(
        make_torrent(
            tmp_path, title,
            {"harbour/lighthouse-at-dusk.jpg": b"l" * 40_000, "harbour/boats.jpg": b"b" * 20_000, "notes.txt": b"n",
             # A long name without a space: it must wrap, not widen the phone's page.
             "Harbour_Panorama_Stitched_From_Twenty_Four_Frames_At_Full_Resolution_Uncompressed.tiff": b"p" * 100},
            TorrentVersion.HYBRID,
        )
    )  # fmt: skip
    errors = ConsoleErrors()
    with index_site(tmp_path) as site:
        visitor = new_context(browser, viewport, site.url, errors)
        # The copy button writes to the clipboard; the test reads it back.
        visitor.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
        page = visitor.new_page()

        # The front page of an empty site, then the upload form.
        page.goto("/")
        expect(page.locator("h1")).to_have_text(re.compile("Newest"))
        expect(page.get_by_text("Nothing here yet.")).to_be_visible()
        assert_fits_the_screen(page, viewport)
        page.get_by_role("link", name="Upload").click()
        expect(page).to_have_url(f"{site.url}/upload")
        expect(page.get_by_role("heading", name="Publish a torrent")).to_be_visible()
        assert_fits_the_screen(page, viewport)
        page.screenshot(path=str(shots / f"{viewport}-upload.png"), full_page=True)

        # Publish: the file, a category, tags and a Markdown description.
        page.get_by_label(".torrent file").set_input_files(str(torrent))
        page.get_by_label("Category").select_option("other")
        page.get_by_label("Tags").fill("photos sea")
        page.get_by_label("Description").fill("Pictures of the **harbour** at dusk.")
        page.get_by_role("button", name="Publish").click()
        expect(page).to_have_url(re.compile(re.escape(site.url) + r"/t/\d+$"))
        entry_url = page.url
        entry_path = entry_url.removeprefix(site.url)
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator(".description strong")).to_have_text("harbour")  # the Markdown, rendered
        expect(page.locator(".facts")).to_contain_text("in 4 files")
        expect(page.locator(".facts")).to_contain_text("0 seeders, 0 leechers")
        expect(page.locator(".facts .health-dead")).to_be_visible()
        # A seeder announces to the site's own tracker: its counts show on every page.
        info_hash = page.locator("dt:text-is('Info-hash v1') + dd code").inner_text()
        announce_seeder(site.url, bytes.fromhex(info_hash))

        # Find it by a word of a file name, typed in the header's search box.
        page.goto("/")
        expect(page.get_by_role("link", name=title)).to_be_visible()
        assert_fits_the_screen(page, viewport)
        expect(page.locator("table.entries .health").first).to_be_visible()
        page.screenshot(path=str(shots / f"{viewport}-front.png"), full_page=True)
        search = page.locator("header form.search input[name=q]")
        search.fill("lighthouse")
        search.press("Enter")
        expect(page).to_have_url(re.compile(r"/search\?q=lighthouse"))
        expect(page.locator("h1")).to_contain_text("Results for “lighthouse”")
        expect(page.get_by_text("1 found")).to_be_visible()
        result = page.locator("table.entries tbody tr")
        expect(result).to_have_count(1)
        expect(result.get_by_role("link", name=title)).to_be_visible()
        expect(result.locator(".health")).to_be_visible()  # the swarm-health mark
        expect(result.locator("td.seeders")).to_have_text("1")
        expect(result.locator(".health-weak")).to_be_visible()
        assert_fits_the_screen(page, viewport)
        page.screenshot(path=str(shots / f"{viewport}-search.png"), full_page=True)

        # The results' RSS link: an RSS document whose item is the entry.
        feed_link = page.locator("h1 a.feed")
        expect(feed_link).to_be_visible()
        with page.expect_response(lambda response: "/rss" in response.url) as feed_answer:
            feed_link.click()
        feed = feed_answer.value
        assert feed.status == 200
        assert feed.headers["content-type"].startswith("application/rss+xml")
        rss = ET.fromstring(feed.body())  # noqa: S314 - our own server's feed
        assert rss.tag == "rss"
        items = rss.findall("channel/item")
        assert [item.findtext("title") for item in items] == [title]
        assert items[0].findtext("link") == entry_url
        page.goto("/search?q=lighthouse")

        # Its page: the facts, the files, and the magnet link copied.
        result.get_by_role("link", name=title).click()
        expect(page).to_have_url(entry_url)
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator("table.files")).to_contain_text("lighthouse-at-dusk.jpg")
        expect(page.locator(".facts .health-weak")).to_be_visible()
        expect(page.locator(".facts")).to_contain_text("1 seeder, 0 leechers, 0 completed")
        magnet = page.locator("#magnet-link").get_attribute("href")
        assert magnet is not None
        assert magnet.startswith("magnet:?xt=urn:btih:")
        assert items[0].findtext("{http://xmlns.ezrss.it/0.1/}magnetURI") == magnet  # the feed's magnet is the page's
        copy = page.locator("button.copy")  # by class: its name changes when it is clicked
        expect(copy).to_have_text("Copy magnet")
        copy.click()
        expect(copy).to_have_text("Copied")
        # Headless chromium with both clipboard permissions granted reads back what the
        # button wrote (the page is focused: Playwright's pages are).
        assert page.evaluate("() => navigator.clipboard.readText()") == magnet
        assert_fits_the_screen(page, viewport)
        page.screenshot(path=str(shots / f"{viewport}-entry.png"), full_page=True)

        # An operator signs in and hides the entry.
        operator = new_context(browser, viewport, site.url, errors)
        staff = operator.new_page()
        staff.goto("/")
        staff.get_by_role("link", name="Sign in").click()
        staff.get_by_label("Name").fill(OPERATOR)
        staff.get_by_label("Password").fill(OPERATOR_PASSWORD)
        staff.get_by_role("button", name="Sign in").click()
        expect(staff.get_by_role("button", name=f"Sign out {OPERATOR}")).to_be_visible()
        assert_fits_the_screen(staff, viewport)
        staff.goto(entry_path)
        staff.get_by_role("button", name="Hide").click()
        expect(staff).to_have_url(entry_url)
        expect(staff.get_by_role("button", name="Show again")).to_be_visible()

        # A new anonymous visitor: not on the front page, and its page is gone.
        anonymous = new_context(browser, viewport, site.url, errors)
        fresh = anonymous.new_page()
        fresh.goto("/")
        expect(fresh.locator("h1")).to_have_text(re.compile("Newest"))
        expect(fresh.get_by_text(title)).to_have_count(0)
        expect(fresh.get_by_text("Nothing here yet.")).to_be_visible()
        fresh.goto("/search?q=lighthouse")
        expect(fresh.get_by_text("0 found")).to_be_visible()
        expect(fresh.get_by_role("link", name=title)).to_have_count(0)
        assert errors.messages == []
        # A 404 is a console error of its own ("Failed to load resource"): checked apart.
        gone = fresh.goto(entry_path)
        assert gone is not None
        assert gone.status == 404
        expect(fresh.locator("body")).to_contain_text("no such entry")
        assert all("404" in message for message in errors.messages), errors.messages
        for context in (visitor, operator, anonymous):
            context.close()
