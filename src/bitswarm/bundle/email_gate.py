"""The e-mail gate's data: addresses kept as keyed hashes, confirmation tokens kept hashed.
Sans-IO (randomness from ``secrets``).

A visitor gives an address and gets a link with a one-time token; following it proves the
address and releases the key. The site stores a keyed hash of the address (HMAC-SHA256
under the site's secret: the same address is recognised, but a copy of the database does
not list them, and hashing guesses needs the secret), the hash of the token and its
expiry; the address itself only until the mail is sent, and afterwards only if the
visitor agreed that the artist may have it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from email.errors import HeaderParseError
from email.headerregistry import Address

from bitswarm.bundle.format import BundleError

MAX_ADDRESS_CHARS = 254  # RFC 5321's path limit
TOKEN_BYTES = 32
TOKEN_LIFETIME_S = 24 * 3600.0


def normalise_address(text: str) -> str:
    """One address (``local@domain``), the domain in lower case; BundleError otherwise."""
    text = text.strip()
    if not 3 <= len(text) <= MAX_ADDRESS_CHARS or any(char.isspace() or ord(char) < 32 for char in text):
        raise BundleError("not an e-mail address")
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        raise BundleError("not an e-mail address")
    try:
        address = Address(username=local, domain=domain.lower())
    except (HeaderParseError, ValueError, IndexError):
        raise BundleError("not an e-mail address") from None
    return address.addr_spec


def address_digest(secret: bytes, address: str) -> bytes:
    """The keyed hash that stands for ``address``: one per mailbox, so the case of the
    local part (which almost every mail server ignores) does not make two."""
    folded = normalise_address(address).casefold()
    return hmac.new(secret, b"bitswarm e-mail gate " + folded.encode(), hashlib.sha256).digest()


def new_token() -> tuple[str, bytes]:
    """(the token for the link, the hash to store)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_digest(token)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(b"bitswarm e-mail token " + token.encode()).digest()
