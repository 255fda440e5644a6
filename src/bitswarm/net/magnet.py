"""A magnet link on the event loop: find peers, fetch the info dictionary, start the torrent.

A ``MagnetRuntime`` is the metadata phase of one magnet link (BEP 9, BEP 53). Peers come
from the link's ``x.pe``, its ``tr`` trackers, the session's DHT, and ``add_peers`` (the
discovery hook: LSD, PEX). Its connections, ours and incoming ones (the session routes
them here until the torrent runs), carry metadata-mode peer cores
(``PeerProtocol(num_pieces=None)``); ``MetadataSwarm`` makes the choices.

Once the info dictionary is in and hashes to the info-hash, it is turned into a
``Torrent`` (trackers from ``tr``, web seeds from ``ws``: stored in the .torrent, not
downloaded from yet), saved as ``NAME.torrent`` in the download folder (atomically), and
added to the session with the files ``so`` selects; the metadata connections are closed
and every peer heard of is dialled again by the torrent with full cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bitswarm import bencode, merkle
from bitswarm.engine.magnet import MagnetAction, MetadataReceived, MetadataSwarm
from bitswarm.engine.rate import TokenBucket
from bitswarm.engine.swarm import BanPeer, ClosePeer, ConnectPeers, PeerSawOurAddress
from bitswarm.errors import BitswarmError, TrackerError, UsageError
from bitswarm.external_address import Witness
from bitswarm.magnet import Magnet
from bitswarm.metainfo import Torrent
from bitswarm.net.peer import PeerConnection
from bitswarm.net.session import (
    CONNECT_TIMEOUT_S,
    MAX_PEERS_PER_TORRENT,
    RETRY_ANNOUNCE_S,
    Session,
    TorrentOptions,
    TorrentRuntime,
    announce_to,
)
from bitswarm.storage.atomic import replace_durably
from bitswarm.storage.hashing import PieceHasher
from bitswarm.tracker.announce import AnnounceParams, TrackerTiers
from bitswarm.tracker.swarm import Event
from bitswarm.wire.extension import OUR_EXTENSION_IDS, UT_METADATA
from bitswarm.wire.mse import EncryptionPolicy
from bitswarm.wire.peer import PeerProtocol, PeerState

log = logging.getLogger("bitswarm.magnet")

# Addresses remembered to dial again once the torrent runs; beyond the peer limit they
# would only wait.
MAX_CANDIDATES = 4 * MAX_PEERS_PER_TORRENT
# What we tell trackers we have left while the size is unknown: not 0, or we would look
# like a seed and be sent no seeds.
UNKNOWN_LEFT = 1
# How long a DHT search may take, and the wait between searches while no metadata came.
DHT_SEARCH_TIMEOUT_S = 60.0
DHT_SEARCH_RETRY_S = 15.0
# With no peer connected, the addresses heard of are dialled again this often (an x.pe
# peer that was not up yet has no other way back).
REDIAL_S = 10.0


class MagnetRuntime:
    def __init__(
        self,
        session: Session,
        link: Magnet,
        folder: Path,
        options: TorrentOptions,
        *,
        select: Sequence[int] | None = None,
    ) -> None:
        self.session = session
        self.link = link
        self.folder = folder
        self.options = options
        self.select = tuple(select) if select is not None else link.select_only
        # BEP 52: a v2-only link's wire hash is the SHA-256 truncated to 20 bytes.
        self.info_hash = link.info_hash_v1 or (link.info_hash_v2 or b"")[:20]
        # A hybrid's link names both hashes: its v2 swarm is searched and joined too (BEP 52).
        self.alias = (link.info_hash_v2 or b"")[:20] if link.info_hash_v1 and link.info_hash_v2 else None
        self.extension_ids = OUR_EXTENSION_IDS if options.pex else {UT_METADATA: 1}
        self.swarm = MetadataSwarm(
            info_hash_v1=link.info_hash_v1,
            info_hash_v2=link.info_hash_v2,
            extension_ids=self.extension_ids,
            listen_port=session.port,
        )
        self.peers: set[PeerConnection] = set()
        self.known_addresses: set[tuple[str, int]] = set()
        self.candidates: dict[tuple[str, int], None] = {}
        self.dropped: dict[tuple[str, int], None] = {}
        self.banned: set[str] = set()
        self.closed_reasons: dict[str, int] = {}
        self.paused = True  # until start()
        self.torrent: Torrent | None = None
        self.torrent_path: Path | None = None
        self.runtime: TorrentRuntime | None = None
        # The task that completes the saved .torrent of a v2 or hybrid link (the runtime owns it).
        self.layers_written: asyncio.Task[None] | None = None
        self.error: BitswarmError | None = None
        self.ready = asyncio.Event()  # the torrent runs, or the error is set
        self.down_limit = TokenBucket(options.max_down, time.monotonic())
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redial_at = time.monotonic() + REDIAL_S
        self._tiers = TrackerTiers(tuple((url,) for url in link.trackers), session.rng)

    @property
    def name(self) -> str:
        return self.link.display_name or self.info_hash.hex()

    @property
    def is_public(self) -> bool:
        return True  # unknown until the info dictionary says otherwise (BEP 27)

    # -- start and stop ----------------------------------------------------------------

    def start(self) -> None:
        self.paused = False
        self.add_peers(self.link.peers)
        if self.link.trackers:
            self.spawn(self._announce_loop())
        if self.session.dht_enabled:
            self.spawn(self._dht_loop())

    async def wait_for_torrent(self) -> TorrentRuntime:
        """The torrent's runtime once the metadata is in; raises the BitswarmError that
        stopped it (an info dictionary that is no valid torrent, a .torrent not saved)."""
        await self.ready.wait()
        if self.error is not None:
            raise self.error
        assert self.runtime is not None
        return self.runtime

    async def close(self) -> None:
        """Stop: connections closed, tasks ended, out of the session. ``wait_for_torrent``
        then raises ``UsageError`` unless the torrent was started."""
        self.paused = True
        if not self.ready.is_set():
            self.error = UsageError(f"{self.name}: removed before its metadata came")
            self.ready.set()
        for peer in list(self.peers):
            peer.close("stopping")
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        for task in list(self._tasks):
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, BitswarmError, OSError):
                    await task
        self.session.magnets.pop(self.info_hash, None)
        if self.info_hash not in self.session.torrents:
            self.session.forget_alias(self.info_hash)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self.session.task_ended(task, "magnet task")

    # -- peers -------------------------------------------------------------------------

    def add_peers(self, addresses: Iterable[tuple[str, int]]) -> int:
        """Remember ``addresses`` for the torrent and dial the new ones within the limit;
        returns how many dials started."""
        started = 0
        for address in addresses:
            if address[0] in self.banned or address in self.dropped or self.session.is_own_address(address):
                continue
            if address[1] == 0:
                continue
            if address not in self.candidates and len(self.candidates) < MAX_CANDIDATES:
                self.candidates[address] = None
            if self.paused or address in self.known_addresses:
                continue
            if max(len(self.peers), len(self.known_addresses)) >= MAX_PEERS_PER_TORRENT:
                break
            self.known_addresses.add(address)
            self.spawn(self._dial(address))
            started += 1
        return started

    async def connect(self, address: tuple[str, int]) -> None:
        """Dial ``address`` (PeerConnection's plaintext fallback calls this)."""
        self.known_addresses.discard(address)
        self.add_peers([address])

    async def _dial(self, address: tuple[str, int]) -> None:
        policy = self.session.encryption
        encrypt = policy is EncryptionPolicy.REQUIRE or (
            policy is EncryptionPolicy.PREFER and address not in self.session.plaintext_peers
        )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self.session.dial(address, lambda: PeerConnection(self.session, self, address, encrypt=encrypt))
        except (OSError, TimeoutError):
            self.known_addresses.discard(address)

    def new_core(self, info_hash: bytes | None = None) -> PeerProtocol:
        return PeerProtocol(
            info_hash=info_hash or self.info_hash,
            peer_id=self.session.peer_id,
            num_pieces=None,  # the metadata phase: see bitswarm.wire.peer
            piece_size=lambda index: 0,
            have_piece=lambda index: False,
            now=time.monotonic(),
        )

    def accepts(self, connection: PeerConnection) -> bool:
        host = connection.address[0] if connection.address else ""
        return not self.paused and len(self.peers) < MAX_PEERS_PER_TORRENT and host not in self.banned

    def peer_joined(self, connection: PeerConnection) -> None:
        assert connection.core is not None
        self.peers.add(connection)
        self.swarm.add_peer(connection, connection.core, address=connection.address, outgoing=connection.outgoing)

    def peer_gone(self, connection: PeerConnection) -> None:
        self.peers.discard(connection)
        if connection.address is not None:
            self.known_addresses.discard(connection.address)
        self._run(self.swarm.remove_peer(connection, time.monotonic()))

    def count_close(self, reason: str) -> None:
        kind = reason.split(" ", 1)[0]
        self.closed_reasons[kind] = self.closed_reasons.get(kind, 0) + 1

    def handle(self, connection: PeerConnection, events: list[Any], now: float) -> None:
        if connection in self.peers:
            self._run(self.swarm.handle(connection, events, now))

    def download_delay(self, size: int, now: float) -> float:
        return self.down_limit.delay_for(size, now)

    def tick(self, now: float) -> None:
        if self.paused:
            return
        for peer in list(self.peers):
            if peer.core is not None and peer.core.state is not PeerState.CLOSED and peer.core.tick(now):
                peer.close("timed out")
        if not self.peers and now >= self._redial_at:
            self._redial_at = now + REDIAL_S
            self.add_peers(list(self.candidates))
        self._run(self.swarm.tick(now))

    def _run(self, actions: list[MagnetAction]) -> None:
        for action in actions:
            if isinstance(action, BanPeer | ClosePeer):
                peer = action.peer
                assert isinstance(peer, PeerConnection)
                if isinstance(action, BanPeer) and peer.address is not None:
                    self.banned.add(peer.address[0])
                self._drop(peer)
                self.count_close(action.reason)
                peer.close(action.reason)
            elif isinstance(action, ConnectPeers):
                self.add_peers(action.addresses)
            elif isinstance(action, PeerSawOurAddress):
                self.session.external_address.vote(Witness.PEER, action.peer_host, action.address, time.monotonic())
            elif isinstance(action, MetadataReceived):
                self.spawn(self._metadata_received(action.info))
        for peer in list(self.peers):
            peer.flush()

    def _drop(self, peer: PeerConnection) -> None:
        """A peer that broke the rules is not dialled again, now or by the torrent."""
        entry = self.swarm.peers.get(peer)
        for address in (peer.address, entry[1].listen_address if entry is not None else None):
            if address is not None:
                self.candidates.pop(address, None)
                self.dropped[address] = None
                if len(self.dropped) > MAX_CANDIDATES:
                    del self.dropped[next(iter(self.dropped))]  # the oldest goes

    # -- the metadata is in --------------------------------------------------------------

    async def _metadata_received(self, info: bytes) -> None:
        heard_of = (*self.swarm.listen_addresses(), *self.candidates)
        addresses = [address for address in heard_of if address not in self.dropped]
        self.paused = True
        for peer in list(self.peers):
            peer.close("metadata received: dialling again with the torrent")
        try:
            torrent = Torrent.from_info(info, trackers=self._tiers_list(), web_seeds=self.link.web_seeds)
            self.torrent = torrent
            self.torrent_path = await asyncio.to_thread(self._save_torrent, torrent)
            options = self.options
            wanted = wanted_files(torrent, self.select) if self.select else None
            if wanted is not None:
                options = dataclasses.replace(options, wanted_files=wanted)
            self.session.magnets.pop(self.info_hash, None)
            self.runtime = await self.session.add(torrent, self.folder, options)
            self.runtime.banned |= self.banned
            if self._needs_piece_layers(torrent):
                self.layers_written = self.runtime.spawn(self._add_piece_layers(self.runtime))
            self.runtime.add_peers(dict.fromkeys(address for address in addresses if address[0] not in self.banned))
        except BitswarmError as error:
            self.error = error
        except OSError as error:
            self.error = BitswarmError(f"{self.name}: the .torrent could not be saved: {error}")
        finally:
            self.ready.set()
            await self.close()

    def _tiers_list(self) -> tuple[tuple[str, ...], ...]:
        return tuple((url,) for url in self.link.trackers)

    def _save_torrent(self, torrent: Torrent, piece_layers: Mapping[bytes, bytes] | None = None) -> Path:
        """Write ``NAME.torrent`` beside the download: the info dictionary's bytes exactly as
        they hash, with the link's trackers and web seeds, and the v2 piece layers when
        known; written durably (``bitswarm.storage.atomic``)."""
        top: list[bytes] = []
        if self.link.trackers:
            top += [bencode.encode(b"announce"), bencode.encode(self.link.trackers[0].encode())]
            tiers = [[url.encode()] for url in self.link.trackers]
            top += [bencode.encode(b"announce-list"), bencode.encode(tiers)]
        top += [bencode.encode(b"info"), torrent.info]
        if piece_layers:
            top += [bencode.encode(b"piece layers"), bencode.encode(dict(piece_layers))]
        if self.link.web_seeds:
            top += [bencode.encode(b"url-list"), bencode.encode([url.encode() for url in self.link.web_seeds])]
        document = b"d" + b"".join(top) + b"e"
        self.folder.mkdir(parents=True, exist_ok=True)
        # The name passed the metainfo path checks: one safe path element.
        target = self.folder / f"{torrent.name}.torrent"
        replace_durably(target, document)
        return target

    def _needs_piece_layers(self, torrent: Torrent) -> bool:
        """Has a v2 file of more than one piece no piece layer in ``torrent`` yet?"""
        return torrent.has_v2 and any(
            entry.pieces_root is not None
            and entry.length > torrent.piece_length
            and entry.pieces_root not in torrent.piece_layers
            for entry in torrent.files
        )

    async def _add_piece_layers(self, runtime: TorrentRuntime) -> None:
        """Once every wanted piece is in, write the .torrent again with its piece layers,
        which are not part of the info dictionary: without them a v2 or hybrid .torrent is
        incomplete. A v2-only torrent fetched every layer from peers before its pieces
        (BEP 52 hash requests, each proven against its file's root), so the runtime's
        torrent holds them all; a hybrid's are hashed from the files as BEP 52 trees, a
        layer kept only when its root is the file's ``pieces root``, and a file not
        downloaded (``so``) leaves the .torrent as it was."""
        await runtime.finished.wait()
        torrent = runtime.torrent
        if self._needs_piece_layers(torrent):
            layers = await asyncio.to_thread(piece_layers, torrent, self.folder)
        else:
            layers = dict(torrent.piece_layers)
        if layers is not None:
            await asyncio.to_thread(self._save_torrent, torrent, layers)

    async def wait_for_torrent_file(self) -> None:
        """Until the saved .torrent is final (its piece layers added, for v2 and hybrid)."""
        if self.layers_written is not None:
            # A failure was logged by the runtime's task set; the .torrent stays as it was.
            with contextlib.suppress(asyncio.CancelledError, BitswarmError, OSError):
                await asyncio.shield(self.layers_written)

    # -- trackers and the DHT -------------------------------------------------------------

    async def _announce_loop(self) -> None:
        event = Event.STARTED
        while True:
            params = AnnounceParams(
                info_hash=self.info_hash,
                peer_id=self.session.peer_id,
                port=self.session.announce_port,
                uploaded=0,
                downloaded=0,
                left=UNKNOWN_LEFT,
                event=event,
                numwant=50,
                key=self.session.key,
            )
            wait = RETRY_ANNOUNCE_S
            for url in self._tiers.in_order():
                try:
                    result = await announce_to(url, params, self.session.rng)
                except TrackerError as error:
                    log.info("%s: %s", url, error)
                    continue
                self._tiers.succeeded(url)
                self.session.tracker_saw_us(url, result)
                self.add_peers(result.peers)
                event, wait = Event.NONE, float(result.interval_s)
                break
            await self.session.wait_for_announce_port(params.port, wait)

    async def _dht_loop(self) -> None:
        hashes = [self.info_hash] if self.alias is None else [self.info_hash, self.alias]
        while True:
            dht = await self.session.wait_for_dht()
            if dht is None:
                return
            for info_hash in hashes:
                try:
                    found = await dht.announce(info_hash, self.session.announce_port, timeout_s=DHT_SEARCH_TIMEOUT_S)
                except (TimeoutError, BitswarmError) as error:
                    log.info("%s: DHT search failed: %s", self.name, error or "timed out")
                    found = []
                self.add_peers(found)
            await asyncio.sleep(DHT_SEARCH_RETRY_S)


def wanted_files(torrent: Torrent, indices: Iterable[int]) -> set[int] | None:
    """Positions in ``torrent.files`` of the files that ``indices`` (as ``bitswarm info``
    numbers them: pad files and symlinks left out) select; indices beyond the list are
    ignored, and None (every file) when none is left."""
    data_files = list(torrent.data_files())
    positions = {id(entry): position for position, entry in enumerate(torrent.files)}
    chosen = {positions[id(data_files[index])] for index in indices if 0 <= index < len(data_files)}
    return chosen or None


def piece_layers(torrent: Torrent, folder: Path) -> dict[bytes, bytes] | None:
    """The BEP 52 piece layers of ``torrent``'s files of more than one piece, hashed from
    ``folder``; None when a file cannot be read whole or does not hash to its root."""
    hasher = PieceHasher(torrent.files, torrent.piece_length, folder, v1=False, v2=True)
    digests = [digest.merkle for digest in hasher.hash_all(workers=1)]
    blocks_per_piece = torrent.piece_length // merkle.BLOCK_SIZE
    layers: dict[bytes, bytes] = {}
    for entry in torrent.files:
        if entry.pieces_root is None or entry.length <= torrent.piece_length:
            continue
        hashes = [digests[index] for index in entry.piece_range(torrent.piece_length)]
        if any(digest is None for digest in hashes):
            return None
        known = [digest for digest in hashes if digest is not None]
        if merkle.root(known, merkle.next_power_of_two(len(known)), blocks_per_piece) != entry.pieces_root:
            return None
        layers[entry.pieces_root] = b"".join(known)
    return layers
