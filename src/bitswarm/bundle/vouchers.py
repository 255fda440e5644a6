"""The offline payment provider: signed vouchers. Sans-IO.

When a payment is recorded (at a till, by bank transfer, in a test), the platform signs a
voucher with its Ed25519 key: which bundle, how much, a random serial. The buyer redeems
it on the bundle's page and gets the key; the platform checks the signature with its
public key and refuses a serial it has seen (a voucher buys once). The text form is
``bsv1.<payload>.<signature>`` in unpadded base64url, short enough to type or to put in a
QR code.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from decimal import Decimal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bitswarm import bencode
from bitswarm.bundle.format import BundleError
from bitswarm.bundle.ledger import money
from bitswarm.errors import DecodeError

PREFIX = "bsv1"
SERIAL_BYTES = 16
MAX_VOUCHER_CHARS = 400
MAX_BUNDLE_ID_CHARS = 80


@dataclass(frozen=True, slots=True)
class Voucher:
    bundle: str  # the bundle's id on the site (its info-hash)
    amount: Decimal
    serial: str  # hex, random

    def payload(self) -> bytes:
        return bencode.encode({b"amount": str(self.amount).encode(), b"bundle": self.bundle.encode(),
                               b"serial": self.serial.encode()})  # fmt: skip


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BundleError("not a voucher: bad base64url") from None


def issue(signing_key: Ed25519PrivateKey, bundle: str, amount: Decimal) -> str:
    """A voucher for ``amount`` paid for ``bundle``, as text."""
    voucher = Voucher(bundle, money(amount), secrets.token_hex(SERIAL_BYTES))
    payload = voucher.payload()
    return f"{PREFIX}.{_b64(payload)}.{_b64(signing_key.sign(payload))}"


def verify(public_key: Ed25519PublicKey, text: str) -> Voucher:
    """The voucher ``text`` holds, if the platform signed it; BundleError otherwise."""
    text = text.strip()
    if len(text) > MAX_VOUCHER_CHARS:
        raise BundleError("not a voucher: too long")
    prefix, _, rest = text.partition(".")
    encoded_payload, _, encoded_signature = rest.partition(".")
    if prefix != PREFIX or not encoded_payload or not encoded_signature:
        raise BundleError("not a voucher")
    payload, signature = _unb64(encoded_payload), _unb64(encoded_signature)
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise BundleError("the voucher's signature is not the platform's") from None
    try:
        value = bencode.decode(payload)
    except DecodeError:
        raise BundleError("a voucher of an unknown form") from None
    if not isinstance(value, dict) or set(value) != {b"amount", b"bundle", b"serial"}:
        raise BundleError("a voucher of an unknown form")
    fields = [value[key] for key in (b"amount", b"bundle", b"serial")]
    if not all(isinstance(item, bytes) for item in fields):
        raise BundleError("a voucher of an unknown form")
    amount, bundle, serial = (item.decode("ascii", "replace") for item in fields if isinstance(item, bytes))
    if len(bundle) > MAX_BUNDLE_ID_CHARS or len(serial) != 2 * SERIAL_BYTES:
        raise BundleError("a voucher of an unknown form")
    return Voucher(bundle, money(amount), serial)
