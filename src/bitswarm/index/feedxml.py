"""XML for the feeds (RSS 2.0 and Torznab): text XML 1.0 can carry, and serialisation.

Every string in a feed comes from a torrent, a form or a tracker, so any of them can hold
what XML cannot: NUL and the other C0 controls, U+FFFE/U+FFFF, lone surrogates. Those are
removed here, from every text and attribute, so a hostile name never makes a feed that a
reader refuses (THREATS.md, 9). Markup characters (``<``, ``&``, ``]]>``) need no care:
ElementTree escapes them, and they arrive in the reader as the text they were. Bidi
controls and zero-width characters are valid XML and pass unchanged; they are the page's
concern (the site stores titles without overrides), not the feed's.

Namespaced names are written with their prefix (``torznab:attr``) and the root declares the
prefix, so no process-wide ``ElementTree.register_namespace`` is needed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import format_datetime

from bitswarm.errors import UsageError

# XML 1.0's Char production (section 2.2): tab, LF, CR and the planes without the
# surrogates and the two non-characters. Everything else cannot appear even escaped.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Written by hand so both feeds open with the same declaration the Newznab examples use
# (ElementTree's own uses single quotes and a lower-case encoding name).
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

ATOM_NS = "http://www.w3.org/2005/Atom"


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry (they are dropped)."""
    return _NOT_XML_CHAR.sub("", text)


def sub(parent: ET.Element, tag: str, text: str | int | None = None, **attributes: str | int | None) -> ET.Element:
    """A child element of ``parent``; text and attribute values are cleaned by ``xml_text``.

    Attributes whose value is None are left out, so "unknown" never becomes an empty or
    zero value."""
    element = ET.SubElement(parent, tag)
    for name, value in attributes.items():
        if value is not None:
            element.set(name, xml_text(str(value)))
    if text is not None:
        element.text = xml_text(str(text))
    return element


def serialize(root: ET.Element) -> bytes:
    """The document as UTF-8 bytes with its XML declaration."""
    return XML_DECLARATION + ET.tostring(root, encoding="unicode").encode("utf-8")


def rfc822_date(moment: datetime) -> str:
    """``moment`` as RSS 2.0 wants it (RFC 822 with a four-digit year), in UTC.

    Raises UsageError for a naive datetime: its zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError(f"feed dates must carry a time zone, got naive {moment.isoformat()}")
    return format_datetime(moment.astimezone(UTC))
