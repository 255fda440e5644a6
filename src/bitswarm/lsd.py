"""Local service discovery (BEP 14): announces over multicast, as a sans-IO core.

An announce is an HTTP-like request in one UDP datagram:

    BT-SEARCH * HTTP/1.1\\r\\n
    Host: 239.192.152.143:6771\\r\\n
    Port: 6881\\r\\n
    Infohash: <40 hex digits>\\r\\n      (one or more)
    cookie: <ours>\\r\\n                 (optional)
    \\r\\n
    \\r\\n

``decode_announce`` reads one: header names in any case, unknown headers ignored (BEP 14
asks for that), every value we use checked exactly, the datagram size bounded.

``LocalDiscovery`` is the per-session machine. Torrents are added and removed; ``tick``
returns the datagrams due, which carry every torrent that is due (several info-hashes
per announce, each datagram under 1400 bytes as BEP 14 asks). A torrent is announced
``first_announce_delay_s`` after it is added, then every ``interval_s`` (BEP 14: every 5
minutes); apart from those first announces, rounds are at least ``min_round_gap_s`` apart
(BEP 14: no more than one announce a minute) and take along every torrent due before
the next round could run. ``receive`` turns a datagram into the peers it names for our
torrents; it ignores our own announces (by our cookie, as multicast loops back) and
sources that send more than their budget.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bitswarm.errors import ProtocolError, UsageError
from bitswarm.ratelimit import RateLimiter

LSD_PORT = 6771
IPV4_GROUP = "239.192.152.143"
IPV6_GROUP = "ff15::efc0:988f"
IPV4_HOST = f"{IPV4_GROUP}:{LSD_PORT}"
IPV6_HOST = f"[{IPV6_GROUP}]:{LSD_PORT}"
GROUP_HOSTS = {IPV4_GROUP: IPV4_HOST, IPV6_GROUP: IPV6_HOST}

# BEP 14: a datagram with several info-hashes should stay under 1400 bytes (no fragments).
MAX_SEND_BYTES = 1400
# Incoming: a little over an Ethernet frame, so a sender slightly over BEP 14's advice is
# still heard, while a datagram up to 64 KiB is dropped before we look inside.
MAX_ANNOUNCE_BYTES = 2048
# BEP 14 timing: an announce every 5 minutes per torrent, rounds at most one a minute.
ANNOUNCE_INTERVAL_S = 300.0
MIN_ROUND_GAP_S = 60.0
# A torrent just added is announced soon, not five minutes later; the short delay lets
# torrents added together share a datagram.
FIRST_ANNOUNCE_DELAY_S = 2.0
# Per source address: clients send one datagram per torrent (libtorrent) every 5 minutes,
# so a burst covers one starting with many torrents, and the rate a steady one.
SOURCE_RATE_PER_S = 1.0
SOURCE_BURST = 50.0
MAX_SOURCES = 1024
# Opaque to everyone else; short visible ASCII keeps it one header value.
MAX_COOKIE_CHARS = 64

_REQUEST_LINE = "BT-SEARCH * HTTP/1.1"
_HEX40 = re.compile(r"[0-9A-Fa-f]{40}")
_PORT = re.compile(r"[0-9]{1,5}")
_TOKEN = re.compile(r"[!-~]{1,64}")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # visible ASCII but ':'


@dataclass(frozen=True, slots=True)
class Announce:
    """One BT-SEARCH datagram's content."""

    port: int
    info_hashes: tuple[bytes, ...]
    cookie: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class PeerDiscovered:
    """Fact: the peer at ``host``:``port`` is in the swarm of ``info_hash`` (a torrent of ours)."""

    info_hash: bytes
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SendDatagram:
    """Instruction: send ``payload`` to the multicast group ``group`` on ``LSD_PORT``."""

    group: str
    payload: bytes


def encode_announce(announce: Announce) -> bytes:
    """The datagram for ``announce``; ``host`` must be one of the group hosts.

    Raises ``UsageError`` for a bad port, hash, cookie or host.
    """
    if not 0 < announce.port < 65536 or not announce.info_hashes:
        raise UsageError("an announce needs a port and at least one info-hash")
    if any(len(info_hash) != 20 for info_hash in announce.info_hashes):
        raise UsageError("LSD announces 20-byte info-hashes")
    if announce.cookie is not None and not _TOKEN.fullmatch(announce.cookie):
        raise UsageError("a cookie is 1 to 64 visible ASCII characters")
    host = announce.host or IPV4_HOST
    if host not in GROUP_HOSTS.values():
        raise UsageError(f"{host!r} is not an LSD group")
    lines = [_REQUEST_LINE, f"Host: {host}", f"Port: {announce.port}"]
    lines += [f"Infohash: {info_hash.hex()}" for info_hash in announce.info_hashes]
    if announce.cookie is not None:
        lines.append(f"cookie: {announce.cookie}")
    # BEP 14 ends the request with an empty line and one more line break.
    return ("\r\n".join(lines) + "\r\n\r\n\r\n").encode("ascii")


def decode_announce(datagram: bytes) -> Announce:
    """The announce in ``datagram``; raises ``ProtocolError`` for anything else."""
    if len(datagram) > MAX_ANNOUNCE_BYTES:
        raise ProtocolError(f"LSD datagram of {len(datagram)} bytes, over {MAX_ANNOUNCE_BYTES}")
    if not datagram.isascii():
        raise ProtocolError("LSD datagram is not ASCII")
    text = datagram.decode("ascii")
    head, blank, rest = text.partition("\r\n\r\n")
    if not blank or rest.strip("\r\n"):
        raise ProtocolError("LSD datagram is not one header block")
    request_line, *header_lines = head.split("\r\n")
    if request_line != _REQUEST_LINE:
        raise ProtocolError(f"not a BT-SEARCH request: {request_line[:40]!r}")
    port: int | None = None
    host: str | None = None
    cookie: str | None = None
    info_hashes: dict[bytes, None] = {}
    for line in header_lines:
        raw_name, colon, raw_value = line.partition(":")
        if not colon or not _HEADER_NAME.fullmatch(raw_name):
            raise ProtocolError(f"LSD header line {line[:40]!r} is not 'Name: value'")
        name, value = raw_name.lower(), raw_value.strip(" \t")
        if name == "port":
            if port is not None or not _PORT.fullmatch(value) or not 0 < int(value) < 65536:
                raise ProtocolError(f"LSD Port {value[:20]!r} is not one port in 1..65535")
            port = int(value)
        elif name == "infohash":
            if not _HEX40.fullmatch(value):
                raise ProtocolError(f"LSD Infohash {value[:50]!r} is not 40 hex digits")
            info_hashes[bytes.fromhex(value)] = None
        elif name == "host":
            if host is not None or value.lower() not in (IPV4_HOST, IPV6_HOST):
                raise ProtocolError(f"LSD Host {value[:60]!r} is not an LSD group")
            host = value.lower()
        elif name == "cookie":
            if cookie is not None or not _TOKEN.fullmatch(value):
                raise ProtocolError("LSD cookie is not one short token")
            cookie = value
    if port is None or not info_hashes:
        raise ProtocolError("LSD announce without a Port or an Infohash")
    return Announce(port, tuple(info_hashes), cookie, host)


def new_cookie(rng: random.Random) -> str:
    """A cookie to tell our own announces from others' (16 hex digits)."""
    return f"{rng.getrandbits(64):016x}"


@dataclass(slots=True)
class _Schedule:
    next_announce: float
    is_announced: bool = False


class LocalDiscovery:
    """Our BEP 14 announces and the peers others announce; see the module docstring."""

    def __init__(
        self,
        *,
        port: int,
        cookie: str,
        groups: Iterable[str] = (IPV4_GROUP, IPV6_GROUP),
        interval_s: float = ANNOUNCE_INTERVAL_S,
        min_round_gap_s: float = MIN_ROUND_GAP_S,
        first_announce_delay_s: float = FIRST_ANNOUNCE_DELAY_S,
        source_rate_per_s: float = SOURCE_RATE_PER_S,
        source_burst: float = SOURCE_BURST,
    ) -> None:
        self.groups = tuple(groups)
        if any(group not in GROUP_HOSTS for group in self.groups):
            raise UsageError(f"LSD groups are {IPV4_GROUP} and {IPV6_GROUP}")
        if not _TOKEN.fullmatch(cookie):
            raise UsageError("a cookie is 1 to 64 visible ASCII characters")
        self.port = port
        self.cookie = cookie
        self.interval_s = interval_s
        self.min_round_gap_s = min_round_gap_s
        self.first_announce_delay_s = first_announce_delay_s
        self._torrents: dict[bytes, _Schedule] = {}
        self._last_round: float | None = None
        self._sources = RateLimiter(source_rate_per_s, source_burst, max_keys=MAX_SOURCES)

    @property
    def info_hashes(self) -> tuple[bytes, ...]:
        return tuple(self._torrents)

    def add_torrent(self, info_hash: bytes, now: float) -> None:
        """Announce ``info_hash`` from now on and report peers for it.

        The caller keeps private torrents out (BEP 27: their peers come from the tracker only).
        """
        if len(info_hash) != 20:
            raise UsageError("LSD announces 20-byte info-hashes")
        if info_hash not in self._torrents:
            self._torrents[info_hash] = _Schedule(now + self.first_announce_delay_s)

    def remove_torrent(self, info_hash: bytes) -> None:
        self._torrents.pop(info_hash, None)

    def set_port(self, port: int, now: float) -> None:
        """Our listening port changed: announce everything again soon."""
        self.port = port
        for schedule in self._torrents.values():
            schedule.is_announced = False
            schedule.next_announce = now + self.first_announce_delay_s

    def receive(self, datagram: bytes, host: str, now: float) -> list[PeerDiscovered]:
        """The peers a datagram from the address ``host`` names for our torrents.

        Raises ``ProtocolError`` for a datagram that is not an announce; the caller drops
        it. Our own announces and those over the source's budget give nothing.
        """
        # The budget is spent before parsing: a flood costs one lookup per datagram.
        if not self._sources.allow(host, now):
            return []
        announce = decode_announce(datagram)
        if announce.cookie is not None and announce.cookie == self.cookie:
            return []
        return [
            PeerDiscovered(info_hash, host, announce.port)
            for info_hash in announce.info_hashes
            if info_hash in self._torrents
        ]

    def tick(self, now: float) -> list[SendDatagram]:
        """The announces due now, one set of datagrams per group."""
        torrents = self._torrents.items()
        if not any(schedule.next_announce <= now for _, schedule in torrents):
            return []
        if self._last_round is None or now >= self._last_round + self.min_round_gap_s:
            # Take along what falls due before the next round may run: fewer datagrams.
            horizon = now + self.min_round_gap_s
            due = [info_hash for info_hash, schedule in torrents if schedule.next_announce <= horizon]
            self._last_round = now
        else:
            # A torrent's first announce does not wait for the round gap.
            due = [info_hash for info_hash, s in torrents if not s.is_announced and s.next_announce <= now]
            if not due:
                return []
        for info_hash in due:
            schedule = self._torrents[info_hash]
            schedule.next_announce = now + self.interval_s
            schedule.is_announced = True
        return [SendDatagram(group, payload) for group in self.groups for payload in self._datagrams(due, group)]

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to send, or None with no torrents."""
        deadlines = []
        for schedule in self._torrents.values():
            if schedule.is_announced and self._last_round is not None:
                deadlines.append(max(schedule.next_announce, self._last_round + self.min_round_gap_s))
            else:
                deadlines.append(schedule.next_announce)
        return min(deadlines, default=None)

    def _datagrams(self, info_hashes: list[bytes], group: str) -> list[bytes]:
        host = GROUP_HOSTS[group]
        datagrams: list[bytes] = []
        batch: list[bytes] = []
        for info_hash in info_hashes:
            candidate = encode_announce(Announce(self.port, (*batch, info_hash), self.cookie, host))
            if len(candidate) > MAX_SEND_BYTES and batch:
                datagrams.append(encode_announce(Announce(self.port, tuple(batch), self.cookie, host)))
                batch = []
            batch.append(info_hash)
        if batch:
            datagrams.append(encode_announce(Announce(self.port, tuple(batch), self.cookie, host)))
        return datagrams
