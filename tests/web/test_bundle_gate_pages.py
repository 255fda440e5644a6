"""The gates of encrypted bundles as a person uses them in Debian's chromium (Playwright):
a free download, an e-mail confirmed through a real SMTP server, a purchase with a voucher
of the offline provider, and a crowdfunding goal reached by scripted pledges with the keys
arriving on every backer's page (issue 14, point 5). The site, the publishing and the
vouchers are the real commands. Screenshots go to test-artifacts/bundle-gates (or
$BITSWARM_ARTEFACTS/bundle-gates); a page's console error (a CSP violation) fails the test."""

# ruff: noqa: F811 - pytest fixtures, imported and named as parameters
from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bitswarm.bundle import links
from bundle.test_index_gates import Mailbox, Visitor, mailbox, make_bundle, publish, site  # noqa: F401 - fixtures
from index.test_cli_index import bitswarm

from .test_index_pages import REPOSITORY, ConsoleErrors, browser, new_context  # noqa: F401 - a fixture

pytestmark = pytest.mark.browser


def shots() -> Path:
    root = os.environ.get("BITSWARM_ARTEFACTS")
    folder = (Path(root) if root else REPOSITORY / "test-artifacts") / "bundle-gates"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def key_shown(page: Any) -> bytes:
    return links.parse_key(page.locator("#share-text").input_value())


def test_free_email_voucher_and_crowdfunding_gates_in_a_browser(
    browser: Any,
    tmp_path: Path,
    site: tuple[str, str],
    mailbox: tuple[Mailbox, int],
) -> None:
    from playwright.sync_api import expect

    site_url, db = site
    errors = ConsoleErrors()
    context = new_context(browser, "desktop", site_url, errors)
    page = context.new_page()
    folder = shots()

    free, free_key = make_bundle(tmp_path, "gift", "free")
    url = publish(tmp_path, site_url, free, "--key", links.key_text(free_key)).stdout.strip()
    page.goto(url)
    expect(page.locator("#terms")).to_have_text("free")
    assert key_shown(page) == free_key
    href = page.locator("#share-link").get_attribute("href")
    assert href is not None
    assert href.startswith("magnet:?")
    page.screenshot(path=str(folder / "free.png"), full_page=True)

    fans, fans_key = make_bundle(tmp_path, "newsletter", "email")
    url = publish(tmp_path, site_url, fans, "--gate", "email").stdout.strip()
    page.goto(url)
    sent_before = len(mailbox[0].messages)
    page.fill("input[name=address]", "listener@example.org")
    page.check("input[name=consent]")
    page.screenshot(path=str(folder / "email-form.png"), full_page=True)
    page.click("#ask-email button")
    expect(page.locator("h1")).to_have_text("Check your mail")
    [mail] = mailbox[0].messages[sent_before:]
    confirm = re.search(r"http://\S+/b/confirm/\S+", mail.get_content())
    assert confirm is not None
    page.goto(confirm.group(0))
    assert key_shown(page) == fans_key
    page.screenshot(path=str(folder / "email-key.png"), full_page=True)

    sold, sold_key = make_bundle(tmp_path, "album", "price=9.95")
    url = publish(tmp_path, site_url, sold, "--gate", "price=9.95").stdout.strip()
    voucher = bitswarm("index", "voucher", url.rsplit("/", 1)[1], "--db", db, cwd=tmp_path).stdout.strip()
    page.goto(url)
    expect(page.locator("#terms")).to_have_text("9.95")
    page.fill("#redeem input[name=voucher]", voucher)
    page.click("#redeem button")
    page.wait_for_url(re.compile(r".*/b/keys/.*"))
    assert key_shown(page) == sold_key
    page.screenshot(path=str(folder / "voucher-key.png"), full_page=True)

    deadline = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    crowd, crowd_key = make_bundle(tmp_path, "crowd", f"crowdfund=3x9.95,{deadline}")
    url = publish(tmp_path, site_url, crowd, "--gate", f"crowdfund=3x9.95,{deadline}").stdout.strip()
    entry_id = url.rsplit("/", 1)[1]
    pledge_pages = []
    for _ in range(2):  # two scripted backers
        backer = Visitor()
        status, form_page, _ = backer.get(url)
        voucher = bitswarm("index", "voucher", entry_id, "--db", db, cwd=tmp_path).stdout.strip()
        status, _, headers = backer.post_form(f"{url}/pledge", form_page, voucher=voucher)
        assert status == 200
        pledge_pages.append(headers["url"])
    page.goto(pledge_pages[0])
    expect(page.locator("#pledge-state")).to_contain_text("Pledged")
    page.goto(url)
    expect(page.locator("#campaign .backers")).to_have_text("2")
    page.fill(
        "#pledge input[name=voucher]", bitswarm("index", "voucher", entry_id, "--db", db, cwd=tmp_path).stdout.strip()
    )
    page.click("#pledge button")
    page.wait_for_url(re.compile(r".*/b/pledges/.*"))
    assert key_shown(page) == crowd_key  # the third pledge met the goal: the key at once
    page.screenshot(path=str(folder / "crowdfund-key.png"), full_page=True)
    for other in pledge_pages:
        page.goto(other)
        assert key_shown(page) == crowd_key
    page.goto(url)
    expect(page.locator("#campaign")).to_contain_text("The goal was met")
    context.close()
    assert errors.messages == []
