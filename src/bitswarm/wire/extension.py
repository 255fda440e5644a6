"""Extension messages over BEP 10: the handshake, ut_metadata (BEP 9), ut_pex (BEP 11) and bs_due.

Everything here is sans-IO and per torrent or per connection; the swarm owns the objects.

- BEP 10 handshake: ``encode_handshake`` writes ours (our ``m`` names ``ut_metadata`` and
  ``ut_pex``), ``decode_handshake`` reads a peer's: strict about the type of every key we
  use, silent about keys we do not know. ``PeerExtensions`` merges a peer's successive
  handshakes (a later one may add names or disable them with id 0) and turns each
  ``Extended`` message into a typed value, by the ids *we* offered.
- BEP 9: ``MetadataRequest``/``MetadataData``/``MetadataReject`` and their codec (the
  piece bytes of a data message follow its bencoded dictionary). ``MetadataFetch`` gets
  the info dictionary from the peers that have it, 16 KiB at a time, and checks it
  against the info-hash; ``MetadataServe`` answers other peers from the bytes we have.
- BEP 11: ``PexMessage`` and its codec, and ``PexState``, one per peer: what we have told
  that peer about our connections, and what it has told us.
- ``bs_due`` (bitswarm's own): ``DueHints``, pieces the sender has asked us for and in how
  many milliseconds its player needs each. A peer serving several viewers cannot tell a
  viewer about to stall from one with seconds buffered: both ask for the pieces at their
  own play heads. The payload is a dictionary whose ``due`` is a string of 8-byte records,
  a piece index and a number of milliseconds (big-endian, unsigned 32 bits each).

A peer's garbage (bad bencode, wrong types, sizes no message can have) raises
``PeerProtocolError``: one bad peer costs its connection. ``MetadataFetch`` never raises
for a peer: it reports a peer that breaks the fetch's rules (``MetadataPeerFailed``) and
carries on with the others.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import struct
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bitswarm import bencode
from bitswarm.errors import DecodeError, PeerProtocolError, UsageError
from bitswarm.wire.messages import Extended

PeerKey = Hashable
PeerAddress = tuple[str, int]

UT_METADATA = "ut_metadata"
UT_PEX = "ut_pex"
BS_DUE = "bs_due"
HANDSHAKE_ID = 0
# The ids peers use to send us each extension (BEP 10: ours to choose, 1..255, unique).
# A private torrent (BEP 27) offers no ut_pex: pass NO_PEX_EXTENSION_IDS to both
# encode_handshake and PeerExtensions, and a ut_pex message becomes a protocol error.
OUR_EXTENSION_IDS: Mapping[str, int] = MappingProxyType({UT_METADATA: 1, UT_PEX: 2, BS_DUE: 3})
NO_PEX_EXTENSION_IDS: Mapping[str, int] = MappingProxyType({UT_METADATA: 1, BS_DUE: 3})

# Extension handshakes of real clients have about twenty values; these bound a hostile one.
MAX_HANDSHAKE_TOKENS = 1000
MAX_HANDSHAKE_DEPTH = 8
# Client names are shown to users: keep a sane prefix of a long one.
MAX_CLIENT_NAME_CHARS = 100
# A metadata message's dictionary has three or four values; unknown extra keys are allowed.
MAX_METADATA_HEADER_TOKENS = 64
MAX_METADATA_HEADER_DEPTH = 4
METADATA_PIECE_BYTES = 16 * 1024  # BEP 9

# An info dictionary holds 20 bytes per v1 piece plus the file list: 8 MiB is 400,000
# pieces or tens of thousands of files, beyond real torrents, and it is the most memory a
# peer can make one fetch hold (peers choose the size we assemble).
MAX_METADATA_BYTES = 8 * 1024 * 1024
# A peer that has not answered a metadata request in this long is passed over.
METADATA_REQUEST_TIMEOUT_S = 10.0
# Requests outstanding with one peer; a few keep a fast peer busy without hoarding pieces.
METADATA_REQUESTS_PER_PEER = 4
# Times one peer may fetch the whole metadata from us before its requests are rejected.
METADATA_SERVES_PER_PEER = 3

# BEP 11 convention (uTorrent and Azureus): at most 50 added and 50 dropped per message,
# and a message about once a minute.
PEX_INTERVAL_S = 60.0
PEX_MAX_ADDED = 50
PEX_MAX_DROPPED = 50
# Incoming lists: a first message may catch us up on a larger swarm, so twice the sending
# limit is tolerated; a longer list is ignored whole (a flood, not a swarm).
PEX_MAX_INCOMING = 2 * PEX_MAX_ADDED
# Messages closer together than this are ignored (the convention allows some jitter).
PEX_MIN_INCOMING_INTERVAL_S = 45.0
MAX_PEX_TOKENS = 64
MAX_PEX_DEPTH = 4
# A bs_due message names the pieces of one batch of requests: a few dozen at most.
MAX_DUE_HINTS = 256
DUE_RECORD = struct.Struct(">II")


class PexFlags(enum.IntFlag):
    """BEP 11 ``added.f`` bits, one byte per added peer."""

    NONE = 0
    PREFERS_ENCRYPTION = 0x01
    SEED = 0x02
    UTP = 0x04
    HOLEPUNCH = 0x08
    REACHABLE = 0x10


# -- BEP 10 handshake -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtendedHandshake:
    """A peer's extended handshake; ``None`` for each key it left out.

    ``extensions`` maps extension names to the ids the peer wants them sent with (0 means
    it disables that one); names that are not ASCII are dropped, as no extension has one.
    """

    extensions: Mapping[str, int]
    metadata_size: int | None = None
    listen_port: int | None = None
    client: str | None = None
    reqq: int | None = None
    yourip: str | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    prefers_encryption: bool | None = None  # "e": for the PEX flag of the same name
    upload_only: bool | None = None  # BEP 21: a seed, or a peer that will not download


def encode_handshake(
    *,
    extensions: Mapping[str, int] = OUR_EXTENSION_IDS,
    metadata_size: int | None = None,
    listen_port: int | None = None,
    client: str | None = None,
    reqq: int | None = None,
    yourip: str | None = None,
) -> bytes:
    """The payload of our extended handshake (message id 0).

    ``metadata_size`` goes in only when we have the metadata to serve (BEP 9); ``yourip``
    is the peer's address as we see it. Raises ``UsageError`` for an id outside 0..255.
    """
    if any(not 0 <= number <= 255 for number in extensions.values()):
        raise UsageError("extension ids are one byte")
    fields: dict[str, object] = {"m": dict(extensions)}
    if metadata_size is not None:
        fields["metadata_size"] = metadata_size
    if listen_port is not None:
        fields["p"] = listen_port
    if client is not None:
        fields["v"] = client
    if reqq is not None:
        fields["reqq"] = reqq
    if yourip is not None:
        fields["yourip"] = ipaddress.ip_address(yourip).packed
    return bencode.encode(fields)


def decode_handshake(payload: bytes) -> ExtendedHandshake:
    """A peer's extended handshake; raises ``PeerProtocolError`` for wrong types or values."""
    fields = _decode_dict(payload, "extended handshake", MAX_HANDSHAKE_TOKENS, MAX_HANDSHAKE_DEPTH)
    names = fields.get(b"m", {})
    if not isinstance(names, dict):
        raise PeerProtocolError("extended handshake: 'm' is not a dictionary")
    extensions: dict[str, int] = {}
    for raw_name, number in names.items():
        # BEP 10 ids are one byte: anything else cannot be sent on the wire.
        if not isinstance(number, int) or not 0 <= number <= 255:
            raise PeerProtocolError(f"extended handshake: id of {raw_name[:40]!r} is not 0..255")
        if raw_name.isascii():
            extensions[raw_name.decode("ascii")] = number
    metadata_size = _optional_int(fields, b"metadata_size", 0, 1 << 62)
    port = _optional_int(fields, b"p", 0, 65535)
    reqq = _optional_int(fields, b"reqq", 0, 1 << 62)
    client = fields.get(b"v")
    if client is not None and not isinstance(client, bytes):
        raise PeerProtocolError("extended handshake: 'v' is not a string")
    prefers_encryption = _optional_int(fields, b"e", 0, 1 << 62)
    upload_only = _optional_int(fields, b"upload_only", 0, 1 << 62)
    return ExtendedHandshake(
        extensions=extensions,
        metadata_size=metadata_size,
        # Some clients send p=0 for "not listening": the same as leaving it out.
        listen_port=port or None,
        client=client.decode("utf-8", "replace")[:MAX_CLIENT_NAME_CHARS] if client is not None else None,
        reqq=reqq,
        yourip=_optional_address(fields, b"yourip", (4, 16)),
        ipv4=_optional_address(fields, b"ipv4", (4,)),
        ipv6=_optional_address(fields, b"ipv6", (16,)),
        prefers_encryption=bool(prefers_encryption) if prefers_encryption is not None else None,
        upload_only=bool(upload_only) if upload_only is not None else None,
    )


def _decode_dict(payload: bytes, what: str, max_tokens: int, max_depth: int) -> dict[bytes, bencode.Value]:
    try:
        # Key order carries no meaning here and some clients do not sort: duplicates are
        # still refused.
        value = bencode.decode_document(
            bytes(payload), allow_unsorted_keys=True, max_tokens=max_tokens, max_depth=max_depth
        ).value
    except DecodeError as error:
        raise PeerProtocolError(f"{what}: {error}") from None
    if not isinstance(value, dict):
        raise PeerProtocolError(f"{what} is not a dictionary")
    return value


def _optional_int(fields: Mapping[bytes, bencode.Value], key: bytes, low: int, high: int) -> int | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or not low <= value <= high:
        raise PeerProtocolError(f"'{key.decode()}' is not an integer in {low}..{high}")
    return value


def _optional_address(fields: Mapping[bytes, bencode.Value], key: bytes, sizes: tuple[int, ...]) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, bytes) or len(value) not in sizes:
        raise PeerProtocolError(f"'{key.decode()}' is not a {' or '.join(map(str, sizes))}-byte address")
    return str(ipaddress.ip_address(value))


# -- BEP 9 messages --------------------------------------------------------------------------


class MetadataType(enum.IntEnum):
    REQUEST = 0
    DATA = 1
    REJECT = 2


@dataclass(frozen=True, slots=True)
class MetadataRequest:
    piece: int


@dataclass(frozen=True, slots=True)
class MetadataData:
    piece: int
    total_size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MetadataReject:
    piece: int


MetadataMessage = MetadataRequest | MetadataData | MetadataReject


def encode_metadata(message: MetadataMessage) -> bytes:
    """The payload of one ut_metadata message (the piece bytes after a data message's dict)."""
    if isinstance(message, MetadataData):
        header = {"msg_type": int(MetadataType.DATA), "piece": message.piece, "total_size": message.total_size}
        return bencode.encode(header) + message.data
    kind = MetadataType.REQUEST if isinstance(message, MetadataRequest) else MetadataType.REJECT
    return bencode.encode({"msg_type": int(kind), "piece": message.piece})


def decode_metadata(payload: bytes) -> MetadataMessage | None:
    """One ut_metadata message; None for a msg_type we do not know (BEP 9: ignore it).

    Raises ``PeerProtocolError`` for a malformed header, bytes after a request or reject,
    or a data message carrying more than one 16 KiB piece.
    """
    try:
        header, end = bencode.decode_prefix(
            bytes(payload),
            allow_unsorted_keys=True,
            max_tokens=MAX_METADATA_HEADER_TOKENS,
            max_depth=MAX_METADATA_HEADER_DEPTH,
        )
    except DecodeError as error:
        raise PeerProtocolError(f"ut_metadata: {error}") from None
    if not isinstance(header, dict):
        raise PeerProtocolError("ut_metadata message is not a dictionary")
    kind = header.get(b"msg_type")
    piece = header.get(b"piece")
    if not isinstance(kind, int) or not isinstance(piece, int) or piece < 0:
        raise PeerProtocolError("ut_metadata: msg_type and piece must be integers, piece not negative")
    trailing = len(payload) - end
    if kind == MetadataType.DATA:
        total_size = header.get(b"total_size")
        if not isinstance(total_size, int) or total_size < 0:
            raise PeerProtocolError("ut_metadata data: total_size is not a non-negative integer")
        if trailing > METADATA_PIECE_BYTES:
            raise PeerProtocolError(f"ut_metadata data: {trailing} bytes, more than one piece")
        return MetadataData(piece, total_size, bytes(payload[end:]))
    if kind not in (MetadataType.REQUEST, MetadataType.REJECT):
        return None
    if trailing:
        raise PeerProtocolError(f"ut_metadata: {trailing} bytes after a request or reject")
    return MetadataRequest(piece) if kind == MetadataType.REQUEST else MetadataReject(piece)


# -- BEP 11 messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PexPeer:
    address: PeerAddress
    flags: PexFlags = PexFlags.NONE


@dataclass(frozen=True, slots=True)
class PexMessage:
    """Peers added to and dropped from the sender's connections, IPv4 and IPv6 together.

    Incoming lists that were over ``PEX_MAX_INCOMING`` come out empty, and so do
    addresses no peer can have (port 0, unspecified, multicast).
    """

    added: tuple[PexPeer, ...] = ()
    dropped: tuple[PeerAddress, ...] = ()


def encode_pex(message: PexMessage) -> bytes:
    """The payload of one ut_pex message. Raises ``UsageError`` for an address that is not an IP."""
    added4 = [peer for peer in message.added if _family(peer.address) == 4]
    added6 = [peer for peer in message.added if _family(peer.address) == 6]
    fields: dict[str, bytes] = {
        "added": b"".join(_compact(peer.address) for peer in added4),
        "added.f": bytes(int(peer.flags) & 0xFF for peer in added4),
        "added6": b"".join(_compact(peer.address) for peer in added6),
        "added6.f": bytes(int(peer.flags) & 0xFF for peer in added6),
        "dropped": b"".join(_compact(address) for address in message.dropped if _family(address) == 4),
        "dropped6": b"".join(_compact(address) for address in message.dropped if _family(address) == 6),
    }
    return bencode.encode(fields)


def decode_pex(payload: bytes) -> PexMessage:
    """One ut_pex message; raises ``PeerProtocolError`` when a list is not compact addresses.

    Flags whose length does not match their list are ignored (the peers are kept).
    """
    fields = _decode_dict(payload, "ut_pex", MAX_PEX_TOKENS, MAX_PEX_DEPTH)
    added = [
        *_added(_compact_list(fields, b"added", 6), fields.get(b"added.f")),
        *_added(_compact_list(fields, b"added6", 18), fields.get(b"added6.f")),
    ]
    dropped = [*_compact_list(fields, b"dropped", 6), *_compact_list(fields, b"dropped6", 18)]
    return PexMessage(tuple(added), tuple(address for address in dropped if _is_peer_address(address)))


def _compact_list(fields: Mapping[bytes, bencode.Value], key: bytes, size: int) -> list[PeerAddress]:
    value = fields.get(key, b"")
    if not isinstance(value, bytes) or len(value) % size:
        raise PeerProtocolError(f"ut_pex: '{key.decode()}' is not a list of {size}-byte addresses")
    if len(value) // size > PEX_MAX_INCOMING:
        return []
    return [_address(value[at : at + size]) for at in range(0, len(value), size)]


def _added(addresses: list[PeerAddress], flags: bencode.Value | None) -> list[PexPeer]:
    if not isinstance(flags, bytes) or len(flags) != len(addresses):
        flags = bytes(len(addresses))
    return [
        PexPeer(address, PexFlags(flag & 0x1F))
        for address, flag in zip(addresses, flags, strict=True)
        if _is_peer_address(address)
    ]


def _address(compact: bytes) -> PeerAddress:
    return str(ipaddress.ip_address(compact[:-2])), int.from_bytes(compact[-2:], "big")


def _compact(address: PeerAddress) -> bytes:
    try:
        return ipaddress.ip_address(address[0]).packed + address[1].to_bytes(2, "big")
    except (ValueError, OverflowError) as error:
        raise UsageError(f"not an IP address and port: {error}") from None


def _family(address: PeerAddress) -> int:
    try:
        return ipaddress.ip_address(address[0]).version
    except ValueError:
        raise UsageError(f"{address[0][:60]!r} is not an IP address") from None


def _is_peer_address(address: PeerAddress) -> bool:
    ip = ipaddress.ip_address(address[0])
    return address[1] != 0 and not (ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address(0xFFFFFFFF))


# -- bs_due ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueHints:
    """Pieces the sender asked for, each with the milliseconds until its player needs it."""

    due_ms: tuple[tuple[int, int], ...]


def encode_due(hints: DueHints) -> bytes:
    records = b"".join(DUE_RECORD.pack(index, min(max(ms, 0), 0xFFFFFFFF)) for index, ms in hints.due_ms)
    return bencode.encode({"due": records})


def decode_due(payload: bytes) -> DueHints:
    """One bs_due message; raises ``PeerProtocolError`` unless ``due`` is whole records, at
    most ``MAX_DUE_HINTS`` of them."""
    records = _decode_dict(payload, "bs_due", 8, 2).get(b"due")
    if not isinstance(records, bytes) or len(records) % DUE_RECORD.size:
        raise PeerProtocolError("bs_due: 'due' is not a string of 8-byte records")
    if len(records) > MAX_DUE_HINTS * DUE_RECORD.size:
        raise PeerProtocolError(f"bs_due: more than {MAX_DUE_HINTS} pieces in one message")
    return DueHints(tuple(DUE_RECORD.iter_unpack(records)))


# -- Incoming extension messages ----------------------------------------------------------


class PeerExtensions:
    """What one peer's extended handshakes said, merged, and the decoder for its messages.

    ``our_ids`` are the ids we offered in our handshake: the peer sends each extension
    with our id, and we send with the peer's (``id_for``).
    """

    def __init__(self, our_ids: Mapping[str, int] = OUR_EXTENSION_IDS) -> None:
        self._ours_by_id = {number: name for name, number in our_ids.items() if number}
        self._theirs: dict[str, int] = {}
        self.handshake: ExtendedHandshake | None = None

    def id_for(self, name: str) -> int | None:
        """The id to send extension ``name`` to this peer with; None if it has not offered it."""
        return self._theirs.get(name) or None

    def supports(self, name: str) -> bool:
        return self.id_for(name) is not None

    def decode(self, message: Extended) -> ExtendedHandshake | MetadataMessage | PexMessage | DueHints | None:
        """The typed value of one extended message from this peer.

        Returns None for what BEP 9 says to ignore. Raises ``PeerProtocolError`` for a
        malformed payload or an id we never offered.
        """
        if message.extension_id == HANDSHAKE_ID:
            handshake = decode_handshake(message.payload)
            # BEP 10: a later handshake updates the names it mentions; id 0 disables one.
            self._theirs.update(handshake.extensions)
            if self.handshake is not None:
                handshake = _merged(self.handshake, handshake, self._theirs)
            self.handshake = handshake
            return handshake
        name = self._ours_by_id.get(message.extension_id)
        if name == UT_METADATA:
            return decode_metadata(message.payload)
        if name == UT_PEX:
            return decode_pex(message.payload)
        if name == BS_DUE:
            return decode_due(message.payload)
        raise PeerProtocolError(f"extension message id {message.extension_id}, which we never offered")


def _merged(old: ExtendedHandshake, new: ExtendedHandshake, extensions: Mapping[str, int]) -> ExtendedHandshake:
    return ExtendedHandshake(
        extensions=dict(extensions),
        metadata_size=new.metadata_size if new.metadata_size is not None else old.metadata_size,
        listen_port=new.listen_port if new.listen_port is not None else old.listen_port,
        client=new.client if new.client is not None else old.client,
        reqq=new.reqq if new.reqq is not None else old.reqq,
        yourip=new.yourip if new.yourip is not None else old.yourip,
        ipv4=new.ipv4 if new.ipv4 is not None else old.ipv4,
        ipv6=new.ipv6 if new.ipv6 is not None else old.ipv6,
        prefers_encryption=new.prefers_encryption if new.prefers_encryption is not None else old.prefers_encryption,
        upload_only=new.upload_only if new.upload_only is not None else old.upload_only,
    )


# -- BEP 9 fetch ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendMetadataRequest:
    """Instruction: send ``MetadataRequest(piece)`` to ``peer`` (with its ut_metadata id)."""

    peer: PeerKey
    piece: int


@dataclass(frozen=True, slots=True)
class MetadataCompleted:
    """Fact: the info dictionary, as received, and hashing to the info-hash."""

    info: bytes


@dataclass(frozen=True, slots=True)
class MetadataHashFailed:
    """Fact: the assembled metadata did not hash to the info-hash; every piece was dropped.

    ``peers`` sent the pieces; they are out of the fetch (ban or disconnect them).
    """

    peers: frozenset[PeerKey]


@dataclass(frozen=True, slots=True)
class MetadataPeerFailed:
    """Fact: ``peer`` broke the fetch's rules (a piece we did not ask for, a wrong size)
    and is out of the fetch; close its connection."""

    peer: PeerKey
    reason: str


MetadataEvent = SendMetadataRequest | MetadataCompleted | MetadataHashFailed | MetadataPeerFailed


class FetchState(enum.Enum):
    WAITING_FOR_PEERS = "waiting for peers"
    FETCHING = "fetching"
    DONE = "done"


@dataclass(slots=True)
class _FetchPeer:
    metadata_size: int
    asked: dict[int, float] = field(default_factory=dict)  # piece -> deadline
    late: set[int] = field(default_factory=set)  # asked, timed out, may still come
    passed_over_until: float = 0.0


class MetadataFetch:
    """Gets the info dictionary of a magnet link's torrent from peers (BEP 9).

    A round picks the metadata size most peers announced and assembles that many bytes,
    asking each piece of one peer at a time. A piece not answered in time, or rejected,
    goes to another peer, and the slow or refusing peer is passed over for one timeout
    (a late piece from it is still taken). When every piece is in, the bytes are hashed: SHA-1 against the v1
    info-hash and SHA-256 against the v2 one (each that is known). A mismatch drops
    everything and the peers that sent pieces, and a new round starts with the rest.

    Peers are added with the size their handshake gave; the layer above removes them
    when they disconnect. ``on_message``, ``add_peer`` and ``tick`` return the requests
    to send and the facts; every ``SendMetadataRequest`` must be sent.
    """

    def __init__(
        self,
        *,
        info_hash_v1: bytes | None = None,
        info_hash_v2: bytes | None = None,
        max_metadata_bytes: int = MAX_METADATA_BYTES,
        request_timeout_s: float = METADATA_REQUEST_TIMEOUT_S,
        requests_per_peer: int = METADATA_REQUESTS_PER_PEER,
    ) -> None:
        if info_hash_v1 is None and info_hash_v2 is None:
            raise UsageError("a metadata fetch needs an info-hash")
        if (info_hash_v1 is not None and len(info_hash_v1) != 20) or (
            info_hash_v2 is not None and len(info_hash_v2) != 32
        ):
            raise UsageError("info-hashes are 20 bytes (v1) and 32 bytes (v2, the whole SHA-256)")
        self.info_hash_v1 = info_hash_v1
        self.info_hash_v2 = info_hash_v2
        self.max_metadata_bytes = max_metadata_bytes
        self.request_timeout_s = request_timeout_s
        self.requests_per_peer = requests_per_peer
        self.state = FetchState.WAITING_FOR_PEERS
        self.info: bytes | None = None
        self._peers: dict[PeerKey, _FetchPeer] = {}
        self._size = 0
        self._buffer = bytearray()
        self._missing: dict[int, None] = {}  # pieces not received, in order
        self._in_flight: set[int] = set()
        self._senders: set[PeerKey] = set()

    @property
    def metadata_size(self) -> int | None:
        """The size this round assembles, once one has started."""
        return self._size if self.state is FetchState.FETCHING else None

    def add_peer(self, peer: PeerKey, metadata_size: int | None, now: float) -> list[MetadataEvent]:
        """A peer whose extended handshake offered ut_metadata with ``metadata_size``.

        Sizes of 0 or over ``max_metadata_bytes`` are ignored (the peer is not asked).
        """
        if self.state is FetchState.DONE or peer in self._peers:
            return []
        if metadata_size is None or not 0 < metadata_size <= self.max_metadata_bytes:
            return []
        self._peers[peer] = _FetchPeer(metadata_size)
        return self._fill(now)

    def remove_peer(self, peer: PeerKey, now: float) -> list[MetadataEvent]:
        """The peer has gone: its pieces in flight go to the others."""
        state = self._peers.pop(peer, None)
        if state is None:
            return []
        self._in_flight.difference_update(state.asked)
        return self._fill(now)

    def on_message(self, peer: PeerKey, message: MetadataData | MetadataReject, now: float) -> list[MetadataEvent]:
        """A data or reject message from ``peer``."""
        state = self._peers.get(peer)
        if state is None or self.state is not FetchState.FETCHING:
            return []  # a late answer after the fetch ended or the peer was dropped
        if isinstance(message, MetadataReject):
            if state.asked.pop(message.piece, None) is not None:
                self._in_flight.discard(message.piece)
            # BEP 9: it does not have the metadata, or will not share it now.
            state.passed_over_until = now + self.request_timeout_s
            return self._fill(now)
        if message.piece not in state.asked and message.piece not in state.late:
            return self._drop(peer, f"metadata piece {message.piece} was not requested", now)
        if message.total_size != self._size:
            return self._drop(peer, f"total_size {message.total_size}, not {self._size}", now)
        expected = min(METADATA_PIECE_BYTES, self._size - message.piece * METADATA_PIECE_BYTES)
        if len(message.data) != expected:
            reason = f"metadata piece {message.piece} has {len(message.data)} bytes, not {expected}"
            return self._drop(peer, reason, now)
        if state.asked.pop(message.piece, None) is not None:
            self._in_flight.discard(message.piece)
        state.late.discard(message.piece)
        if message.piece in self._missing:
            start = message.piece * METADATA_PIECE_BYTES
            self._buffer[start : start + expected] = message.data
            del self._missing[message.piece]
            self._senders.add(peer)
        if not self._missing:
            return self._verify(now)
        return self._fill(now)

    def tick(self, now: float) -> list[MetadataEvent]:
        """Pass over peers whose requests timed out, and re-ask their pieces of others."""
        for state in self._peers.values():
            late = [piece for piece, deadline in state.asked.items() if deadline <= now]
            for piece in late:
                del state.asked[piece]
                state.late.add(piece)
                self._in_flight.discard(piece)
            if late:
                state.passed_over_until = now + self.request_timeout_s
        return self._fill(now)

    def next_deadline(self) -> float | None:
        """When ``tick`` has work: a request times out or a passed-over peer may be asked again."""
        deadlines = [deadline for state in self._peers.values() for deadline in state.asked.values()]
        if self.state is FetchState.FETCHING and len(self._in_flight) < len(self._missing):
            deadlines += [
                state.passed_over_until
                for state in self._peers.values()
                if state.passed_over_until and state.metadata_size == self._size
            ]
        return min(deadlines, default=None)

    def _drop(self, peer: PeerKey, reason: str, now: float) -> list[MetadataEvent]:
        state = self._peers.pop(peer)
        self._in_flight.difference_update(state.asked)
        if peer in self._senders:
            # Its earlier pieces cannot be trusted either: start the round again without it.
            self._senders.discard(peer)
            self._start_round()
        return [MetadataPeerFailed(peer, reason), *self._fill(now)]

    def _verify(self, now: float) -> list[MetadataEvent]:
        info = bytes(self._buffer)
        v1_ok = self.info_hash_v1 is None or hashlib.sha1(info, usedforsecurity=False).digest() == self.info_hash_v1
        v2_ok = self.info_hash_v2 is None or hashlib.sha256(info).digest() == self.info_hash_v2
        if v1_ok and v2_ok:
            self.state = FetchState.DONE
            self.info = info
            self._peers.clear()
            self._buffer = bytearray()
            return [MetadataCompleted(info)]
        senders = frozenset(self._senders)
        for peer in senders:
            del self._peers[peer]
        self._start_round()
        return [MetadataHashFailed(senders), *self._fill(now)]

    def _start_round(self) -> None:
        self.state = FetchState.WAITING_FOR_PEERS
        self._size = 0
        self._buffer = bytearray()
        self._missing.clear()
        self._in_flight.clear()
        self._senders.clear()
        for state in self._peers.values():
            state.asked.clear()
            state.late.clear()
            state.passed_over_until = 0.0

    def _fill(self, now: float) -> list[MetadataEvent]:
        """Start a round if none is running, then give idle pieces to peers with room."""
        if self.state is FetchState.FETCHING and all(s.metadata_size != self._size for s in self._peers.values()):
            # Every peer of this size has gone or failed: their pieces cannot be finished.
            self._start_round()
        if self.state is FetchState.WAITING_FOR_PEERS:
            sizes: dict[int, int] = {}
            for state in self._peers.values():
                sizes[state.metadata_size] = sizes.get(state.metadata_size, 0) + 1
            if not sizes:
                return []
            self._size = max(sizes, key=lambda size: (sizes[size], -size))
            self._buffer = bytearray(self._size)
            self._missing = dict.fromkeys(range(-(-self._size // METADATA_PIECE_BYTES)))
            self.state = FetchState.FETCHING
        if self.state is not FetchState.FETCHING:
            return []
        idle = (piece for piece in self._missing if piece not in self._in_flight)
        requests: list[MetadataEvent] = []
        for peer, state in self._peers.items():
            if state.passed_over_until and now >= state.passed_over_until:
                state.passed_over_until = 0.0
            if state.passed_over_until or state.metadata_size != self._size:
                continue
            while len(state.asked) < self.requests_per_peer:
                piece = next(idle, None)
                if piece is None:
                    return requests
                state.asked[piece] = now + self.request_timeout_s
                self._in_flight.add(piece)
                requests.append(SendMetadataRequest(peer, piece))
        return requests


class MetadataServe:
    """Answers ut_metadata requests from the info dictionary's bytes (BEP 9).

    Each peer may fetch the whole metadata ``METADATA_SERVES_PER_PEER`` times; after that,
    and for pieces that do not exist, it gets a reject. ``forget`` a peer that has gone.
    """

    def __init__(self, info: bytes, *, serves_per_peer: int = METADATA_SERVES_PER_PEER) -> None:
        if not info:
            raise UsageError("no metadata to serve")
        self.info = info
        self.num_pieces = -(-len(info) // METADATA_PIECE_BYTES)
        self._budget = serves_per_peer * self.num_pieces
        self._served: dict[PeerKey, int] = {}

    @property
    def metadata_size(self) -> int:
        return len(self.info)

    def answer(self, peer: PeerKey, request: MetadataRequest) -> MetadataData | MetadataReject:
        """The message to send back: the piece, or a reject."""
        served = self._served.get(peer, 0)
        if not 0 <= request.piece < self.num_pieces or served >= self._budget:
            return MetadataReject(request.piece)
        self._served[peer] = served + 1
        start = request.piece * METADATA_PIECE_BYTES
        return MetadataData(request.piece, len(self.info), self.info[start : start + METADATA_PIECE_BYTES])

    def forget(self, peer: PeerKey) -> None:
        self._served.pop(peer, None)


# -- BEP 11 state per peer ------------------------------------------------------------------


class PexState:
    """ut_pex with one peer: the diff of our connections to send, and what it tells us.

    ``message_due`` is given the addresses we hold connections with now (with their
    flags), and returns what changed since the last message to this peer, or None while
    nothing changed or the interval has not passed. Changes beyond the per-message limits
    wait for the next message. The peer's own address is never sent to it.
    """

    def __init__(
        self,
        *,
        remote: PeerAddress | None = None,
        interval_s: float = PEX_INTERVAL_S,
        max_added: int = PEX_MAX_ADDED,
        max_dropped: int = PEX_MAX_DROPPED,
        min_incoming_interval_s: float = PEX_MIN_INCOMING_INTERVAL_S,
    ) -> None:
        self.remote = remote
        self.interval_s = interval_s
        self.max_added = max_added
        self.max_dropped = max_dropped
        self.min_incoming_interval_s = min_incoming_interval_s
        self._advertised: dict[PeerAddress, PexFlags] = {}
        self._last_sent: float | None = None
        self._last_received: float | None = None

    def message_due(self, connected: Mapping[PeerAddress, PexFlags], now: float) -> PexMessage | None:
        """The ut_pex message to send now, or None. The first one may go at once."""
        if self._last_sent is not None and now < self._last_sent + self.interval_s:
            return None
        added = [
            PexPeer(address, flags)
            for address, flags in connected.items()
            if address not in self._advertised and address != self.remote
        ][: self.max_added]
        dropped = [address for address in self._advertised if address not in connected][: self.max_dropped]
        if not added and not dropped:
            return None  # uTorrent takes an empty message as an error
        for peer in added:
            self._advertised[peer.address] = peer.flags
        for address in dropped:
            del self._advertised[address]
        self._last_sent = now
        return PexMessage(tuple(added), tuple(dropped))

    def next_deadline(self) -> float | None:
        """When ``message_due`` may next return a message."""
        return None if self._last_sent is None else self._last_sent + self.interval_s

    def receive(self, message: PexMessage, now: float) -> list[PexPeer]:
        """The peers worth trying from the peer's message; none if it came too soon."""
        if self._last_received is not None and now < self._last_received + self.min_incoming_interval_s:
            return []
        self._last_received = now
        return [peer for peer in message.added if peer.address != self.remote]
