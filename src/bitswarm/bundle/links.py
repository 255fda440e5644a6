"""Share links: a magnet link with the content key in its fragment. Sans-IO.

``magnet:?xt=...#k=KEY``: browsers never send a URL's fragment to the server, so a page
that shows the link hands the key to the visitor without the site's logs seeing it, and
the part before ``#`` is an ordinary magnet link for the swarm. The key is 32 bytes in
unpadded base64url (RFC 4648, section 5), 43 characters.
"""

from __future__ import annotations

import base64
import binascii
import re

from bitswarm.bundle.format import KEY_BYTES, BundleError

FRAGMENT_PREFIX = "k="
_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")


def key_text(key: bytes) -> str:
    if len(key) != KEY_BYTES:
        raise BundleError(f"a content key is {KEY_BYTES} bytes")
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def parse_key(text: str) -> bytes:
    """A key given as its 43 characters, as ``k=KEY`` or as a share link ending ``#k=KEY``."""
    text = text.strip()
    if "#" in text:
        text = text.rpartition("#")[2]
    text = text.removeprefix(FRAGMENT_PREFIX)
    if not _KEY_TEXT.fullmatch(text):
        raise BundleError("not a bundle key: 43 characters of base64url were expected")
    try:
        key = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):
        raise BundleError("not a bundle key: not base64url") from None
    if key_text(key) != text:  # the unused low bits of the last character must be zero
        raise BundleError("not a bundle key: not canonical base64url")
    return key


def share_link(magnet_link: str, key: bytes) -> str:
    return f"{magnet_link}#{FRAGMENT_PREFIX}{key_text(key)}"


def split_link(link: str) -> tuple[str, bytes | None]:
    """(the magnet link, the key in its fragment or None)."""
    magnet_link, hash_sign, fragment = link.partition("#")
    return magnet_link, parse_key(fragment) if hash_sign else None
