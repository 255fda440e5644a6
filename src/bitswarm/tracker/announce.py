"""The client side of trackers, sans-IO: HTTP (BEP 3, 7, 23) and UDP (BEP 15), tiers (BEP 12).

``http_announce_url`` builds the request and ``decode_http_announce`` reads the answer
strictly. ``UdpAnnouncer`` is a datagram core: it says what to send and when to retry
(BEP 15's 15 * 2^n seconds), and turns replies into an ``AnnounceResult``. ``TrackerTiers``
keeps BEP 12's order: shuffled within a tier, a tracker that answered moves to the front.
"""

from __future__ import annotations

import enum
import ipaddress
import random
import struct
from dataclasses import dataclass
from urllib.parse import quote_from_bytes, urlsplit

from bitswarm import bencode
from bitswarm.errors import DecodeError, TrackerError, UsageError
from bitswarm.tracker.server import UDP_ANNOUNCE, UDP_CONNECT, UDP_ERROR, UDP_PROTOCOL_ID, UDP_SCRAPE
from bitswarm.tracker.swarm import Event

# A reply bigger than this is no tracker's: 200 peers in dictionary form is ~15 KB.
MAX_HTTP_REPLY_BYTES = 256 * 1024
# More peers than this from one announce are not used.
MAX_PEERS_PER_REPLY = 1000
# Tracker intervals below a minute or above a day are clamped to that range.
MIN_INTERVAL_S, MAX_INTERVAL_S = 60, 86_400
UDP_MAX_TRIES = 4  # 15 + 30 + 60 + 120 s: about 4 minutes before a tier moves on
UDP_CONNECTION_LIFETIME_S = 60


@dataclass(frozen=True, slots=True)
class AnnounceParams:
    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: Event = Event.NONE
    numwant: int = 50
    key: int = 0


@dataclass(frozen=True, slots=True)
class AnnounceResult:
    interval_s: int
    peers: tuple[tuple[str, int], ...]
    seeders: int | None = None
    leechers: int | None = None
    warning: str | None = None
    tracker_id: bytes | None = None
    external_ip: str | None = None  # BEP 24: our address as the tracker saw it


_EVENT_NAMES = {Event.STARTED: "started", Event.COMPLETED: "completed", Event.STOPPED: "stopped"}


def http_announce_url(announce: str, params: AnnounceParams, *, tracker_id: bytes | None = None) -> str:
    """The GET URL for an HTTP announce (extra query of the announce URL kept)."""
    parts = [
        f"info_hash={quote_from_bytes(params.info_hash, safe='')}",
        f"peer_id={quote_from_bytes(params.peer_id, safe='')}",
        f"port={params.port}",
        f"uploaded={params.uploaded}",
        f"downloaded={params.downloaded}",
        f"left={params.left}",
        "compact=1",
        f"numwant={params.numwant}",
        f"key={params.key:08x}",
    ]
    if params.event in _EVENT_NAMES:
        parts.append(f"event={_EVENT_NAMES[params.event]}")
    if tracker_id is not None:
        parts.append(f"trackerid={quote_from_bytes(tracker_id, safe='')}")
    return announce + ("&" if "?" in announce else "?") + "&".join(parts)


def decode_http_announce(body: bytes) -> AnnounceResult:
    """Read a tracker's bencoded answer; raises ``TrackerError`` for a failure or a broken reply."""
    if len(body) > MAX_HTTP_REPLY_BYTES:
        raise TrackerError(f"reply of {len(body)} bytes is too large")
    try:
        # Trackers in the field (opentracker among them) write keys out of order; that is
        # tolerated here, duplicates and every other malformation are not.
        reply = bencode.decode_document(body, allow_unsorted_keys=True).value
    except DecodeError as error:
        raise TrackerError(f"reply is not valid bencode: {error}") from None
    if not isinstance(reply, dict):
        raise TrackerError("reply is not a dictionary")
    failure = reply.get(b"failure reason")
    if failure is not None:
        text = failure.decode("utf-8", "replace") if isinstance(failure, bytes) else "unknown"
        raise TrackerError(f"tracker says: {text[:300]}")
    interval = reply.get(b"interval")
    if not isinstance(interval, int):
        raise TrackerError("reply has no interval")
    peers = _peers_from(reply.get(b"peers"), 4) + _peers_from(reply.get(b"peers6"), 16)
    warning = reply.get(b"warning message")
    tracker_id = reply.get(b"tracker id")
    seeders, leechers = reply.get(b"complete"), reply.get(b"incomplete")
    external = reply.get(b"external ip")
    return AnnounceResult(
        interval_s=_clamp_interval(interval),
        peers=tuple(peers[:MAX_PEERS_PER_REPLY]),
        seeders=seeders if isinstance(seeders, int) else None,
        leechers=leechers if isinstance(leechers, int) else None,
        warning=warning.decode("utf-8", "replace")[:300] if isinstance(warning, bytes) else None,
        tracker_id=tracker_id if isinstance(tracker_id, bytes) else None,
        # BEP 24: 4 or 16 bytes; anything else is not an address and is left out.
        external_ip=str(ipaddress.ip_address(external))
        if isinstance(external, bytes) and len(external) in (4, 16)
        else None,
    )


def _clamp_interval(interval: int) -> int:
    return min(max(interval, MIN_INTERVAL_S), MAX_INTERVAL_S)


def _peers_from(value: bencode.Value | None, address_bytes: int) -> list[tuple[str, int]]:
    if isinstance(value, bytes):
        return decode_compact_peers(value, address_bytes)
    if isinstance(value, list):
        peers = []
        for item in value[:MAX_PEERS_PER_REPLY]:
            if not isinstance(item, dict):
                continue
            ip, port = item.get(b"ip"), item.get(b"port")
            if isinstance(ip, bytes) and isinstance(port, int) and 0 < port < 65536:
                try:
                    peers.append((str(ipaddress.ip_address(ip.decode("ascii"))), port))
                except (ValueError, UnicodeDecodeError):
                    continue  # host names and junk are not followed
        return peers
    return []


def decode_compact_peers(data: bytes, address_bytes: int) -> list[tuple[str, int]]:
    """BEP 23 / BEP 7 compact peers; a trailing partial entry is ignored, port 0 skipped."""
    size = address_bytes + 2
    peers = []
    for at in range(0, len(data) - size + 1, size):
        port = int.from_bytes(data[at + address_bytes : at + size], "big")
        if port:
            peers.append((str(ipaddress.ip_address(data[at : at + address_bytes])), port))
    return peers


class UdpState(enum.Enum):
    CONNECTING = "connecting"
    ANNOUNCING = "announcing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendDatagram:
    payload: bytes
    retry_at: float


class UdpAnnouncer:
    """One UDP announce (connect, then announce) as a datagram core."""

    def __init__(
        self, params: AnnounceParams, rng: random.Random, *, connection: tuple[bytes, float] | None = None
    ) -> None:
        self.params = params
        self.rng = rng
        self.state = UdpState.CONNECTING
        self.result: AnnounceResult | None = None
        self.error: str | None = None
        self._tries = 0
        self._transaction = 0
        self._connection = connection
        self._ipv6 = False

    def start(self, now: float, *, ipv6: bool = False) -> SendDatagram:
        self._ipv6 = ipv6
        if self._connection is not None and now - self._connection[1] < UDP_CONNECTION_LIFETIME_S:
            self.state = UdpState.ANNOUNCING
        return self._send(now)

    def _send(self, now: float) -> SendDatagram:
        self._transaction = self.rng.getrandbits(32)
        retry_at = now + 15 * 2**self._tries
        self._tries += 1
        if self.state is UdpState.CONNECTING:
            return SendDatagram(struct.pack(">QII", UDP_PROTOCOL_ID, UDP_CONNECT, self._transaction), retry_at)
        assert self._connection is not None  # announcing only after a connect
        p = self.params
        payload = self._connection[0] + struct.pack(
            ">II20s20sQQQIIIiH", UDP_ANNOUNCE, self._transaction, p.info_hash, p.peer_id,
            p.downloaded, p.left, p.uploaded, int(p.event), 0, p.key, p.numwant, p.port,
        )  # fmt: skip
        return SendDatagram(payload, retry_at)

    def timeout(self, now: float) -> SendDatagram | None:
        """No answer by ``retry_at``: the next try, or None once the tries are used up."""
        if self.state not in (UdpState.CONNECTING, UdpState.ANNOUNCING):
            raise UsageError("the announce is over")
        if self._tries >= UDP_MAX_TRIES:
            self.state = UdpState.FAILED
            self.error = "no answer"
            return None
        if self.state is UdpState.ANNOUNCING:
            # BEP 15: after a lost announce the connection may have expired; connect again.
            self.state = UdpState.CONNECTING
        return self._send(now)

    def receive(self, datagram: bytes, now: float) -> SendDatagram | None:
        """A reply: the next datagram to send, or None (done, failed, or not ours)."""
        if len(datagram) < 8:
            return None
        action, transaction = struct.unpack_from(">II", datagram)
        if transaction != self._transaction:
            return None  # late or forged: ignore
        if action == UDP_ERROR:
            self.state = UdpState.FAILED
            self.error = "tracker says: " + datagram[8:308].decode("utf-8", "replace")
            return None
        if self.state is UdpState.CONNECTING and action == UDP_CONNECT and len(datagram) >= 16:
            self._connection = (datagram[8:16], now)
            self.state = UdpState.ANNOUNCING
            self._tries = 0
            return self._send(now)
        if self.state is UdpState.ANNOUNCING and action == UDP_ANNOUNCE and len(datagram) >= 20:
            interval, leechers, seeders = struct.unpack_from(">III", datagram, 8)
            peers = decode_compact_peers(datagram[20:], 16 if self._ipv6 else 4)
            self.result = AnnounceResult(
                _clamp_interval(interval), tuple(peers[:MAX_PEERS_PER_REPLY]), seeders, leechers
            )
            self.state = UdpState.DONE
        return None

    @property
    def connection(self) -> tuple[bytes, float] | None:
        """The connection ID and when it was granted, to reuse for the next announce."""
        return self._connection


def udp_scrape_request(connection_id: bytes, transaction: int, info_hashes: list[bytes]) -> bytes:
    return connection_id + struct.pack(">II", UDP_SCRAPE, transaction) + b"".join(info_hashes)


class TrackerTiers:
    """BEP 12: try tiers in order, trackers in a tier in a shuffled order; keep what works first."""

    def __init__(self, tiers: tuple[tuple[str, ...], ...], rng: random.Random) -> None:
        self.tiers = [list(tier) for tier in tiers if tier]
        for tier in self.tiers:
            rng.shuffle(tier)

    def in_order(self) -> list[str]:
        return [url for tier in self.tiers for url in tier]

    def succeeded(self, url: str) -> None:
        for tier in self.tiers:
            if url in tier:
                tier.remove(url)
                tier.insert(0, url)
                return


def tracker_kind(url: str) -> str:
    """'http', 'udp', or raise ``TrackerError`` for a scheme bitswarm does not speak."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return "http"
    if scheme == "udp":
        return "udp"
    raise TrackerError(f"unsupported tracker URL scheme {scheme!r}")
