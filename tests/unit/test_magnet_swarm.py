"""The metadata phase (metadata-mode peer cores, MetadataSwarm) and the swarm's extensions:
ut_metadata served from a seeding swarm, ut_pex sent and received (BEP 9, 10, 11)."""

from __future__ import annotations

import hashlib
import random

import pytest

from bitswarm import bencode
from bitswarm.engine.magnet import MetadataReceived, MetadataSwarm
from bitswarm.engine.swarm import BanPeer, ClosePeer, ConnectPeers, PeerSawOurAddress, Swarm
from bitswarm.errors import PeerProtocolError
from bitswarm.wire.extension import (
    BS_DUE,
    UT_METADATA,
    UT_PEX,
    MetadataData,
    MetadataRequest,
    PexFlags,
    PexMessage,
    PexPeer,
    decode_handshake,
    decode_metadata,
    decode_pex,
    encode_handshake,
    encode_metadata,
    encode_pex,
)
from bitswarm.wire.messages import (
    EXTENSION_PROTOCOL,
    FAST_EXTENSION,
    Bitfield,
    Extended,
    FrameDecoder,
    Handshake,
    Have,
    HaveAll,
    Message,
    Piece,
    Reject,
    Request,
    Unchoke,
    encode,
    reserved_bits,
)
from bitswarm.wire.peer import PeerProtocol, PeerState

INFO_HASH = b"i" * 20
OURS = b"-SW0100-ourpeerid123"
# The ids the remote side offers: we must send with these, and it sends with ours (1, 2).
THEIR_METADATA_ID = 3
THEIR_PEX_ID = 4


def their_handshake(info_hash: bytes = INFO_HASH, peer_id: bytes = b"-XX0000-remotepeer01") -> bytes:
    return Handshake(info_hash, peer_id, reserved_bits(FAST_EXTENSION, EXTENSION_PROTOCOL)).encode()


def their_extended_handshake(metadata_size: int | None, port: int | None = None) -> bytes:
    payload = encode_handshake(
        extensions={UT_METADATA: THEIR_METADATA_ID, UT_PEX: THEIR_PEX_ID}, metadata_size=metadata_size, listen_port=port
    )
    return encode(Extended(0, payload))


def sent(core: PeerProtocol) -> list[Message]:
    return FrameDecoder(1 << 21).feed(core.data_to_send())


def metadata_core() -> PeerProtocol:
    return PeerProtocol(
        info_hash=INFO_HASH,
        peer_id=OURS,
        num_pieces=None,
        piece_size=lambda index: 0,
        have_piece=lambda index: False,
        now=0.0,
    )


def sample_info(size: int = 40_000) -> bytes:
    info = bencode.encode({b"name": b"x", b"pieces": random.Random(3).randbytes(size)})
    return info


# -- the peer core's metadata mode -----------------------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True])
def test_a_metadata_mode_core_ignores_piece_announcements_it_cannot_check(bytewise: bool) -> None:
    core = metadata_core()
    data = (
        their_handshake()
        + encode(Bitfield(b"\xff" * 1000))  # any length: the piece count is unknown
        + encode(Have(123_456))
        + their_extended_handshake(1000)
        + encode(Unchoke())
    )
    events: list[object] = []
    chunks = [data[at : at + 1] for at in range(len(data))] if bytewise else [data]
    for chunk in chunks:
        events += core.receive(chunk, 0.0)
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["HandshakeCompleted", "Extended", "Unchoke"]
    assert not core.peer_choking
    assert not core.peer_is_seed


def test_a_metadata_mode_core_rejects_requests_and_refuses_pieces() -> None:
    core = metadata_core()
    core.receive(their_handshake() + encode(HaveAll()), 0.0)
    assert core.receive(encode(Request(0, 0, 16384)), 0.0) == []
    assert sent(core) == [Reject(0, 0, 16384)]
    with pytest.raises(PeerProtocolError, match="never requested"):
        core.receive(encode(Piece(0, 0, b"x" * 10)), 0.0)
    assert core.state is PeerState.CLOSED


# -- MetadataSwarm -----------------------------------------------------------------------------


class Remote:
    """One remote peer of a MetadataSwarm, played by hand."""

    def __init__(self, swarm: MetadataSwarm, key: str, info: bytes, *, size: int | None = None) -> None:
        self.swarm, self.key, self.info = swarm, key, info
        self.core = metadata_core()
        swarm.add_peer(key, self.core, address=("10.0.0.1", 6881), outgoing=True)
        self.actions = swarm.handle(key, self.core.receive(their_handshake(), 0.0), 0.0)
        ours = sent(self.core)
        ours_handshake = decode_handshake(next(m for m in ours if isinstance(m, Extended)).payload)
        assert UT_METADATA in ours_handshake.extensions
        assert ours_handshake.metadata_size is None  # we have none to offer
        size = len(info) if size is None else size
        self.actions += swarm.handle(key, self.core.receive(their_extended_handshake(size), 0.0), 0.0)

    def requests(self) -> list[int]:
        pieces = []
        for message in sent(self.core):
            if isinstance(message, Extended) and message.extension_id == THEIR_METADATA_ID:
                request = decode_metadata(message.payload)
                assert isinstance(request, MetadataRequest)
                pieces.append(request.piece)
        return pieces

    def answer(self, piece: int, data: bytes | None = None, total: int | None = None) -> list[object]:
        chunk = self.info[piece * 16384 : (piece + 1) * 16384] if data is None else data
        message = MetadataData(piece, len(self.info) if total is None else total, chunk)
        frame = encode(Extended(1, encode_metadata(message)))  # our ut_metadata id
        return list(self.swarm.handle(self.key, self.core.receive(frame, 1.0), 1.0))

    def serve_all(self) -> list[object]:
        actions: list[object] = []
        for _ in range(10):  # a few rounds of requests are enough for three pieces
            pieces = self.requests()
            if not pieces:
                break
            for piece in pieces:
                actions += self.answer(piece)
        return actions


def test_the_info_dictionary_comes_in_pieces_and_is_checked() -> None:
    info = sample_info()
    swarm = MetadataSwarm(info_hash_v1=hashlib.sha1(info).digest(), info_hash_v2=hashlib.sha256(info).digest())
    honest = Remote(swarm, "honest", info)
    assert honest.actions == []
    assert honest.serve_all() == [MetadataReceived(info)]
    assert swarm.info == info


def test_a_piece_of_the_wrong_size_closes_that_peer_and_an_honest_one_finishes() -> None:
    info = sample_info()
    swarm = MetadataSwarm(info_hash_v1=hashlib.sha1(info).digest(), info_hash_v2=None)
    liar = Remote(swarm, "liar", info)
    (first, *_) = liar.requests()
    actions = liar.answer(first, data=b"short")
    assert [type(action) for action in actions] == [ClosePeer]
    assert isinstance(actions[0], ClosePeer)
    assert actions[0].peer == "liar"
    swarm.remove_peer("liar", 2.0)
    honest = Remote(swarm, "honest", info)
    assert honest.serve_all() == [MetadataReceived(info)]


def test_metadata_that_does_not_hash_bans_its_sender_and_an_honest_peer_finishes() -> None:
    info = sample_info()
    forged = bytearray(info)
    forged[100] ^= 0xFF
    swarm = MetadataSwarm(info_hash_v1=hashlib.sha1(info).digest(), info_hash_v2=None)
    liar = Remote(swarm, "liar", bytes(forged))
    assert liar.serve_all() == [BanPeer("liar", "sent metadata that does not hash to the info-hash")]
    honest = Remote(swarm, "honest", info)
    assert honest.serve_all() == [MetadataReceived(info)]


def test_a_v2_only_link_checks_the_whole_sha256() -> None:
    info = sample_info()
    digest = hashlib.sha256(info).digest()
    swarm = MetadataSwarm(info_hash_v1=None, info_hash_v2=digest)
    assert Remote(swarm, "honest", info).serve_all() == [MetadataReceived(info)]


def test_a_malformed_extension_message_closes_the_connection() -> None:
    info = sample_info()
    swarm = MetadataSwarm(info_hash_v1=hashlib.sha1(info).digest(), info_hash_v2=None)
    remote = Remote(swarm, "noisy", info)
    actions = swarm.handle("noisy", remote.core.receive(encode(Extended(1, b"d8:msg_typei")), 1.0), 1.0)
    assert [type(action) for action in actions] == [ClosePeer]


# -- the full swarm: serving metadata and PEX --------------------------------------------------


def full_swarm(info: bytes, **options: object) -> Swarm:
    return Swarm(
        num_pieces=4,
        piece_size=lambda index: 16384,
        have=range(4),
        rng=random.Random(1),
        now=0.0,
        info=info,
        listen_port=6881,
        **options,  # type: ignore[arg-type]
    )


def full_core(swarm: Swarm) -> PeerProtocol:
    return PeerProtocol(
        info_hash=INFO_HASH, peer_id=OURS, num_pieces=4, piece_size=lambda index: 16384,
        have_piece=swarm.has_piece, now=0.0,
    )  # fmt: skip


def join(swarm: Swarm, key: str, address: tuple[str, int], *, outgoing: bool, port: int | None = None) -> PeerProtocol:
    core = full_core(swarm)
    swarm.add_peer(key, core, 0.0, address=address, outgoing=outgoing)
    swarm.handle(key, core.receive(their_handshake(peer_id=key.encode().ljust(20, b"-")), 0.0), 0.0)
    swarm.handle(key, core.receive(their_extended_handshake(None, port) + encode(Bitfield(b"\x00")), 0.0), 0.0)
    return core


def test_a_seeding_swarm_offers_and_serves_its_metadata() -> None:
    info = sample_info(20_000)
    swarm = full_swarm(info)
    core = full_core(swarm)
    swarm.add_peer("fetcher", core, 0.0, address=("10.0.0.9", 5000), outgoing=False)
    swarm.handle("fetcher", core.receive(their_handshake() + their_extended_handshake(None), 0.0), 0.0)
    ours = decode_handshake(next(m for m in sent(core) if isinstance(m, Extended)).payload)
    assert ours.metadata_size == len(info)
    assert ours.extensions == {UT_METADATA: 1, UT_PEX: 2, BS_DUE: 3}
    assert ours.yourip == "10.0.0.9"
    assert ours.listen_port == 6881
    swarm.handle("fetcher", core.receive(encode(Extended(1, encode_metadata(MetadataRequest(1)))), 0.0), 0.0)
    (reply,) = sent(core)
    assert isinstance(reply, Extended)
    assert reply.extension_id == THEIR_METADATA_ID
    assert decode_metadata(reply.payload) == MetadataData(1, len(info), info[16384:])


def test_pex_tells_each_peer_of_the_others_and_learned_peers_are_dialled() -> None:
    swarm = full_swarm(sample_info(100))
    dialled = join(swarm, "a", ("10.0.0.1", 6881), outgoing=True)
    incoming = join(swarm, "b", ("10.0.0.2", 40000), outgoing=False, port=7000)
    sent(dialled), sent(incoming)
    swarm.tick(1.0)
    to_a = [decode_pex(m.payload) for m in sent(dialled) if isinstance(m, Extended) and m.extension_id == THEIR_PEX_ID]
    to_b = [decode_pex(m.payload) for m in sent(incoming) if isinstance(m, Extended) and m.extension_id == THEIR_PEX_ID]
    assert to_a == [PexMessage((PexPeer(("10.0.0.2", 7000)),))]  # where b listens, not its ephemeral port
    assert to_b == [PexMessage((PexPeer(("10.0.0.1", 6881), PexFlags.REACHABLE),))]
    swarm.tick(2.0)  # nothing changed: nothing sent (an empty ut_pex is an error to uTorrent)
    assert sent(dialled) == []
    news = encode(Extended(2, encode_pex(PexMessage((PexPeer(("10.0.0.3", 6881)),)))))
    assert swarm.handle("a", dialled.receive(news, 3.0), 3.0) == [ConnectPeers((("10.0.0.3", 6881),))]


def test_a_private_swarm_offers_no_pex_and_a_ut_pex_message_closes_the_peer() -> None:
    swarm = full_swarm(sample_info(100), extension_ids={UT_METADATA: 1})
    core = join(swarm, "a", ("10.0.0.1", 6881), outgoing=True)
    join(swarm, "b", ("10.0.0.2", 6881), outgoing=True)
    sent(core)
    swarm.tick(1.0)
    assert sent(core) == []
    news = encode(Extended(2, encode_pex(PexMessage((PexPeer(("10.0.0.3", 6881)),)))))
    actions = swarm.handle("a", core.receive(news, 2.0), 2.0)
    assert [type(action) for action in actions] == [ClosePeer]


def test_a_peer_that_left_is_reported_dropped_at_the_next_interval() -> None:
    swarm = full_swarm(sample_info(100))
    staying = join(swarm, "a", ("10.0.0.1", 6881), outgoing=True)
    join(swarm, "b", ("10.0.0.2", 6881), outgoing=True)
    swarm.tick(1.0)
    sent(staying)
    swarm.remove_peer("b")
    swarm.tick(30.0)  # BEP 11: about one message a minute
    assert sent(staying) == []
    swarm.tick(61.0)
    (message,) = sent(staying)
    assert isinstance(message, Extended)
    assert decode_pex(message.payload) == PexMessage(dropped=(("10.0.0.2", 6881),))


def test_pex_from_a_peer_too_soon_after_its_last_is_ignored() -> None:
    swarm = full_swarm(sample_info(100))
    core = join(swarm, "a", ("10.0.0.1", 6881), outgoing=True)
    first = encode(Extended(2, encode_pex(PexMessage((PexPeer(("10.0.0.3", 6881)),)))))
    again = encode(Extended(2, encode_pex(PexMessage((PexPeer(("10.0.0.4", 6881)),)))))
    assert swarm.handle("a", core.receive(first, 1.0), 1.0) == [ConnectPeers((("10.0.0.3", 6881),))]
    assert swarm.handle("a", core.receive(again, 2.0), 2.0) == []


def test_a_peer_dialled_by_host_name_gets_no_yourip_and_is_left_out_of_pex() -> None:
    swarm = full_swarm(sample_info(100))
    named = join(swarm, "named", ("seed.example", 6881), outgoing=True)
    ours = decode_handshake(next(m for m in sent(named) if isinstance(m, Extended)).payload)
    assert ours.yourip is None
    other = join(swarm, "other", ("10.0.0.2", 6881), outgoing=True)
    sent(other)
    swarm.tick(1.0)
    assert [m for m in sent(other) if isinstance(m, Extended)] == []  # nothing it could be told
    assert ("seed.example", 6881) not in swarm.pex_connections()


def test_a_peers_yourip_comes_out_as_a_witness_of_our_address_in_both_swarms() -> None:
    said = encode(Extended(0, encode_handshake(extensions={UT_METADATA: THEIR_METADATA_ID}, yourip="8.8.4.4")))
    swarm = full_swarm(sample_info(100))
    core = full_core(swarm)
    swarm.add_peer("a", core, 0.0, address=("198.51.100.7", 6881), outgoing=True)
    swarm.handle("a", core.receive(their_handshake(), 0.0), 0.0)
    assert swarm.handle("a", core.receive(said, 0.0), 0.0) == [PeerSawOurAddress("198.51.100.7", "8.8.4.4")]
    fetching = MetadataSwarm(info_hash_v1=INFO_HASH, info_hash_v2=None)
    core = metadata_core()
    fetching.add_peer("b", core, address=("198.51.100.8", 6881), outgoing=True)
    fetching.handle("b", core.receive(their_handshake(), 0.0), 0.0)
    assert PeerSawOurAddress("198.51.100.8", "8.8.4.4") in fetching.handle("b", core.receive(said, 0.0), 0.0)


def test_a_peer_without_the_extension_protocol_is_kept_for_the_torrent() -> None:
    swarm = MetadataSwarm(info_hash_v1=b"\x00" * 20, info_hash_v2=None)
    core = metadata_core()
    swarm.add_peer("old", core, address=("10.0.0.5", 6881), outgoing=True)
    plain = Handshake(INFO_HASH, b"-XX0000-oldclient000", reserved_bits(FAST_EXTENSION)).encode()
    assert swarm.handle("old", core.receive(plain, 0.0), 0.0) == []
    assert [type(message).__name__ for message in sent(core)] == ["HaveNone"]
    assert swarm.listen_addresses() == {("10.0.0.5", 6881)}
