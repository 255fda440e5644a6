"""The metadata phase of a magnet link: peers and choices until the info dictionary is in.

A magnet link gives an info-hash and perhaps trackers and peers, but no piece count, so
the peer cores of this phase run in their metadata mode (``PeerProtocol(num_pieces=None)``:
handshake, extension messages, choke and interest only). The swarm sends our BEP 10
handshake without ``metadata_size``, feeds each peer's offer of ut_metadata to one
``MetadataFetch`` (BEP 9) and sends the fetch's requests; peers named in ut_pex messages
(BEP 11) come out as ``ConnectPeers``. A peer sending a piece of the wrong size or one it
was not asked for is closed; the senders of metadata that does not hash to the info-hash
are banned, and the fetch goes on with the others.

When the fetch completes, ``MetadataReceived`` carries the info dictionary and the listen
addresses learned; the layer above closes these connections and starts the normal swarm,
which dials the same peers again with full cores (see ``bitswarm.wire.peer``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from bitswarm.engine.swarm import (
    BanPeer,
    ClosePeer,
    ConnectPeers,
    PeerLink,
    PeerSawOurAddress,
    address_witness,
    extended_handshake,
)
from bitswarm.errors import PeerProtocolError
from bitswarm.wire.extension import (
    OUR_EXTENSION_IDS,
    UT_METADATA,
    ExtendedHandshake,
    MetadataCompleted,
    MetadataData,
    MetadataEvent,
    MetadataFetch,
    MetadataHashFailed,
    MetadataPeerFailed,
    MetadataReject,
    MetadataRequest,
    PeerAddress,
    PeerExtensions,
    PexMessage,
    SendMetadataRequest,
    encode_metadata,
)
from bitswarm.wire.messages import Extended, HaveNone
from bitswarm.wire.peer import Event, HandshakeCompleted, PeerProtocol, PeerState

PeerKey = Hashable


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    """Fact: the info dictionary, as received and hashing to the info-hash."""

    info: bytes


MagnetAction = ClosePeer | BanPeer | ConnectPeers | MetadataReceived | PeerSawOurAddress


class MetadataSwarm:
    """One magnet link's peers during the metadata phase; no I/O.

    ``info_hash_v2`` is the whole SHA-256 (a v2-only link's wire hash is its first 20 bytes).
    """

    def __init__(
        self,
        *,
        info_hash_v1: bytes | None,
        info_hash_v2: bytes | None,
        extension_ids: Mapping[str, int] = OUR_EXTENSION_IDS,
        listen_port: int | None = None,
    ) -> None:
        self.fetch = MetadataFetch(info_hash_v1=info_hash_v1, info_hash_v2=info_hash_v2)
        self.extension_ids = extension_ids
        self.listen_port = listen_port
        self.peers: dict[PeerKey, tuple[PeerProtocol, PeerLink]] = {}
        self.info: bytes | None = None

    def add_peer(
        self, key: PeerKey, core: PeerProtocol, *, address: PeerAddress | None = None, outgoing: bool = False
    ) -> None:
        self.peers[key] = (core, PeerLink(PeerExtensions(self.extension_ids), address, outgoing))

    def remove_peer(self, key: PeerKey, now: float) -> list[MagnetAction]:
        if self.peers.pop(key, None) is None:
            return []
        return self._fetch_events(self.fetch.remove_peer(key, now))

    def listen_addresses(self) -> set[PeerAddress]:
        """The peers connected now, where they accept connections."""
        return {address for _, link in self.peers.values() if (address := link.listen_address) is not None}

    def handle(self, key: PeerKey, events: list[Event], now: float) -> list[MagnetAction]:
        """Apply one peer's events; returns what to do about them."""
        entry = self.peers.get(key)
        if entry is None:
            return []
        core, link = entry
        actions: list[MagnetAction] = []
        for event in events:
            if isinstance(event, HandshakeCompleted):
                # A peer without BEP 10 cannot send metadata, but may send pieces once we
                # have it: it is kept, idle, and dialled again by the torrent like the others.
                if core.extensions:
                    core.send(extended_handshake(link, self.extension_ids, None, self.listen_port))
                if core.fast:
                    core.send(HaveNone())  # BEP 6; without it, BEP 3 lets us send no bitfield
            elif isinstance(event, Extended):
                try:
                    actions += self._extended(key, core, link, event, now)
                except PeerProtocolError as error:
                    return [*actions, ClosePeer(key, str(error))]
        return actions

    def _extended(
        self, key: PeerKey, core: PeerProtocol, link: PeerLink, message: Extended, now: float
    ) -> list[MagnetAction]:
        value = link.extensions.decode(message)
        if isinstance(value, ExtendedHandshake):
            link.on_extended_handshake(value, self.extension_ids)
            seen: list[MagnetAction] = list(address_witness(link, value))
            if link.extensions.supports(UT_METADATA):
                return seen + self._fetch_events(self.fetch.add_peer(key, value.metadata_size, now))
            return seen
        elif isinstance(value, MetadataData | MetadataReject):
            return self._fetch_events(self.fetch.on_message(key, value, now))
        elif isinstance(value, MetadataRequest):
            number = link.extensions.id_for(UT_METADATA)
            if number is not None:
                core.send(Extended(number, encode_metadata(MetadataReject(value.piece))))  # nothing to serve yet
        elif isinstance(value, PexMessage) and link.pex is not None:
            added = link.pex.receive(value, now)
            if added:
                return [ConnectPeers(tuple(peer.address for peer in added))]
        return []

    def tick(self, now: float) -> list[MagnetAction]:
        """Requests that timed out go to other peers; call about once a second."""
        deadline = self.fetch.next_deadline()
        if deadline is None or deadline > now:
            return []
        return self._fetch_events(self.fetch.tick(now))

    def _fetch_events(self, events: list[MetadataEvent]) -> list[MagnetAction]:
        actions: list[MagnetAction] = []
        for event in events:
            if isinstance(event, SendMetadataRequest):
                entry = self.peers.get(event.peer)
                number = entry[1].extensions.id_for(UT_METADATA) if entry is not None else None
                if entry is not None and number is not None and entry[0].state is not PeerState.CLOSED:
                    entry[0].send(Extended(number, encode_metadata(MetadataRequest(event.piece))))
            elif isinstance(event, MetadataCompleted):
                self.info = event.info
                actions.append(MetadataReceived(event.info))
            elif isinstance(event, MetadataHashFailed):
                actions += [BanPeer(peer, "sent metadata that does not hash to the info-hash") for peer in event.peers]
            elif isinstance(event, MetadataPeerFailed):
                actions.append(ClosePeer(event.peer, event.reason))
        return actions
