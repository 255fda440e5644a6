"""KRPC, the DHT's message format (BEP 5), with IPv6 (BEP 32), read-only nodes (BEP 43)
and the requester's address in replies (BEP 42).

A KRPC message is one bencoded dictionary in one UDP datagram: a query (``y`` = ``q``),
a response (``r``) or an error (``e``), tied together by the transaction ID ``t``.
``decode`` is strict about everything it uses and ignores keys it does not know, as
BEP 5 asks so that the protocol can grow. A broken query raises ``KRPCError`` carrying
the query's transaction ID and the code to answer with (203 for bad arguments, 204 for
an unknown method); anything without a usable transaction ID raises ``KRPCError`` with
``transaction_id=None`` and deserves silence, since answering would reflect traffic at
whoever forged the source address.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from bitswarm import bencode
from bitswarm.errors import DecodeError, KRPCError

Address: TypeAlias = tuple[str, int]

NODE_ID_BYTES = 20
# Real clients use 2 or 4 bytes; anything longer is echoed back in the reply, so a long
# one would turn us into an amplifier (THREATS.md).
MAX_TRANSACTION_ID_BYTES = 8
# A KRPC datagram fits an Ethernet frame; nothing legitimate comes close to this.
MAX_DATAGRAM_BYTES = 2048
# Nesting is at most message -> arguments -> list; a KRPC message has a few dozen values.
MAX_DEPTH = 4
MAX_VALUES_TOKENS = 400
# 8 nodes is the norm (K); some clients send 16. More is refused, not truncated.
MAX_NODES_PER_REPLY = 32
# Peers in one get_peers reply; also bounded by the datagram size.
MAX_PEERS_PER_REPLY = 200
MAX_TOKEN_BYTES = 64
MAX_ERROR_MESSAGE_BYTES = 256
MAX_WANT_ENTRIES = 4

COMPACT_V4_BYTES = 6
COMPACT_V6_BYTES = 18
NODE_V4_BYTES = NODE_ID_BYTES + COMPACT_V4_BYTES
NODE_V6_BYTES = NODE_ID_BYTES + COMPACT_V6_BYTES


def family_of(host: str) -> int:
    """4 or 6: the address family of a numeric host string."""
    return 6 if ":" in host else 4


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node's ID and the UDP address it answers on."""

    node_id: bytes
    address: Address


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class FindNode:
    target: bytes
    # Address families (4, 6) the requester wants nodes of (BEP 32); empty: its own.
    want: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class GetPeers:
    info_hash: bytes
    want: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class AnnouncePeer:
    info_hash: bytes
    port: int
    token: bytes
    # BEP 5: the peer's port is the datagram's source port, for peers behind a NAT.
    implied_port: bool = False


Arguments: TypeAlias = Ping | FindNode | GetPeers | AnnouncePeer

METHODS: dict[type[Arguments], bytes] = {
    Ping: b"ping",
    FindNode: b"find_node",
    GetPeers: b"get_peers",
    AnnouncePeer: b"announce_peer",
}


@dataclass(frozen=True, slots=True)
class Query:
    transaction_id: bytes
    node_id: bytes
    arguments: Arguments
    # BEP 43: the sender answers no queries, so it must not enter routing tables.
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Response:
    transaction_id: bytes
    node_id: bytes
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()
    values: tuple[Address, ...] = ()
    token: bytes | None = None
    # BEP 42: the address the responder saw our query come from.
    requester: Address | None = None


@dataclass(frozen=True, slots=True)
class Error:
    transaction_id: bytes
    code: int
    message: str = field(default="")


Message: TypeAlias = Query | Response | Error


# -- compact encodings (BEP 5 "Contact Encoding", BEP 32) ------------------------------


@functools.lru_cache(maxsize=8192)  # bounded; a node names the same hosts again and again
def _packed(host: str) -> bytes:
    return ipaddress.ip_address(host).packed


def encode_address(address: Address) -> bytes:
    """The compact form of (host, port): 6 bytes for IPv4, 18 for IPv6."""
    host, port = address
    return _packed(host) + port.to_bytes(2, "big")


def decode_address(data: bytes) -> Address:
    """(host, port) from a 6- or 18-byte compact address; raises KRPCError otherwise."""
    port = int.from_bytes(data[-2:], "big")
    if len(data) == COMPACT_V4_BYTES:
        # Every reply carries a dozen of these: formatting beats ipaddress fivefold.
        return f"{data[0]}.{data[1]}.{data[2]}.{data[3]}", port
    if len(data) == COMPACT_V6_BYTES:
        return str(ipaddress.IPv6Address(data[:16])), port
    raise KRPCError(KRPCError.PROTOCOL, f"compact address of {len(data)} bytes")


def encode_nodes(nodes: Iterable[NodeInfo]) -> bytes:
    """Compact node info: each node's ID followed by its compact address."""
    return b"".join(node.node_id + encode_address(node.address) for node in nodes)


def decode_nodes(data: bytes, entry_bytes: int) -> tuple[NodeInfo, ...]:
    """Split compact node info of ``entry_bytes``-long entries; raises KRPCError when the
    length is not a whole number of entries or there are too many."""
    count, spare = divmod(len(data), entry_bytes)
    if spare:
        raise KRPCError(KRPCError.PROTOCOL, f"nodes of {len(data)} bytes, not a multiple of {entry_bytes}")
    if count > MAX_NODES_PER_REPLY:
        raise KRPCError(KRPCError.PROTOCOL, f"{count} nodes in one reply")
    view = memoryview(data)
    return tuple(
        NodeInfo(
            bytes(view[i : i + NODE_ID_BYTES]),
            decode_address(bytes(view[i + NODE_ID_BYTES : i + entry_bytes])),
        )
        for i in range(0, len(data), entry_bytes)
    )


# -- decoding ---------------------------------------------------------------------------


def _bytes(container: Mapping[bytes, bencode.Value], key: bytes, tid: bytes | None, size: int | None = None) -> bytes:
    value = container.get(key)
    if not isinstance(value, bytes):
        raise KRPCError(KRPCError.PROTOCOL, f"{key.decode()} missing or not a string", tid)
    if size is not None and len(value) != size:
        raise KRPCError(KRPCError.PROTOCOL, f"{key.decode()} of {len(value)} bytes, not {size}", tid)
    return value


def _want(arguments: Mapping[bytes, bencode.Value], tid: bytes) -> frozenset[int]:
    value = arguments.get(b"want")
    if value is None:
        return frozenset()
    if not isinstance(value, list) or len(value) > MAX_WANT_ENTRIES:
        raise KRPCError(KRPCError.PROTOCOL, "want is not a short list", tid)
    # Unknown entries are ignored: BEP 32 leaves room for other families.
    return frozenset({b"n4": 4, b"n6": 6}[item] for item in value if item in (b"n4", b"n6"))


def _port(value: bencode.Value | None, tid: bytes, *, allow_zero: bool) -> int:
    if not isinstance(value, int) or not (0 if allow_zero else 1) <= value <= 0xFFFF:
        raise KRPCError(KRPCError.PROTOCOL, "port missing or out of range", tid)
    return value


def _decode_query(message: Mapping[bytes, bencode.Value], tid: bytes) -> Query:
    method = message.get(b"q")
    if not isinstance(method, bytes):
        raise KRPCError(KRPCError.PROTOCOL, "q missing or not a string", tid)
    arguments = message.get(b"a")
    if not isinstance(arguments, dict):
        raise KRPCError(KRPCError.PROTOCOL, "a missing or not a dictionary", tid)
    node_id = _bytes(arguments, b"id", tid, NODE_ID_BYTES)
    read_only = message.get(b"ro", 0)
    if not isinstance(read_only, int):
        raise KRPCError(KRPCError.PROTOCOL, "ro is not an integer", tid)
    body: Arguments
    if method == b"ping":
        body = Ping()
    elif method == b"find_node":
        body = FindNode(_bytes(arguments, b"target", tid, NODE_ID_BYTES), _want(arguments, tid))
    elif method == b"get_peers":
        body = GetPeers(_bytes(arguments, b"info_hash", tid, NODE_ID_BYTES), _want(arguments, tid))
    elif method == b"announce_peer":
        implied = arguments.get(b"implied_port", 0)
        if not isinstance(implied, int):
            raise KRPCError(KRPCError.PROTOCOL, "implied_port is not an integer", tid)
        token = _bytes(arguments, b"token", tid)
        if len(token) > MAX_TOKEN_BYTES:
            raise KRPCError(KRPCError.PROTOCOL, "token too long", tid)
        body = AnnouncePeer(
            _bytes(arguments, b"info_hash", tid, NODE_ID_BYTES),
            # With implied_port the port argument is ignored, so it may be anything sane.
            _port(arguments.get(b"port"), tid, allow_zero=bool(implied)),
            token,
            bool(implied),
        )
    else:
        raise KRPCError(KRPCError.METHOD_UNKNOWN, f"method {method[:32]!r} unknown", tid)
    return Query(tid, node_id, body, read_only=bool(read_only))


def _decode_response(message: Mapping[bytes, bencode.Value], tid: bytes) -> Response:
    body = message.get(b"r")
    if not isinstance(body, dict):
        raise KRPCError(KRPCError.PROTOCOL, "r missing or not a dictionary")
    node_id = _bytes(body, b"id", None, NODE_ID_BYTES)
    nodes = decode_nodes(_bytes(body, b"nodes", None), NODE_V4_BYTES) if b"nodes" in body else ()
    nodes6 = decode_nodes(_bytes(body, b"nodes6", None), NODE_V6_BYTES) if b"nodes6" in body else ()
    values: tuple[Address, ...] = ()
    if b"values" in body:
        raw = body[b"values"]
        if not isinstance(raw, list) or len(raw) > MAX_PEERS_PER_REPLY:
            raise KRPCError(KRPCError.PROTOCOL, "values is not a list of bounded length")
        if not all(isinstance(item, bytes) for item in raw):
            raise KRPCError(KRPCError.PROTOCOL, "values holds a non-string")
        values = tuple(decode_address(item) for item in raw if isinstance(item, bytes))
    token = None
    if b"token" in body:
        token = _bytes(body, b"token", None)
        if len(token) > MAX_TOKEN_BYTES:
            raise KRPCError(KRPCError.PROTOCOL, "token too long")
    requester = decode_address(_bytes(message, b"ip", None)) if b"ip" in message else None
    return Response(tid, node_id, nodes, nodes6, values, token, requester)


def _decode_error(message: Mapping[bytes, bencode.Value], tid: bytes) -> Error:
    body = message.get(b"e")
    if not (isinstance(body, list) and len(body) >= 2 and isinstance(body[0], int) and isinstance(body[1], bytes)):
        raise KRPCError(KRPCError.PROTOCOL, "e is not [code, message]")
    text = body[1][:MAX_ERROR_MESSAGE_BYTES].decode("utf-8", "replace")
    return Error(tid, body[0], text)


def decode(datagram: bytes) -> Message:
    """Decode one KRPC datagram.

    Returns a ``Query``, ``Response`` or ``Error``. Raises ``KRPCError``: with the query's
    transaction ID and code 203 or 204 when a query can be answered with an error, with
    ``transaction_id=None`` when the datagram deserves silence.
    """
    if len(datagram) > MAX_DATAGRAM_BYTES:
        raise KRPCError(KRPCError.PROTOCOL, f"datagram of {len(datagram)} bytes")
    try:
        message = bencode.decode(datagram, max_depth=MAX_DEPTH, max_tokens=MAX_VALUES_TOKENS)
    except DecodeError as error:
        raise KRPCError(KRPCError.PROTOCOL, str(error)) from None
    if not isinstance(message, dict):
        raise KRPCError(KRPCError.PROTOCOL, "message is not a dictionary")
    tid = message.get(b"t")
    if not isinstance(tid, bytes) or not 1 <= len(tid) <= MAX_TRANSACTION_ID_BYTES:
        raise KRPCError(KRPCError.PROTOCOL, "transaction ID missing, empty or too long")
    kind = message.get(b"y")
    if kind == b"q":
        return _decode_query(message, tid)
    if kind == b"r":
        return _decode_response(message, tid)
    if kind == b"e":
        return _decode_error(message, tid)
    # Not known to be a query, so not answered: two nodes must never trade error replies.
    raise KRPCError(KRPCError.PROTOCOL, "y is not q, r or e")


# -- encoding ---------------------------------------------------------------------------


def _want_list(want: frozenset[int]) -> list[bytes]:
    return [b"n%d" % family for family in sorted(want)]


def encode(message: Message, *, version: bytes | None = None) -> bytes:
    """The datagram for ``message``; ``version`` is the optional ``v`` client tag."""
    top: dict[bytes, object] = {b"t": message.transaction_id}
    if version is not None:
        top[b"v"] = version
    if isinstance(message, Query):
        arguments: dict[bytes, object] = {b"id": message.node_id}
        body = message.arguments
        if isinstance(body, FindNode):
            arguments[b"target"] = body.target
        elif isinstance(body, GetPeers):
            arguments[b"info_hash"] = body.info_hash
        elif isinstance(body, AnnouncePeer):
            arguments.update({b"info_hash": body.info_hash, b"port": body.port, b"token": body.token})
            if body.implied_port:
                arguments[b"implied_port"] = 1
        if isinstance(body, FindNode | GetPeers) and body.want:
            arguments[b"want"] = _want_list(body.want)
        top.update({b"y": b"q", b"q": METHODS[type(body)], b"a": arguments})
        if message.read_only:
            top[b"ro"] = 1
    elif isinstance(message, Response):
        reply: dict[bytes, object] = {b"id": message.node_id}
        if message.nodes:
            reply[b"nodes"] = encode_nodes(message.nodes)
        if message.nodes6:
            reply[b"nodes6"] = encode_nodes(message.nodes6)
        if message.values:
            reply[b"values"] = [encode_address(peer) for peer in message.values]
        if message.token is not None:
            reply[b"token"] = message.token
        top.update({b"y": b"r", b"r": reply})
        if message.requester is not None:
            top[b"ip"] = encode_address(message.requester)
    else:
        top.update({b"y": b"e", b"e": [message.code, message.message.encode()]})
    return bencode.encode(top)
