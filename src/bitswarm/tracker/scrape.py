"""The client side of scrapes, sans-IO: BEP 48 over HTTP and BEP 15 over UDP.

``scrape_url_for`` turns an announce URL into its scrape URL by the convention BEP 48
describes (the last path component ``announce`` becomes ``scrape``; a tracker whose URL
does not end so cannot be scraped over HTTP). ``http_scrape_url`` asks for many
info-hashes in one GET (repeated ``info_hash`` parameters) and ``decode_http_scrape`` reads
the bencoded ``files`` dictionary strictly. ``UdpScrapeExchange`` is a datagram core for
BEP 15's connect, then scrape: it says what to send, checks each reply's action,
transaction ID and exact length, and yields the counts.
"""

from __future__ import annotations

import enum
import random
import struct
from collections.abc import Sequence
from urllib.parse import quote_from_bytes, urlsplit

from bitswarm import bencode
from bitswarm.errors import DecodeError, TrackerError, UsageError
from bitswarm.tracker.server import UDP_CONNECT, UDP_ERROR, UDP_PROTOCOL_ID, UDP_SCRAPE
from bitswarm.tracker.swarm import INFO_HASH_BYTES, SwarmCounts

# BEP 15: 74 info-hashes fill a scrape reply within a safe datagram size.
MAX_UDP_SCRAPE_HASHES = 74
# A files dictionary of 74 swarms is about 5 KB; more than this is no scrape reply.
MAX_HTTP_SCRAPE_REPLY_BYTES = 64 * 1024
# Counts are 32-bit on the UDP wire; a bigger number over HTTP is a broken reply.
MAX_COUNT = 2**32 - 1


def scrape_url_for(announce: str) -> str | None:
    """The BEP 48 scrape URL of an http(s) announce URL, or None when it has none.

    Only the last path component may be ``announce`` (query kept: passkeys live there)."""
    parts = urlsplit(announce)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    head, _, last = parts.path.rpartition("/")
    if not last.startswith("announce"):
        return None
    path = f"{head}/scrape{last[len('announce') :]}"
    return parts._replace(path=path, fragment="").geturl()


def http_scrape_url(scrape_url: str, info_hashes: Sequence[bytes]) -> str:
    """The GET URL asking ``scrape_url`` for every one of ``info_hashes`` (BEP 48)."""
    query = "&".join(f"info_hash={quote_from_bytes(info_hash, safe='')}" for info_hash in info_hashes)
    return scrape_url + ("&" if "?" in scrape_url else "?") + query


def _count(entry: dict[bytes, bencode.Value], key: bytes) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise TrackerError(f"scrape reply: {key.decode()} is not a count")
    return value


def decode_http_scrape(body: bytes, asked: Sequence[bytes]) -> dict[bytes, SwarmCounts]:
    """The counts of the ``asked`` swarms in a BEP 48 reply (swarms the tracker left out
    are missing; swarms nobody asked for are dropped). Raises ``TrackerError`` for a
    failure reason or a reply that is not a well-formed ``files`` dictionary."""
    if len(body) > MAX_HTTP_SCRAPE_REPLY_BYTES:
        raise TrackerError(f"scrape reply of {len(body)} bytes is too large")
    try:
        # opentracker writes the files of a scrape out of order; duplicates stay refused.
        reply = bencode.decode_document(body, allow_unsorted_keys=True).value
    except DecodeError as error:
        raise TrackerError(f"scrape reply is not valid bencode: {error}") from None
    if not isinstance(reply, dict):
        raise TrackerError("scrape reply is not a dictionary")
    failure = reply.get(b"failure reason")
    if failure is not None:
        text = failure.decode("utf-8", "replace") if isinstance(failure, bytes) else "unknown"
        raise TrackerError(f"tracker says: {text[:300]}")
    files = reply.get(b"files")
    if not isinstance(files, dict):
        raise TrackerError("scrape reply has no files dictionary")
    wanted = set(asked)
    counts: dict[bytes, SwarmCounts] = {}
    for info_hash, entry in files.items():
        if len(info_hash) != INFO_HASH_BYTES or not isinstance(entry, dict):
            raise TrackerError("scrape reply: malformed files entry")
        if info_hash in wanted:
            counts[info_hash] = SwarmCounts(
                seeders=_count(entry, b"complete"),
                leechers=_count(entry, b"incomplete"),
                completed=_count(entry, b"downloaded"),
            )
    return counts


class UdpScrapeState(enum.Enum):
    CONNECTING = "connecting"
    SCRAPING = "scraping"
    DONE = "done"
    FAILED = "failed"


class UdpScrapeExchange:
    """One BEP 15 scrape: connect, then scrape up to ``MAX_UDP_SCRAPE_HASHES`` swarms.

    ``start()`` gives the first datagram; ``receive(datagram)`` the next one (or None);
    ``resend()`` repeats the current step with a fresh transaction ID after silence.
    After ``DONE``, ``counts`` holds the answer; a tracker error or a malformed reply
    raises ``TrackerError`` and leaves the exchange ``FAILED``."""

    def __init__(self, info_hashes: Sequence[bytes], rng: random.Random) -> None:
        if not 0 < len(info_hashes) <= MAX_UDP_SCRAPE_HASHES:
            raise UsageError(f"a UDP scrape asks for 1 to {MAX_UDP_SCRAPE_HASHES} swarms")
        if any(len(info_hash) != INFO_HASH_BYTES for info_hash in info_hashes):
            raise UsageError("an info-hash to scrape is 20 bytes")
        self.info_hashes = tuple(info_hashes)
        self.rng = rng
        self.state = UdpScrapeState.CONNECTING
        self.counts: dict[bytes, SwarmCounts] = {}
        self._transaction = 0
        self._connection_id = b""

    def start(self) -> bytes:
        return self._datagram()

    def resend(self) -> bytes:
        if self.state not in (UdpScrapeState.CONNECTING, UdpScrapeState.SCRAPING):
            raise UsageError("the scrape is over")
        return self._datagram()

    def _datagram(self) -> bytes:
        self._transaction = self.rng.getrandbits(32)
        if self.state is UdpScrapeState.CONNECTING:
            return struct.pack(">QII", UDP_PROTOCOL_ID, UDP_CONNECT, self._transaction)
        return self._connection_id + struct.pack(">II", UDP_SCRAPE, self._transaction) + b"".join(self.info_hashes)

    def receive(self, datagram: bytes) -> bytes | None:
        """The datagram to send next, or None (done, or a datagram that is not ours)."""
        if self.state not in (UdpScrapeState.CONNECTING, UdpScrapeState.SCRAPING):
            raise UsageError("the scrape is over")
        if len(datagram) < 8:
            return None
        action, transaction = struct.unpack_from(">II", datagram)
        if transaction != self._transaction:
            return None  # late, or someone else's: ignored
        if action == UDP_ERROR:
            self.state = UdpScrapeState.FAILED
            raise TrackerError("tracker says: " + datagram[8:308].decode("utf-8", "replace"))
        if self.state is UdpScrapeState.CONNECTING:
            if action != UDP_CONNECT or len(datagram) != 16:
                self.state = UdpScrapeState.FAILED
                raise TrackerError("malformed connect reply")
            self._connection_id = datagram[8:16]
            self.state = UdpScrapeState.SCRAPING
            return self._datagram()
        # BEP 15: 8 bytes of header, then seeders, completed, leechers per swarm asked.
        if action != UDP_SCRAPE or len(datagram) != 8 + 12 * len(self.info_hashes):
            self.state = UdpScrapeState.FAILED
            raise TrackerError(f"malformed scrape reply of {len(datagram)} bytes")
        for at, info_hash in enumerate(self.info_hashes):
            seeders, completed, leechers = struct.unpack_from(">III", datagram, 8 + 12 * at)
            self.counts[info_hash] = SwarmCounts(seeders=seeders, leechers=leechers, completed=completed)
        self.state = UdpScrapeState.DONE
        return None
