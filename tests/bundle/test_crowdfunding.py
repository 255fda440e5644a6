"""Crowdfunding on the site: pledges until the goal, keys to every backer at once (a release
that a restart interrupts goes on, nothing twice), refunds when the deadline passes first.
The store runs on SQLite and on a throwaway PostgreSQL (``index_url``)."""

from __future__ import annotations

import re
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from bitswarm.bundle.crowdfund import CampaignState
from bitswarm.bundle.format import BundleError
from bitswarm.index import open_database
from bitswarm.index.bundles import Bundle
from bitswarm.index.schema import bundle_grants, bundle_pledges, bundle_sales, bundles
from index.conftest import index_url, postgres_server  # noqa: F401 - fixtures
from index.support import make_torrent, run

from .test_index_gates import (  # noqa: F401 - fixtures
    PASSWORD,
    Visitor,
    mailbox,
    make_bundle,
    publish,
    shared_key,
    site,
)

PRICE = Decimal("9.95")
KEK = bytes(range(32))


async def crowdfunded(db_url: str, tmp_path: Path, clock: list[float], goal: int, deadline: float) -> Bundle:
    database = await open_database(db_url, clock=lambda: clock[0])
    async with database:
        account = await database.accounts.create("artist", PASSWORD, "uploader")
        entry = await database.entries.add_torrent(make_torrent(tmp_path, "Album", {"a.bin": b"a" * 5000}))
        await database.bundles.publish(
            entry.id, account.id, account.name, secrets.token_bytes(32), KEK,
            gate="crowdfund", price=PRICE, goal_count=goal, deadline=int(deadline),
        )  # fmt: skip
        bundle = await database.bundles.get(entry.id)
    assert bundle is not None
    return bundle


def test_a_release_interrupted_by_a_restart_goes_on_at_the_next_start_and_gives_nothing_twice(
    index_url: str,
    tmp_path: Path,  # noqa: F811
) -> None:
    clock = [1_000_000.0]

    async def scenario() -> None:
        bundle = await crowdfunded(index_url, tmp_path, clock, goal=3, deadline=clock[0] + 3600)
        async with await open_database(index_url, clock=lambda: clock[0]) as database:
            tokens = [await database.bundles.pledge(bundle, f"serial-{number}", PRICE) for number in (1, 2)]
            assert all(tokens)
            assert (await database.bundles.campaign(bundle)).state is CampaignState.OPEN
            # The third pledge reaches the goal, and the process stops after one pledge of the
            # release: as if killed between two of its transactions.
            await database.bundles.pledge(bundle, "serial-3", PRICE)
        async with await open_database(index_url, clock=lambda: clock[0]) as database:
            async with database.engine.begin() as connection:
                await connection.execute(bundle_grants.delete())
                await connection.execute(bundle_sales.delete())
                await connection.execute(bundle_pledges.update().values(state="pledged"))
            assert await database.bundles.release(bundle, batch=1, max_batches=1) == 1
        async with await open_database(index_url, clock=lambda: clock[0]) as database:  # the next start
            assert await database.bundles.resume_releases() == 2
            assert await database.bundles.resume_releases() == 0
            async with database.engine.connect() as connection:
                states = (await connection.execute(sa.select(bundle_pledges.c.state))).scalars().all()
                grants = (await connection.execute(sa.select(bundle_grants.c.reference))).scalars().all()
                sales = (await connection.execute(sa.select(bundle_sales.c.gross))).scalars().all()
                state = (await connection.execute(sa.select(bundles.c.campaign_state))).scalar_one()
            assert states == ["released"] * 3
            assert sorted(grants) == ["pledge:serial-1", "pledge:serial-2", "pledge:serial-3"]
            assert sales == ["9.95"] * 3
            assert state == "funded"
            for token in tokens:
                assert token is not None
                pledge = await database.bundles.pledge_of(token)
                assert pledge is not None
                assert pledge.state == "released"
                assert pledge.passkey is not None
            with pytest.raises(BundleError, match="funded"):
                await database.bundles.pledge(bundle, "serial-4", PRICE)

    run(scenario())


def test_a_campaign_past_its_deadline_refunds_every_pledge_and_releases_no_key(
    index_url: str,
    tmp_path: Path,  # noqa: F811
) -> None:
    clock = [1_000_000.0]

    async def scenario() -> None:
        bundle = await crowdfunded(index_url, tmp_path, clock, goal=250_000, deadline=clock[0] + 3600)
        async with await open_database(index_url, clock=lambda: clock[0]) as database:
            token = await database.bundles.pledge(bundle, "serial-1", PRICE)
            assert token is not None
            with pytest.raises(BundleError, match="a pledge is"):
                await database.bundles.pledge(bundle, "serial-2", Decimal("1.00"))
            clock[0] += 3600
            assert (await database.bundles.campaign(bundle)).state is CampaignState.FAILED
            pledge = await database.bundles.pledge_of(token)
            assert pledge is not None
            assert (pledge.state, pledge.passkey) == ("refund", None)
            with pytest.raises(BundleError, match="failed"):
                await database.bundles.pledge(bundle, "serial-3", PRICE)
            async with database.engine.connect() as connection:
                assert (await connection.execute(sa.select(sa.func.count()).select_from(bundle_grants))).scalar() == 0

    run(scenario())


def test_backers_pledge_with_vouchers_and_all_get_the_key_when_the_goal_is_met(
    tmp_path: Path,
    site: tuple[str, str],  # noqa: F811
) -> None:
    from index.test_cli_index import bitswarm

    site_url, db = site
    deadline = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    torrent, key = make_bundle(tmp_path, "crowd", f"crowdfund=3x9.95,{deadline}")
    published = publish(tmp_path, site_url, torrent, "--gate", f"crowdfund=3x9.95,{deadline}")
    assert published.returncode == 0, published.stderr
    page_url = published.stdout.strip()
    entry_id = page_url.rsplit("/", 1)[1]
    pages = []
    for backer in range(3):
        visitor = Visitor()
        status, page, _ = visitor.get(page_url)
        assert status == 200
        assert f"{backer} of 3 backers" in re.sub(r"<[^>]+>", "", page)
        voucher = bitswarm("index", "voucher", entry_id, "--db", db, cwd=tmp_path).stdout.strip()
        status, pledged, headers = visitor.post_form(f"{page_url}/pledge", page, voucher=voucher)
        assert status == 200, pledged
        pages.append((visitor, headers["url"]))
        if backer < 2:
            assert "Pledged." in pledged
            assert "#k=" not in pledged
    passkeys = set()
    for visitor, url in pages:
        status, body, _ = visitor.get(url)
        assert status == 200
        link, shown = shared_key(body)
        assert shown == key
        passkeys.add(re.search(r"announce%2F([0-9a-f]{32})", link).group(1))  # type: ignore[union-attr]
    assert len(passkeys) == 3
    status, page, _ = Visitor().get(page_url)
    assert "The goal was met" in page
    assert 'id="pledge"' not in page
    with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
        shares = [Decimal(row[0]) for row in connection.execute("SELECT platform FROM bundle_sales")]
    assert shares == [Decimal("1.00")] * 3
