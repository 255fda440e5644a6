"""A payment provider's webhook, checked: signature, age, replay. Sans-IO.

The adapter shape of the real providers' checkouts: the provider calls the site with a JSON
body and a header ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` made with a
secret both sides hold (Stripe's scheme, which most providers follow). A call is accepted
only with a valid signature, a timestamp within ``TOLERANCE_S`` of now and an event id not
seen before; the sale it reports is recorded under the provider's payment id, so a second
delivery of the same payment (providers retry) records nothing new.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal

from bitswarm.bundle.format import BundleError
from bitswarm.bundle.ledger import money

TOLERANCE_S = 300.0
MAX_BODY_BYTES = 64 * 1024
MAX_FIELD_CHARS = 200


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    event_id: str
    payment_id: str
    bundle: str
    amount: Decimal


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header a provider sends (and the tests send)."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str | None, body: bytes, now: float, seen_event_ids: set[str]) -> PaymentEvent:
    """The payment the call reports; BundleError for a bad signature, a stale or replayed
    call, or a body that is not a payment. The event id is added to ``seen_event_ids``."""
    if header is None or len(header) > 500:
        raise BundleError("no signature")
    parts = dict(item.partition("=")[::2] for item in header.split(","))
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise BundleError("no timestamp in the signature")
    if len(body) > MAX_BODY_BYTES:
        raise BundleError("the body is too large")
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise BundleError("the signature does not match")
    if abs(now - int(timestamp)) > TOLERANCE_S:
        raise BundleError("the call is too old or from the future")
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BundleError("the body is not JSON") from None
    if not isinstance(value, dict):
        raise BundleError("the body is not a payment")
    fields = [value.get(key) for key in ("id", "payment", "bundle", "amount")]
    if not all(isinstance(item, str) and 0 < len(item) <= MAX_FIELD_CHARS for item in fields):
        raise BundleError("the body is not a payment")
    event_id, payment_id, bundle, amount = (str(item) for item in fields)
    if event_id in seen_event_ids:
        raise BundleError(f"event {event_id[:60]!r} was delivered before")
    event = PaymentEvent(event_id, payment_id, bundle, money(amount))
    seen_event_ids.add(event_id)
    return event
