"""The tracker's protocol core: HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15, 41), sans-IO.

Requests come in as a query string or a datagram and leave as an ``AnnounceRequest`` or a
scrape; a store's answer goes back out as bytes. Every parameter is checked against a
named limit, and anything wrong becomes a ``TrackerRequestError`` whose text is the
``failure reason`` (HTTP) or error message (UDP) a client shows.

UDP connection IDs are not stored: an ID is a keyed hash of the client's address and a
one-minute window, accepted in its window and the next, so it lives one to two minutes
(BEP 15) and costs no memory however many clients connect.
"""

from __future__ import annotations

import codecs
import hashlib
import ipaddress
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bitswarm import bencode
from bitswarm.errors import ProtocolError
from bitswarm.tracker.swarm import (
    COMPACT_V6_BYTES,
    INFO_HASH_BYTES,
    PEER_ID_BYTES,
    AnnounceRequest,
    Event,
    SwarmCounts,
    SwarmView,
)

if TYPE_CHECKING:
    from bitswarm.tracker.memory import MemoryStore

# (info_hash, peer_id, port, event number, left, uploaded, downloaded, numwant or -1,
# compact, the ip parameter as sent or None)
AnnounceQuery = tuple[bytes, bytes, int, int, int, int, int, int, bool, bytes | None]


_compiled_plain_announce: Callable[[bytes], AnnounceQuery | None] | None
try:
    from bitswarm.tracker._http_fast import plain_announce as _compiled_plain_announce
except ImportError:  # installed without a C compiler: parse_announce_query does it all
    _compiled_plain_announce = None

# Scrapes of more swarms at once are an amplification lever (74 fit one UDP reply).
MAX_SCRAPE_HASHES = 74
# A scrape of 74 fully percent-encoded hashes is about 5.2 KB; an announce about 300 bytes.
MAX_QUERY_BYTES = 6144
MAX_PARAMETERS = MAX_SCRAPE_HASHES + 16
# Numbers beyond 2^63 are no byte counts; 18 digits fit every real value.
_MAX_NUMBER_DIGITS = 19
MAX_KEY_BYTES = 64
MAX_PASSKEY_CHARS = 64

UDP_PROTOCOL_ID = 0x41727101980
UDP_CONNECT, UDP_ANNOUNCE, UDP_SCRAPE, UDP_ERROR = 0, 1, 2, 3
UDP_EVENT_STOPPED = int(Event.STOPPED)
UDP_ANNOUNCE_BYTES = 98
# A scrape of MAX_SCRAPE_HASHES plus header; BEP 41 options can follow an announce.
MAX_UDP_REQUEST_BYTES = 16 + INFO_HASH_BYTES * MAX_SCRAPE_HASHES
CONNECTION_WINDOW_S = 60
# Sources whose compact address and connection IDs are kept between datagrams (a connect
# and the announce after it meet here); the table is emptied when full, so its size is fixed.
MAX_CACHED_SOURCES = 4096

# Event(number) costs a microsecond per datagram; indexing this tuple does not.
_EVENT_BY_NUMBER = tuple(Event)
_EVENTS = {b"": Event.NONE, b"started": Event.STARTED, b"completed": Event.COMPLETED, b"stopped": Event.STOPPED}
# BEP 21's "paused" is an ordinary re-announce for swarm counting.
_EVENTS[b"paused"] = Event.NONE


class TrackerRequestError(ProtocolError):
    """A client's request broke a rule; the message is what the client is told."""


@dataclass(frozen=True, slots=True)
class TrackerPolicy:
    interval_s: int = 1800
    min_interval_s: int = 900
    default_numwant: int = 50
    max_numwant: int = 200
    trust_ip_parameter: bool = False
    allow_full_scrape: bool = True
    # None: open tracker. Otherwise only these info-hashes are tracked.
    whitelist: frozenset[bytes] | None = None
    # None: no passkeys. Otherwise announces must come to /announce/<passkey>.
    passkeys: frozenset[str] | None = None
    # Private swarms in an otherwise open tracker (an index site's gated bundles): these
    # info-hashes are tracked only for announces to /announce/<passkey> with one of
    # ``swarm_passkeys``; UDP, which carries no passkey, is refused for them.
    private_swarms: frozenset[bytes] = frozenset()
    swarm_passkeys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class HttpAnnounce:
    request: AnnounceRequest
    compact: bool


@dataclass(frozen=True, slots=True)
class UdpReply:
    """Send ``payload`` back to the datagram's source."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class UdpAnnounce:
    request: AnnounceRequest
    transaction_id: bytes


@dataclass(frozen=True, slots=True)
class UdpScrape:
    info_hashes: list[bytes]
    transaction_id: bytes


@dataclass
class RequestCounters:
    """What the core saw, for metrics; plain integers bumped in place."""

    announces: dict[str, int] = field(default_factory=lambda: {"http": 0, "udp": 0})
    scrapes: dict[str, int] = field(default_factory=lambda: {"http": 0, "udp": 0})
    connects: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def compact_address(host: str, port: int) -> bytes:
    """4- or 16-byte address then 2-byte port; an IPv4-mapped IPv6 address becomes IPv4."""
    # Fast path for a dotted quad as the kernel writes it: half the cost of ipaddress,
    # which was a fifth of parsing a UDP announce. Same rules: no leading zeros.
    quad = _DOTTED_QUAD.fullmatch(host)
    if quad is not None:
        return bytes(map(int, quad.groups())) + port.to_bytes(2, "big")
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.packed + port.to_bytes(2, "big")


def unescape(value: bytes) -> bytes:
    """Decode a query value's %XX escapes (and + as a space); raises TrackerRequestError
    for a % not followed by two hex digits, which urllib would pass through unchanged."""
    if b"+" in value:
        value = value.replace(b"+", b" ")
    if b"%" not in value:
        return value
    # The C escape decoder turns \\xHH into one byte: 0.4 us for a percent-encoded
    # info-hash against 2.7 us for urllib, a sixth of an HTTP announce. Backslashes of our
    # own are doubled first, so the only escapes it sees are the ones made here.
    try:
        return codecs.escape_decode(value.replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]
    except ValueError:
        raise TrackerRequestError("invalid percent-encoding") from None


def parse_query(query: bytes) -> dict[bytes, list[bytes]]:
    """Split a query string into decoded values per name; raises TrackerRequestError."""
    parameters: dict[bytes, list[bytes]] = {}
    for name, value in _pairs(query):
        parameters.setdefault(unescape(name), []).append(unescape(value))
    return parameters


def _pairs(query: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) pairs as sent, still escaped, in order."""
    if len(query) > MAX_QUERY_BYTES:
        raise TrackerRequestError("query string too long")
    pairs = query.split(b"&") if query else []
    if len(pairs) > MAX_PARAMETERS:
        raise TrackerRequestError("too many parameters")
    return [(name, value) for name, _, value in (pair.partition(b"=") for pair in pairs if pair)]


# The parameters an announce reads; each may appear once.
_ANNOUNCE_PARAMETERS = frozenset(
    (b"info_hash", b"peer_id", b"port", b"event", b"key", b"ip", b"numwant", b"compact", b"left", b"uploaded",
     b"downloaded")
)  # fmt: skip


def _announce_parameters(query: bytes) -> dict[bytes, bytes]:
    """An announce's parameters, name to value still escaped: one dictionary and no lists,
    because an announce reads each of its parameters once and a repeat is an error."""
    if len(query) > MAX_QUERY_BYTES:
        raise TrackerRequestError("query string too long")
    pairs = query.split(b"&")
    if len(pairs) > MAX_PARAMETERS:
        raise TrackerRequestError("too many parameters")
    values: dict[bytes, bytes] = {}
    for pair in pairs:
        name, _, value = pair.partition(b"=")
        values[name] = value
    names = b"".join(values)
    if len(values) == len(pairs) and b"%" not in names and b"+" not in names:
        return values  # every name plain and once: what clients send
    values = {}
    for sent_name, value in _pairs(query):
        name = unescape(sent_name)
        if name in values and name in _ANNOUNCE_PARAMETERS:
            raise TrackerRequestError(f"repeated {name.decode('ascii', 'replace')}")
        values[name] = value
    return values


def _number(parameters: Mapping[bytes, bytes], name: bytes, *, default: int | None = None) -> int:
    text = parameters.get(name)
    if text is None:
        if default is None:
            raise TrackerRequestError(f"missing {name.decode()}")
        return default
    if not text.isdigit():
        text = unescape(text)
    if not text.isdigit() or len(text) > _MAX_NUMBER_DIGITS:
        raise TrackerRequestError(f"invalid {name.decode()}")
    return int(text)


def _fixed(parameters: Mapping[bytes, bytes], name: bytes, size: int) -> bytes:
    value = parameters.get(name)
    if value is None:
        raise TrackerRequestError(f"missing {name.decode()}")
    value = unescape(value)
    if len(value) != size:
        raise TrackerRequestError(f"invalid {name.decode()}: {len(value)} bytes, not {size}")
    return value


def parse_announce_query(query: bytes) -> AnnounceQuery:
    """An announce's parameters, each checked; raises TrackerRequestError. The reference
    for the compiled ``plain_announce``, which answers the same or leaves it to this."""
    parameters = _announce_parameters(query)
    info_hash = _fixed(parameters, b"info_hash", INFO_HASH_BYTES)
    peer_id = _fixed(parameters, b"peer_id", PEER_ID_BYTES)
    port = _number(parameters, b"port")
    if not 0 < port < 65536:
        raise TrackerRequestError("invalid port")
    event = _EVENTS.get(parameters.get(b"event", b""))
    if event is None:  # (Event.NONE is falsy: only a miss is None)
        event = _EVENTS.get(unescape(parameters[b"event"]))
        if event is None:
            raise TrackerRequestError("invalid event")
    key = parameters.get(b"key")
    if key is not None and len(unescape(key)) > MAX_KEY_BYTES:
        raise TrackerRequestError("invalid key")
    numwant = _number(parameters, b"numwant", default=-1)
    compact = parameters.get(b"compact") not in (b"0", b"%30")
    left = _number(parameters, b"left")
    uploaded = _number(parameters, b"uploaded")
    downloaded = _number(parameters, b"downloaded")
    return info_hash, peer_id, port, int(event), left, uploaded, downloaded, numwant, compact, parameters.get(b"ip")


class HttpTracker:
    """Turns HTTP announce and scrape requests into store calls and answers into bodies."""

    def __init__(self, policy: TrackerPolicy, counters: RequestCounters) -> None:
        self.policy = policy
        self.counters = counters
        # Connection host -> packed address; emptied when full, so its size is fixed.
        self._hosts: dict[str, bytes] = {}

    def parse_announce(self, query: bytes, client: tuple[str, int], passkey: str | None) -> HttpAnnounce:
        """Raises ``TrackerRequestError`` with the failure reason to send."""
        fields = self._announce_fields(query, client, passkey)
        info_hash, peer_id, address, event, left, uploaded, downloaded, numwant, compact = fields
        request = AnnounceRequest(
            info_hash=info_hash,
            peer_id=peer_id,
            address=address,
            event=event,
            left=left,
            uploaded=uploaded,
            downloaded=downloaded,
            numwant=numwant,
            passkey=passkey,
        )
        return HttpAnnounce(request, compact)

    def answer_announce_now(
        self, query: bytes, client: tuple[str, int], passkey: str | None, now: float, store: MemoryStore
    ) -> bytes:
        """The body answering an announce, from the memory store at once and without
        building request or view objects: the same bytes as ``parse_announce``, the
        store's ``announce_now`` and ``encode_announce``. Raises ``TrackerRequestError``."""
        fields = self._announce_fields(query, client, passkey)
        info_hash, _peer_id, address, event, left, uploaded, downloaded, numwant, compact = fields
        seeders, leechers, completed, peers = store.announce_packed(
            info_hash, address, event, left == 0, numwant, now, passkey, uploaded, downloaded
        )
        policy = self.policy
        if not compact:
            size = len(address)
            view = SwarmView(
                SwarmCounts(seeders, leechers, completed), [peers[at : at + size] for at in range(0, len(peers), size)]
            )
            request = AnnounceRequest(info_hash, _peer_id, address, event, left, uploaded, downloaded, numwant, passkey)
            return self.encode_announce(HttpAnnounce(request, compact), view)
        # bencode of encode_announce's dictionary, keys in sorted order.
        template = _COMPACT_V4_REPLY if len(address) != COMPACT_V6_BYTES else _COMPACT_V6_REPLY
        head = template % (seeders, completed, leechers, policy.interval_s, policy.min_interval_s, len(peers))
        return head + peers + b"e"

    def _announce_fields(
        self, query: bytes, client: tuple[str, int], passkey: str | None
    ) -> tuple[bytes, bytes, bytes, Event, int, int, int, int, bool]:
        """(info_hash, peer_id, address, event, left, uploaded, downloaded, numwant, compact)."""
        parsed = _compiled_plain_announce(query) if _compiled_plain_announce is not None else None
        if parsed is None:
            parsed = parse_announce_query(query)
        info_hash, peer_id, port, event_number, left, uploaded, downloaded, numwant, compact, claimed = parsed
        policy = self.policy
        if claimed is not None and policy.trust_ip_parameter:
            try:
                address = compact_address(unescape(claimed).decode("ascii", "replace"), port)
            except ValueError:
                raise TrackerRequestError("invalid ip") from None
        else:
            address = self._client_host(client[0]) + port.to_bytes(2, "big")
        numwant = min(policy.default_numwant if numwant < 0 else numwant, policy.max_numwant)
        if policy.passkeys is not None or policy.whitelist is not None or policy.private_swarms:
            admit(policy, info_hash, passkey)
        return info_hash, peer_id, address, _EVENT_BY_NUMBER[event_number], left, uploaded, downloaded, numwant, compact

    def _client_host(self, host: str) -> bytes:
        """The packed address of a connection's host (as the kernel wrote it), cached."""
        packed = self._hosts.get(host)
        if packed is None:
            try:
                packed = compact_address(host, 0)[:-2]
            except ValueError:
                raise TrackerRequestError("invalid ip") from None
            if len(self._hosts) >= MAX_CACHED_SOURCES:
                self._hosts.clear()
            self._hosts[host] = packed
        return packed

    def _admit(self, info_hash: bytes, passkey: str | None) -> None:
        admit(self.policy, info_hash, passkey)

    def encode_announce(self, announce: HttpAnnounce, view: SwarmView) -> bytes:
        counts = view.counts
        response: dict[bytes, object] = {
            b"complete": counts.seeders,
            b"incomplete": counts.leechers,
            b"downloaded": counts.completed,
            b"interval": self.policy.interval_s,
            b"min interval": self.policy.min_interval_s,
        }
        if announce.compact:
            # BEP 7: IPv6 peers go in peers6, IPv4 in peers; the store gave the asker's family.
            response[b"peers6" if announce.request.is_ipv6 else b"peers"] = b"".join(view.peers)
            if announce.request.is_ipv6:
                response[b"peers"] = b""
        else:
            response[b"peers"] = [_peer_dictionary(address) for address in view.peers]
        return bencode.encode(response)

    def parse_scrape(self, query: bytes, passkey: str | None) -> list[bytes] | None:
        """The info-hashes asked for, or None for a full scrape; raises TrackerRequestError."""
        parameters = parse_query(query)
        hashes = parameters.get(b"info_hash", [])
        if not hashes:
            if not self.policy.allow_full_scrape:
                raise TrackerRequestError("full scrape is disabled")
            if self.policy.passkeys is not None and passkey not in self.policy.passkeys:
                raise TrackerRequestError("unknown passkey")
            return None
        if len(hashes) > MAX_SCRAPE_HASHES:
            raise TrackerRequestError("too many info_hash values")
        for info_hash in hashes:
            if len(info_hash) != INFO_HASH_BYTES:
                raise TrackerRequestError("invalid info_hash")
        unique = list(dict.fromkeys(hashes))
        for info_hash in unique:
            self._admit(info_hash, passkey)
        return unique

    def encode_scrape(self, counts: Mapping[bytes, SwarmCounts]) -> bytes:
        files = {
            info_hash: {b"complete": count.seeders, b"downloaded": count.completed, b"incomplete": count.leechers}
            for info_hash, count in counts.items()
        }
        return bencode.encode({b"files": files})


_COMPACT_REPLY_HEAD = b"d8:completei%de10:downloadedi%de10:incompletei%de8:intervali%de12:min intervali%de"
_COMPACT_V4_REPLY = _COMPACT_REPLY_HEAD + b"5:peers%d:"
# BEP 7: an IPv6 asker's peers go in peers6, with an empty peers beside it.
_COMPACT_V6_REPLY = _COMPACT_REPLY_HEAD + b"5:peers0:6:peers6%d:"


def admit(policy: TrackerPolicy, info_hash: bytes, passkey: str | None) -> None:
    """Refuse swarms the whitelist lacks, users the passkey list lacks, and private swarms'
    announces without one of their passkeys."""
    if policy.passkeys is not None and passkey not in policy.passkeys:
        raise TrackerRequestError("unknown passkey")
    if policy.whitelist is not None and info_hash not in policy.whitelist:
        raise TrackerRequestError("torrent not registered with this tracker")
    if info_hash in policy.private_swarms and passkey not in policy.swarm_passkeys:
        raise TrackerRequestError("unknown passkey")


def encode_failure(reason: str) -> bytes:
    return bencode.encode({b"failure reason": reason})


def _peer_dictionary(address: bytes) -> dict[bytes, object]:
    host = ipaddress.ip_address(address[:-2])
    return {b"ip": str(host), b"port": int.from_bytes(address[-2:], "big")}


_CONNECT = struct.Struct(">QII")
_HEADER = struct.Struct(">QII")
_ANNOUNCE_TAIL = struct.Struct(">20s20sQQQIIIiH")
_REPLY_HEADER = struct.Struct(">II")
_ANNOUNCE_REPLY = struct.Struct(">IIIII")
_SCRAPE_ENTRY = struct.Struct(">III")
_PORT = struct.Struct(">H")
# Longer datagrams are refused unread; BEP 41 options may follow an announce's 98 bytes.
MAX_UDP_DATAGRAM_BYTES = MAX_UDP_REQUEST_BYTES + 256


class UdpTracker:
    """BEP 15 over datagrams. ``secret`` keys the connection IDs; keep it private."""

    def __init__(self, policy: TrackerPolicy, counters: RequestCounters, secret: bytes) -> None:
        self.policy = policy
        self.counters = counters
        self.secret = secret
        # Keyed once: a copy of the keyed state skips hashing the key block per ID.
        self._mac = hashlib.blake2b(key=secret, digest_size=8)
        # source -> (compact address, its host part, the window's start and end times, its
        # connection ID and the previous window's, as ints): checked with one comparison.
        self._sources: dict[tuple[Any, ...], tuple[bytes, bytes, float, float, int, int]] = {}

    def connection_id(self, address: bytes, window: int) -> bytes:
        mac = self._mac.copy()
        mac.update(address + window.to_bytes(8, "big", signed=True))  # window -1 at time 0
        return mac.digest()

    def _source(self, source: tuple[Any, ...], now: float) -> tuple[bytes, bytes, float, float, int, int]:
        """The source's compact address, its host, the window's times and the IDs valid in it, cached."""
        known = self._sources.get(source)
        if known is not None and known[2] <= now < known[3]:
            return known
        window = int(now // CONNECTION_WINDOW_S)
        address = compact_address(source[0], source[1])
        current = int.from_bytes(self.connection_id(address, window), "big")
        previous = int.from_bytes(self.connection_id(address, window - 1), "big")
        if len(self._sources) >= MAX_CACHED_SOURCES:
            self._sources.clear()
        start = window * CONNECTION_WINDOW_S
        known = self._sources[source] = (address, address[:-2], start, start + CONNECTION_WINDOW_S, current, previous)
        return known

    def receive(
        self, datagram: bytes, source: tuple[str, int], now: float
    ) -> UdpReply | UdpAnnounce | UdpScrape | None:
        """What to do with one datagram: reply at once, ask the store, or stay silent.

        Silence is the answer to anything that is not a well-formed request from an
        address that proved itself: a reply to a forged source would be reflection.
        """
        if len(datagram) < _HEADER.size or len(datagram) > MAX_UDP_DATAGRAM_BYTES:
            self.counters.error("udp_size")
            return None
        connection, action, transaction = _HEADER.unpack_from(datagram)
        transaction_id = transaction.to_bytes(4, "big")
        address, _host, _start, _end, current, previous = self._source(source, now)
        if action == UDP_CONNECT:
            if connection != UDP_PROTOCOL_ID or len(datagram) != _CONNECT.size:
                self.counters.error("udp_connect")
                return None
            self.counters.connects += 1
            return UdpReply(_REPLY_HEADER.pack(UDP_CONNECT, transaction) + current.to_bytes(8, "big"))
        if action not in (UDP_ANNOUNCE, UDP_SCRAPE):
            self.counters.error("udp_action")
            return None
        if connection not in (current, previous):
            self.counters.error("udp_connection_id")
            return None
        try:
            if action == UDP_ANNOUNCE:
                return UdpAnnounce(self._parse_announce(datagram, address), transaction_id)
            return UdpScrape(self._parse_scrape(datagram), transaction_id)
        except TrackerRequestError as error:
            self.counters.error("udp_request")
            return UdpReply(encode_udp_error(transaction_id, str(error)))

    def answer_now(self, datagram: bytes, source: tuple[Any, ...], now: float, store: MemoryStore) -> bytes | None:
        """The reply to one datagram, from the memory store at once, or None for silence.

        The same answers as ``receive`` followed by the store and ``encode_announce`` /
        ``encode_scrape``, and the same counters (announces and scrapes included), but a
        well-formed announce is answered from plain values: no request, view or action
        objects, one unpack and one pack. Anything else takes the general path.
        """
        if len(datagram) >= UDP_ANNOUNCE_BYTES and len(datagram) <= MAX_UDP_DATAGRAM_BYTES:
            connection, action, transaction = _HEADER.unpack_from(datagram)
            known = self._sources.get(source)
            if known is None or not known[2] <= now < known[3]:
                known = self._source(source, now)
            policy = self.policy
            if action == UDP_ANNOUNCE and (connection == known[4] or connection == known[5]):
                info_hash, _peer_id, _down, left, _up, event, ip, _key, numwant, port = _ANNOUNCE_TAIL.unpack_from(
                    datagram, _HEADER.size
                )
                # Errors, a claimed IP and admission lists are the general path's business.
                if (
                    event <= UDP_EVENT_STOPPED
                    and port
                    and not (ip and policy.trust_ip_parameter)
                    and policy.whitelist is None
                    and policy.passkeys is None
                    and info_hash not in policy.private_swarms
                ):
                    self.counters.announces["udp"] += 1
                    # Comparisons rather than min(): no call per announce.
                    wanted = policy.default_numwant if numwant < 0 else numwant
                    wanted = wanted if wanted <= policy.max_numwant else policy.max_numwant
                    seeders, leechers, _completed, peers = store.announce_packed(
                        info_hash, known[1] + _PORT.pack(port), event, left == 0, wanted, now
                    )
                    return _ANNOUNCE_REPLY.pack(UDP_ANNOUNCE, transaction, policy.interval_s, leechers, seeders) + peers
        action_or_reply = self.receive(datagram, source, now)
        if action_or_reply is None:
            return None
        if isinstance(action_or_reply, UdpReply):
            return action_or_reply.payload
        if isinstance(action_or_reply, UdpAnnounce):
            self.counters.announces["udp"] += 1
            view = store.announce_now(action_or_reply.request, now)
            return self.encode_announce(action_or_reply.transaction_id, view)
        self.counters.scrapes["udp"] += 1
        hashes = action_or_reply.info_hashes
        return self.encode_scrape(action_or_reply.transaction_id, hashes, store.scrape_now(hashes))

    def _parse_announce(self, datagram: bytes, address: bytes) -> AnnounceRequest:
        if len(datagram) < UDP_ANNOUNCE_BYTES:
            raise TrackerRequestError("announce too short")
        # Bytes after the 98 are BEP 41 options (URL data): tolerated, not needed.
        info_hash, peer_id, downloaded, left, uploaded, event, ip, _key, numwant, port = _ANNOUNCE_TAIL.unpack_from(
            datagram, _HEADER.size
        )
        if event > Event.STOPPED:
            raise TrackerRequestError("invalid event")
        if port == 0:
            raise TrackerRequestError("invalid port")
        host = address[:-2]
        if ip and self.policy.trust_ip_parameter and len(host) == 4:
            host = ip.to_bytes(4, "big")
        wanted = self.policy.default_numwant if numwant < 0 else numwant
        admit(self.policy, info_hash, None)
        return AnnounceRequest(
            info_hash=info_hash,
            peer_id=peer_id,
            address=host + port.to_bytes(2, "big"),
            event=_EVENT_BY_NUMBER[event],
            left=left,
            uploaded=uploaded,
            downloaded=downloaded,
            numwant=min(wanted, self.policy.max_numwant),
        )

    def _parse_scrape(self, datagram: bytes) -> list[bytes]:
        body = datagram[_HEADER.size :]
        if not body or len(body) % INFO_HASH_BYTES or len(body) // INFO_HASH_BYTES > MAX_SCRAPE_HASHES:
            raise TrackerRequestError("invalid scrape")
        hashes = [body[at : at + INFO_HASH_BYTES] for at in range(0, len(body), INFO_HASH_BYTES)]
        for info_hash in hashes:
            admit(self.policy, info_hash, None)
        return hashes

    def encode_announce(self, transaction_id: bytes, view: SwarmView) -> bytes:
        counts = view.counts
        header = _ANNOUNCE_REPLY.pack(
            UDP_ANNOUNCE, int.from_bytes(transaction_id, "big"), self.policy.interval_s, counts.leechers, counts.seeders
        )
        return header + b"".join(view.peers)

    def encode_scrape(self, transaction_id: bytes, hashes: list[bytes], counts: Mapping[bytes, SwarmCounts]) -> bytes:
        parts = [_REPLY_HEADER.pack(UDP_SCRAPE, int.from_bytes(transaction_id, "big"))]
        for info_hash in hashes:
            count = counts.get(info_hash, SwarmCounts())
            parts.append(_SCRAPE_ENTRY.pack(count.seeders, count.completed, count.leechers))
        return b"".join(parts)


def encode_udp_error(transaction_id: bytes, message: str) -> bytes:
    return _REPLY_HEADER.pack(UDP_ERROR, int.from_bytes(transaction_id, "big")) + message.encode()[:200]
