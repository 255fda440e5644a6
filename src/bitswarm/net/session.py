"""The asyncio runtime of the peer engine: a session, its listener and its torrents.

A ``Session`` owns the listening socket, the global rate limits and every
``TorrentRuntime``; a runtime owns one torrent's swarm core, its storage (behind a
single disk thread, so a piece is hashed only after its blocks are written), its
tracker announces, and its peer connections. Every task lives in a TaskGroup-like set
owned by what outlives it and is cancelled on close.

The resume file follows the disk: pieces verified before a flush are recorded after it,
atomically, every ``RESUME_PERIOD_S`` and at shutdown.

With ``port_mapping`` the session also asks the home router to forward its TCP listening
port and its UDP port (``bitswarm.net.portmap``: PCP or NAT-PMP, else UPnP IGD); trackers
and the DHT are then told the external TCP port (``announce_port``), and a change of it
(a mapping granted or lost) makes every torrent announce again at once.

Peers come from trackers and, for public torrents only (BEP 27), from the DHT (BEP 5) and
local service discovery (BEP 14). The session owns one DHT node (on the UDP port of its
listening port) and one LSD endpoint, each in a task of its own; each torrent runs a DHT
loop (announce, which also finds peers, every 15 to 20 minutes, sooner with a backoff
while it finds nobody), and the peers any source names go through
``TorrentRuntime.add_peers``, which dials within the peer limit. PEX (BEP 11) is the
swarm's: the peers it learns come back as ``ConnectPeers`` and go the same way.

A magnet link runs as a ``MagnetRuntime`` (``bitswarm.net.magnet``, in ``Session.magnets``)
until its info dictionary is in, then as a torrent like any other; ``route`` sends an
incoming connection to whichever of the two its info-hash names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import logging
import random
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bitswarm import __version__, merkle
from bitswarm.dht.bootstrap import DEFAULT_BOOTSTRAP
from bitswarm.engine.picker import BLOCK_SIZE
from bitswarm.engine.rate import TokenBucket
from bitswarm.engine.swarm import (
    DEFAULT_UPLOAD_SLOTS,
    Action,
    BanPeer,
    CheckPiece,
    ClosePeer,
    ConnectPeers,
    DownloadFinished,
    PeerSawOurAddress,
    PieceVerified,
    ReadBlockHashes,
    ServeBlock,
    Swarm,
    WriteBlock,
    WriteCheckedPiece,
)
from bitswarm.engine.upload_queue import UploadQueue
from bitswarm.engine.webseed import WebSeedState
from bitswarm.errors import BitswarmError, StorageError, TrackerError, UsageError
from bitswarm.external_address import ExternalAddressVote, Witness
from bitswarm.metainfo import FileEntry, Torrent, TorrentVersion
from bitswarm.net.dht import DHTService, open_dht
from bitswarm.net.events import (
    DEFAULT_EVENT_BACKLOG,
    EventStream,
    TorrentEvent,
    TorrentPaused,
    TorrentRemoved,
    TorrentResumed,
)
from bitswarm.net.http_client import http_get
from bitswarm.net.lsd import LocalDiscoveryService, open_local_discovery
from bitswarm.net.peer import PeerConnection
from bitswarm.net.portmap import PortMapped, PortMapper
from bitswarm.net.utp import UTPService, enlarge_buffers, sender_for
from bitswarm.net.webseed import run_webseed
from bitswarm.storage import resume
from bitswarm.storage.backend import FileStorage
from bitswarm.storage.hashing import PieceHasher
from bitswarm.storage.verify import piece_is_good, piece_owners
from bitswarm.tracker.announce import (
    AnnounceParams,
    AnnounceResult,
    SendDatagram,
    TrackerTiers,
    UdpAnnouncer,
    UdpState,
    decode_http_announce,
    http_announce_url,
    tracker_kind,
)
from bitswarm.tracker.swarm import Event
from bitswarm.wire.extension import NO_PEX_EXTENSION_IDS, OUR_EXTENSION_IDS, UT_PEX
from bitswarm.wire.hashes import HashFetch, HashServe, PieceLayerReceived, V2File
from bitswarm.wire.messages import Piece, Port
from bitswarm.wire.mse import EncryptionPolicy
from bitswarm.wire.peer import HandshakeCompleted, PeerProtocol, PeerState

if TYPE_CHECKING:
    from bitswarm.magnet import Magnet
    from bitswarm.net.magnet import MagnetRuntime
    from bitswarm.stream.reader import FileReader

log = logging.getLogger("bitswarm.session")

MAX_PEERS_PER_TORRENT = 60
CONNECT_TIMEOUT_S = 10.0
# Addresses remembered as having no uTP (oldest forgotten first).
MAX_TCP_ONLY_PEERS = 4096
# How long a dial waits for a uTP answer before it tries TCP as well, as Happy Eyeballs
# (RFC 8305) waits between address families: a uTP SYN-ACK takes one round trip, a peer
# without uTP never sends one, and a TCP handshake that then finishes first wins.
UTP_HEAD_START_S = 0.25
# The same on this machine or the local network, where a round trip takes well under a
# millisecond: a peer there that speaks uTP has answered long before.
UTP_LOCAL_HEAD_START_S = 0.05
TICK_S = 1.0
RESUME_PERIOD_S = 10.0
# Written but unhashed data allowed in the disk queue before peers stop being read.
MAX_DISK_BACKLOG_BYTES = 64 << 20
# Threads hashing web seeds' pieces in memory: two keep hashing while one waits for the GIL
# between pieces (a GiB from nginx on loopback, in-process: 1.27-1.40 s against 1.33-1.51 s
# with one, alternated four times).
HASH_THREADS = 2
RETRY_ANNOUNCE_S = 60.0
STOP_ANNOUNCE_TIMEOUT_S = 5.0
# Unfinished pieces gathered in memory per torrent before blocks go straight to disk.
MAX_BUFFERED_BYTES = 64 << 20
# A read from a peer: as much as a fast peer's socket buffer holds, for one pass of the
# engine over many blocks.
READ_BUFFER_BYTES = 1 << 20
# An incoming connection must name its torrent within this time.
HANDSHAKE_TIMEOUT_S = 10.0
# Blocks read in one trip to a reader thread when no rate limit applies (1 MiB).
UPLOAD_BATCH_BLOCKS = 64
# Addresses that dropped our MSE handshake, dialled in plain text from then on.
MAX_PLAINTEXT_PEERS = 4096
# DHT announces: BEP 5 nodes forget a peer after 30 minutes, so every 15 to 20 (a random
# share of the five spreads many torrents' announces); while a search finds nobody, again
# after 5 s, doubling up to 5 minutes.
DHT_ANNOUNCE_INTERVAL_S = 15 * 60.0
DHT_ANNOUNCE_JITTER_S = 5 * 60.0
DHT_RETRY_MIN_S = 5.0
DHT_RETRY_MAX_S = 300.0
DHT_LOOKUP_TIMEOUT_S = 60.0
# The routing table is saved this often (and at close), and the node re-joins through the
# bootstrap nodes when its table is empty.
DHT_SAVE_INTERVAL_S = 300.0


# Azureus-style client code: "BS" is BTSlave's and "BW" BitWombat's; "SW" is free.
CLIENT_CODE = "SW"


def new_peer_id() -> bytes:
    """'-SW0100-' and 12 random URL-safe characters (a fresh one per session)."""
    return f"-{CLIENT_CODE}{__version__.replace('.', '')[:4]:0<4}-".encode() + secrets.token_urlsafe(9)[:12].encode()


@dataclass
class TorrentOptions:
    max_up: float = 0.0
    max_down: float = 0.0
    sequential: bool = False
    # Index of each file in torrent.files -> wanted; None: every file.
    wanted_files: set[int] | None = None
    # Index of a file in torrent.files -> FILE_PRIORITY_HIGH, _NORMAL (the default for a
    # file not named) or _LOW: the picker fetches the pieces of high files first, then
    # normal, then low. None: one class, plain rarest first (what `bitswarm get` does).
    file_priorities: dict[int, int] | None = None
    # BEP 16 super-seeding while we seed; None: on when an upload limit applies.
    super_seed: bool | None = None
    # BEP 11 peer exchange (never for a private torrent, BEP 27).
    pex: bool = True
    # Peers we upload to at once (one of them the optimistic unchoke); a super-seed uses more.
    upload_slots: int = DEFAULT_UPLOAD_SLOTS
    # BEP 19: fetch pieces from the torrent's web seeds (url-list, a magnet link's ws).
    web_seeds: bool = True
    # Where the resume data goes; None: ``.bitswarm-resume/`` in the download folder.
    resume_dir: Path | None = None


# File priorities as Transmission numbers them (tr_priority_t), and the picker's piece
# priority for each (0 is "not wanted"; a piece shared by files takes the highest).
FILE_PRIORITY_LOW = -1
FILE_PRIORITY_NORMAL = 0
FILE_PRIORITY_HIGH = 1
_PIECE_PRIORITY = {FILE_PRIORITY_LOW: 1, FILE_PRIORITY_NORMAL: 2, FILE_PRIORITY_HIGH: 3}
# Without file priorities every wanted piece has this one (the picker's default class).
_PIECE_PRIORITY_PLAIN = 1


# A tracker's answer as shown to a user: longer failure texts are cut.
MAX_ANSWER_CHARS = 300


@dataclass(frozen=True, slots=True)
class TrackerAnswer:
    """A tracker's last answer to an announce: when (epoch seconds), whether it succeeded,
    and what it said (the peer count and interval, or the error)."""

    at: float
    succeeded: bool
    text: str


class TorrentRuntime:
    def __init__(self, session: Session, torrent: Torrent, folder: Path, options: TorrentOptions) -> None:
        if options.upload_slots < 1:
            raise UsageError(f"upload slots: {options.upload_slots}; at least 1")
        self.session = session
        self.torrent = torrent
        self.folder = folder
        self.options = options
        # BEP 52: a v2-only torrent goes by its SHA-256 truncated to 20 bytes on the wire,
        # to trackers and in the DHT; a hybrid by its v1 hash (the v2 one is announced too).
        self.info_hash = torrent.info_hash_v1 or (torrent.info_hash_v2 or b"")[:20]
        # BEP 52: a hybrid is in two swarms, the v1 one and the one of its truncated v2
        # hash; it is announced under both, and a peer may connect with either.
        self.alias = (torrent.info_hash_v2 or b"")[:20] if torrent.version is TorrentVersion.HYBRID else None
        # v2 pieces are checked against merkle hashes, each inside one file (BEP 52): a
        # v2-only torrent's alone, a hybrid's as well as its SHA-1s.
        self.is_v2_only = not torrent.has_v1
        self._owners = piece_owners(torrent) if torrent.has_v2 else {}
        now = time.monotonic()
        wanted = options.wanted_files
        self.wanted_entries = {
            id(entry) for position, entry in enumerate(torrent.files) if wanted is None or position in wanted
        }
        self.storage = FileStorage(
            torrent.files,
            torrent.piece_length,
            folder,
            is_wanted=lambda entry: id(entry) in self.wanted_entries,
            parts_name=self.info_hash.hex(),
            cpu_clock=time.thread_time_ns,
        )
        # The session's disk thread writes and hashes, so a piece is hashed after its blocks
        # are written; its reader thread serves verified pieces through handles of its own.
        self.disk = session.disk
        self.readers = session.readers
        self.hashers = session.hashers
        self.hash_threads = HASH_THREADS
        self.read_storage = self.storage.twin()
        # Set while the disk thread's backlog is short enough to take more (``_add_backlog``).
        self.disk_caught_up = asyncio.Event()
        self.disk_caught_up.set()
        self.swarm: Swarm | None = None
        self.peers: set[PeerConnection] = set()
        self.known_addresses: set[tuple[str, int]] = set()
        self.banned: set[str] = set()
        self.closed_reasons: dict[str, int] = {}
        self.up_limit = TokenBucket(options.max_up, now)
        self.down_limit = TokenBucket(options.max_down, now)
        self.finished = asyncio.Event()
        self.paused = True  # until start()
        self.disk_backlog = 0
        # Unfinished pieces gathered in memory, and piece buffers kept for reuse.
        self._buffers: dict[int, _PieceBuffer] = {}
        self._spare_buffers: list[bytearray] = []
        self._unbuffered: set[int] = set()
        self._buffered_bytes = 0
        self._reading_paused = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # Requests to serve; a task drains them while there are any (none idles per torrent).
        self._uploads: UploadQueue[PeerConnection, ServeBlock] = UploadQueue()
        self._uploader: asyncio.Task[Any] | None = None
        resume_dir = options.resume_dir if options.resume_dir is not None else folder / resume.RESUME_FOLDER
        self.resume_path = resume_dir / f"{self.info_hash.hex()}.resume"
        self._resume_dirty = False
        self._tiers = TrackerTiers(torrent.trackers, session.rng)
        # Each tracker's last answer, for the daemon's pages: URL -> what it said (one per
        # tracker of the torrent, so bounded by the metainfo).
        self.tracker_answers: dict[str, TrackerAnswer] = {}
        self._completed_announce: asyncio.Task[AnnounceResult] | None = None
        self._subscribers: list[EventStream] = []
        self._checks: set[asyncio.Task[Any]] = set()
        # Connections whose BEP 5 PORT message we acted on.
        self._dht_pinged: set[PeerConnection] = set()
        # Bytes of verified-hash pieces that BEP 19 web seeds delivered.
        self.webseed_bytes = 0
        # Each web seed's standing (backoff, ban), kept across pause and resume.
        self.webseed_states: dict[str, WebSeedState] = {}
        # Stream readers waiting for a piece: woken when it is verified.
        self._piece_waiters: dict[int, list[asyncio.Future[None]]] = {}
        # Set when a deadline is set: a web seed idling for want of pieces looks again.
        self.deadlines_changed = asyncio.Event()

    # -- start and stop ----------------------------------------------------------------

    async def start(self, *, paused: bool = False) -> None:
        """Find the verified pieces (the resume data, then a hash of what else is on disk)
        and take peers, or stay paused until ``resume`` (no announce is sent)."""
        have = await self._run_disk(self._find_verified_pieces)
        await self._run_disk(self.storage.create_empty_files)
        priorities = self._piece_priorities()
        hash_serve, hash_fetch = self._hash_cores()
        if hash_fetch is not None:
            # Pieces whose hashes are not in yet wait for them (BEP 52 hash requests).
            for root in hash_fetch.wanted_roots():
                for index in self._pieces_of_root(root):
                    priorities[index] = 0
        self.swarm = Swarm(
            num_pieces=self.torrent.num_pieces,
            piece_size=self.request_size,
            have=have,
            rng=self.session.rng,
            now=time.monotonic(),
            priorities=priorities,
            upload_slots=self.options.upload_slots,
            super_seed=self._super_seed(),
            info=self.torrent.info,
            extension_ids=self.extension_ids,
            listen_port=self.session.port,
            hash_serve=hash_serve,
            hash_fetch=hash_fetch,
        )
        self.swarm.picker.sequential = self.options.sequential
        if self.swarm.is_seeding:
            self.finished.set()
        if not paused:
            self._start_tasks()

    def _start_tasks(self) -> None:
        self.paused = False
        self.session.wake(self)
        # Ticks and resume saving run in the session's loops, uploads in a task while any wait.
        if self.torrent.trackers:
            self.spawn(self._announce_loop())
        if self.is_public:
            if self.session.dht_enabled:
                self.spawn(self._dht_loop())
            if self.session.lsd is not None:
                self.session.lsd.add_torrent(self.info_hash)
        elif self.session.lsd is not None:
            # Announced while it was a magnet link, before its info said it is private.
            self.session.lsd.remove_torrent(self.info_hash)
        # BEP 19 web seeds, for a v2-only torrent too: pieces are checked by piece_matches,
        # and those whose piece layer is not in yet are held back as from peers.
        if self.options.web_seeds and not self.finished.is_set():
            for url in self.torrent.web_seeds:
                if url.startswith(("http://", "https://")):
                    state = self.webseed_states.setdefault(url, WebSeedState(url))
                    if not state.is_banned:
                        self.spawn(run_webseed(self, state))

    async def _stop_tasks(self) -> None:
        # A "completed" announce still on its way is let finish, within the stop announce's
        # limit, rather than cancelled: `get --no-seed` stops the moment the download ends,
        # and a tracker counts finished downloads only from that event (BEP 3).
        completed = self._completed_announce
        if completed is not None and not completed.done():
            with contextlib.suppress(TimeoutError, BitswarmError, OSError):
                await asyncio.wait_for(completed, STOP_ANNOUNCE_TIMEOUT_S)
        if self.session.lsd is not None and self.is_public:
            self.session.lsd.remove_torrent(self.info_hash)
        for peer in list(self.peers):
            peer.close("stopping")  # first, so no new piece starts its check during the stop
        # A piece being hashed finishes its check: cancelled, its bytes would reach the disk
        # with nobody told, and the picker would wait for that piece forever.
        checks = self._checks & self._tasks
        if checks:
            await asyncio.wait(checks)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, BitswarmError, OSError):
                await task
        self._uploads.clear()
        if self.torrent.trackers and self.swarm is not None:
            with contextlib.suppress(TimeoutError, BitswarmError, OSError):
                await asyncio.wait_for(self._announce_once(Event.STOPPED), STOP_ANNOUNCE_TIMEOUT_S)
        await self._save_resume()

    async def pause(self) -> None:
        """Disconnect every peer and stop announcing; verified pieces and the resume file stay."""
        if not self.paused:
            self.paused = True
            await self._stop_tasks()
            self._emit(TorrentPaused())

    def resume(self) -> None:
        """Announce again and take peers again after ``pause``."""
        if self.paused:
            self._start_tasks()
            self._emit(TorrentResumed())

    def events(self, backlog: int = DEFAULT_EVENT_BACKLOG) -> EventStream:
        """This torrent's events from now on (pieces verified, finished, paused, resumed,
        removed), as an async iterator; ``close()`` it to stop listening."""
        stream = EventStream(self._subscribers.remove, backlog)
        self._subscribers.append(stream)
        return stream

    def _emit(self, event: TorrentEvent) -> None:
        for stream in self._subscribers:
            stream.put(event)

    def _super_seed(self) -> bool:
        """Super-seed when asked, or by default when a rate limit makes our upload scarce."""
        if self.options.super_seed is not None:
            return self.options.super_seed
        return self.options.max_up > 0 or self.session.up_limit.rate > 0

    def _v2_files(self) -> list[V2File]:
        piece_length = self.torrent.piece_length
        return [
            V2File(entry.pieces_root, entry.length, entry.offset // piece_length)
            for entry in self.torrent.data_files()
            if entry.pieces_root is not None
        ]

    def _hash_cores(self) -> tuple[HashServe | None, HashFetch | None]:
        """BEP 52 hash requests: answered for any torrent with a v2 part (from the piece
        layers we hold); for a v2-only torrent without them (a magnet link's), fetched."""
        if not self.torrent.has_v2:
            return None, None
        files = self._v2_files()
        serve = HashServe(self.torrent.piece_length, files, dict(self.torrent.piece_layers))
        missing = [entry for entry in files if entry.pieces_root not in self.torrent.piece_layers]
        fetch = HashFetch(self.torrent.piece_length, missing) if self.is_v2_only else None
        return serve, fetch

    def _pieces_of_root(self, pieces_root: bytes) -> list[int]:
        return [
            index
            for entry in self.torrent.data_files()
            if entry.pieces_root == pieces_root
            for index in entry.piece_range(self.torrent.piece_length)
        ]

    def _layer_received(self, layer: PieceLayerReceived) -> None:
        """A piece layer proven by a peer: its file's pieces can be checked, so fetched."""
        assert self.swarm is not None
        layers = {**self.torrent.piece_layers, layer.pieces_root: layer.layer}
        self.torrent = dataclasses.replace(self.torrent, piece_layers=layers)
        priorities = self._piece_priorities()
        indices = self._pieces_of_root(layer.pieces_root)
        for priority in {priorities[index] for index in indices} or {0}:
            chosen = [index for index in indices if priorities[index] == priority]
            self.run_actions(self.swarm.set_priorities(chosen, priority))

    def _piece_priorities(self) -> list[int]:
        """Each piece's priority for the picker: 0 when no wanted file has it, else the
        highest class of the wanted files that have it (one class without file priorities)."""
        priorities = [0] * self.torrent.num_pieces
        by_file = self.options.file_priorities
        for position, entry in enumerate(self.torrent.files):
            if entry.is_pad or entry.symlink_target is not None or id(entry) not in self.wanted_entries:
                continue  # only data_files() hold content
            if by_file is None:
                value = _PIECE_PRIORITY_PLAIN
            else:
                value = _PIECE_PRIORITY[by_file.get(position, FILE_PRIORITY_NORMAL)]
            for index in entry.piece_range(self.torrent.piece_length):
                priorities[index] = max(priorities[index], value)
        return priorities

    def set_files(self, wanted: set[int] | None, priorities: dict[int, int] | None) -> None:
        """Which files to fetch (indices in ``torrent.files``; None: all) and their
        priorities (as ``TorrentOptions.file_priorities``), from now on: the picker's piece
        priorities follow, pieces whose v2 layer is still missing stay held back, and
        ``finished`` says whether every wanted piece is here. Raises UsageError for a file
        index outside the torrent or an unknown priority."""
        count = len(self.torrent.files)
        for index, value in (priorities or {}).items():
            if not 0 <= index < count or value not in _PIECE_PRIORITY:
                raise UsageError(f"file {index}: priority {value}; files 0 to {count - 1}, priorities -1, 0, 1")
        self.options = dataclasses.replace(self.options, wanted_files=wanted, file_priorities=priorities)
        self.wanted_entries = {
            id(entry) for position, entry in enumerate(self.torrent.files) if wanted is None or position in wanted
        }
        swarm = self.swarm
        if swarm is None:
            return  # start() reads them
        target = self._piece_priorities()
        if swarm.hash_fetch is not None:
            for root in swarm.hash_fetch.wanted_roots():
                for index in self._pieces_of_root(root):
                    target[index] = 0
        changes: dict[int, list[int]] = {}
        for index, value in enumerate(target):
            if swarm.picker.priority[index] != value:
                changes.setdefault(value, []).append(index)
        for value, indices in changes.items():
            self.run_actions(swarm.set_priorities(indices, value))
        if swarm.is_seeding:
            self.finished.set()
        else:
            self.finished.clear()

    def _find_verified_pieces(self) -> list[int]:
        """Pieces on disk: those the resume file names, plus any others whose data hashes right."""
        record = resume.load(self.resume_path, info_hash=self.info_hash, num_pieces=self.torrent.num_pieces)
        trusted = {index for index in range(self.torrent.num_pieces) if record is not None and record.has(index)}
        if not any(path.exists() for path in self._content_paths()):
            return sorted(trusted)
        torrent = self.torrent
        hasher = PieceHasher(torrent.files, torrent.piece_length, self.folder, v1=torrent.has_v1, v2=torrent.has_v2)
        found = set(trusted)
        for digest in hasher.hash_all(skip=trusted):
            if piece_is_good(torrent, digest, self._owners.get(digest.index)):
                found.add(digest.index)
        return sorted(found)

    def request_size(self, index: int) -> int:
        """Bytes of piece ``index`` we fetch from peers: the whole piece, except that a v2
        file's last piece stops at the block holding the file's last byte (the alignment
        gap after it is no data; its blocks are never requested)."""
        size = self.torrent.piece_size(index)
        owner = self._owners.get(index) if self.is_v2_only else None
        if owner is None:
            return size
        data = self._data_size(owner, index)
        return min(size, -(-data // BLOCK_SIZE) * BLOCK_SIZE)

    def _wire_piece_size(self, index: int) -> int:
        """How far into piece ``index`` a peer may request: libtorrent pads every v2 file,
        the last one too, to a piece boundary and asks for the blocks holding its end whole;
        what lies past the file reads as zeros."""
        return self.torrent.piece_length if self.is_v2_only else self.torrent.piece_size(index)

    def _data_size(self, owner: FileEntry, index: int) -> int:
        """Bytes of ``owner`` in piece ``index``."""
        start = index * self.torrent.piece_length
        return min(self.torrent.piece_length, owner.offset + owner.length - start)

    def piece_matches(self, index: int, data: bytes | bytearray | memoryview, sha1: bytes | None = None) -> bool:
        """Does ``data`` (piece ``index`` as fetched, ``request_size`` bytes) match the
        torrent's hashes? BEP 52: a hybrid's pieces must match both kinds. A v2 hash not
        known yet (a magnet link's piece layers not in) fails a v2-only piece (its pieces
        are not fetched before) and is not checked for a hybrid, which has its SHA-1.
        ``sha1``: the SHA-1 of ``data`` when the caller has it already."""
        torrent = self.torrent
        if torrent.has_v1 and (sha1 or hashlib.sha1(data).digest()) != torrent.v1_piece_hash(index):  # noqa: S324
            return False
        owner = self._owners.get(index)
        expected = torrent.v2_piece_hash(owner, index) if owner is not None else None
        if owner is None or expected is None:
            return torrent.has_v1
        piece = memoryview(data)[: self._data_size(owner, index)]
        return merkle.piece_root(piece, owner.length, torrent.piece_length) == expected

    def _content_paths(self) -> list[Path]:
        return [self.folder.joinpath(*entry.path) for entry in self.torrent.data_files()]

    async def close(self) -> None:
        if not self.paused:
            self.paused = True
            await self._stop_tasks()
        await asyncio.get_running_loop().run_in_executor(self.readers, self.read_storage.close)
        await self._run_disk(self.storage.close)
        self._emit(TorrentRemoved())
        self._subscribers.clear()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self.session.task_ended(task, "torrent task")

    def run_off_loop(self, function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run ``function`` in the session's disk thread (hashing, say), off the event loop."""
        return self._run_disk(function, *args)

    def hash_off_loop(self, function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run ``function`` (hashing pieces held in memory) in one of the session's
        ``HASH_THREADS`` hashing threads, beside the disk thread's writes. The caller bounds
        what it queues here, and waits for ``disk_caught_up`` before handing more to the
        disk thread."""
        return asyncio.get_running_loop().run_in_executor(self.hashers, function, *args)

    def _run_disk(self, function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return asyncio.get_running_loop().run_in_executor(self.disk, function, *args)

    # -- peers -------------------------------------------------------------------------

    def new_core(self, info_hash: bytes | None = None) -> PeerProtocol:
        """A core for a new connection; ``info_hash`` is the one an incoming peer named
        (a hybrid's v2 alias, say), which our handshake must repeat."""
        assert self.swarm is not None  # cores are made after start()
        return PeerProtocol(
            info_hash=info_hash or self.info_hash,
            peer_id=self.session.peer_id,
            num_pieces=self.torrent.num_pieces,
            piece_size=self._wire_piece_size,
            have_piece=self.swarm.has_piece,
            now=time.monotonic(),
            dht=self.is_public and self.session.dht is not None,
        )

    def accepts(self, connection: PeerConnection) -> bool:
        host = connection.address[0] if connection.address else ""
        room = len(self.peers) < MAX_PEERS_PER_TORRENT
        return self.swarm is not None and not self.paused and room and host not in self.banned

    def peer_joined(self, connection: PeerConnection) -> None:
        assert self.swarm is not None
        assert connection.core is not None
        self.peers.add(connection)
        self.session.wake(self)
        self.swarm.add_peer(
            connection,
            connection.core,
            time.monotonic(),
            address=connection.address,
            outgoing=connection.outgoing,
            encrypted=connection.crypto is not None,
        )

    def peer_gone(self, connection: PeerConnection) -> None:
        self.peers.discard(connection)
        self._dht_pinged.discard(connection)
        if connection.address is not None:
            self.known_addresses.discard(connection.address)
        if self.swarm is not None:
            self.swarm.remove_peer(connection)

    def count_close(self, reason: str) -> None:
        kind = reason.split(" ", 1)[0]
        self.closed_reasons[kind] = self.closed_reasons.get(kind, 0) + 1

    def handle(self, connection: PeerConnection, events: list[Any], now: float) -> None:
        assert self.swarm is not None
        if connection not in self.peers:
            return
        if any(isinstance(event, HandshakeCompleted) for event in events):
            if self._is_duplicate(connection):
                return
            # MSE is settled by now, also on connections we dialled (BEP 11's encryption flag).
            self.swarm.peers[connection].link.encrypted = connection.crypto is not None
        self.run_actions(self.swarm.handle(connection, events, now))
        if self.is_public and self.session.dht is not None:
            self._dht_port_messages(connection, events)

    def _dht_port_messages(self, connection: PeerConnection, events: list[Any]) -> None:
        """BEP 5: tell a peer that runs a DHT node where ours listens (after the messages
        the handshake called for), and ping the node a peer names in its PORT message."""
        dht = self.session.dht
        assert dht is not None
        for event in events:
            if isinstance(event, HandshakeCompleted) and event.supports_dht and connection.core is not None:
                connection.core.send(Port(dht.addresses[0][1]))
            elif isinstance(event, Port) and connection.address is not None and connection not in self._dht_pinged:
                self._dht_pinged.add(connection)  # one ping per connection, however many PORTs
                dht.ping((connection.address[0], event.port))

    def _is_duplicate(self, connection: PeerConnection) -> bool:
        """Two connections with one peer (both dialled at once, as PEX and the DHT make likely):
        keep the one dialled by the side with the lower peer id, as both sides decide alike.
        Returns True when ``connection`` was the one closed."""
        assert connection.core is not None
        remote = connection.core.remote_peer_id
        for other in self.peers:
            if other is connection or other.core is None or other.core.remote_peer_id != remote:
                continue
            keep_outgoing = self.session.peer_id < (remote or b"")
            same_way = connection.outgoing == other.outgoing
            loser = connection if same_way or connection.outgoing != keep_outgoing else other
            self.count_close("duplicate connection")
            loser.close("duplicate connection")
            self.peer_gone(loser)
            return loser is connection
        return False

    def download_delay(self, size: int, now: float) -> float:
        return self.down_limit.delay_for(size, now)

    async def connect(self, address: tuple[str, int]) -> None:
        """Open a connection to a peer (skipped when paused, full, banned or already known)."""
        full = len(self.peers) >= MAX_PEERS_PER_TORRENT
        if self.paused or full or address in self.known_addresses or address[0] in self.banned:
            return
        if address == ("127.0.0.1", self.session.port) or address[1] == 0:
            return
        self.known_addresses.add(address)
        policy = self.session.encryption
        encrypt = policy is EncryptionPolicy.REQUIRE or (
            policy is EncryptionPolicy.PREFER and address not in self.session.plaintext_peers
        )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self.session.dial(address, lambda: PeerConnection(self.session, self, address, encrypt=encrypt))
        except (OSError, TimeoutError):
            self.known_addresses.discard(address)

    @property
    def extension_ids(self) -> Mapping[str, int]:
        """The BEP 10 extensions we offer: ut_metadata always, ut_pex unless private or off."""
        return OUR_EXTENSION_IDS if self.is_public and self.options.pex else NO_PEX_EXTENSION_IDS

    @property
    def is_public(self) -> bool:
        """May this torrent use the DHT, LSD and PEX? Not when private (BEP 27)."""
        return not self.torrent.private

    def add_peers(self, addresses: Iterable[tuple[str, int]]) -> int:
        """Dial those of ``addresses`` that are new to us (from the DHT, LSD or PEX), as
        far as the peer limit allows; returns how many dials started. Nothing while paused."""
        if self.paused or self.swarm is None:
            return 0
        room = MAX_PEERS_PER_TORRENT - max(len(self.peers), len(self.known_addresses))
        started = 0
        for address in addresses:
            if started >= room:
                break
            if address in self.known_addresses or address[0] in self.banned or address[1] == 0:
                continue
            if self.session.is_own_address(address):
                continue
            self.spawn(self.connect(address))
            started += 1
        return started

    @property
    def dht_info_hashes(self) -> list[bytes]:
        """The hashes announced to the DHT: a hybrid's both (BEP 52), else the one."""
        return [self.info_hash] if self.alias is None else [self.info_hash, self.alias]

    async def _dht_loop(self) -> None:
        """Announce to the DHT (the search finds peers too) and dial whom it names."""
        session = self.session
        retry_s = DHT_RETRY_MIN_S
        while True:
            dht = await session.wait_for_dht()
            if dht is None:
                return  # no DHT in this session after all (the socket could not be bound)
            found = []
            for info_hash in self.dht_info_hashes:
                try:
                    found += await dht.announce(info_hash, session.announce_port, timeout_s=DHT_LOOKUP_TIMEOUT_S)
                except (TimeoutError, UsageError) as error:  # UsageError: too many searches at once
                    log.info("%s: DHT announce failed: %s", self.torrent.name, error or "timed out")
            peers = list(dict.fromkeys(address for address in found if not session.is_own_address(address)))
            self.add_peers(peers)
            has_nodes = dht.has_nodes
            # Announced somewhere, and either found someone or needs nobody: wait long.
            if has_nodes and (peers or self.finished.is_set()):
                retry_s = DHT_RETRY_MIN_S
                wait = DHT_ANNOUNCE_INTERVAL_S + session.rng.uniform(0.0, DHT_ANNOUNCE_JITTER_S)
            else:
                wait, retry_s = retry_s, min(retry_s * 2, DHT_RETRY_MAX_S)
            await asyncio.sleep(wait)

    # -- streaming: reading files while they download --------------------------------------

    def open(
        self, file: int | str | FileEntry, *, timeout_s: float | None = None, head_and_tail: bool = True
    ) -> FileReader:
        """A reader of one file (``bitswarm info``'s index, its path below the torrent's
        name, or its entry) that returns verified bytes only and, while open, makes the
        engine fetch the pieces under and ahead of its position first (and the file's
        first and last pieces, unless ``head_and_tail`` is False). Raises UsageError for a
        file the torrent does not have; see ``bitswarm.stream.reader.FileReader``."""
        # The reader sits above this layer (it only uses a PieceSource); imported here so
        # that the engine's runtime does not depend on the streaming package.
        from bitswarm.stream.reader import DEFAULT_TIMEOUT_S, FileReader  # noqa: PLC0415

        if self.swarm is None:
            raise UsageError(f"{self.torrent.name}: not started")
        entry = self.file_entry(file)
        timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        return FileReader(self, entry, timeout_s=timeout_s, head_and_tail=head_and_tail)

    def file_entry(self, file: int | str | FileEntry) -> FileEntry:
        """The data file ``file`` names (an index into ``data_files()``, a path or name as
        ``Torrent.data_file_index`` takes, or the entry itself); raises UsageError when
        there is none."""
        files = list(self.torrent.data_files())
        if isinstance(file, FileEntry):
            if not any(entry is file for entry in files):
                raise UsageError(f"{self.torrent.name}: not a file of this torrent")
            return file
        if isinstance(file, int):
            if not 0 <= file < len(files):
                raise UsageError(f"{self.torrent.name}: files are 0 to {len(files) - 1}, not {file}")
            return files[file]
        index = self.torrent.data_file_index(file)
        if index is None:
            raise UsageError(f"{self.torrent.name}: no file {file!r}")
        return files[index]

    def has_piece(self, index: int) -> bool:
        return self.swarm is not None and self.swarm.has_piece(index)

    def set_deadlines(self, owner: object, deadlines: dict[int, float]) -> None:
        """A reader's window (``Swarm.set_deadlines``); the requests go out at once."""
        if self.swarm is None:
            return
        fetch = self.swarm.hash_fetch
        if fetch is not None:
            # A v2 piece whose layer is not in cannot be checked: it waits, as for any download.
            unproven = {index for root in fetch.wanted_roots() for index in self._pieces_of_root(root)}
            deadlines = {index: due for index, due in deadlines.items() if index not in unproven}
        self.swarm.set_deadlines(owner, deadlines, time.monotonic())
        self.session.wake(self)
        self.deadlines_changed.set()
        self.run_actions([])  # flushes the requests

    def clear_deadlines(self, owner: object) -> None:
        if self.swarm is not None:
            self.swarm.clear_deadlines(owner, time.monotonic())

    async def wait_for_piece(self, index: int) -> None:
        """Return once piece ``index`` is verified."""
        if self.has_piece(index):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._piece_waiters.setdefault(index, [])
        waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done() or waiter.cancelled():
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
                if not waiters:
                    self._piece_waiters.pop(index, None)

    async def read_verified(self, index: int, begin: int, length: int) -> bytes:
        """Bytes of verified piece ``index``, read back from the disk in the reader thread;
        raises UsageError for a piece that is not verified, StorageError when unreadable."""
        if not self.has_piece(index):
            raise UsageError(f"piece {index} is not verified")
        data: bytes = await asyncio.get_running_loop().run_in_executor(
            self.readers, self.read_storage.read_block, index, begin, length
        )
        return data

    # -- actions -------------------------------------------------------------------------

    def run_actions(self, actions: list[Action]) -> None:
        checked: list[WriteCheckedPiece] = []
        for action in actions:
            if type(action) is WriteBlock:
                self._take_block(action)
            elif type(action) is ServeBlock:
                self._uploads.push(action.peer, action.index, action)  # type: ignore[arg-type]
                if self._uploader is None or self._uploader.done():
                    self._uploader = self.spawn(self._upload_loop())
            elif isinstance(action, CheckPiece):
                self._track_check(self.spawn(self._check_piece(action.index)))
            elif isinstance(action, WriteCheckedPiece):
                checked.append(action)
            elif isinstance(action, BanPeer | ClosePeer):
                peer = action.peer
                assert isinstance(peer, PeerConnection)
                if isinstance(action, BanPeer) and peer.address is not None:
                    self.banned.add(peer.address[0])
                self.count_close(action.reason)
                peer.close(action.reason)
            elif isinstance(action, PieceLayerReceived):
                self._layer_received(action)
            elif isinstance(action, ReadBlockHashes):
                self.spawn(self._serve_block_hashes(action))
            elif isinstance(action, PieceVerified):
                self._resume_dirty = True
                self.session.resume_due(self)
                self._emit(action)
                for waiter in self._piece_waiters.pop(action.index, ()):
                    if not waiter.done():
                        waiter.set_result(None)
            elif isinstance(action, ConnectPeers):
                if UT_PEX in self.extension_ids:
                    self.add_peers(action.addresses)
            elif isinstance(action, PeerSawOurAddress):
                self.session.external_address.vote(Witness.PEER, action.peer_host, action.address, time.monotonic())
            elif isinstance(action, DownloadFinished):
                self.finished.set()
                self._spare_buffers.clear()
                self._emit(action)
                if self.torrent.trackers:
                    self._completed_announce = self.spawn(self._announce_once(Event.COMPLETED))
        if checked:
            # A web seed's run of pieces in one trip to the disk thread, not one each.
            self._track_check(self.spawn(self._write_checked_pieces(checked)))
        for peer in list(self.peers):
            peer.flush()

    def _track_check(self, check: asyncio.Task[Any]) -> None:
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)

    def _take_block(self, block: WriteBlock) -> None:
        """Gather a piece's blocks in memory, so it is hashed and written in one disk trip.

        Past ``MAX_BUFFERED_BYTES`` of unfinished pieces, blocks go straight to disk instead
        and the piece is read back to be hashed.
        """
        # Each block is copied once, from the read it came in (the codec hands a view of
        # it) into a piece buffer reused from piece to piece: no allocation per block or
        # piece, and the disk thread hashes and writes the buffer as it is.
        buffer = self._buffers.get(block.index)
        if buffer is None and block.index not in self._unbuffered:
            size = self.request_size(block.index)
            if self._buffered_bytes + size <= MAX_BUFFERED_BYTES:
                buffer = self._buffers[block.index] = _PieceBuffer(
                    self._new_piece_buffer(),
                    size,
                    sha1=hashlib.sha1() if self.torrent.has_v1 else None,  # noqa: S324
                )
                self._buffered_bytes += size
            else:
                self._unbuffered.add(block.index)
        if buffer is not None:
            begin, data = block.begin, block.data
            size = len(data)
            buffer.data[begin : begin + size] = data
            buffer.filled += size
            sha1 = buffer.sha1
            if sha1 is not None:
                if begin == buffer.hashed and not buffer.early:  # in order: nearly always
                    sha1.update(data)
                    buffer.hashed += size
                else:
                    self._hash_ahead(buffer, begin, data)
            return
        data = bytes(block.data)  # the disk queue holds a copy, not the whole read
        self._add_backlog(len(data))
        future = self._run_disk(self.storage.write_block, block.index, block.begin, data)
        future.add_done_callback(self._written(len(data)))  # type: ignore[attr-defined]

    @staticmethod
    def _hash_ahead(buffer: _PieceBuffer, begin: int, data: bytes | memoryview) -> None:
        """Hash the block at ``begin`` now, while it is in the cache, if the piece's hash has
        reached it, and the blocks after it that came early; else keep it for later. (The
        disk thread would read the piece back from memory, at twice the cost; libtorrent
        sends blocks in the order its disk reads finish, not always as asked.)"""
        assert buffer.sha1 is not None
        if begin != buffer.hashed:
            buffer.early[begin] = len(data)
            return
        buffer.sha1.update(data)
        buffer.hashed += len(data)
        early = buffer.early
        while buffer.hashed in early:
            length = early.pop(buffer.hashed)
            with memoryview(buffer.data) as whole:
                buffer.sha1.update(whole[buffer.hashed : buffer.hashed + length])
            buffer.hashed += length

    def _new_piece_buffer(self) -> bytearray:
        return self._spare_buffers.pop() if self._spare_buffers else bytearray(self.torrent.piece_length)

    def _recycle(self, buffer: _PieceBuffer) -> None:
        """``buffer``'s piece is written (or dropped): keep its memory for the next piece
        while the download lasts, within ``MAX_BUFFERED_BYTES`` with the pieces gathering
        (a fresh buffer costs a page fault per 4 KiB)."""
        spare = (len(self._spare_buffers) + 1) * self.torrent.piece_length
        if not self.finished.is_set() and spare + self._buffered_bytes <= MAX_BUFFERED_BYTES:
            self._spare_buffers.append(buffer.data)

    def _written(self, size: int) -> Callable[[asyncio.Future[Any]], None]:
        def done(future: asyncio.Future[Any]) -> None:
            self._add_backlog(-size)
            if not future.cancelled() and future.exception() is not None:
                log.error("disk write failed: %s", future.exception())

        return done

    async def _check_piece(self, index: int) -> None:
        assert self.swarm is not None
        buffer = self._buffers.pop(index, None)
        self._unbuffered.discard(index)
        queued = buffer.size if buffer is not None else 0
        self._buffered_bytes -= queued
        digests_wanted = self.swarm.needs_block_digests(index)
        self._add_backlog(queued)
        try:
            ok, digests = await self._run_disk(self._hash_piece, index, buffer, digests_wanted)
        finally:
            self._add_backlog(-queued)
        if buffer is not None:
            self._recycle(buffer)  # not when cancelled: the disk thread may still read it
        self.run_actions(self.swarm.piece_checked(index, ok, digests, time.monotonic()))

    async def _write_checked_pieces(self, pieces: list[WriteCheckedPiece]) -> None:
        """Write pieces whose hashes matched already (a web seed's), in one trip to the
        disk thread, and report each checked."""
        swarm = self.swarm
        assert swarm is not None
        for piece in pieces:
            # Blocks peers sent of it are dropped: the checked copy replaces them, and blocks
            # already written go first on the one disk thread, so the copy lands last.
            dropped = self._buffers.pop(piece.index, None)
            if dropped is not None:
                self._buffered_bytes -= dropped.size
                self._recycle(dropped)
            self._unbuffered.discard(piece.index)
        writes = [(piece.index, piece.data, swarm.needs_block_digests(piece.index)) for piece in pieces]
        size = sum(len(piece.data) for piece in pieces)
        self._add_backlog(size)
        try:
            digests = await self._run_disk(self._write_pieces, writes)
        finally:
            self._add_backlog(-size)
        now = time.monotonic()
        actions: list[Action] = []
        for piece, piece_digests in zip(pieces, digests, strict=True):
            actions += swarm.piece_checked(piece.index, True, piece_digests, now)
        self.run_actions(actions)

    def _write_pieces(self, writes: list[tuple[int, bytes | bytearray, bool]]) -> list[list[bytes]]:
        """Write each (index, data, block digests wanted), and start the writeback of each
        stretch of consecutive whole pieces in one call (a run's pieces: one call); the
        block digests of each."""
        digests = []
        piece_length = self.torrent.piece_length
        first, length = -1, 0  # the stretch written and not yet handed to writeback
        for index, data, block_digests in writes:
            self.storage.write_block(index, 0, data)
            if first >= 0 and length % piece_length == 0 and index == first + length // piece_length:
                length += len(data)
            else:
                if first >= 0:
                    self.storage.start_writeback(first, length)
                first, length = index, len(data)
            digests.append(_block_digests(data) if block_digests else [])
        if first >= 0:
            self.storage.start_writeback(first, length)
        return digests

    def _add_backlog(self, size: int) -> None:
        """Track bytes waiting for the disk thread; stop reading peers while it is too far behind."""
        self.disk_backlog += size
        if size > 0 and self.disk_backlog > MAX_DISK_BACKLOG_BYTES and not self._reading_paused:
            self._reading_paused = True
            self.disk_caught_up.clear()
            for peer in self.peers:
                if peer.transport is not None:
                    peer.transport.pause_reading()
        elif size < 0 and self._reading_paused and self.disk_backlog <= MAX_DISK_BACKLOG_BYTES // 2:
            self._reading_paused = False
            self.disk_caught_up.set()
            for peer in self.peers:
                if peer.transport is not None and not peer.transport.is_closing():
                    peer.transport.resume_reading()

    def _hash_piece(self, index: int, buffer: _PieceBuffer | None, block_digests: bool) -> tuple[bool, list[bytes]]:
        """(hash matches, SHA-1 per block when the smart ban needs them: on failure or on request).

        A piece gathered in memory is written only once its hash matches; otherwise its
        blocks are on disk already and are read back.
        """
        size = self.request_size(index)
        data: bytes | memoryview
        sha1 = None
        if buffer is not None:
            if buffer.filled != size:
                return False, []  # cannot happen for a piece the picker calls complete
            data = memoryview(buffer.data)[:size]
            if buffer.sha1 is not None:
                buffer.sha1.update(data[buffer.hashed :])
                sha1 = buffer.sha1.digest()
        else:
            try:
                data = self.storage.read_block(index, 0, size)
            except StorageError:
                return False, []
        ok = self.piece_matches(index, data, sha1)
        if ok and buffer is not None:
            self.storage.write_block(index, 0, data)
        if ok and not block_digests:
            return True, []
        return ok, _block_digests(data)

    async def _upload_loop(self) -> None:
        """Serve queued requests in batches: one disk-thread round trip for many blocks."""
        while self._uploads:
            # Wait for the rate limits before choosing what to send: requests that come
            # meanwhile may be due sooner than those waiting now.
            limit = self._upload_batch_limit()
            now = time.monotonic()
            room = limit * BLOCK_SIZE
            delay = max(self.session.up_limit.wait_s(room, now), self.up_limit.wait_s(room, now))
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            assert self.swarm is not None
            # The pieces a player needs soonest first (Swarm.upload_rank).
            batch = self._uploads.pop_batch(limit, functools.partial(self.swarm.upload_rank, now=now))
            wanted = [(connection, request) for connection, request in batch if self._still_wanted(connection, request)]
            if not wanted:
                continue
            size = sum(request.length for _, request in wanted)
            self.session.up_limit.delay_for(size, now)  # no wait: the tokens are there
            self.up_limit.delay_for(size, now)
            spans = [(request.index, request.begin, request.length) for _, request in wanted]
            blocks = await asyncio.get_running_loop().run_in_executor(self.readers, self._read_blocks, spans)
            assert self.swarm is not None
            touched = set()
            for (connection, request), block in zip(wanted, blocks, strict=True):
                if block is None:
                    connection.close("cannot read a block we offered")
                elif self._still_wanted(connection, request):
                    assert connection.core is not None  # checked by _still_wanted
                    connection.core.send(Piece(request.index, request.begin, block))
                    self.swarm.block_sent(connection, request.index, len(block), now)
                    touched.add(connection)
            for connection in touched:
                connection.flush()

    async def _serve_block_hashes(self, action: ReadBlockHashes) -> None:
        """BEP 52 block hashes for a peer: its pieces read and hashed in the reader thread,
        as uploads are read; the swarm's hash core builds the answer from the hashes."""
        hashes = await asyncio.get_running_loop().run_in_executor(
            self.readers, self._read_block_hashes, action.read.pieces
        )
        if self.swarm is not None:
            self.swarm.block_hashes_read(action.peer, action.read, hashes)
            self.run_actions([])  # flushes the answer

    def _read_block_hashes(self, pieces: range) -> list[list[bytes]] | None:
        """Each piece's block hashes (its file's bytes only), or None if one cannot be read."""
        hashes = []
        for index in pieces:
            owner = self._owners.get(index)
            if owner is None:
                return None
            try:
                data = self.read_storage.read_block(index, 0, self._data_size(owner, index))
            except StorageError:
                return None
            hashes.append(merkle.block_hashes(data))
        return hashes

    def _upload_batch_limit(self) -> int:
        # Under a rate limit a batch stays within the bucket's burst, so the limit holds closely.
        bursts = [bucket.burst for bucket in (self.up_limit, self.session.up_limit) if bucket.rate > 0]
        return max(1, int(min(bursts) // BLOCK_SIZE)) if bursts else UPLOAD_BATCH_BLOCKS

    def _still_wanted(self, connection: PeerConnection, request: ServeBlock) -> bool:
        core = connection.core
        key = (request.index, request.begin, request.length)
        return core is not None and connection in self.peers and key in core.peer_requests

    def _read_blocks(self, spans: list[tuple[int, int, int]]) -> list[bytes | memoryview | None]:
        """The blocks of ``spans`` (None for one that cannot be read). A run of blocks one
        after another in a piece, as peers ask for them, is one read, handed out as views."""
        blocks: list[bytes | memoryview | None] = []
        at = 0
        while at < len(spans):
            index, begin, length = spans[at]
            run_end, total = at + 1, length
            while run_end < len(spans) and spans[run_end][0] == index and spans[run_end][1] == begin + total:
                total += spans[run_end][2]
                run_end += 1
            run, at = spans[at:run_end], run_end
            try:
                data = self.read_storage.read_block(index, begin, total)
            except StorageError:
                # One unreadable block must not fail its neighbours: each is read alone.
                blocks += [self._read_block_or_none(*span) for span in run] if len(run) > 1 else [None]
                continue
            if len(run) == 1:
                blocks.append(data)
                continue
            whole, offset = memoryview(data), 0
            for _index, _begin, block_length in run:
                blocks.append(whole[offset : offset + block_length])
                offset += block_length
        return blocks

    def _read_block_or_none(self, index: int, begin: int, length: int) -> bytes | None:
        try:
            return self.read_storage.read_block(index, begin, length)
        except StorageError:
            return None

    def tick(self, now: float) -> None:
        """Keep-alives, timeouts, snubbing and choking; the session calls it every ``TICK_S``."""
        if self.swarm is None or self.paused:
            return
        if self.peers:
            for peer in list(self.peers):
                if peer.core is not None and peer.core.state is not PeerState.CLOSED and peer.core.tick(now):
                    peer.close("timed out")
        # Short for a torrent without peers (a seed at rest); run_actions also flushes what
        # the tick queued for each peer (PEX, choking), so it runs even with no actions.
        self.run_actions(self.swarm.tick(now))

    @property
    def needs_tick(self) -> bool:
        """Whether the session's tick has anything to do here: a torrent with no peers, no
        super-seed offers and no deadlines has nothing to time out, fill or choke until a peer
        or a deadline arrives (both wake it), so a thousand seeds at rest cost no tick."""
        return not self.paused and self.swarm is not None and bool(self.peers or self.swarm.needs_tick)

    async def save_resume_if_changed(self) -> None:
        if self._resume_dirty and not self.paused:
            await self._save_resume()

    async def _save_resume(self) -> None:
        if self.swarm is None:
            return
        self._resume_dirty = False
        # Snapshot first: what was verified before the flush is on disk after it.
        snapshot = resume.bitfield(self.swarm.picker.have, self.torrent.num_pieces)
        await self._run_disk(self.storage.flush)
        self.resume_path.parent.mkdir(parents=True, exist_ok=True)
        await self._run_disk(resume.save, self.resume_path, resume.ResumeData(self.info_hash, snapshot))

    # -- trackers ----------------------------------------------------------------------

    def _announce_params(self, event: Event) -> AnnounceParams:
        assert self.swarm is not None
        left = sum(
            self.torrent.piece_size(index)
            for index in range(self.torrent.num_pieces)
            if not self.swarm.picker.have[index] and self.swarm.picker.priority[index]
        )
        return AnnounceParams(
            info_hash=self.info_hash,
            peer_id=self.session.peer_id,
            port=self.session.announce_port,
            uploaded=self.swarm.uploaded,
            downloaded=self.swarm.downloaded,
            left=left,
            event=event,
            numwant=50,
            key=self.session.key,
        )

    async def _announce_loop(self) -> None:
        event = Event.STARTED
        while True:
            announced = self.session.announce_port
            try:
                result = await self._announce_once(event)
                event = Event.NONE
                wait = float(result.interval_s)
            except TrackerError as error:
                log.info("no tracker answered: %s", error)
                wait = RETRY_ANNOUNCE_S
            # Sooner when the router mapped our port (or lost the mapping): trackers must
            # hand out the port that reaches us.
            await self.session.wait_for_announce_port(announced, wait)

    async def _announce_once(self, event: Event) -> AnnounceResult:
        params = self._announce_params(event)
        errors = []
        for url in self._tiers.in_order():
            try:
                result = await self._announce_to(url, params)
            except TrackerError as error:
                errors.append(f"{url}: {error}")
                self.tracker_answers[url] = TrackerAnswer(time.time(), False, str(error)[:MAX_ANSWER_CHARS])
                continue
            self._tiers.succeeded(url)
            said = f"{len(result.peers)} peers, next announce in {result.interval_s} s"
            if result.warning:
                said += f"; warning: {result.warning}"
            self.tracker_answers[url] = TrackerAnswer(time.time(), True, said[:MAX_ANSWER_CHARS])
            self.session.tracker_saw_us(url, result)
            if event is not Event.STOPPED:
                for address in result.peers:
                    self.spawn(self.connect(address))
            return result
        raise TrackerError("; ".join(errors) or "no trackers")

    async def _announce_to(self, url: str, params: AnnounceParams) -> AnnounceResult:
        return await announce_to(url, params, self.session.rng)

    # -- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        assert self.swarm is not None
        stats: dict[str, Any] = dict(self.swarm.stats(time.monotonic()))
        stats["name"] = self.torrent.name
        stats["finished"] = self.finished.is_set()
        stats["size"] = self.torrent.total_size
        return stats


async def announce_to(url: str, params: AnnounceParams, rng: random.Random) -> AnnounceResult:
    """One announce to one tracker, HTTP or UDP; raises TrackerError when it fails."""
    if tracker_kind(url) == "http":
        status, body = await http_get(http_announce_url(url, params))
        if status != 200:
            raise TrackerError(f"HTTP status {status}")
        return decode_http_announce(body)
    return await _udp_announce(url, params, rng)


async def _udp_announce(url: str, params: AnnounceParams, rng: random.Random) -> AnnounceResult:
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise TrackerError(f"UDP tracker URL needs a host and port: {url}")
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                replies.put_nowait(data)

    try:
        transport, _ = await loop.create_datagram_endpoint(Receiver, remote_addr=(parts.hostname, parts.port))
    except OSError as error:
        raise TrackerError(str(error)) from None
    try:
        # No connection ID from an earlier announce: each announce has its own socket, and
        # a tracker may tie the ID to the source port (ours does; BEP 15 allows it), so
        # an old one is dropped in silence and costs a 15 s retry.
        announcer = UdpAnnouncer(params, rng)
        ipv6 = ":" in transport.get_extra_info("peername")[0]
        send: SendDatagram | None = announcer.start(time.monotonic(), ipv6=ipv6)
        deadline = time.monotonic()
        while send is not None or announcer.state in (UdpState.CONNECTING, UdpState.ANNOUNCING):
            if send is not None:
                transport.sendto(send.payload)
                deadline = send.retry_at
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    data = await replies.get()
                send = announcer.receive(data, time.monotonic())
            except TimeoutError:
                send = announcer.timeout(time.monotonic())
            if announcer.state in (UdpState.DONE, UdpState.FAILED):
                break
        if announcer.result is None:
            raise TrackerError(announcer.error or "no answer")
        return announcer.result
    finally:
        transport.close()


def _block_digests(data: bytes | bytearray | memoryview) -> list[bytes]:
    """The SHA-1 of each block of a piece (for the smart ban)."""
    view = memoryview(data)
    return [hashlib.sha1(view[at : at + BLOCK_SIZE]).digest() for at in range(0, len(data), BLOCK_SIZE)]  # noqa: S324


class Session:
    """Everything one bitswarm process shares between its torrents."""

    def __init__(
        self,
        *,
        port: int = 6881,
        host: str | None = None,
        max_up: float = 0.0,
        max_down: float = 0.0,
        strict: bool = False,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        encryption: EncryptionPolicy | str = EncryptionPolicy.PREFER,
        dht: bool = False,
        dht_bootstrap: Sequence[str] | None = None,
        dht_state_path: Path | None = None,
        lsd: bool = False,
        lsd_interface: str | None = None,
        port_mapping: bool = False,
        utp: bool = False,
        loopback_tcp_first: bool = True,
    ) -> None:
        """A session listening on ``host``:``port`` (port 0: any free port).

        ``dht`` runs a DHT node on the same port number over UDP, joining through the
        nodes saved in ``dht_state_path`` (saved there again periodically and at close)
        and, while its table is empty, ``dht_bootstrap`` (``HOST:PORT`` strings; None:
        the well-known routers of ``DEFAULT_BOOTSTRAP``, () none); ``lsd`` joins
        the local service discovery groups, on ``lsd_interface`` when given. Both serve
        public torrents only, and both are off unless asked for (the CLI asks).
        ``port_mapping`` opens the ports on the home router (off unless asked for: tests
        must send nothing to the real gateway). ``utp`` accepts uTP (BEP 29) connections on
        the UDP port (the DHT's socket when there is one) and dials peers over uTP first,
        falling back to TCP; a peer on this machine is dialled over TCP first unless
        ``loopback_tcp_first`` is False (tests of uTP itself).
        """
        try:
            self.encryption = EncryptionPolicy(encryption)
        except ValueError:
            choices = ", ".join(policy.value for policy in EncryptionPolicy)
            raise UsageError(f"encryption {encryption!r}: one of {choices}") from None
        # Connections closed before they reached a torrent, by the first word of the reason.
        self.closed_reasons: dict[str, int] = {}
        self.plaintext_peers: dict[tuple[str, int], None] = {}
        self.requested_port = port
        self.handshake_timeout_s = handshake_timeout_s
        self.host = host
        self.port = port
        self.peer_id = new_peer_id()
        self.key = random.getrandbits(32)
        now = time.monotonic()
        self.up_limit = TokenBucket(max_up, now)
        # One generator for every torrent's choices: a Mersenne Twister is 2.5 KiB, a sixth
        # of what a seeding torrent costs otherwise.
        self.rng = random.Random()
        self.down_limit = TokenBucket(max_down, now)
        self.strict = strict
        self.failures: list[BaseException] = []
        self.torrents: dict[bytes, TorrentRuntime] = {}
        # Magnet links still fetching their info dictionary, by the info-hash on the wire.
        self.magnets: dict[bytes, MagnetRuntime] = {}
        # BEP 52: a hybrid's truncated v2 hash -> the v1 hash it runs under (torrent or magnet).
        self.aliases: dict[bytes, bytes] = {}
        self.unrouted: set[PeerConnection] = set()
        # What every TCP peer connection reads into (PeerConnection.get_buffer).
        self.read_buffer = memoryview(bytearray(READ_BUFFER_BYTES))
        self._loops: list[asyncio.Task[None]] = []
        # The torrents the tick visits (insertion-ordered, so the shared rng is drawn in a
        # stable order): woken by a peer, a deadline or a resume, dropped by the tick once
        # they need nothing, so the tick's cost follows the active torrents, not all of them.
        self._ticking: dict[TorrentRuntime, None] = {}
        # The torrents with verified pieces not in their resume data yet.
        self._resume_pending: dict[TorrentRuntime, None] = {}
        # Told of every wake (the daemon watches such a torrent's transfers from then on).
        self.on_wake: Callable[[TorrentRuntime], None] | None = None
        # One writer and one reader thread for every torrent: a thread per torrent cost more
        # memory than the torrent itself (bench/RESULTS.md, 200 torrents).
        self.disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bitswarm-disk")
        self.readers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bitswarm-read")
        # Web seeds' pieces are hashed here, beside the disk thread's writes: on one thread
        # hashing and writing took turns, and a fast web seed waited on both.
        self.hashers = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="bitswarm-hash")
        self._server: asyncio.Server | None = None
        self.dht_enabled = dht
        self.dht_bootstrap = list(DEFAULT_BOOTSTRAP if dht_bootstrap is None else dht_bootstrap)
        self.dht_state_path = dht_state_path
        self.dht: DHTService | None = None
        # Set once the DHT has joined (or given up, or is off): torrents announce after it.
        self._dht_settled = asyncio.Event()
        self.lsd_enabled = lsd
        self.lsd_interface = lsd_interface
        self.lsd: LocalDiscoveryService | None = None
        # Our address as the internet sees it: trackers, peers, DHT nodes and the router vote.
        self.external_address = ExternalAddressVote()
        self.port_mapping_enabled = port_mapping
        self.port_mapper: PortMapper | None = None
        # The router's grant, as a plain value: its external address is one input of the
        # vote on our own address. ``on_port_mapped`` is told of every change.
        self.port_mapped: PortMapped | None = None
        self.on_port_mapped: Callable[[PortMapped | None], None] | None = None
        # Set, and replaced by a fresh one, whenever ``announce_port`` changes.
        self._announce_port_changed = asyncio.Event()

        self.utp_enabled = utp
        self.loopback_tcp_first = loopback_tcp_first
        self.utp: UTPService | None = None
        # Peers whose uTP dial went unanswered: dialled over TCP only from then on.
        self.tcp_only_peers: dict[tuple[str, int], None] = {}

    @property
    def announce_port(self) -> int:
        """The TCP port to tell trackers and the DHT: the router's external one when it
        mapped ours, else our listening port."""
        mapped = self.port_mapped
        return mapped.tcp_port if mapped is not None and mapped.tcp_port is not None else self.port

    async def wait_for_announce_port(self, announced: int, timeout_s: float) -> None:
        """Return after ``timeout_s``, or sooner once ``announce_port`` is no longer ``announced``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.announce_port == announced:
                    await self._announce_port_changed.wait()

    def _port_mapping_changed(self, mapped: PortMapped | None) -> None:
        before = self.announce_port
        self.port_mapped = mapped
        if mapped is not None and mapped.external_address is not None:
            # The router is one witness of our address, not the final word: behind a second
            # NAT its "external" address is another private one.
            self.external_address.vote(Witness.ROUTER, "router", mapped.external_address, time.monotonic())
        if self.announce_port != before:
            changed, self._announce_port_changed = self._announce_port_changed, asyncio.Event()
            changed.set()
        if self.on_port_mapped is not None:
            self.on_port_mapped(mapped)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: PeerConnection(self, None), self.host, self.requested_port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._loops = [loop.create_task(self._tick_loop()), loop.create_task(self._resume_loop())]
        # The DHT and LSD tasks return once their socket is open (or could not be), so a
        # torrent added next finds them.
        for run in (self._run_dht, self._run_lsd):
            opened: asyncio.Future[None] = loop.create_future()
            self._loops.append(loop.create_task(run(opened)))
            await asyncio.shield(opened)
        if self.port_mapping_enabled:
            # After the DHT, whose UDP port is mapped too (uTP shares it).
            udp_port = self.dht.addresses[0][1] if self.dht is not None and self.dht.addresses else None
            self.port_mapper = PortMapper(self.port, udp_port, self._port_mapping_changed, rng=self.rng)
            self._loops.append(loop.create_task(self.port_mapper.run()))
        for task in self._loops:
            task.add_done_callback(self._loop_ended)
        if self.utp_enabled:
            await self._open_utp()

    async def _open_utp(self) -> None:
        """uTP on the DHT's sockets when there is a DHT, else on a UDP socket of its own
        with the TCP port's number; without uTP (and a warning) when that cannot be bound."""
        service = UTPService(lambda: PeerConnection(self, None), strict=self.strict)
        if self.dht is not None:
            for family, transport in self.dht.transports.items():
                enlarge_buffers(transport)
                name = transport.get_extra_info("sockname")
                service.attach(family, sender_for(transport), (str(name[0]), int(name[1])))
            self.dht.foreign_datagram = service.datagram_received
        else:
            try:
                await service.bind(self.host or "0.0.0.0", self.port)  # noqa: S104 (as the TCP listener)
            except OSError as error:
                log.warning("uTP off: %s", error.strerror or error)
                return
        self.utp = service

    async def dial(self, address: tuple[str, int], protocol_factory: Callable[[], PeerConnection]) -> None:
        """Connect to a peer: over uTP first when it is on (as libtorrent does), over TCP
        when uTP is off or the peer does not answer it. A peer silent over uTP for
        ``UTP_HEAD_START_S`` (``UTP_LOCAL_HEAD_START_S`` on the local network) is dialled
        over TCP too, and the first connection made wins:
        waiting out uTP's three seconds of SYNs cost a stream from a TCP-only seed three
        seconds before its first byte. Raises OSError when neither works."""
        loop = asyncio.get_running_loop()
        if self.utp is None or address in self.tcp_only_peers:
            await loop.create_connection(protocol_factory, *address)
            return
        if self.loopback_tcp_first and _is_loopback(address[0]):
            # uTP yields to other traffic on a shared link; a peer on this machine shares
            # none with us, and the kernel's TCP is several times faster than uTP in Python.
            try:
                await loop.create_connection(protocol_factory, *address)
                return
            except OSError:
                pass  # refused: no TCP listener, maybe uTP alone
            await self.utp.open_connection(address, protocol_factory)
            return
        utp = loop.create_task(self.utp.open_connection(address, protocol_factory))
        tcp: asyncio.Task[tuple[asyncio.Transport, _HeldProtocol]] | None = None
        tcp_won = False
        try:
            head_start_s = UTP_LOCAL_HEAD_START_S if _on_local_network(address[0]) else UTP_HEAD_START_S
            done, _ = await asyncio.wait({utp}, timeout=head_start_s)
            if utp in done and utp.exception() is None:
                return
            tcp = loop.create_task(loop.create_connection(_HeldProtocol, *address))
            pending: set[asyncio.Task[Any]] = {utp, tcp}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if utp in done and utp.exception() is None:
                    return
                if tcp in done and tcp.exception() is None:
                    tcp_won = True
                    self._note_tcp_only(address)
                    _, held = tcp.result()
                    held.hand_over(protocol_factory())
                    return
            raise tcp.exception() or OSError(f"{address[0]}: no connection")
        finally:
            # Also when the dial itself is cancelled (its timeout, the session closing):
            # no attempt outlives it to connect a peer nobody waits for.
            for task in (utp, tcp):
                if task is not None and not task.done():
                    task.cancel()
            if tcp is not None and not tcp_won and tcp.done() and not tcp.cancelled() and tcp.exception() is None:
                tcp.result()[0].close()  # made after uTP won: not used

    def _note_tcp_only(self, address: tuple[str, int]) -> None:
        """``address`` did not answer uTP before TCP did: dial it over TCP alone from now on."""
        if len(self.tcp_only_peers) >= MAX_TCP_ONLY_PEERS:
            self.tcp_only_peers.pop(next(iter(self.tcp_only_peers)))
        self.tcp_only_peers[address] = None

    def _dht_binds(self, port: int) -> list[list[str]]:
        """Bind lists to try in turn: both families, then IPv4 alone."""
        if self.host:
            return [[f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"]]
        return [[f"0.0.0.0:{port}", f"[::]:{port}"], [f"0.0.0.0:{port}"]]

    async def _run_dht(self, opened: asyncio.Future[None]) -> None:
        """Run the session's DHT node until cancelled; ``opened`` is done once it listens
        (or once it is known it will not: off, or no socket could be bound)."""
        try:
            if not self.dht_enabled:
                return
            if self.dht_state_path is not None:
                self.dht_state_path.parent.mkdir(parents=True, exist_ok=True)
            # The UDP port of our TCP port, as peers expect; any free one if that is taken.
            attempts = [binds for port in (self.port, 0) for binds in self._dht_binds(port)]
            for number, binds in enumerate(attempts, start=1):
                try:
                    async with open_dht(
                        binds, self.dht_bootstrap, state_path=self.dht_state_path, join=False,
                        address_vote=self.external_address,
                    ) as dht:  # fmt: skip
                        self.dht = dht
                        opened.set_result(None)
                        await self._serve_dht(dht)
                    return
                except OSError as error:
                    if opened.done():  # the state file could not be saved at close
                        log.error("DHT routing table not saved: %s", error)
                        return
                    if number == len(attempts):
                        log.warning("DHT off: %s", error.strerror or error)
        except BitswarmError as error:  # a bad bootstrap endpoint (the CLI checks them first)
            log.warning("DHT off: %s", error)
        finally:
            self.dht = None
            self._dht_settled.set()
            if not opened.done():
                opened.set_result(None)

    async def _serve_dht(self, dht: DHTService) -> None:
        if dht.can_bootstrap:
            await self._join_dht(dht)
        self._dht_settled.set()
        while True:
            await asyncio.sleep(DHT_SAVE_INTERVAL_S)
            if dht.can_bootstrap and not dht.has_nodes:
                with contextlib.suppress(TimeoutError):
                    await dht.bootstrap()
            if self.dht_state_path is not None:
                try:
                    await asyncio.to_thread(dht.save, self.dht_state_path)
                except OSError as error:
                    log.error("DHT routing table not saved: %s", error)

    async def _join_dht(self, dht: DHTService) -> None:
        """Bootstrap, letting torrents search as soon as one node has answered: a search
        through the first nodes beats waiting for a bootstrap slowed by nodes that went away."""
        loop = asyncio.get_running_loop()
        joining = loop.create_task(dht.bootstrap())
        answered = loop.create_task(dht.wait_for(lambda: dht.has_nodes, DHT_LOOKUP_TIMEOUT_S))
        try:
            await asyncio.wait({joining, answered}, return_when=asyncio.FIRST_COMPLETED)
            self._dht_settled.set()
            with contextlib.suppress(TimeoutError):
                await joining
        finally:
            for task in (joining, answered):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await task

    async def wait_for_dht(self) -> DHTService | None:
        """The session's DHT once it has joined the network (None: no DHT)."""
        await self._dht_settled.wait()
        return self.dht

    async def _run_lsd(self, opened: asyncio.Future[None]) -> None:
        """Run local service discovery until cancelled; without it if it cannot start."""
        try:
            if not self.lsd_enabled:
                return
            try:
                async with open_local_discovery(
                    port=self.port, on_peer=self._on_lsd_peer, interface=self.lsd_interface
                ) as lsd:
                    self.lsd = lsd
                    for runtime in self.torrents.values():
                        if runtime.is_public and not runtime.paused:
                            lsd.add_torrent(runtime.info_hash)
                    for magnet in self.magnets.values():
                        lsd.add_torrent(magnet.info_hash)
                    opened.set_result(None)
                    await asyncio.Future()  # until cancelled
            except OSError as error:
                # Once, and on without it: a host with no multicast route is common.
                log.warning("local service discovery off: %s", error.strerror or error)
        finally:
            self.lsd = None
            if not opened.done():
                opened.set_result(None)

    def _on_lsd_peer(self, info_hash: bytes, host: str, port: int) -> None:
        runtime: TorrentRuntime | MagnetRuntime | None = self.runtime_for(info_hash) or self.magnets.get(info_hash)
        if runtime is not None and runtime.is_public:
            runtime.add_peers([(host, port)])

    def is_own_address(self, address: tuple[str, int]) -> bool:
        """Is ``address`` (as a DHT or LSD names it) this session's own listening socket?"""
        if address[1] == self.port:
            return address[0] in ("127.0.0.1", "::1", self.host, *self._external_hosts())
        # Through the router, others know us by the mapped port.
        return address[1] == self.announce_port and address[0] in self._external_hosts()

    def _external_hosts(self) -> tuple[str, ...]:
        hosts = (self.external_address.address(4), self.external_address.address(6))
        return tuple(host for host in hosts if host is not None)

    def tracker_saw_us(self, url: str, result: AnnounceResult) -> None:
        """A tracker's BEP 24 ``external ip`` is one witness of our address."""
        if result.external_ip is not None:
            voter = urllib.parse.urlsplit(url).hostname or url
            self.external_address.vote(Witness.TRACKER, voter, result.external_ip, time.monotonic())

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        # Only a bug ends these loops: say so loudly once, with the traceback.
        self.task_ended(task, "session loop")

    def task_ended(self, task: asyncio.Task[Any], what: str) -> None:
        """A task of the session, a torrent or a magnet link ended: a failure is logged with
        its traceback and, in strict mode (tests), recorded in ``failures``."""
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", what, exc_info=task.exception())
            if self.strict:
                self.failures.append(task.exception())  # type: ignore[arg-type]

    def wake(self, runtime: TorrentRuntime) -> None:
        """Tick ``runtime`` from the next tick on, until it needs it no more."""
        self._ticking[runtime] = None
        if self.on_wake is not None:
            self.on_wake(runtime)

    def resume_due(self, runtime: TorrentRuntime) -> None:
        """``runtime`` has pieces its resume data lacks: saved at the next resume round."""
        self._resume_pending[runtime] = None

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for runtime in list(self._ticking):
                runtime.tick(now)
                if not runtime.needs_tick:
                    self._ticking.pop(runtime, None)
            for magnet in list(self.magnets.values()):
                magnet.tick(now)

    async def _resume_loop(self) -> None:
        while True:
            await asyncio.sleep(RESUME_PERIOD_S)
            pending, self._resume_pending = list(self._resume_pending), {}
            for runtime in pending:
                if self.torrents.get(runtime.info_hash) is not runtime:
                    continue  # removed: its close wrote its resume data
                try:
                    await runtime.save_resume_if_changed()
                except (StorageError, OSError) as error:
                    log.error("%s: resume data not saved: %s", runtime.torrent.name, error)

    async def add(
        self, torrent: Torrent, folder: Path, options: TorrentOptions | None = None, *, paused: bool = False
    ) -> TorrentRuntime:
        runtime = TorrentRuntime(self, torrent, folder, options or TorrentOptions())
        if runtime.info_hash in self.torrents:
            raise UsageError(f"{torrent.name}: already in this session")
        self.torrents[runtime.info_hash] = runtime
        if runtime.alias is not None:
            self.aliases[runtime.alias] = runtime.info_hash
        try:
            await runtime.start(paused=paused)
        except BaseException:
            # Not left half-added: a second add of the same torrent must be possible.
            self.torrents.pop(runtime.info_hash, None)
            self.forget_alias(runtime.info_hash)
            raise
        return runtime

    async def add_magnet(
        self, link: Magnet, folder: Path, options: TorrentOptions | None = None, *, select: Sequence[int] | None = None
    ) -> MagnetRuntime:
        """Start fetching a magnet link's info dictionary from peers; once it is in, the
        .torrent is saved in ``folder`` and the torrent is added (``MagnetRuntime.wait_for_torrent``).

        ``select`` (file indices as ``bitswarm info`` lists them) overrides the link's ``so``.
        """
        from bitswarm.net.magnet import MagnetRuntime  # noqa: PLC0415  (it imports this module)

        runtime = MagnetRuntime(self, link, folder, options or TorrentOptions(), select=select)
        if runtime.info_hash in self.torrents or runtime.info_hash in self.magnets:
            raise UsageError(f"{runtime.info_hash.hex()}: already in this session")
        self.magnets[runtime.info_hash] = runtime
        if runtime.alias is not None:
            self.aliases[runtime.alias] = runtime.info_hash
        runtime.start()
        if self.lsd is not None and len(runtime.info_hash) == 20:
            self.lsd.add_torrent(runtime.info_hash)  # whether it is private is not known yet
        return runtime

    async def remove(self, info_hash: bytes) -> None:
        """Stop sharing a torrent (its files stay on disk), or stop fetching a magnet link's
        metadata; raises UsageError if unknown."""
        magnet = self.magnets.get(info_hash)
        if magnet is not None:
            await magnet.close()
            return
        runtime = self.torrents.pop(info_hash, None)
        if runtime is None:
            raise UsageError(f"no torrent {info_hash.hex()} in this session")
        self.forget_alias(info_hash)
        await runtime.close()

    def forget_alias(self, info_hash: bytes) -> None:
        """Stop routing a hybrid's v2 hash to ``info_hash`` (removed, or never started)."""
        for alias in [alias for alias, target in self.aliases.items() if target == info_hash]:
            del self.aliases[alias]

    def route(self, info_hash: bytes) -> TorrentRuntime | MagnetRuntime | None:
        """Where an incoming connection for ``info_hash`` goes: its torrent, or its magnet
        link while the metadata is fetched."""
        info_hash = self.aliases.get(info_hash, info_hash)
        return self.runtime_for(info_hash) or self.magnets.get(info_hash)

    def info_hashes(self) -> list[bytes]:
        """The info-hashes we answer for (an MSE handshake finds SKEY among them)."""
        return [*self.torrents, *self.magnets, *self.aliases]

    def runtime_for(self, info_hash: bytes) -> TorrentRuntime | None:
        runtime = self.torrents.get(info_hash)
        return runtime if runtime is not None and runtime.swarm is not None else None

    def count_close(self, reason: str) -> None:
        kind = reason.split(" ", 1)[0]
        self.closed_reasons[kind] = self.closed_reasons.get(kind, 0) + 1

    def remember_plaintext_peer(self, address: tuple[str, int]) -> bool:
        """Dial ``address`` without MSE from now on; False if it was so already."""
        if address in self.plaintext_peers:
            return False
        if len(self.plaintext_peers) >= MAX_PLAINTEXT_PEERS:
            del self.plaintext_peers[next(iter(self.plaintext_peers))]  # the oldest goes
        self.plaintext_peers[address] = None
        return True

    def download_delay(self, size: int, now: float) -> float:
        return self.down_limit.delay_for(size, now)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.utp is not None:
            # While the DHT's socket is still open: each peer hears a RESET.
            self.utp.close()
            self.utp = None
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for magnet in list(self.magnets.values()):
            await magnet.close()
        self.magnets.clear()
        for runtime in list(self.torrents.values()):
            await runtime.close()
        self.torrents.clear()
        self.readers.shutdown(wait=True)
        self.hashers.shutdown(wait=True)
        self.disk.shutdown(wait=True)
        if self._server is not None:
            await self._server.wait_closed()


class _HeldProtocol(asyncio.Protocol):
    """A TCP connection raced against a uTP dial: it holds the transport (and anything that
    arrives) until the dial picks it, then hands it to the real protocol. (uvloop tells a
    protocol of its connection only after create_connection has returned: the hand-over
    then waits for that.)"""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.target: PeerConnection | None = None
        self.received = bytearray()
        self.at_eof = False
        self.lost: tuple[Exception | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, unregistered
        if self.target is not None:
            self._forward()

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool:
        self.at_eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)

    def hand_over(self, protocol: PeerConnection) -> None:
        self.target = protocol
        if self.transport is not None:
            self._forward()

    def _forward(self) -> None:
        assert self.transport is not None
        assert self.target is not None
        self.transport.set_protocol(self.target)
        self.target.connection_made(self.transport)
        if self.received:
            self.target.data_received(bytes(self.received))
        if self.at_eof:
            self.target.eof_received()
        if self.lost is not None:
            self.target.connection_lost(self.lost[0])


@dataclasses.dataclass(slots=True, eq=False)
class _PieceBuffer:
    """A piece being gathered: ``data`` (a reused buffer, maybe longer than the piece) holds
    its first ``size`` bytes once ``filled`` reaches ``size``."""

    data: bytearray
    size: int
    filled: int = 0
    # The SHA-1 of data[:hashed] (a v1 piece), taken as blocks arrive; blocks that came
    # before their turn wait in ``early`` (begin -> length).
    sha1: Any = None
    hashed: int = 0
    early: dict[int, int] = dataclasses.field(default_factory=dict)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _on_local_network(host: str) -> bool:
    """Loopback, private (RFC 1918, ULA) or link-local: round trips of well under a millisecond."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name (x.pe): the internet, as far as we know
    return address.is_loopback or address.is_private or address.is_link_local
