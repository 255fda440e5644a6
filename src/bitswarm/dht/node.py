"""A DHT node (BEP 5) as a sans-IO core: datagrams and the time in, datagrams and facts out.

The node answers ping, find_node, get_peers and announce_peer; keeps one routing table
per address family (BEP 32); runs iterative searches (``lookup.py``) and announces to
the nearest nodes that gave it a token; and refreshes buckets nobody touched for 15
minutes. Its own queries wait in a bounded transaction table and fail after
``query_timeout_s``.

Hostile input (THREATS.md): every datagram is decoded strictly (``krpc.py``); a query
without a usable transaction ID gets silence and a broken one gets a KRPC error no larger
than the query; each source address has a query budget; a response counts only from the
address the query went to and with the node ID we expected; nodes enter the table only
after answering us, and, with ``enforce_node_id``, only with a BEP 42 ID (local and
private addresses are exempt, so tests on 127.0.0.1 work either way). In read-only mode
(BEP 43) the node marks its queries ``ro`` and answers nothing; nodes that say ``ro``
never enter our table.

Every entry point returns a list of ``SendDatagram`` instructions and ``LookupCompleted``
facts; ``tick`` must be called at ``next_deadline()``.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from bitswarm import bencode
from bitswarm.dht import krpc
from bitswarm.dht.krpc import (
    Address,
    AnnouncePeer,
    Arguments,
    FindNode,
    GetPeers,
    NodeInfo,
    Ping,
    Query,
    Response,
    family_of,
)
from bitswarm.dht.lookup import Lookup
from bitswarm.dht.node_id import is_valid_for, node_id_for
from bitswarm.dht.peer_store import PeerStore
from bitswarm.dht.routing import K, RoutingTable
from bitswarm.dht.tokens import TokenIssuer
from bitswarm.errors import DecodeError, KRPCError, UsageError
from bitswarm.external_address import ExternalAddressVote, Witness
from bitswarm.ratelimit import RateLimiter

VERSION = b"BS\x00\x01"
# A lost UDP query is never answered; real clients wait 2 to 5 seconds.
QUERY_TIMEOUT_S = 4.0
# After this a search stops waiting for a query and asks another node in its place.
SOFT_TIMEOUT_S = 1.5
# Our own queries in flight; beyond this a search waits or skips a node.
MAX_PENDING_QUERIES = 1024
# Queries from one IP address: a lookup sends a few; a flood gets silence.
QUERY_RATE_PER_S = 20.0
QUERY_BURST = 100.0
MAX_RATE_KEYS = 50_000
# BEP 5: refresh a bucket untouched for 15 minutes.
REFRESH_INTERVAL_S = 15 * 60.0
# How often tick looks for stale buckets and old peers, at most.
HOUSEKEEPING_S = 60.0
# Searches running at once (each holds up to MAX_CANDIDATES entries).
MAX_LOOKUPS = 64
# A search ends by then whatever is still in flight (a few seconds is the norm).
LOOKUP_TIMEOUT_S = 60.0
STATE_NODES_PER_FAMILY = 200


@dataclass(frozen=True, slots=True)
class SendDatagram:
    address: Address
    payload: bytes


@dataclass(frozen=True, slots=True)
class LookupCompleted:
    """A search ended: the peers found (get_peers), the nearest nodes that answered,
    the hops it needed in sequence, the queries it sent, and announces sent after it."""

    lookup_id: int
    target: bytes
    family: int
    peers: tuple[Address, ...]
    closest: tuple[NodeInfo, ...]
    rounds: int
    queries: int
    announced_to: int = 0


Output: TypeAlias = SendDatagram | LookupCompleted


@dataclass(slots=True)
class _Pending:
    address: Address
    node_id: bytes | None
    deadline: float
    lookup_id: int | None
    # For a search's query: when it stops holding a slot (then None).
    soft_deadline: float | None = None


@dataclass(slots=True)
class _Search:
    lookup: Lookup
    family: int
    wants_peers: bool
    announce_port: int | None
    implied_port: bool
    deadline: float


@dataclass(slots=True)
class DHTStats:
    """Counters for monitoring and tests: why datagrams were dropped or refused."""

    received: int = 0
    sent: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    errors_sent: Counter[int] = field(default_factory=Counter)


class DHTNode:
    def __init__(
        self,
        node_id: bytes,
        rng: random.Random,
        now: float,
        *,
        families: Iterable[int] = (4,),
        read_only: bool = False,
        enforce_node_id: bool = False,
        query_timeout_s: float = QUERY_TIMEOUT_S,
        soft_timeout_s: float = SOFT_TIMEOUT_S,
        max_pending: int = MAX_PENDING_QUERIES,
        query_rate_per_s: float = QUERY_RATE_PER_S,
        query_burst: float = QUERY_BURST,
        peer_store: PeerStore | None = None,
        k: int = K,
        address_vote: ExternalAddressVote | None = None,
    ) -> None:
        if len(node_id) != krpc.NODE_ID_BYTES:
            raise UsageError("a node ID is 20 bytes")
        self.node_id = node_id
        self.rng = rng
        self.read_only = read_only
        self.enforce_node_id = enforce_node_id
        self.query_timeout_s = query_timeout_s
        self.soft_timeout_s = soft_timeout_s
        self.max_pending = max_pending
        self.k = k
        self.tables = {family: RoutingTable(node_id, k=k, now=now) for family in families}
        if not self.tables:
            raise UsageError("a node needs at least one address family")
        self.peer_store = peer_store if peer_store is not None else PeerStore()
        self.tokens = TokenIssuer(rng, now)
        self.rate_limiter = RateLimiter(query_rate_per_s, query_burst, max_keys=MAX_RATE_KEYS)
        self.stats = DHTStats()
        self._pending: dict[bytes, _Pending] = {}
        self._searches: dict[int, _Search] = {}
        self._next_lookup_id = 1
        self._next_housekeeping = now + HOUSEKEEPING_S
        # BEP 42: what the nodes that answer us say our address is; shared with the session's
        # other witnesses (trackers, peers, the router) when it passes its own.
        self.address_vote = address_vote if address_vote is not None else ExternalAddressVote()
        self._id_checked_for: str | None = None

    # -- incoming ----------------------------------------------------------------------

    def receive(self, address: Address, datagram: bytes, now: float) -> list[Output]:
        """Handle one datagram from ``address``; returns what to send and what finished."""
        self.stats.received += 1
        if family_of(address[0]) not in self.tables:
            self.stats.dropped["family"] += 1
            return []
        try:
            message = krpc.decode(datagram)
        except KRPCError as error:
            return self._refuse(address, error, now)
        if isinstance(message, Query):
            return self._on_query(address, message, now)
        return self._on_reply(address, message, now)

    def _refuse(self, address: Address, error: KRPCError, now: float, *, charged: bool = False) -> list[Output]:
        """An error reply to a broken query, or silence; ``charged``: the query already
        spent its sender's budget."""
        self.stats.dropped[f"krpc {error.code}"] += 1
        if error.transaction_id is None or self.read_only:
            return []
        if not charged and not self.rate_limiter.allow(address[0], now):
            return []
        self.stats.errors_sent[error.code] += 1
        reply = krpc.Error(error.transaction_id, error.code, error.message[:64])
        return [self._datagram(address, krpc.encode(reply))]

    def _datagram(self, address: Address, payload: bytes) -> SendDatagram:
        self.stats.sent += 1
        return SendDatagram(address, payload)

    def _on_query(self, address: Address, query: Query, now: float) -> list[Output]:
        if self.read_only:
            self.stats.dropped["read-only"] += 1
            return []
        host = address[0]
        if not self.rate_limiter.allow(host, now):
            self.stats.dropped["rate limit"] += 1
            return []
        family = family_of(host)
        out: list[Output] = []
        table = self.tables[family]
        if query.node_id != self.node_id and not query.read_only and self._acceptable(query.node_id, host):
            if table.get(query.node_id) is not None:
                table.queried_by(query.node_id, address, now)
            elif table.would_accept(query.node_id, now) and not self._pending_to(address):
                # Only an answer proves the address; a ping asks for one.
                out += self._query(address, query.node_id, Ping(), now, None)
        body = query.arguments
        reply = Response(query.transaction_id, self.node_id, requester=address)
        if isinstance(body, FindNode):
            reply = self._with_nodes(reply, body.target, body.want or {family})
        elif isinstance(body, GetPeers):
            peers = self.peer_store.get(body.info_hash, family, now, self.rng)
            reply = self._with_nodes(reply, body.info_hash, body.want or {family})
            reply = dataclasses.replace(reply, values=tuple(peers), token=self.tokens.issue(host, now))
        elif isinstance(body, AnnouncePeer):
            if not self.tokens.is_valid(body.token, host, now):
                bad_token = KRPCError(KRPCError.PROTOCOL, "bad token", query.transaction_id)
                return [*out, *self._refuse(address, bad_token, now, charged=True)]
            port = address[1] if body.implied_port else body.port
            self.peer_store.add(body.info_hash, (host, port), now)
        out.append(self._datagram(address, krpc.encode(reply, version=VERSION)))
        return out

    def _with_nodes(self, reply: Response, target: bytes, want: Iterable[int]) -> Response:
        nodes: tuple[NodeInfo, ...] = ()
        nodes6: tuple[NodeInfo, ...] = ()
        for family in want:
            table = self.tables.get(family)
            if table is None:
                continue
            found = tuple(table.closest(target, self.k))
            if family == 4:
                nodes = found
            else:
                nodes6 = found
        return Response(reply.transaction_id, reply.node_id, nodes, nodes6, requester=reply.requester)

    def _acceptable(self, node_id: bytes, host: str) -> bool:
        return not self.enforce_node_id or is_valid_for(node_id, host)

    def _pending_to(self, address: Address) -> bool:
        return any(pending.address == address for pending in self._pending.values())

    def _on_reply(self, address: Address, message: krpc.Response | krpc.Error, now: float) -> list[Output]:
        pending = self._pending.get(message.transaction_id)
        if pending is None or pending.address != address:
            # Not ours, or from someone other than whom we asked: a stray or a forgery.
            self.stats.dropped["unsolicited"] += 1
            return []
        del self._pending[message.transaction_id]
        out: list[Output] = []
        if isinstance(message, krpc.Error):
            self.stats.dropped[f"error reply {message.code}"] += 1
            return self._fail(pending, now, count_against_node=False)
        family = family_of(address[0])
        node_id = message.node_id
        if (pending.node_id is not None and node_id != pending.node_id) or node_id == self.node_id:
            self.stats.dropped["wrong node id"] += 1
            return self._fail(pending, now)
        if message.requester is not None:
            self.address_vote.vote(Witness.DHT, address[0], message.requester[0], now)
        if self._acceptable(node_id, address[0]):
            to_ping = self.tables[family].heard_from(NodeInfo(node_id, address), now)
            if to_ping is not None and not self._pending_to(to_ping.address):
                out += self._query(to_ping.address, to_ping.node_id, Ping(), now, None)
        else:
            self.stats.dropped["bep 42 violation"] += 1
        if pending.lookup_id is not None:
            search = self._searches.get(pending.lookup_id)
            if search is not None:
                nodes = message.nodes if search.family == 4 else message.nodes6
                usable = [node for node in nodes if self._is_contactable(node, family)]
                peers = [peer for peer in message.values if peer[1] != 0] if search.wants_peers else []
                search.lookup.on_response(address, node_id, usable, peers, message.token)
                out += self._advance(pending.lookup_id, now)
        return out

    def _is_contactable(self, node: NodeInfo, family: int) -> bool:
        if node.node_id == self.node_id or node.address[1] == 0 or family_of(node.address[0]) != family:
            return False
        return _is_unicast(node.address[0])

    def _fail(self, pending: _Pending, now: float, *, count_against_node: bool = True) -> list[Output]:
        if count_against_node and pending.node_id is not None:
            table = self.tables.get(family_of(pending.address[0]))
            if table is not None:
                table.failed(pending.node_id, now)
        if pending.lookup_id is None:
            return []
        search = self._searches.get(pending.lookup_id)
        if search is None:
            return []
        search.lookup.on_failure(pending.address)
        return self._advance(pending.lookup_id, now)

    # -- outgoing queries --------------------------------------------------------------

    def _query(
        self, address: Address, node_id: bytes | None, arguments: Arguments, now: float, lookup_id: int | None
    ) -> list[Output]:
        """One query, or nothing when the transaction table is full."""
        if len(self._pending) >= self.max_pending:
            self.stats.dropped["pending table full"] += 1
            return []
        for _ in range(8):  # a free 2-byte ID is found at once unless the table is nearly full
            transaction_id = self.rng.getrandbits(16).to_bytes(2, "big")
            if transaction_id not in self._pending:
                break
        else:
            return []
        soft_deadline = now + self.soft_timeout_s if lookup_id is not None else None
        self._pending[transaction_id] = _Pending(address, node_id, now + self.query_timeout_s, lookup_id, soft_deadline)
        query = Query(transaction_id, self.node_id, arguments, read_only=self.read_only)
        return [self._datagram(address, krpc.encode(query, version=VERSION))]

    def _start(self, search: _Search, now: float) -> tuple[int, list[Output]]:
        if len(self._searches) >= MAX_LOOKUPS:
            raise UsageError(f"more than {MAX_LOOKUPS} searches at once")
        lookup_id = self._next_lookup_id
        self._next_lookup_id += 1
        self._searches[lookup_id] = search
        return lookup_id, self._advance(lookup_id, now)

    def _advance(self, lookup_id: int, now: float) -> list[Output]:
        search = self._searches[lookup_id]
        lookup = search.lookup
        out: list[Output] = []
        # Each pass either sends queries or marks candidates failed, so this ends.
        while not lookup.is_done:
            chosen = lookup.next_queries()
            if not chosen:
                break
            for candidate in chosen:
                if search.wants_peers:
                    arguments: Arguments = GetPeers(lookup.target)
                else:
                    arguments = FindNode(lookup.target)
                sent = self._query(candidate.address, candidate.node_id, arguments, now, lookup_id)
                if sent:
                    out += sent
                else:
                    lookup.on_failure(candidate.address)
            if any(isinstance(item, SendDatagram) for item in out):
                break
        if lookup.is_done:
            out += self._finish(lookup_id, now)
        return out

    def _finish(self, lookup_id: int, now: float) -> list[Output]:
        search = self._searches.pop(lookup_id)
        lookup = search.lookup
        out: list[Output] = []
        closest = lookup.closest_answered()
        announced = 0
        if search.announce_port is not None:
            # BEP 5: announce to the nodes nearest the info-hash, each with its own token.
            for candidate in closest:
                if candidate.token is None or candidate.node_id is None:
                    continue
                arguments = AnnouncePeer(lookup.target, search.announce_port, candidate.token, search.implied_port)
                sent = self._query(candidate.address, candidate.node_id, arguments, now, None)
                out += sent
                announced += bool(sent)
        out.append(
            LookupCompleted(
                lookup_id,
                lookup.target,
                search.family,
                tuple(lookup.peers),
                tuple(NodeInfo(c.node_id, c.address) for c in closest if c.node_id is not None),
                lookup.rounds,
                lookup.queries_sent,
                announced,
            )
        )
        return out

    def _table(self, family: int) -> RoutingTable:
        table = self.tables.get(family)
        if table is None:
            raise UsageError(f"this node has no IPv{family} table")
        return table

    def find_node(
        self, target: bytes, now: float, *, family: int = 4, bootstrap: Iterable[Address] = ()
    ) -> tuple[int, list[Output]]:
        """Start a find_node search; returns its ID (named again by ``LookupCompleted``)
        and the first queries. ``bootstrap`` addresses are asked first."""
        table = self._table(family)
        lookup = Lookup(target, table.closest(target, self.k), bootstrap=bootstrap, k=self.k)
        return self._start(_Search(lookup, family, False, None, False, now + LOOKUP_TIMEOUT_S), now)

    def bootstrap(self, addresses: Iterable[Address], now: float, *, family: int = 4) -> tuple[int, list[Output]]:
        """Join the network through ``addresses``: a search for our own ID (BEP 5)."""
        return self.find_node(self.node_id, now, family=family, bootstrap=addresses)

    def get_peers(
        self,
        info_hash: bytes,
        now: float,
        *,
        family: int = 4,
        announce_port: int | None = None,
        implied_port: bool = False,
    ) -> tuple[int, list[Output]]:
        """Start a get_peers search; with ``announce_port`` announce to the nearest nodes
        that gave a token once it ends. Peers we store ourselves count as found."""
        if announce_port is not None and self.read_only:
            raise UsageError("a read-only node cannot announce")
        table = self._table(family)
        lookup = Lookup(info_hash, table.closest(info_hash, self.k), k=self.k)
        for peer in self.peer_store.get(info_hash, family, now, self.rng):
            lookup.peers[peer] = None
        search = _Search(lookup, family, True, announce_port, implied_port, now + LOOKUP_TIMEOUT_S)
        return self._start(search, now)

    def ping(self, address: Address, now: float) -> list[Output]:
        """Ping ``address``; it enters the table if it answers."""
        return self._query(address, None, Ping(), now, None)

    # -- time --------------------------------------------------------------------------

    def next_deadline(self) -> float:
        deadlines = [
            pending.deadline if pending.soft_deadline is None else pending.soft_deadline
            for pending in self._pending.values()
        ]
        deadlines += [search.deadline for search in self._searches.values()]
        return min([*deadlines, self._next_housekeeping])

    def tick(self, now: float) -> list[Output]:
        """Time out our queries and overdue searches, refresh stale buckets, forget old
        peers, and take a BEP 42 node ID once our external address is known."""
        out: list[Output] = []
        host = self.external_host
        if host is not None and host != self._id_checked_for:
            self._id_checked_for = host
            if not is_valid_for(self.node_id, host):
                # An ID that does not match our address keeps us out of enforcing nodes' tables.
                self.change_node_id(node_id_for(host, self.rng), now)
        expired = [tid for tid, pending in self._pending.items() if pending.deadline <= now]
        for tid in expired:
            pending = self._pending.pop(tid, None)
            if pending is not None:
                self.stats.dropped["timeout"] += 1
                out += self._fail(pending, now)
        for pending in list(self._pending.values()):
            if pending.soft_deadline is not None and pending.soft_deadline <= now:
                pending.soft_deadline = None
                search = self._searches.get(pending.lookup_id) if pending.lookup_id is not None else None
                if search is not None and pending.lookup_id is not None:
                    search.lookup.mark_slow(pending.address)
                    out += self._advance(pending.lookup_id, now)
        for lookup_id, search in list(self._searches.items()):
            if search.deadline <= now and lookup_id in self._searches:
                self.stats.dropped["search timeout"] += 1
                out += self._finish(lookup_id, now)
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_S
            self.peer_store.expire(now)
            out += self._refresh(now)
        return out

    def _refresh(self, now: float) -> list[Output]:
        out: list[Output] = []
        for family, table in self.tables.items():
            if not len(table):
                continue
            for low, high in table.stale_ranges(now, REFRESH_INTERVAL_S):
                if len(self._searches) >= MAX_LOOKUPS // 2:
                    return out
                table.touch_range(low, now)
                target = self.rng.randrange(low, high).to_bytes(krpc.NODE_ID_BYTES, "big")
                out += self.find_node(target, now, family=family)[1]
        return out

    @property
    def external_host(self) -> str | None:
        """Our address as the witnesses see it (the nodes that answered us, BEP 42, and
        whatever else shares ``address_vote``): IPv4 first, once enough of them agree."""
        return self.address_vote.address(4) or self.address_vote.address(6)

    def change_node_id(self, node_id: bytes, now: float) -> None:
        """Take ``node_id`` (one that suits our external address, BEP 42): the routing
        tables are rebuilt around it from the nodes they hold, searches in flight go on."""
        if len(node_id) != krpc.NODE_ID_BYTES:
            raise UsageError("a node ID is 20 bytes")
        self.node_id = node_id
        for family, table in list(self.tables.items()):
            fresh = RoutingTable(node_id, k=self.k, now=now)
            for node in table.nodes():
                if node.node_id != node_id:
                    fresh.heard_from(node, now)
            self.tables[family] = fresh

    @property
    def pending_queries(self) -> int:
        return len(self._pending)

    @property
    def searches(self) -> int:
        return len(self._searches)


@functools.lru_cache(maxsize=8192)  # bounded; the same few hundred hosts recur in every reply
def _is_unicast(host: str) -> bool:
    address = ipaddress.ip_address(host)
    return not (address.is_unspecified or address.is_multicast)


# -- saved state ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedState:
    node_id: bytes
    nodes: tuple[NodeInfo, ...]


def save_state(node: DHTNode) -> bytes:
    """Our node ID and routing table as bencoded bytes (write them atomically)."""
    state: dict[bytes, object] = {b"id": node.node_id}
    for family, table in node.tables.items():
        key = b"nodes" if family == 4 else b"nodes6"
        state[key] = krpc.encode_nodes(table.nodes()[:STATE_NODES_PER_FAMILY])
    return bencode.encode(state)


def load_state(data: bytes) -> SavedState:
    """Read what ``save_state`` wrote. The nodes are only addresses to try again (pass
    them to ``bootstrap``): they enter the table when they answer. Raises ``KRPCError``
    for anything else."""
    try:
        state = bencode.decode(data, max_depth=2, max_tokens=16)
    except DecodeError as error:
        raise KRPCError(KRPCError.GENERIC, f"saved DHT state: {error}") from None
    node_id = state.get(b"id") if isinstance(state, dict) else None
    if not isinstance(state, dict) or not isinstance(node_id, bytes) or len(node_id) != krpc.NODE_ID_BYTES:
        raise KRPCError(KRPCError.GENERIC, "saved DHT state has no node ID")
    nodes: list[NodeInfo] = []
    for key, size in ((b"nodes", krpc.NODE_V4_BYTES), (b"nodes6", krpc.NODE_V6_BYTES)):
        raw = state.get(key, b"")
        if not isinstance(raw, bytes) or len(raw) % size:
            raise KRPCError(KRPCError.GENERIC, f"saved DHT state: bad {key.decode()}")
        nodes += [
            NodeInfo(raw[i : i + 20], krpc.decode_address(raw[i + 20 : i + size])) for i in range(0, len(raw), size)
        ]
    return SavedState(node_id, tuple(nodes))
