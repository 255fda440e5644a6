"""The iterative search of Kademlia as BEP 5 uses it, for find_node and get_peers.

The search keeps the candidates it has heard of ordered by distance to the target. It
keeps up to ``alpha`` queries in flight, always to the nearest candidates not asked yet,
and ends when the ``k`` nearest candidates that did not fail have all answered (or when
it has sent ``max_queries``, or reached ``max_rounds`` hops). Every answer may name nearer nodes; each of those is one
*hop* further than the node that named it, and ``rounds`` is the deepest hop queried, the
number of network round trips the search needed in sequence.

Sans-IO: the node core sends the queries the search asks for and feeds back answers and
timeouts. Bootstrap addresses whose IDs we do not know yet are asked first.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from bitswarm.dht.krpc import Address, NodeInfo
from bitswarm.dht.node_id import distance

ALPHA = 3
K = 8
# Enough for a network of millions (about log2(n) useful hops, alpha wide, plus failures).
MAX_QUERIES = 200
MAX_CANDIDATES = 256
# Hops in sequence: log2 of a network of millions over k is about 17; past that, a node
# naming ever "nearer" nodes is leading us on.
MAX_ROUNDS = 20
MAX_PEERS = 1000


class CandidateState(enum.Enum):
    NEW = "new"
    IN_FLIGHT = "in flight"
    ANSWERED = "answered"
    FAILED = "failed"


@dataclass(slots=True)
class Candidate:
    address: Address
    node_id: bytes | None
    distance: int  # -1 for a bootstrap address whose ID we do not know: ask it first
    hop: int
    state: CandidateState = CandidateState.NEW
    token: bytes | None = None
    # In flight for longer than a soft timeout: its answer is still welcome, but it no
    # longer holds one of the alpha slots (a lost datagram costs a slot, not the search).
    is_slow: bool = False


class Lookup:
    def __init__(
        self,
        target: bytes,
        seeds: Iterable[NodeInfo],
        *,
        bootstrap: Iterable[Address] = (),
        alpha: int = ALPHA,
        k: int = K,
        max_queries: int = MAX_QUERIES,
        max_candidates: int = MAX_CANDIDATES,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self.target = target
        self.alpha = alpha
        self.k = k
        self.max_queries = max_queries
        self.max_candidates = max_candidates
        self.max_rounds = max_rounds
        self._candidates: dict[Address, Candidate] = {}
        self._ids: set[bytes] = set()
        self.peers: dict[Address, None] = {}  # an ordered set
        self.queries_sent = 0
        self.rounds = 0
        for address in bootstrap:
            self._candidates.setdefault(address, Candidate(address, None, -1, 1))
        self._add(seeds, hop=1)

    def _add(self, nodes: Iterable[NodeInfo], hop: int) -> None:
        if hop > self.max_rounds:
            return
        for node in nodes:
            if node.address in self._candidates or node.node_id in self._ids:
                continue
            self._candidates[node.address] = Candidate(
                node.address, node.node_id, distance(node.node_id, self.target), hop
            )
            self._ids.add(node.node_id)
        if len(self._candidates) > self.max_candidates:
            # Forget the farthest candidates not asked yet; those asked stay for bookkeeping.
            spare = sorted(
                (c for c in self._candidates.values() if c.state is CandidateState.NEW),
                key=lambda c: c.distance,
                reverse=True,
            )
            for candidate in spare[: len(self._candidates) - self.max_candidates]:
                del self._candidates[candidate.address]
                if candidate.node_id is not None:
                    self._ids.discard(candidate.node_id)

    def _nearest_alive(self) -> list[Candidate]:
        """The k nearest that have not failed and are not slow (a slow one that answers
        after all is counted again)."""
        alive = [c for c in self._candidates.values() if c.state is not CandidateState.FAILED and not c.is_slow]
        alive.sort(key=lambda c: c.distance)
        return alive[: self.k]

    @property
    def in_flight(self) -> int:
        """Queries in flight that still hold a slot (slow ones do not)."""
        return sum(1 for c in self._candidates.values() if c.state is CandidateState.IN_FLIGHT and not c.is_slow)

    def mark_slow(self, address: Address) -> None:
        """The query to ``address`` passed the soft timeout: free its slot."""
        candidate = self._candidates.get(address)
        if candidate is not None and candidate.state is CandidateState.IN_FLIGHT:
            candidate.is_slow = True

    def next_queries(self) -> list[Candidate]:
        """The candidates to query now; each is marked in flight."""
        budget = min(self.alpha - self.in_flight, self.max_queries - self.queries_sent)
        chosen = []
        for candidate in self._nearest_alive():
            if budget <= 0:
                break
            if candidate.state is CandidateState.NEW:
                candidate.state = CandidateState.IN_FLIGHT
                self.queries_sent += 1
                self.rounds = max(self.rounds, candidate.hop)
                chosen.append(candidate)
                budget -= 1
        return chosen

    def on_response(
        self, address: Address, node_id: bytes, nodes: Iterable[NodeInfo], peers: Iterable[Address], token: bytes | None
    ) -> None:
        candidate = self._candidates.get(address)
        if candidate is None or candidate.state is not CandidateState.IN_FLIGHT:
            return
        if candidate.node_id is None:
            candidate.node_id = node_id
            candidate.distance = distance(node_id, self.target)
            self._ids.add(node_id)
        candidate.state = CandidateState.ANSWERED
        candidate.is_slow = False
        candidate.token = token
        for peer in peers:
            if len(self.peers) >= MAX_PEERS:
                break
            self.peers[peer] = None
        self._add(nodes, candidate.hop + 1)

    def on_failure(self, address: Address) -> None:
        candidate = self._candidates.get(address)
        if candidate is not None and candidate.state is CandidateState.IN_FLIGHT:
            candidate.state = CandidateState.FAILED

    @property
    def is_done(self) -> bool:
        nearest = self._nearest_alive()
        # Kademlia's end: the k nearest have answered; stragglers cannot matter any more.
        if nearest and all(c.state is CandidateState.ANSWERED for c in nearest):
            return True
        if self.in_flight:
            return False
        if self.queries_sent >= self.max_queries:
            return True
        if any(c.state is CandidateState.NEW for c in nearest):
            return False
        # Nobody left to ask but slow nodes: their answers are all the search can still get.
        return not any(c.state is CandidateState.IN_FLIGHT for c in self._candidates.values())

    def closest_answered(self) -> list[Candidate]:
        """The k nearest candidates that answered, nearest first."""
        answered = [c for c in self._candidates.values() if c.state is CandidateState.ANSWERED]
        answered.sort(key=lambda c: c.distance)
        return answered[: self.k]
