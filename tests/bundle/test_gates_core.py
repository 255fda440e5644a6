"""The gates' cores: the sales ledger, vouchers, webhooks, crowdfunding, the e-mail gate."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from bitswarm.bundle import email_gate, ledger, vouchers, webhooks
from bitswarm.bundle.crowdfund import Campaign, CampaignState, PledgeState
from bitswarm.bundle.format import BundleError

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000"), places=2)
rates = st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=4)


@given(rate=rates, sales=st.lists(st.tuples(st.text(min_size=1, max_size=8), prices), max_size=60))
def test_a_ledger_always_balances_to_the_cent(rate: Decimal, sales: list[tuple[str, Decimal]]) -> None:
    book = ledger.Ledger(ledger.share_rate(rate))
    expected: dict[str, Decimal] = {}
    for reference, gross in sales:
        if reference in expected and expected[reference] != gross:
            with pytest.raises(BundleError):
                book.record(reference, gross)
            continue
        sale, new = book.record(reference, gross)
        assert new == (reference not in expected)
        expected.setdefault(reference, gross)
        assert sale.platform + sale.artist == sale.gross
        assert sale.platform == sale.platform.quantize(ledger.CENT)
        assert Decimal(0) <= sale.platform <= sale.gross
    gross, platform, artist = book.totals
    assert gross == sum(expected.values(), Decimal(0))
    assert platform + artist == gross


def test_the_seeds_crowdfunding_figures_are_exact() -> None:
    sale = ledger.split("p1", ledger.money("9.95"), ledger.share_rate("0.10"))
    assert (sale.platform, sale.artist) == (Decimal("1.00"), Decimal("8.95"))  # 0.995 rounds half-even to 1.00
    campaign = Campaign(250_000, ledger.money("9.95"), deadline=1_000.0)
    assert campaign.goal == Decimal("2487500.00")
    for bad in ("0", "-1", "9.999", "abc", "NaN", "Infinity", "1e9"):
        with pytest.raises(BundleError):
            ledger.money(bad)


def test_vouchers_are_signed_by_the_platform_and_tampering_is_refused() -> None:
    platform = Ed25519PrivateKey.generate()
    text = vouchers.issue(platform, "ab" * 20, Decimal("9.95"))
    voucher = vouchers.verify(platform.public_key(), text)
    assert (voucher.bundle, voucher.amount, len(voucher.serial)) == ("ab" * 20, Decimal("9.95"), 32)
    assert vouchers.verify(platform.public_key(), vouchers.issue(platform, "ab" * 20, Decimal("9.95"))).serial != (
        voucher.serial
    )
    with pytest.raises(BundleError, match="signature"):
        vouchers.verify(Ed25519PrivateKey.generate().public_key(), text)
    prefix, payload, signature = text.split(".")
    forged = json.dumps({"bundle": "cd" * 20})  # another bundle's payload under the same signature
    for bad in (f"{prefix}.{payload[:-2]}AA.{signature}", f"{prefix}.{forged}.{signature}", "bsv1..", "x" * 500, ""):
        with pytest.raises(BundleError):
            vouchers.verify(platform.public_key(), bad)


def test_webhooks_need_the_signature_a_fresh_timestamp_and_a_new_event() -> None:
    secret = b"shared with the provider"
    body = json.dumps({"id": "evt_1", "payment": "pay_1", "bundle": "ab" * 20, "amount": "9.95"}).encode()
    seen: set[str] = set()
    event = webhooks.verify(secret, webhooks.sign(secret, body, 1_000), body, 1_010.0, seen)
    assert (event.payment_id, event.amount) == ("pay_1", Decimal("9.95"))
    with pytest.raises(BundleError, match="delivered before"):
        webhooks.verify(secret, webhooks.sign(secret, body, 1_020), body, 1_020.0, seen)
    fresh: set[str] = set()
    with pytest.raises(BundleError, match="does not match"):
        webhooks.verify(b"another secret", webhooks.sign(secret, body, 1_000), body, 1_000.0, fresh)
    with pytest.raises(BundleError, match="does not match"):
        webhooks.verify(secret, webhooks.sign(secret, body, 1_000), body.replace(b"9.95", b"0.01"), 1_000.0, fresh)
    with pytest.raises(BundleError, match="too old"):
        webhooks.verify(secret, webhooks.sign(secret, body, 1_000), body, 1_000.0 + 301, fresh)
    for header in (None, "", "t=abc,v1=00", "v1=00"):
        with pytest.raises(BundleError):
            webhooks.verify(secret, header, body, 1_000.0, fresh)
    assert fresh == set()
    not_payment = json.dumps({"id": "evt_2", "payment": 5}).encode()
    with pytest.raises(BundleError, match="not a payment"):
        webhooks.verify(secret, webhooks.sign(secret, not_payment, 1_000), not_payment, 1_000.0, fresh)


def test_a_funded_campaign_releases_to_every_backer_once_even_across_a_restart() -> None:
    campaign = Campaign(3, Decimal("9.95"), deadline=100.0)
    assert campaign.pledge("a", Decimal("9.95"), 1.0)
    assert not campaign.pledge("a", Decimal("9.95"), 2.0)  # the same pledge again
    with pytest.raises(BundleError, match="a pledge is"):
        campaign.pledge("x", Decimal("5.00"), 2.0)
    campaign.pledge("b", Decimal("9.95"), 3.0)
    assert campaign.to_release() == []
    campaign.pledge("c", Decimal("9.95"), 4.0)
    assert campaign.state is CampaignState.FUNDED
    assert campaign.to_release() == ["a", "b", "c"]
    campaign.released("a")  # ... and the process stops here
    restarted = Campaign(3, Decimal("9.95"), 100.0, campaign.state, dict(campaign.pledges))
    assert restarted.to_release() == ["b", "c"]
    with pytest.raises(BundleError, match="funded"):
        restarted.pledge("d", Decimal("9.95"), 5.0)


def test_a_campaign_past_its_deadline_refunds_every_pledge_and_releases_nothing() -> None:
    campaign = Campaign(250_000, Decimal("9.95"), deadline=100.0)
    campaign.pledge("a", Decimal("9.95"), 1.0)
    campaign.pledge("b", Decimal("9.95"), 2.0)
    assert campaign.settle(100.0) is CampaignState.FAILED
    assert set(campaign.pledges.values()) == {PledgeState.REFUND}
    assert campaign.to_release() == []
    with pytest.raises(BundleError):
        campaign.released("a")
    with pytest.raises(BundleError, match="failed"):
        campaign.pledge("c", Decimal("9.95"), 101.0)


def test_addresses_are_kept_as_keyed_hashes_and_tokens_as_hashes() -> None:
    secret = b"site secret"
    assert email_gate.normalise_address(" Fan@Example.ORG ") == "Fan@example.org"
    digest = email_gate.address_digest(secret, "fan@EXAMPLE.org")
    assert digest == email_gate.address_digest(secret, "fan@example.org")
    assert digest == email_gate.address_digest(secret, "FAN@example.org")
    assert digest != email_gate.address_digest(b"another secret", "fan@example.org")
    assert b"fan" not in digest
    for bad in ("", "fan", "fan@", "@example.org", "fan@localhost", "a b@example.org", "fan@example.org\r\nBcc: x",
                "x" * 250 + "@example.org"):  # fmt: skip
        with pytest.raises(BundleError):
            email_gate.normalise_address(bad)
    token, stored = email_gate.new_token()
    assert email_gate.token_digest(token) == stored
    assert token.encode() not in stored
