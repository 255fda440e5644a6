"""Magnet links (BEP 9, BEP 53, and BEP 52's ``urn:btmh``): parse and format.

``xt=urn:btih:`` carries a v1 info-hash as 40 hex or 32 base32 characters,
``xt=urn:btmh:`` a v2 one as a hex multihash (``1220`` + SHA-256); a hybrid link has
both. ``dn`` is the display name, ``tr`` trackers, ``ws`` web seeds, ``x.pe`` peer
addresses and ``so`` the files to download (BEP 53). Anything else is ignored; a link
without a BitTorrent hash, or with a malformed one, is refused. One bad item among the
rest (a peer that is not host:port, a tracker of another scheme, a reversed range) is left
out with a warning, as the best clients do, rather than costing the whole link; a range
that selects too many files is cut short. The display name is kept as given: whatever
shows it on a terminal passes it through ``printable`` (a web page escapes it its way).
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, unquote_plus, urlsplit

from bitswarm.errors import MetainfoError

# Links travel in URLs and clipboards; anything longer is not a magnet link.
MAX_MAGNET_LENGTH = 16 * 1024
MAX_PARAMETERS = 500
# BEP 53 ranges can describe huge index sets in a few bytes: cap the expansion.
MAX_SELECTED_FILES = 100_000

_SHA256_MULTIHASH = bytes([0x12, 0x20])
_PEER = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\[\]:/\s]+)):(?P<port>[0-9]{1,5})")
_HEX40 = re.compile(r"[0-9A-Fa-f]{40}")
_HEX68 = re.compile(r"[0-9A-Fa-f]{68}")
_BASE32_32 = re.compile(r"[A-Za-z2-7]{32}")
# Indices in a BEP 53 range; nine digits is beyond any file count.
_INDEX = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True, slots=True)
class Magnet:
    info_hash_v1: bytes | None = None
    info_hash_v2: bytes | None = None
    display_name: str | None = None
    trackers: tuple[str, ...] = ()
    web_seeds: tuple[str, ...] = ()
    peers: tuple[tuple[str, int], ...] = ()
    select_only: tuple[int, ...] = ()
    # What was left out or cut short, one line each for the user.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def format(self) -> str:
        """The link as text, v1 hash first so v1-only clients find theirs."""
        parts = []
        if self.info_hash_v1 is not None:
            parts.append("xt=urn:btih:" + self.info_hash_v1.hex())
        if self.info_hash_v2 is not None:
            parts.append("xt=urn:btmh:" + (_SHA256_MULTIHASH + self.info_hash_v2).hex())
        if self.display_name:
            parts.append("dn=" + quote(self.display_name, safe=""))
        parts += ["tr=" + quote(url, safe="") for url in self.trackers]
        parts += ["ws=" + quote(url, safe="") for url in self.web_seeds]
        parts += [f"x.pe={f'[{host}]' if ':' in host else host}:{port}" for host, port in self.peers]
        if self.select_only:
            parts.append("so=" + _format_ranges(self.select_only))
        return "magnet:?" + "&".join(parts)


def parse(text: str) -> Magnet:
    """Parse a magnet link; raise ``MetainfoError`` naming the bad parameter."""
    if len(text) > MAX_MAGNET_LENGTH:
        raise MetainfoError(f"longer than {MAX_MAGNET_LENGTH} characters", "magnet")
    if not text.lower().startswith("magnet:?"):
        raise MetainfoError("does not start with 'magnet:?'", "magnet")
    # A fragment is not part of the query (RFC 3986): a bundle's share link keeps its key there.
    query = text[len("magnet:?") :].partition("#")[0]
    pairs = [pair for pair in query.split("&") if pair]
    if len(pairs) > MAX_PARAMETERS:
        raise MetainfoError(f"more than {MAX_PARAMETERS} parameters", "magnet")
    v1: bytes | None = None
    v2: bytes | None = None
    name = None
    trackers: list[str] = []
    seeds: list[str] = []
    peers: list[tuple[str, int]] = []
    select: tuple[int, ...] = ()
    warnings: list[str] = []
    for pair in pairs:
        key, _, raw_value = pair.partition("=")
        # "tr.1=" and "xt.1=" number repeated parameters in some links; "x.pe" is a name.
        key = key.lower() if key.lower() == "x.pe" else key.lower().split(".")[0]
        if key == "xt":
            v1, v2 = _exact_topic(unquote(raw_value), v1, v2)
            continue
        try:
            if key == "dn":
                name = unquote_plus(raw_value)
            elif key == "tr":
                _append_unique(trackers, _url(raw_value, "tr", TRACKER_SCHEMES))
            elif key == "ws":
                _append_unique(seeds, _url(raw_value, "ws", WEB_SEED_SCHEMES))
            elif key == "x.pe":
                peers.append(_peer(unquote(raw_value)))
            elif key == "so":
                select = _parse_ranges(unquote(raw_value), lenient=warnings)
        except MetainfoError as error:
            warnings.append(f"{error}: left out")
    if v1 is None and v2 is None:
        raise MetainfoError("no urn:btih or urn:btmh info-hash", "xt")
    return Magnet(v1, v2, name, tuple(trackers), tuple(seeds), tuple(peers), select, tuple(warnings))


TRACKER_SCHEMES = ("http", "https", "udp")
WEB_SEED_SCHEMES = ("http", "https")


def printable(text: str) -> str:
    """``text`` with every control character (a terminal's escape sequences among them)
    written as a backslash escape, so that printing it cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def _exact_topic(value: str, v1: bytes | None, v2: bytes | None) -> tuple[bytes | None, bytes | None]:
    lowered = value.lower()
    if lowered.startswith("urn:btih:"):
        digest = _btih(value[len("urn:btih:") :])
        if v1 is not None and v1 != digest:
            raise MetainfoError("two different urn:btih hashes", "xt")
        return digest, v2
    if lowered.startswith("urn:btmh:"):
        digest = _btmh(value[len("urn:btmh:") :])
        if v2 is not None and v2 != digest:
            raise MetainfoError("two different urn:btmh hashes", "xt")
        return v1, digest
    return v1, v2  # another network's topic (urn:sha1, urn:ed2k, ...): not ours


def _btih(text: str) -> bytes:
    # Exact alphabets: fromhex skips spaces and b32decode takes padding, which would
    # turn a malformed link into a short hash.
    if _HEX40.fullmatch(text):
        return bytes.fromhex(text)
    if _BASE32_32.fullmatch(text):
        return base64.b32decode(text.upper())
    raise MetainfoError(f"urn:btih {text[:64]!r} is not 40 hex or 32 base32 characters", "xt")


def _btmh(text: str) -> bytes:
    if not _HEX68.fullmatch(text):
        raise MetainfoError("urn:btmh is not a SHA-256 multihash (1220 + 64 hex digits)", "xt")
    multihash = bytes.fromhex(text)
    if multihash[:2] != _SHA256_MULTIHASH:
        raise MetainfoError("urn:btmh is not a SHA-256 multihash (1220 + 64 hex digits)", "xt")
    return multihash[2:]


def _url(raw: str, field: str, schemes: tuple[str, ...]) -> str:
    url = unquote(raw).strip()
    if not url or any(unicodedata.category(char) == "Cc" for char in url):
        raise MetainfoError(f"'{printable(url[:80])}' is not a URL", field)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in schemes:
        raise MetainfoError(f"'{printable(url[:80])}': not {', '.join(schemes)}", field)
    return url


def _append_unique(urls: list[str], url: str) -> None:
    if url not in urls:
        urls.append(url)


def _peer(text: str) -> tuple[str, int]:
    match = _PEER.fullmatch(text)
    port = int(match.group("port")) if match else 0
    if match is None or not 0 < port < 65536:
        raise MetainfoError(f"'{printable(text[:80])}' is not host:port", "x.pe")
    return match.group("v6") or match.group("host"), port


def parse_ranges(text: str) -> tuple[int, ...]:
    """'0,2,4-6' -> (0, 2, 4, 5, 6); raises MetainfoError (field 'so') when malformed (the
    user's own --files: every part must be right)."""
    return _parse_ranges(text)


def _parse_ranges(text: str, *, lenient: list[str] | None = None) -> tuple[int, ...]:
    """The indices ``text`` selects. With ``lenient`` (a link's ``so``), a bad part is left
    out and a range beyond ``MAX_SELECTED_FILES`` cut short, each noted there."""
    selected: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        shown = printable(part[:40])
        problem = None
        if not _INDEX.fullmatch(low) or (dash and not _INDEX.fullmatch(high)):
            problem = f"'{shown}' is not an index or a range"
        elif (int(high) if dash else int(low)) < int(low):
            problem = f"range '{shown}' is reversed"
        if problem is not None:
            if lenient is None:
                raise MetainfoError(problem, "so")
            lenient.append(f"so: {problem}: left out")
            continue
        first, last = int(low), int(high) if dash else int(low)
        room = MAX_SELECTED_FILES - len(selected)
        if last - first + 1 > room:
            if lenient is None:
                raise MetainfoError(f"range '{shown}' selects more than {MAX_SELECTED_FILES} files", "so")
            lenient.append(f"so: range '{shown}' cut to the first {MAX_SELECTED_FILES} files")
            last = first + room - 1
        selected.update(range(first, last + 1))
    return tuple(sorted(selected))


def _format_ranges(indices: tuple[int, ...]) -> str:
    runs: list[str] = []
    ordered = sorted(set(indices))
    start = previous = ordered[0]
    for index in [*ordered[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        runs.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ",".join(runs)
