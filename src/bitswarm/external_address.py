"""Our address as the rest of the internet sees it, decided by a vote.

Behind a home router the address a socket is bound to is not the one peers reach. Four
kinds of witness say what it is: the router itself (UPnP IGD, NAT-PMP/PCP), trackers
(BEP 24 ``external ip``), peers (BEP 10 ``yourip``) and DHT nodes (BEP 42 ``ip``). Each
witness has one vote, its latest, keyed by its own IP address (a tracker by its host, the
router as itself) so that one host with many peer ids or node ids, or both a peer and a
DHT node, is still one voice; an address is believed once at least
``MIN_VOTERS`` witnesses agree on it and no other address has as many. One peer alone is
never believed: a lie from it would give us a node ID (BEP 42) that other nodes reject.

Sans-IO: the witnesses' claims come in with the time; the answer is read back.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import Counter, OrderedDict
from dataclasses import dataclass

# "Never trusted from one peer alone".
MIN_VOTERS = 2
# Witnesses remembered per address family; the oldest voice goes first, so a flood of
# peers cannot grow the table and the latest witnesses decide.
MAX_VOTERS = 256
# A claim older than this no longer counts: the address may have changed (a new lease).
VOTE_TTL_S = 2 * 3600.0


class Witness(enum.Enum):
    ROUTER = "router"
    TRACKER = "tracker"
    PEER = "peer"
    DHT = "dht"


@dataclass(frozen=True, slots=True)
class _Claim:
    address: str
    witness: Witness
    at: float


class ExternalAddressVote:
    """The external address per family (4, 6) by majority of distinct witnesses."""

    def __init__(self, *, min_voters: int = MIN_VOTERS, max_voters: int = MAX_VOTERS) -> None:
        self.min_voters = min_voters
        self.max_voters = max_voters
        self._claims: dict[int, OrderedDict[str, _Claim]] = {4: OrderedDict(), 6: OrderedDict()}
        self._decided: dict[int, str | None] = {4: None, 6: None}

    def vote(self, witness: Witness, voter: str, claimed: str, now: float) -> bool:
        """Record that ``voter`` (the witness's IP address, or a tracker's host) says we are
        ``claimed``; returns whether the decided address of that family changed. A claim
        that is not a unicast address beyond this machine and its link is ignored."""
        address = _unicast(claimed)
        if address is None:
            return False
        claims = self._claims[address.version]
        previous = claims.pop(voter, None)
        claims[voter] = _Claim(str(address), witness, now)
        if previous is not None and previous.address == str(address):
            # A witness repeating itself (every DHT reply carries the claim) changes no count.
            return False
        while len(claims) > self.max_voters:
            claims.popitem(last=False)
        return self._decide(address.version, now)

    def _decide(self, family: int, now: float) -> bool:
        claims = self._claims[family]
        for voter in [voter for voter, claim in claims.items() if now - claim.at > VOTE_TTL_S]:
            del claims[voter]
        ranking = Counter(claim.address for claim in claims.values()).most_common(2)
        decided = self._decided[family]
        if ranking and ranking[0][1] >= self.min_voters:
            leader, votes = ranking[0]
            if len(ranking) == 1 or ranking[1][1] < votes:
                decided = leader
            elif decided not in (leader, ranking[1][0]):
                decided = None  # a tie keeps what was decided, so the address does not flap
        else:
            decided = None
        changed = decided != self._decided[family]
        self._decided[family] = decided
        return changed

    def address(self, family: int = 4) -> str | None:
        """The decided external address of ``family``, or None while the witnesses disagree
        or are too few."""
        return self._decided[family]

    def voters(self, family: int = 4) -> int:
        return len(self._claims[family])


def _unicast(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.is_unspecified or address.is_multicast or address.is_loopback or address.is_link_local:
        return None
    return address
