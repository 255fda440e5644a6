"""A peer's client name from its peer id, for the web UI's peer lists.

BEP 20's conventions: the Azureus style ``-XXvvvv-`` (two letters naming the client, four
version characters) used by nearly every client today, and Mainline's ``Mv-v-v--``. The
peer id is whatever the peer chose, so the name is only a claim; anything unrecognised is
shown as its printable prefix, never as raw bytes. Sans-IO.
"""

from __future__ import annotations

# BEP 20 and the clients' own documentation; the ones met on public swarms today.
AZUREUS_CODES = {
    "AZ": "Vuze",
    "BC": "BitComet",
    "BI": "BiglyBT",
    "BT": "BitTorrent",
    "DE": "Deluge",
    "FW": "FrostWire",
    "KT": "KTorrent",
    "LT": "libtorrent",
    "lt": "libTorrent (rakshasa)",
    "PI": "PicoTorrent",
    "qB": "qBittorrent",
    "SW": "bitswarm",
    "TR": "Transmission",
    "UT": "µTorrent",
    "UM": "µTorrent Mac",
    "WW": "WebTorrent",
    "XL": "Xunlei",
}
PEER_ID_BYTES = 20


def client_name(peer_id: bytes | None) -> str:
    """``libtorrent 2.0.8`` for ``-LT2080-…``; the printable start of an unknown id; "" for none."""
    if not peer_id:
        return ""
    text = peer_id[:PEER_ID_BYTES].decode("latin-1")
    if len(text) >= 8 and text[0] == "-" and text[7] == "-" and text[1:3].isalpha():
        code, version = text[1:3], text[3:7]
        name = AZUREUS_CODES.get(code, code)
        return f"{name} {_version(version)}"
    if len(text) >= 8 and text[0] == "M" and text[2] == "-":
        return "BitTorrent " + text[1:8].rstrip("-").replace("-", ".")
    printable = "".join(char for char in text[:8] if char.isascii() and char.isprintable())
    return f"unknown ({printable})" if printable else "unknown"


def _version(version: str) -> str:
    if not version.isalnum():
        return "".join(char for char in version if char.isascii() and char.isprintable())
    # Each character one digit (A=10 ...), the last one a build number often 0.
    parts = [str(int(char, 36)) for char in version]
    while len(parts) > 2 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)
