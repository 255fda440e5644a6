"""One torrent's swarm: its peers and every choice about them, with no I/O.

The layer above feeds it each peer's events (from that peer's ``PeerProtocol``), the
results of disk work and the time; it answers by sending wire messages through the
peer cores and by returning instructions: write this block, check this piece, read
this block for that peer, close or ban that peer.

- Interest is kept as a count per peer of the pieces it has that we want, so a verified
  piece updates every peer in O(peers), never O(pieces).
- Each unchoked peer's request pipeline is sized from its measured rate (enough for
  ``REQUEST_QUEUE_TIME_S`` seconds), so fast peers are kept busy and slow ones do not
  hoard blocks; a peer that sends nothing for ``SNUB_TIMEOUT_S`` is snubbed and its
  blocks go to others.
- Smart ban: who sent each block of a piece is remembered; when a piece fails its hash,
  a sole sender is banned at once, and otherwise the bad blocks' digests are kept until
  the piece passes, when the peers whose blocks differed from the good ones are banned.
- Extensions (BEP 10): our extended handshake names ``extension_ids`` (ut_metadata and
  ut_pex, or ut_metadata alone for a private torrent or with PEX off) and our metadata
  size. Each peer has a ``PeerExtensions`` decoder; ut_metadata requests are answered
  from ``MetadataServe`` (BEP 9); a peer offering ut_pex gets a ``PexState`` (BEP 11):
  ``tick`` sends it what changed in our connections, and the peers it names come out as
  ``ConnectPeers`` for the layer above to dial within its limits. A malformed extension
  message closes that peer's connection.
- BEP 52 hash messages: a ``HashServe`` answers peers' hash requests from the piece layers
  we know (none: every request is rejected); a request for block hashes (below the piece
  layer) of pieces we have comes out as ``ReadBlockHashes`` for the layer above to read
  and hash off the event loop, and goes back in through ``block_hashes_read`` (at most
  ``MAX_BLOCK_HASH_READS_IN_FLIGHT`` per peer at once and ``MAX_BLOCK_HASH_READS_PER_TICK``
  per tick; more are rejected); a ``HashFetch`` (a v2 torrent known from a
  magnet link) asks peers for the piece layers we lack, and each one proven comes out as
  ``PieceLayerReceived``, for the layer above to start those pieces (``set_priorities``).
  A peer whose hashes do not prove to the root loses its connection.
- Deadlines (streaming, ``set_deadlines``): blocks of pieces a reader needs by a time are
  handed out before any other, earliest deadline first, to the fastest peers first, each
  peer taking about ``DEADLINE_QUEUE_S`` of its rate. When a peer's queue of ordinary
  requests would hold a deadline block back past its deadline, those requests are
  cancelled (they go back to the picker); the deadline blocks go first.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from bitswarm import __version__
from bitswarm.engine.choker import ChokeDecision, Choker, PeerRates
from bitswarm.engine.picker import BLOCK_SIZE, BlockRequest, PiecePicker
from bitswarm.engine.rate import RateMeter
from bitswarm.engine.upload_queue import DueTimes
from bitswarm.errors import PeerProtocolError
from bitswarm.wire.extension import (
    BS_DUE,
    MAX_DUE_HINTS,
    OUR_EXTENSION_IDS,
    UT_METADATA,
    UT_PEX,
    DueHints,
    ExtendedHandshake,
    MetadataReject,
    MetadataRequest,
    MetadataServe,
    PeerAddress,
    PeerExtensions,
    PexFlags,
    PexMessage,
    PexState,
    encode_due,
    encode_handshake,
    encode_metadata,
    encode_pex,
)
from bitswarm.wire.hashes import HashFetch, HashServe, PieceLayerReceived, ReadForHashes
from bitswarm.wire.messages import (
    Bitfield,
    Cancel,
    Choke,
    Extended,
    Hashes,
    HashReject,
    HashRequest,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    NotInterested,
    Piece,
    Reject,
    Request,
    Unchoke,
)
from bitswarm.wire.peer import MAX_OUR_REQUESTS, MAX_PEER_REQUESTS, Event, HandshakeCompleted, PeerProtocol, PeerState

PeerKey = Hashable

REQUEST_QUEUE_TIME_S = 3.0
MIN_QUEUE = 4
INITIAL_QUEUE = 16
MAX_QUEUE = 500
# BEP 52 hash requests answered per peer between two ticks (a second); more are rejected.
# libtorrent asks once per 512 pieces of a file, so this is a flood's limit, not a peer's.
MAX_HASH_ANSWERS_PER_TICK = 32
# BEP 52 requests for block hashes cost a read of up to 8 MiB (512 blocks) each: a peer
# asks after a piece it fetched failed, so a few at once and a few a second are plenty;
# more are rejected rather than queued.
MAX_BLOCK_HASH_READS_IN_FLIGHT = 2
MAX_BLOCK_HASH_READS_PER_TICK = 4
# A deep request queue is topped up once a quarter of it has arrived, not by one request
# per block arriving: each refill is a send of its own (65,536 a GiB at one per block).
REFILL_FRACTION = 4
SNUB_TIMEOUT_S = 60.0
# Deadline blocks outstanding per peer: about this many seconds of its rate, at least
# ``DEADLINE_MIN_BLOCKS`` (a peer whose rate is not known yet gets a piece's worth). A
# rate-capped libtorrent seed reads every request into its send buffer at once, where a
# cancel no longer reaches it, and sends in bursts every 0.5 s: with 0.5 s queued here a
# seek waited two bursts (0.98 s, bench/stream_bench.py start), with 0.35 s one (0.48 s);
# 0.25 s starved the simulated player (tests/sim/test_streaming_sim.py).
DEADLINE_QUEUE_S = 0.35
DEADLINE_MIN_BLOCKS = 16
# While peers that are not seeds are connected, a deadline piece is asked of a seed only once it is due
# within this long (see ``_spares_seed``; 3, 4, 6, 8 and 10 s measured worse in simulation).
SEED_SPARING_S = 5.0
# The order we serve requests in (``upload_rank``, in milliseconds, lowest first). A peer
# that sends ``bs_due`` hints (bitswarm) says when its player needs each piece it asked
# for: those go earliest due first, everything else it asked for in the order asked
# (SERVE_IN_ORDER_MS). In bench/stream_bench.py swarm, ranked by distance alone (below),
# a viewer that had just joined with seconds to fill took its peers' uploads from the
# viewers about to stall: viewers 3 to 8 of 8 stalled (11-16 stalls, 33-57 s).
SERVE_IN_ORDER_MS = 60_000
# For a peer that gives no hints: a request for a piece less than URGENT_SERVE_BYTES beyond
# the requester's first missing piece (where a player reading the file in order waits) is
# urgent, the nearest first, counted in time at ASSUMED_PLAY_RATE; the rest in the order
# asked. A peer connected within NEWCOMER_SERVE_S, while we still download, has its
# requests taken as NEWCOMER_HEAD_START_BYTES nearer: in a swarm of viewers it is a player
# that just joined, with nothing to show until its first seconds arrive. In
# tests/sim/test_viewer_swarm_sim.py without hints (64 KiB pieces, three seeds): 0 stalls
# and starts of at most 1.35 s, against 9-11 stalls (22-24 s) and 1.9 s with newcomers
# first and then the order asked. Nearest first with no urgent span: no stall but starts
# up to 3.8 s; with a head start of 64 KiB, 1-2 stalls, 128 KiB, 2, 256 KiB, 2-4. An urgent
# span of 256 KiB: 12-16 stalls (the nearest-first order then covered too little of the
# read-ahead); 512 KiB, 0-1.
URGENT_SERVE_BYTES = 1 << 20
ASSUMED_PLAY_RATE = 512 * 1024
NEWCOMER_HEAD_START_BYTES = 64 * 1024
NEWCOMER_SERVE_S = 2.0
# A piece's due time is told a peer again only when it moved this much earlier (a seek).
DUE_RETELL_S = 0.5
# While any reader has deadlines, a peer's whole request queue (beyond the deadline share)
# holds about this many seconds of its rate, not REQUEST_QUEUE_TIME_S (what is queued when
# the player seeks is sent before the new play head: see DEADLINE_QUEUE_S).
STREAMING_QUEUE_S = 0.35
# ...and for this long after the last reader went (it may be a player seeking).
STREAMING_LINGER_S = 5.0
# A peer never measured is assumed this fast when judging whether its queue would make a
# deadline block late (256 KiB/s: a slow home line).
ASSUMED_RATE = 256 * 1024
DEFAULT_UPLOAD_SLOTS = 8
# Requests outstanding with a peer that named no ``reqq`` in its BEP 10 handshake.
DEFAULT_PEER_REQQ = 250
# Our name in BEP 10 handshakes.
CLIENT_NAME = f"bitswarm {__version__}"
# Pieces offered at once to each peer while super-seeding: enough to keep its pipeline full.
SUPER_SEED_OFFERS = 2
# While super-seeding, a second copy of a piece is offered only once no first copy has been
# in flight for this long without a byte sent: a stalled first copy must not stop the seed.
FIRST_COPY_STALL_S = 3.0


@dataclass(frozen=True, slots=True)
class WriteBlock:
    index: int
    begin: int
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class CheckPiece:
    index: int


@dataclass(frozen=True, slots=True)
class WriteCheckedPiece:
    """Instruction: write piece ``index`` whole (``data``, whose hash the caller matched
    already), then call ``Swarm.piece_checked`` with ``ok=True``: it is hashed once."""

    index: int
    data: bytes | bytearray  # a web seed reads a piece into a bytearray: not copied into bytes


@dataclass(frozen=True, slots=True)
class ServeBlock:
    peer: PeerKey
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class ClosePeer:
    peer: PeerKey
    reason: str


@dataclass(frozen=True, slots=True)
class BanPeer:
    peer: PeerKey
    reason: str


@dataclass(frozen=True, slots=True)
class PieceVerified:
    index: int


@dataclass(frozen=True, slots=True)
class DownloadFinished:
    pass


@dataclass(frozen=True, slots=True)
class ReadBlockHashes:
    """Instruction: read ``read.pieces`` (each its file's bytes only), hash their blocks
    (``merkle.block_hashes``, off the event loop) and call ``Swarm.block_hashes_read``."""

    peer: PeerKey
    read: ReadForHashes


@dataclass(frozen=True, slots=True)
class ConnectPeers:
    """Instruction: try these listen addresses (learned by PEX); the layer above dedupes
    them against its connections and keeps within its connection limits."""

    addresses: tuple[PeerAddress, ...]


@dataclass(frozen=True, slots=True)
class PeerSawOurAddress:
    """A peer at ``peer_host`` says, in its BEP 10 handshake (``yourip``), that it sees us
    at ``address``: one witness for the session's external-address vote."""

    peer_host: str
    address: str


def address_witness(link: PeerLink, handshake: ExtendedHandshake) -> list[PeerSawOurAddress]:
    if handshake.yourip is None or link.address is None or not is_ip(link.address[0]):
        return []
    return [PeerSawOurAddress(link.address[0], handshake.yourip)]


Action = (
    WriteBlock
    | CheckPiece
    | WriteCheckedPiece
    | ServeBlock
    | ClosePeer
    | BanPeer
    | PieceVerified
    | DownloadFinished
    | ConnectPeers
    | PieceLayerReceived
    | ReadBlockHashes
    | PeerSawOurAddress
)


@dataclass(slots=True)
class PeerLink:
    """What a swarm knows of one connection besides its core: where it goes and its extensions."""

    extensions: PeerExtensions
    address: PeerAddress | None = None
    outgoing: bool = False
    encrypted: bool = False
    listen_port: int | None = None
    prefers_encryption: bool = False
    pex: PexState | None = None

    @property
    def listen_address(self) -> PeerAddress | None:
        """Where the peer accepts connections: the address we dialed, or its IP and BEP 10 ``p``."""
        if self.address is None:
            return None
        if self.outgoing:
            return self.address
        return (self.address[0], self.listen_port) if self.listen_port else None

    def on_extended_handshake(self, handshake: ExtendedHandshake, our_ids: Mapping[str, int]) -> None:
        if handshake.listen_port is not None:
            self.listen_port = handshake.listen_port
        if handshake.prefers_encryption is not None:
            self.prefers_encryption = handshake.prefers_encryption
        if self.pex is None and UT_PEX in our_ids and self.extensions.supports(UT_PEX):
            self.pex = PexState(remote=self.listen_address)
        elif self.pex is not None and not self.extensions.supports(UT_PEX):
            self.pex = None  # BEP 10: a later handshake disabled it
        elif self.pex is not None:
            self.pex.remote = self.listen_address  # a later handshake may give the port


def extended_handshake(
    link: PeerLink, our_ids: Mapping[str, int], metadata_size: int | None, listen_port: int | None
) -> Extended:
    """Our BEP 10 handshake for this peer (``yourip`` is its address as we see it)."""
    payload = encode_handshake(
        extensions=our_ids,
        metadata_size=metadata_size,
        listen_port=listen_port,
        client=CLIENT_NAME,
        reqq=MAX_PEER_REQUESTS,
        yourip=link.address[0] if link.address is not None and is_ip(link.address[0]) else None,
    )
    return Extended(0, payload)


def is_ip(host: str) -> bool:
    """An IP address literal (an x.pe peer may be dialled by host name: neither its
    ``yourip`` nor a PEX entry can name it)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class _Peer:
    core: PeerProtocol
    connected_at: float
    download: RateMeter
    upload: RateMeter
    wanted_pieces: int = 0
    queue_target: int = INITIAL_QUEUE
    last_block_at: float = 0.0
    is_snubbed: bool = False
    is_seed_counted: bool = False
    # Our bitfield went out (at its handshake): from then on every piece we verify is
    # announced to it with a HAVE, whether or not its own first message has come yet.
    knows_our_pieces: bool = False
    hash_answers: int = 0
    block_hash_reads: int = 0  # in flight
    block_hash_reads_this_tick: int = 0
    counted_pieces: set[int] = field(default_factory=set)
    link: PeerLink = field(default_factory=lambda: PeerLink(PeerExtensions()))
    due_hints: DueTimes | None = None  # when its player needs what it asked (bs_due); None: never said
    due_told: DueTimes = field(default_factory=DueTimes)  # the due times we told it


class Swarm:
    def __init__(
        self,
        *,
        num_pieces: int,
        piece_size: Callable[[int], int],
        have: Iterable[int],
        rng: random.Random,
        now: float,
        priorities: list[int] | None = None,
        upload_slots: int = DEFAULT_UPLOAD_SLOTS,
        super_seed: bool = False,
        info: bytes | None = None,
        extension_ids: Mapping[str, int] = OUR_EXTENSION_IDS,
        listen_port: int | None = None,
        hash_serve: HashServe | None = None,
        hash_fetch: HashFetch | None = None,
    ) -> None:
        """``info`` is the info dictionary we serve over ut_metadata (None: we serve none);
        ``extension_ids`` those we offer (``NO_PEX_EXTENSION_IDS`` keeps PEX off);
        ``hash_serve`` answers BEP 52 hash requests, ``hash_fetch`` fetches piece layers."""
        self.hash_serve = hash_serve
        self.hash_fetch = hash_fetch if hash_fetch is not None and not hash_fetch.is_done else None
        self.num_pieces = num_pieces
        self.extension_ids = extension_ids
        self.listen_port = listen_port
        self.metadata = MetadataServe(info) if info else None
        self.rng = rng
        self.super_seed = super_seed
        # Super-seeding: pieces offered to each peer and not yet seen there; offers per piece.
        self._offered: dict[PeerKey, set[int]] = {}
        # Sized when super-seeding starts: a torrent that never does keeps no per-piece list.
        self._offer_counts: list[int] = []
        self._offer_progress: dict[tuple[PeerKey, int], int] = {}
        self._sent_once = bytearray(num_pieces)
        self._first_copy_sent_at = 0.0
        self.piece_size = piece_size
        self._piece_bytes = piece_size(0) if num_pieces else 0  # every piece's but the last
        self.picker = PiecePicker(num_pieces, piece_size, rng, have=have, priorities=priorities)
        self.choker = Choker(upload_slots, rng)
        self.peers: dict[PeerKey, _Peer] = {}
        self.downloaded = 0
        self.uploaded = 0
        self.started_at = now
        self._senders: dict[int, dict[int, PeerKey]] = {}
        self._bad_blocks: dict[int, dict[int, tuple[PeerKey, bytes]]] = {}
        self._finished_reported = self.is_seeding
        self._now = now  # the latest time a caller gave: deadlines are judged by it
        self._short_queues_until = 0.0

    # -- what we have and want -----------------------------------------------------------

    def _wants(self, index: int) -> bool:
        return not self.picker.have[index] and self.picker.priority[index] > 0

    def needs_block_digests(self, index: int) -> bool:
        """Whether checking piece ``index`` must report its blocks' digests (for smart ban).

        Only a piece that failed before needs them when it passes; a failing piece always does,
        so the caller computes them then anyway.
        """
        return index in self._bad_blocks

    def has_piece(self, index: int) -> bool:
        """Whether piece ``index`` is verified here (what peer cores may serve)."""
        return bool(self.picker.have[index])

    @property
    def is_seeding(self) -> bool:
        """Every wanted piece is here, and no piece layer is still to fetch (its pieces are
        held back until it is in, so the picker alone would call that complete)."""
        return self.picker.is_complete and (self.hash_fetch is None or self.hash_fetch.is_done)

    def set_priorities(self, indices: Iterable[int], priority: int) -> list[Action]:
        """Change the priority of pieces (0: not wanted) while peers are connected: their
        counts of pieces we want, and our interest, follow."""
        for index in indices:
            was_wanted = self._wants(index)
            self.picker.set_priority(index, priority)
            delta = self._wants(index) - was_wanted
            if delta:
                for peer in self.peers.values():
                    if peer.is_seed_counted or index in peer.counted_pieces:
                        peer.wanted_pieces += delta
        for key, peer in self.peers.items():
            self._update_interest(peer)
            self._fill_requests(key, peer)
        return self._check_finished()

    def set_deadlines(self, owner: PeerKey, deadlines: Mapping[int, float], now: float) -> None:
        """``owner`` (a stream reader) needs these pieces by these times (monotonic, as
        ``now``); replaces its earlier set. Their blocks are requested at once."""
        self._now = now
        self.picker.set_deadlines(owner, deadlines)
        for peer in self.peers.values():
            self._update_interest(peer)
            if peer.core.our_requests and peer.link.extensions.id_for(BS_DUE) is not None:
                # Pieces asked for before they had a deadline: the peer serves them in the
                # order asked unless told.
                self._tell_due(peer, [index for index, _, _ in peer.core.our_requests], now)
        self._fill_deadline_requests()

    def clear_deadlines(self, owner: PeerKey, now: float) -> None:
        """``owner`` went away: its deadlines go, and the pieces go back to rarest first."""
        self._now = now
        self.picker.clear_deadlines(owner)
        # A player that seeks closes one request and opens another: the short queues stay a
        # while, or the gap between the two fills the peers' queues with ordinary requests
        # that the new play head would wait behind.
        self._short_queues_until = now + STREAMING_LINGER_S
        for key, peer in self.peers.items():
            self._fill_requests(key, peer)

    def _fill_deadline_requests(self) -> None:
        """Deadline blocks to the fastest peers first, each within its share (its rate times
        ``DEADLINE_QUEUE_S``)."""
        now = self._now
        picker = self.picker
        first = picker.next_deadline_position(now) if picker.has_deadlines else None
        if first is None:
            return
        order = picker.deadline_pieces()
        ready = [
            (peer.download.rate(now), key, peer)
            for key, peer in self.peers.items()
            if peer.core.state is PeerState.OPEN
            and not peer.core.peer_choking
            and peer.core.am_interested
            and not peer.is_snubbed
        ]
        ready.sort(key=lambda item: -item[0])
        for rate, key, peer in ready:
            core = peer.core
            if core.peer_is_seed:
                peer_has = self._seed_pieces(now) if self._spares_seed(peer) else None
            else:
                peer_has = core.peer_has
            # Only blocks due no later than the earliest piece this peer could be given fill
            # its share: after a seek, requests far into the new window must not keep the
            # play head waiting. (Judged by the earliest piece anyone could be given, a peer
            # asked only for pieces due later, as a spared seed is, had an unbounded share.)
            position = picker.next_deadline_position(now, first, key, peer_has)
            if position is None:
                continue
            peer_due = picker.deadline_of(order[position])
            assert peer_due is not None  # a deadline piece
            deadline_of = picker.deadline_of
            in_flight = 0
            for request in core.our_requests:
                request_due = deadline_of(request[0])
                in_flight += request_due is not None and request_due <= peer_due
            share = max(DEADLINE_MIN_BLOCKS, int(rate * DEADLINE_QUEUE_S / BLOCK_SIZE) + 1)
            room = min(share - in_flight, self._request_limit(peer) - len(core.our_requests))
            if room <= 0:
                continue
            if peer_has is None:
                blocks = picker.pick_deadline(key, core.peer_has, room, now, has_all=True, start=position)
            else:
                blocks = picker.pick_deadline(key, peer_has, room, now, start=position)
            if not blocks:
                continue
            self._clear_way_for(key, peer, blocks, rate, now)
            core.send_requests(blocks)
            self._tell_due(peer, (block.index for block in blocks), now)

    @staticmethod
    def _request_limit(peer: _Peer) -> int:
        """Requests we keep outstanding with ``peer`` at most: what its BEP 10 ``reqq`` says
        it queues (more, and a bitswarm or libtorrent peer drops the connection), else the
        smallest queue common clients keep (250, libtorrent's old default)."""
        handshake = peer.link.extensions.handshake
        reqq = handshake.reqq if handshake is not None and handshake.reqq else DEFAULT_PEER_REQQ
        return min(reqq, MAX_OUR_REQUESTS)

    def upload_rank(self, key: PeerKey, index: int, now: float) -> int:
        """Where ``key``'s requests for piece ``index`` go in our upload order
        (``UploadQueue.pop_batch``, lowest first), in milliseconds: until the requester's
        player needs the piece, by its hints or, from a peer that gives none, from the
        bytes between its first missing piece and this one; SERVE_IN_ORDER_MS for the rest.

        A peer may claim any due time: lying, it gains the place in our upload order of a
        player about to stall, among the peers we unchoke; whom we unchoke at all stays
        the choker's decision (by what they send us, or take from a seed)."""
        peer = self.peers.get(key)
        if peer is None or peer.core.peer_has(index):  # gone, or asking for what it says it has
            return SERVE_IN_ORDER_MS
        if peer.due_hints is not None:
            # It says what its player needs and when: what else it asks for can wait.
            due = peer.due_hints.get(index)
            return SERVE_IN_ORDER_MS if due is None else min(SERVE_IN_ORDER_MS, int((due - now) * 1000))
        ahead = (index - peer.core.peer_first_missing) * self._piece_bytes
        if not self.is_seeding and now - peer.connected_at < NEWCOMER_SERVE_S:
            ahead -= NEWCOMER_HEAD_START_BYTES
        return SERVE_IN_ORDER_MS if ahead >= URGENT_SERVE_BYTES else ahead * 1000 // ASSUMED_PLAY_RATE

    def _tell_due(self, peer: _Peer, pieces: Iterable[int], now: float) -> None:
        """Tell a peer that takes ``bs_due`` hints when we need the pieces we asked of it."""
        number = peer.link.extensions.id_for(BS_DUE)
        if number is None:
            return
        told = peer.due_told
        hints = []
        for index in dict.fromkeys(pieces):
            due = self.picker.deadline_of(index)
            if due is None:
                continue
            before = told.get(index)
            if before is not None and before <= due + DUE_RETELL_S:
                continue
            told.set(index, due)
            hints.append((index, round((due - now) * 1000)))
        for first in range(0, len(hints), MAX_DUE_HINTS):
            peer.core.send(Extended(number, encode_due(DueHints(tuple(hints[first : first + MAX_DUE_HINTS])))))

    def _spares_seed(self, seed: _Peer) -> bool:
        """Whether to spare ``seed``'s upload for the players: while we stream and peers
        that are not seeds are connected, a seed that takes no ``bs_due`` hints (and so
        serves in the order asked) is asked for no ordinary piece, and for a deadline piece
        only once it is due within SEED_SPARING_S or no other peer has it (``_seed_pieces``).

        In a swarm of viewers the seed is everyone's fastest peer; a viewer whose player has
        time asks the viewers ahead for what they hold, or waits until they do, and leaves
        the seed's upload to the viewer whose player needs the piece first (measured in
        tests/sim/test_viewer_swarm_sim.py: with a seed at twice the bitrate, 10 stalls
        instead of 67, the seed sending 2.2 copies instead of 4.2). bench/stream_bench.py
        swarm with a libtorrent seed: 5-9 stalls (11-18 s) while the viewers also asked it
        for pieces rarest first, 2-5 (2-16 s) since. A seed that takes hints serves the
        earliest due first itself: sparing it only left viewers with a few seconds in hand."""
        return seed.link.extensions.id_for(BS_DUE) is None and any(
            not other.core.peer_is_seed for other in self.peers.values()
        )

    def _seed_pieces(self, now: float) -> Callable[[int], bool]:
        """The deadline pieces to ask a spared seed for (``_spares_seed``)."""
        picker = self.picker
        availability = picker.availability

        def wanted_of_seed(index: int) -> bool:
            due = picker.deadline_of(index)
            # A piece no other peer has is the seed's to send whenever it is due.
            return due is not None and (due <= now + SEED_SPARING_S or not availability[index])

        return wanted_of_seed

    def _due(self, index: int, now: float) -> float:
        due = self.picker.deadline_of(index)
        return now if due is None else due

    def _clear_way_for(self, key: PeerKey, peer: _Peer, blocks: list[BlockRequest], rate: float, now: float) -> None:
        """Cancel ``peer``'s ordinary requests when everything queued before ``blocks``
        (served first, as peers do) would make the earliest of them late."""
        core = peer.core
        ordinary = [request for request in core.our_requests if self.picker.deadline_of(request[0]) is None]
        if not ordinary:
            return
        earliest = min(self._due(block.index, now) for block in blocks)
        queued_bytes = sum(request[2] for request in core.our_requests)
        if queued_bytes / max(rate, ASSUMED_RATE) <= earliest - now:
            return
        for index, begin, length in ordinary:
            core.send(Cancel(index, begin, length))
            self.picker.request_dropped(BlockRequest(index, begin, length), key)

    def _check_finished(self) -> list[Action]:
        if self.is_seeding and not self._finished_reported:
            self._finished_reported = True
            return [DownloadFinished()]
        return []

    def have_messages(self, core: PeerProtocol) -> Have | Bitfield | HaveAll | HaveNone:
        """The first message after the handshake: what we have."""
        count = self.picker.have_count
        if core.fast and count == self.num_pieces:
            return HaveAll()
        if core.fast and count == 0:
            return HaveNone()
        bits = bytearray((self.num_pieces + 7) // 8)
        for index in range(self.num_pieces):
            if self.picker.have[index]:
                bits[index >> 3] |= 0x80 >> (index & 7)
        return Bitfield(bytes(bits))

    # -- peers ---------------------------------------------------------------------------

    def add_peer(
        self,
        key: PeerKey,
        core: PeerProtocol,
        now: float,
        *,
        address: PeerAddress | None = None,
        outgoing: bool = False,
        encrypted: bool = False,
    ) -> None:
        """A new connection; ``address`` is the remote end, ``outgoing`` when we dialed it
        (its address is then where it listens), ``encrypted`` for an MSE connection."""
        link = PeerLink(PeerExtensions(self.extension_ids), address, outgoing, encrypted)
        self.peers[key] = _Peer(core, now, RateMeter(now), RateMeter(now), last_block_at=now, link=link)

    def remove_peer(self, key: PeerKey) -> None:
        peer = self.peers.pop(key, None)
        if peer is None:
            return
        if self.metadata is not None:
            self.metadata.forget(key)
        if self.hash_fetch is not None:
            self.hash_fetch.peer_gone(key)
        for index in self._offered.pop(key, set()):
            self._offer_counts[index] -= 1  # never delivered: offer it again elsewhere
            self._offer_progress.pop((key, index), None)
        for request in self.picker.requests_of(key):
            self.picker.request_dropped(request, key)
        if peer.is_seed_counted:
            self.picker.peer_lost_all()
        for index in peer.counted_pieces:
            self.picker.peer_lost(index)

    def handle(self, key: PeerKey, events: list[Event], now: float) -> list[Action]:
        """Apply one peer's events; returns the instructions they lead to."""
        self._now = now
        peer = self.peers[key]
        actions: list[Action] = []
        received = 0
        for event in events:
            if type(event) is Piece:  # nearly every event of a download: first, and counted once
                received += len(event.block)
                actions += self._block_arrived(key, peer, event)
                continue
            if type(event) is Request:  # nearly every event of an upload
                actions.append(ServeBlock(key, event.index, event.begin, event.length))
                continue
            if isinstance(event, HandshakeCompleted):
                if peer.core.extensions:
                    # BEP 10: both sides set the bit, so both send the extended handshake;
                    # libtorrent holds its requests back until ours arrives.
                    size = self.metadata.metadata_size if self.metadata is not None else None
                    peer.core.send(extended_handshake(peer.link, self.extension_ids, size, self.listen_port))
                if self.super_seed and self.is_seeding:
                    self._start_super_seeding(key, peer, now)
                else:
                    peer.core.send(self.have_messages(peer.core))
                    peer.knows_our_pieces = True
            elif isinstance(event, Bitfield | HaveAll):
                self._peer_has_many(peer)
            elif isinstance(event, Have):
                self._peer_has(peer, event.index)
                offered = self._offered.get(key)
                if offered is not None and event.index in offered:
                    offered.discard(event.index)
                    self._offer_progress.pop((key, event.index), None)
                    self._offer(key, peer, now)
            elif isinstance(event, Extended):
                try:
                    actions += self._extended(key, peer, event, now)
                except PeerProtocolError as error:
                    actions.append(ClosePeer(key, str(error)))
                    return actions
            elif isinstance(event, Interested):
                self._unchoke_if_slot_free(peer)
            elif isinstance(event, Reject):
                self.picker.request_dropped(BlockRequest(event.index, event.begin, event.length), key)
            elif isinstance(event, Choke) and not peer.core.fast:
                for request in self.picker.requests_of(key):
                    self.picker.request_dropped(request, key)
            elif isinstance(event, HashRequest | Hashes | HashReject):
                try:
                    actions += self._hash_message(key, peer, event)
                except PeerProtocolError as error:
                    actions.append(ClosePeer(key, str(error)))
                    return actions
        if received:
            self._count_download(peer, received, now)
        self._update_interest(peer)
        self._fill_deadline_requests()
        self._fill_requests(key, peer)
        self._fill_hash_requests(key, peer, now)
        return actions

    def _hash_message(self, key: PeerKey, peer: _Peer, message: HashRequest | Hashes | HashReject) -> list[Action]:
        """One BEP 52 hash message; raises PeerProtocolError for a bad request or proof."""
        if isinstance(message, HashRequest):
            if self.hash_serve is None or peer.hash_answers >= MAX_HASH_ANSWERS_PER_TICK:
                peer.core.send(HashReject(*_fields(message)))
                return []
            peer.hash_answers += 1
            answer = self.hash_serve.answer(message)
            if not isinstance(answer, ReadForHashes):
                peer.core.send(answer)
                return []
            if (
                peer.block_hash_reads >= MAX_BLOCK_HASH_READS_IN_FLIGHT
                or peer.block_hash_reads_this_tick >= MAX_BLOCK_HASH_READS_PER_TICK
                or not all(self.picker.have[index] for index in answer.pieces)
            ):
                peer.core.send(HashReject(*_fields(message)))
                return []
            peer.block_hash_reads += 1
            peer.block_hash_reads_this_tick += 1
            return [ReadBlockHashes(key, answer)]
        if self.hash_fetch is None:
            return []  # an answer that came after the last layer was in
        if isinstance(message, HashReject):
            self.hash_fetch.rejected(key, message)
            return []
        layers: list[Action] = []
        for layer in self.hash_fetch.received(key, message):
            if self.hash_serve is not None:
                self.hash_serve.add_layer(layer.pieces_root, layer.layer)
            layers.append(layer)
        if self.hash_fetch.is_done:
            self.hash_fetch = None
        return layers

    def block_hashes_read(self, key: PeerKey, read: ReadForHashes, block_hashes: list[list[bytes]] | None) -> None:
        """The layer above read and hashed the pieces of a ``ReadBlockHashes`` for ``key``
        (``None``: it could not read them): the peer gets its answer, or a reject."""
        peer = self.peers.get(key)
        if peer is None:
            return  # gone while its pieces were read
        peer.block_hash_reads -= 1
        if peer.core.state is not PeerState.OPEN or self.hash_serve is None:
            return
        if block_hashes is None:
            peer.core.send(HashReject(*_fields(read.request)))
        else:
            peer.core.send(self.hash_serve.answer_from_blocks(read, block_hashes))

    def _fill_hash_requests(self, key: PeerKey, peer: _Peer, now: float) -> None:
        # BEP 52: hash requests may go to a peer whatever its choke state.
        if self.hash_fetch is None or peer.core.state is not PeerState.OPEN:
            return
        for request in self.hash_fetch.requests_for(key, peer.core.peer_has, now, has_all=peer.core.peer_is_seed):
            peer.core.send(request)

    def _extended(self, key: PeerKey, peer: _Peer, message: Extended, now: float) -> list[Action]:
        """One extension message (BEP 10, 9, 11); raises PeerProtocolError for a malformed one."""
        link = peer.link
        value = link.extensions.decode(message)
        if isinstance(value, ExtendedHandshake):
            link.on_extended_handshake(value, self.extension_ids)
            return list(address_witness(link, value))
        if isinstance(value, MetadataRequest):
            number = link.extensions.id_for(UT_METADATA)
            if number is not None:
                answer = self.metadata.answer(key, value) if self.metadata is not None else MetadataReject(value.piece)
                peer.core.send(Extended(number, encode_metadata(answer)))
        elif isinstance(value, DueHints):
            hints = peer.due_hints
            if hints is None:
                hints = peer.due_hints = DueTimes()
            for index, ms in value.due_ms:
                if index >= self.num_pieces:
                    raise PeerProtocolError(f"bs_due: piece {index} of {self.num_pieces}")
                hints.set(index, now + ms / 1000)
        elif isinstance(value, PexMessage) and link.pex is not None:
            added = link.pex.receive(value, now)
            if added:
                return [ConnectPeers(tuple(pex_peer.address for pex_peer in added))]
        # Metadata data and rejects: we have the metadata already, and asked for nothing.
        return []

    def pex_connections(self) -> dict[PeerAddress, PexFlags]:
        """Our connections as BEP 11 lists them: handshaked peers whose listen address we know."""
        connected: dict[PeerAddress, PexFlags] = {}
        for peer in self.peers.values():
            address = peer.link.listen_address
            if address is None or peer.core.state is not PeerState.OPEN or not is_ip(address[0]):
                continue
            flags = PexFlags.NONE
            if peer.link.outgoing:
                flags |= PexFlags.REACHABLE
            if peer.core.peer_is_seed:
                flags |= PexFlags.SEED
            if peer.link.prefers_encryption or peer.link.encrypted:
                flags |= PexFlags.PREFERS_ENCRYPTION
            connected[address] = flags
        return connected

    def _send_pex(self, now: float) -> None:
        if UT_PEX not in self.extension_ids:
            return
        connected: dict[PeerAddress, PexFlags] | None = None
        for peer in self.peers.values():
            link = peer.link
            number = link.extensions.id_for(UT_PEX)
            if link.pex is None or number is None or peer.core.state is not PeerState.OPEN:
                continue
            if connected is None:
                connected = self.pex_connections()
            message = link.pex.message_due(connected, now)
            if message is not None:
                peer.core.send(Extended(number, encode_pex(message)))

    def _start_super_seeding(self, key: PeerKey, peer: _Peer, now: float) -> None:
        """Look empty, then offer pieces one by one (BEP 16), each first to a single peer.

        When the seed's upload is the scarce resource, every piece it sends twice delays
        the whole swarm; offering each peer pieces nobody else was offered makes the seed
        send every piece once, and the peers trade the rest among themselves.
        """
        core = peer.core
        core.send(HaveNone() if core.fast else Bitfield(bytes((self.num_pieces + 7) // 8)))
        if not self._offer_counts:
            self._offer_counts = [0] * self.num_pieces
        self._offered[key] = set()
        self._offer(key, peer, now)

    def _offer(self, key: PeerKey, peer: _Peer, now: float) -> None:
        offered = self._offered[key]
        core = peer.core
        while len(offered) < SUPER_SEED_OFFERS:
            candidates = [
                index
                for index in range(self.num_pieces)
                if index not in offered and not core.peer_has(index) and self.picker.have[index]
            ]
            if not candidates:
                return
            fewest = min(self._offer_counts[index] for index in candidates)
            if fewest > 0 and self._first_copies_in_flight(now):
                # Every piece is offered somewhere; a second copy now would share the
                # seed's upload with the first copies still going out and delay them.
                return
            rarest = [index for index in candidates if self._offer_counts[index] == fewest]
            lowest = min(self.picker.availability[index] for index in rarest)
            index = self.rng.choice([index for index in rarest if self.picker.availability[index] == lowest])
            offered.add(index)
            self._offer_counts[index] += 1
            core.send(Have(index))

    def _super_seeding(self) -> bool:
        return self.super_seed and self.is_seeding

    def _first_copies_in_flight(self, now: float) -> bool:
        """Some piece offered but not yet out (no peer has it), and first copies still moving."""
        if now - self._first_copy_sent_at >= FIRST_COPY_STALL_S:
            return False
        availability, sent_once = self.picker.availability, self._sent_once
        return any(
            count and not sent_once[index] and not availability[index] for index, count in enumerate(self._offer_counts)
        )

    def _offer_to_waiting_peers(self, now: float) -> None:
        for key, offered in self._offered.items():
            peer = self.peers.get(key)
            if len(offered) < SUPER_SEED_OFFERS and peer is not None and peer.core.state is PeerState.OPEN:
                self._offer(key, peer, now)

    def _unchoke_if_slot_free(self, peer: _Peer) -> None:
        """Give a newly interested peer a free upload slot now, not at the next choke round.

        Rounds are ``UNCHOKE_INTERVAL_S`` apart; without this a peer arriving just after one
        waits that long for its first block even from an idle seed. The next round ranks it
        with everyone else as usual.
        """
        core = peer.core
        if core.state is not PeerState.OPEN or not core.am_choking:
            return
        unchoked = sum(1 for other in self.peers.values() if not other.core.am_choking)
        if unchoked < self.choker.slots or self._super_seeding():
            core.send(Unchoke())

    def _peer_has_many(self, peer: _Peer) -> None:
        core = peer.core
        if core.peer_is_seed:
            peer.is_seed_counted = True
            self.picker.peer_has_all()
            peer.wanted_pieces = sum(1 for index in range(self.num_pieces) if self._wants(index))
            return
        for index in range(self.num_pieces):
            if core.peer_has(index):
                self.picker.peer_has(index)
                peer.counted_pieces.add(index)
                peer.wanted_pieces += self._wants(index)

    def _peer_has(self, peer: _Peer, index: int) -> None:
        if peer.is_seed_counted or index in peer.counted_pieces:
            return
        peer.counted_pieces.add(index)
        self.picker.peer_has(index)
        peer.wanted_pieces += self._wants(index)
        if peer.core.peer_is_seed:
            # Now a seed: count it once as such, as peers that started as seeds are counted.
            for counted in peer.counted_pieces:
                self.picker.peer_lost(counted)
            peer.counted_pieces.clear()
            peer.is_seed_counted = True
            self.picker.peer_has_all()

    def _update_interest(self, peer: _Peer) -> None:
        core = peer.core
        if core.state is not PeerState.OPEN:
            return
        # A reader's deadline may name a piece of a file not selected for download.
        interested = peer.wanted_pieces > 0 or (
            self.picker.has_deadlines
            and (core.peer_is_seed or any(core.peer_has(index) for index in self.picker.deadline_pieces()))
        )
        if interested != core.am_interested:
            core.send(Interested() if interested else NotInterested())

    def _fill_requests(self, key: PeerKey, peer: _Peer) -> None:
        core = peer.core
        if core.state is not PeerState.OPEN or core.peer_choking or not core.am_interested:
            return
        target = peer.queue_target
        if self.picker.has_deadlines or self._now < self._short_queues_until:
            # While a player waits, a short queue: what is queued delays its next block.
            target = max(MIN_QUEUE, min(target, int(peer.download.rate(self._now) * STREAMING_QUEUE_S / BLOCK_SIZE)))
        target = min(target, self._request_limit(peer))
        if core.peer_is_seed and self.picker.has_deadlines and self._spares_seed(peer):
            return  # rarest first from the other viewers only (see _spares_seed)
        room = target - len(core.our_requests)
        if room <= 0 or (room < target // REFILL_FRACTION and core.our_requests):
            return
        blocks = self.picker.pick(key, core.peer_has, room, has_all=core.peer_is_seed)
        if blocks:
            core.send_requests(blocks)

    # -- data ----------------------------------------------------------------------------

    def _count_download(self, peer: _Peer, size: int, now: float) -> None:
        """``size`` bytes of blocks came from ``peer`` in one read: its rate and queue follow."""
        peer.download.add(size, now)
        peer.last_block_at = now
        peer.is_snubbed = False
        self.downloaded += size
        rate = peer.download.rate(now)
        peer.queue_target = max(MIN_QUEUE, min(MAX_QUEUE, int(rate * REQUEST_QUEUE_TIME_S / BLOCK_SIZE) + 1))

    def _block_arrived(self, key: PeerKey, peer: _Peer, piece: Piece) -> list[Action]:
        index, begin = piece.index, piece.begin
        picker = self.picker
        if not picker.is_block_missing(index, begin):
            # A second copy (endgame, or a web seed was first): the first is kept. Writing it
            # would reopen a buffer for a piece already checked, or put a stranger's bytes
            # over a verified piece on disk.
            return []
        complete, others = picker.block_received(index, begin, key)
        senders = self._senders.get(index)
        if senders is None:
            senders = self._senders[index] = {}
        senders[begin // BLOCK_SIZE] = key
        for other in others:
            other_peer = self.peers.get(other)
            if other_peer is not None and other_peer.core.state is PeerState.OPEN:
                other_peer.core.send(Cancel(index, begin, len(piece.block)))
        if complete:
            return [WriteBlock(index, begin, piece.block), CheckPiece(index)]
        return [WriteBlock(index, begin, piece.block)]

    def webseed_piece(self, seed: PeerKey, index: int, data: bytes | bytearray, now: float) -> list[Action]:
        """A BEP 19 web seed delivered the whole of piece ``index``, and the caller matched
        ``data`` against the torrent's hashes (to blame the seed for a bad piece). The
        blocks still missing are taken, and the piece is written whole and counted once on
        disk (``WriteCheckedPiece``, then ``piece_checked``) rather than hashed again. Blocks
        that peers sent are replaced by the checked copy. When no block was missing, the
        peers' blocks are on their way to their own check, and nothing is done."""
        if len(data) != self.piece_size(index) or self.picker.have[index]:
            return []
        self.downloaded += len(data)
        complete = False
        for begin in range(0, len(data), BLOCK_SIZE):
            if not self.picker.is_block_missing(index, begin):
                continue
            complete, others = self.picker.block_received(index, begin, seed)
            for other in others:
                other_peer = self.peers.get(other)
                if other_peer is not None and other_peer.core.state is PeerState.OPEN:
                    other_peer.core.send(Cancel(index, begin, min(BLOCK_SIZE, len(data) - begin)))
        return [WriteCheckedPiece(index, data)] if complete else []

    def block_sent(self, key: PeerKey, index: int, size: int, now: float) -> None:
        """The I/O layer sent ``size`` bytes of piece ``index`` to ``key``."""
        peer = self.peers.get(key)
        if peer is not None:
            peer.upload.add(size, now)
        self.uploaded += size
        offered = self._offered.get(key)
        if offered is not None and index in offered and peer is not None:
            first_copy = not self._sent_once[index]
            if first_copy:
                self._first_copy_sent_at = now
            # Once the whole offered piece went out, offer the next one without waiting for
            # the peer's have: some clients (Transmission) announce pieces seconds late.
            progress = self._offer_progress.setdefault((key, index), 0) + size
            self._offer_progress[(key, index)] = progress
            if progress >= self.piece_size(index):
                del self._offer_progress[(key, index)]
                offered.discard(index)
                self._sent_once[index] = 1
                self._offer(key, peer, now)
                if first_copy:
                    self._offer_to_waiting_peers(now)

    def piece_checked(self, index: int, ok: bool, block_digests: list[bytes], now: float) -> list[Action]:
        """The disk layer hashed piece ``index``; ``block_digests`` are its blocks' SHA-1s."""
        self._now = now
        senders = self._senders.pop(index, {})
        actions: list[Action] = []
        if not ok:
            self.picker.piece_failed(index)
            culprits = set(senders.values())
            if len(culprits) == 1:
                culprit = culprits.pop()
                actions.append(BanPeer(culprit, f"sent every block of piece {index}, which failed its hash"))
            else:
                self._bad_blocks[index] = {
                    block: (sender, block_digests[block])
                    for block, sender in senders.items()
                    if block < len(block_digests)
                }
            return actions + self._after_bans(actions)
        suspects = self._bad_blocks.pop(index, {})
        for block, (sender, digest) in suspects.items():
            if block < len(block_digests) and block_digests[block] != digest:
                actions.append(BanPeer(sender, f"sent a corrupt block of piece {index}"))
        self.picker.piece_verified(index)
        actions.append(PieceVerified(index))
        for peer in self.peers.values():
            if peer.core.state is PeerState.OPEN:
                if index in peer.counted_pieces or peer.is_seed_counted:
                    peer.wanted_pieces -= 1
                peer.core.send(Have(index))
                self._update_interest(peer)
            elif peer.knows_our_pieces and peer.core.state is PeerState.AWAITING_BITFIELD:
                # Its bitfield came before this piece and its own has not come yet: without
                # this HAVE it would never learn of the piece (a viewer stalled for good on
                # the pieces its only source verified in that gap).
                peer.core.send(Have(index))
        actions += self._check_finished()
        self._fill_deadline_requests()
        for key, peer in self.peers.items():
            self._fill_requests(key, peer)
        return actions + self._after_bans(actions)

    def _after_bans(self, actions: list[Action]) -> list[Action]:
        for action in actions:
            if isinstance(action, BanPeer):
                self.remove_peer(action.peer)
        return []

    # -- time ----------------------------------------------------------------------------

    @property
    def needs_tick(self) -> bool:
        """Whether ``tick`` has anything to do: peers to snub, fill, choke or send PEX to,
        offers to make, deadlines to chase."""
        return bool(self.peers or self._offered or self.picker.has_deadlines)

    def tick(self, now: float) -> list[Action]:
        """Snubbing and the periodic choking round."""
        self._now = now
        if not self.peers and not self._offered and not self.picker.has_deadlines:
            # Nothing to snub, fill, offer or send PEX to: only the choker's clock moves (a
            # daemon ticks a thousand such seeds a second, so this stays short).
            if self.choker.is_due(now):
                self._choke_round(now)
            return []
        self._fill_deadline_requests()  # late pieces: a second peer
        for key, peer in self.peers.items():
            peer.hash_answers = 0
            peer.block_hash_reads_this_tick = 0
            core = peer.core
            if core.state is not PeerState.OPEN:
                continue
            if core.our_requests and now - peer.last_block_at >= SNUB_TIMEOUT_S and not peer.is_snubbed:
                peer.is_snubbed = True
                peer.queue_target = 1
                for request in self.picker.requests_of(key):
                    self.picker.request_dropped(request, key)
                    core.send(Cancel(request.index, request.begin, request.length))
            self._fill_requests(key, peer)
            self._fill_hash_requests(key, peer, now)
        if self._offered:
            self._offer_to_waiting_peers(now)  # after a stall of the first copies
        if self.choker.is_due(now):
            self._choke_round(now)
        self._send_pex(now)
        return []

    def _choke_round(self, now: float) -> None:
        open_peers = {key: peer for key, peer in self.peers.items() if peer.core.state is PeerState.OPEN}
        rates = [
            PeerRates(
                key,
                peer.core.peer_interested,
                peer.download.rate(now),
                peer.upload.rate(now),
                peer.connected_at,
                peer.is_snubbed,
            )
            for key, peer in open_peers.items()
        ]
        if self._super_seeding():
            # Each peer can fetch only the pieces offered to it, so a choked peer holds its
            # offers back from the swarm: every interested peer gets a slot. Measured, one
            # seed and 16 downloaders: 39 s with eight slots, 35 s with all (bound 32 s).
            unchoke = frozenset(key for key, peer in open_peers.items() if peer.core.peer_interested)
            decision = ChokeDecision(unchoke, None)
        else:
            decision = self.choker.decide(rates, seeding=self.is_seeding, now=now)
        for key, peer in open_peers.items():
            core = peer.core
            if key in decision.unchoke and core.am_choking:
                core.send(Unchoke())
            elif key not in decision.unchoke and not core.am_choking:
                core.send(Choke())

    def stats(self, now: float) -> dict[str, float | int]:
        return {
            "pieces": self.picker.have_count,
            "num_pieces": self.num_pieces,
            "peers": len(self.peers),
            "seeds": sum(1 for peer in self.peers.values() if peer.core.peer_is_seed),
            "download_rate": sum(peer.download.rate(now) for peer in self.peers.values()),
            "upload_rate": sum(peer.upload.rate(now) for peer in self.peers.values()),
            "downloaded": self.downloaded,
            "uploaded": self.uploaded,
        }


def _fields(message: HashRequest) -> tuple[bytes, int, int, int, int]:
    return message.pieces_root, message.base_layer, message.index, message.length, message.proof_layers
