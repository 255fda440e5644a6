"""The daemon's web UI as a person uses it in Debian's chromium, driven by Playwright
(issue 13, point 3), at a desktop and a phone viewport.

A real ``bitswarm daemon`` (a subprocess on loopback, DHT and local discovery off), a
``bitswarm tracker`` and a libtorrent seed: the visitor adds the torrent by its magnet link
through the form, watches its progress reach 100 % on the list, live (the events stream;
the page is never reloaded), pauses and resumes it, opens its page (files, trackers with
their last answer, the pieces map) and removes it with its data after the confirm step.
Every page is checked for console errors (a CSP violation is one) and, on the phone, for a
horizontal scroll bar. Screenshots go to $BITSWARM_ARTEFACTS/daemon-pages, else to
test-artifacts/daemon-pages. A missing chromium fails the test, never skips it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bitswarm.metainfo import read_torrent_file
from daemon.conftest import make_torrent, running_daemon
from interop.test_peer_interop import libtorrent_seed
from interop.trackers import run_bitswarm_tracker

from .test_index_pages import STEP_TIMEOUT_S, VIEWPORTS, ConsoleErrors, artefact_folder, browser, new_context

pytestmark = [pytest.mark.browser, pytest.mark.interop]
__all__ = ["browser"]  # the fixture, shared with the index pages' tests

# The whole download, from the seed's first byte to 100 % on the page.
DOWNLOAD_TIMEOUT_S = 45.0
PAYLOAD_BYTES = 384 * 1024


def shots_folder() -> Path:
    folder = artefact_folder().parent / "daemon-pages"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_no_sideways_scroll(page: Any, viewport: str) -> None:
    if viewport == "phone":
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths[0]} px wide in {widths[1]} px"


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_add_by_magnet_watch_it_finish_live_pause_resume_and_remove_it(
    viewport: str, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_S * 1000)
    shots = shots_folder()
    errors = ConsoleErrors()
    with run_bitswarm_tracker(tmp_path / "tracker.log") as tracker:
        made = make_torrent(tmp_path / "seed", "Harbour Film", {"harbour.mp4": PAYLOAD_BYTES, "notes.txt": 2000},
                            tracker=tracker.announce)  # fmt: skip
        link = read_torrent_file(made.path.read_bytes()).magnet().format()
        with libtorrent_seed(made.path, made.content.parent), running_daemon(tmp_path / "d") as daemon:
            base = f"http://127.0.0.1:{daemon.port}"
            context = new_context(browser, viewport, base, errors)
            page = context.new_page()
            page.goto("/")
            expect(page.locator("h1")).to_have_text("Torrents")
            expect(page.get_by_text("No torrents yet.")).to_be_visible()
            assert_no_sideways_scroll(page, viewport)

            # Add it by its magnet link.
            page.get_by_role("link", name="Add", exact=True).click()
            expect(page.get_by_role("heading", name="Add a torrent")).to_be_visible()
            assert_no_sideways_scroll(page, viewport)
            page.get_by_label("Magnet link or URL").fill(link)
            page.get_by_role("button", name="Add", exact=True).click()
            expect(page).to_have_url(re.compile(re.escape(base) + r"/#torrent-\d+$"))
            row = page.locator("table.torrents tbody tr")
            expect(row).to_have_count(1)
            expect(row.get_by_role("link", name="Harbour Film")).to_be_visible()

            # Its progress reaches 100 % on this page, pushed by the events stream: a mark
            # left in the page survives, so it was never reloaded.
            page.evaluate("() => { window.notReloaded = true; }")
            expect(row.locator("[data-field=progress]")).to_have_text("100.0 %", timeout=DOWNLOAD_TIMEOUT_S * 1000)
            expect(row.locator("[data-field=state]")).to_have_text("Seeding")
            expect(row.locator("[data-field=size]")).to_have_text("395.2 kB")  # 393,216 + 2,000 bytes
            assert page.evaluate("() => window.notReloaded === true")
            assert (daemon.downloads / "Harbour Film" / "harbour.mp4").read_bytes() == (
                made.content / "harbour.mp4"
            ).read_bytes()
            assert_no_sideways_scroll(page, viewport)
            page.screenshot(path=str(shots / f"{viewport}-list.png"), full_page=True)

            # Pause, then resume.
            row.get_by_role("button", name="Pause").click()
            expect(row.locator("[data-field=state]")).to_have_text("Stopped")
            expect(row.get_by_role("button", name="Pause")).to_have_count(0)
            row.get_by_role("button", name="Resume").click()
            expect(row.locator("[data-field=state]")).to_have_text("Seeding")

            # Its page: files with a play link, the tracker's last answer, the pieces map.
            row.get_by_role("link", name="Harbour Film").click()
            expect(page.locator("h1")).to_have_text("Harbour Film")
            expect(page.locator("table.files")).to_contain_text("harbour.mp4")
            expect(page.get_by_role("link", name="play")).to_have_count(1)
            expect(page.locator("table.trackers")).to_contain_text(re.compile(r"\d+ peers, next announce in"))
            expect(page.locator("svg.pieces rect")).to_have_count(2)  # the background, one full run
            assert_no_sideways_scroll(page, viewport)
            page.screenshot(path=str(shots / f"{viewport}-torrent.png"), full_page=True)

            # Remove it with its data, after the confirm step.
            page.get_by_role("link", name="Remove…").click()
            expect(page.get_by_role("heading", name=re.compile("Remove"))).to_be_visible()
            assert_no_sideways_scroll(page, viewport)
            page.screenshot(path=str(shots / f"{viewport}-remove.png"), full_page=True)
            page.get_by_role("button", name="Remove and delete its files").click()
            expect(page).to_have_url(f"{base}/")
            expect(page.get_by_text("No torrents yet.")).to_be_visible()
            assert not (daemon.downloads / "Harbour Film" / "harbour.mp4").exists()
            context.close()
    assert errors.messages == []
