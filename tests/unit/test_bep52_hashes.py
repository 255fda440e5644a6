"""BEP 52 hash messages: the codec, the peer core's bookkeeping, merkle proofs, and the
serve and fetch cores, with hostile input (wrong lengths, indexes outside the tree,
proofs that do not hash to the root, huge counts)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitswarm import merkle
from bitswarm.engine.swarm import (
    MAX_BLOCK_HASH_READS_IN_FLIGHT,
    MAX_BLOCK_HASH_READS_PER_TICK,
    MAX_HASH_ANSWERS_PER_TICK,
    ClosePeer,
    ReadBlockHashes,
    Swarm,
)
from bitswarm.errors import PeerProtocolError, UsageError
from bitswarm.wire.hashes import (
    MAX_HASH_REQUESTS_PER_PEER,
    REQUEST_HASHES,
    HashFetch,
    HashServe,
    PieceLayerReceived,
    ReadForHashes,
    V2File,
    piece_layer_of,
)
from bitswarm.wire.messages import (
    FAST_EXTENSION,
    HASH_REJECT,
    HASH_REQUEST,
    HASHES,
    MAX_HASH_COUNT,
    FrameDecoder,
    Handshake,
    Hashes,
    HashReject,
    HashRequest,
    HaveAll,
    Message,
    decode_body,
    encode,
    reserved_bits,
    uncle_count,
)
from bitswarm.wire.peer import PeerProtocol, PeerState

PIECE_LENGTH = 64 * 1024
BLOCKS_PER_PIECE = PIECE_LENGTH // merkle.BLOCK_SIZE
ROOT = bytes(range(32))


def fields(root: bytes, base: int, index: int, length: int, proof: int) -> bytes:
    return root + struct.pack(">IIII", base, index, length, proof)


def piece_layer_tree(num_pieces: int, seed: int = 1) -> tuple[list[bytes], bytes]:
    """A file's piece layer (random piece hashes) and the pieces root it hashes to."""
    rng = random.Random(seed)
    layer = [rng.randbytes(32) for _ in range(num_pieces)]
    return layer, merkle.root(layer, merkle.next_power_of_two(num_pieces), BLOCKS_PER_PIECE)


def v2_file(num_pieces: int, root: bytes, first_piece: int = 0) -> V2File:
    # The last piece is short, as a real file's is.
    return V2File(root, (num_pieces - 1) * PIECE_LENGTH + 1000, first_piece)


# -- the codec -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        HashRequest(ROOT, 2, 512, 512, 9),
        HashReject(ROOT, 0, 0, 2, 0),
        Hashes(ROOT, 2, 0, 4, 1, bytes(range(32)) * 4),
        Hashes(ROOT, 2, 4, 4, 3, bytes(32) * 6),
    ],
)
def test_hash_messages_round_trip(message: HashRequest | HashReject | Hashes) -> None:
    assert decode_body(encode(message)[4:]) == message


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (bytes([HASH_REQUEST]) + fields(ROOT, 2, 0, 4, 1)[:-1], "48|49|bytes"),
        (bytes([HASH_REQUEST]) + fields(ROOT, 2, 0, 4, 1) + b"\x00", "bytes"),
        (bytes([HASH_REJECT]) + ROOT[:31], "bytes"),
        (bytes([HASH_REQUEST]) + fields(ROOT, 2, 0, 0, 1), "power of two"),
        (bytes([HASH_REQUEST]) + fields(ROOT, 2, 0, 3, 1), "power of two"),
        (bytes([HASH_REQUEST]) + fields(ROOT, 2, 0, MAX_HASH_COUNT * 2, 1), "power of two"),
        (bytes([HASH_REQUEST]) + fields(ROOT, 2, 0, 0x80000000, 1), "power of two"),
        (bytes([HASH_REQUEST]) + fields(ROOT, 2, 2, 4, 1), "multiple"),
        (bytes([HASH_REQUEST]) + fields(ROOT, 2, 0, 4, 0xFFFFFFFF), "proof layers"),
        (bytes([HASH_REQUEST]) + fields(ROOT, 0xFFFFFFFF, 0, 4, 1), "proof layers"),
        # Four hashes and one uncle are owed; three, or six, are not that.
        (bytes([HASHES]) + fields(ROOT, 2, 0, 4, 2) + bytes(32 * 3), "expected 5 hashes"),
        (bytes([HASHES]) + fields(ROOT, 2, 0, 4, 2) + bytes(32 * 6), "expected 5 hashes"),
        (bytes([HASHES]) + fields(ROOT, 2, 0, 4, 2) + bytes(32 * 5 + 1), "expected 5 hashes"),
    ],
)
def test_malformed_hash_messages_are_protocol_errors(body: bytes, match: str) -> None:
    with pytest.raises(PeerProtocolError, match=match):
        decode_body(body)


def test_uncle_count_leaves_out_the_layers_the_hashes_make_up() -> None:
    # 512 hashes hash up 9 layers themselves: proof layers 0..8 need no uncle.
    assert uncle_count(512, 8) == 0
    assert uncle_count(512, 9) == 1
    assert uncle_count(2, 0) == 0
    assert uncle_count(2, 3) == 3
    assert uncle_count(1, 0) == 1


@given(st.binary(max_size=300))
def test_hash_message_bodies_parse_or_raise_protocol_errors(tail: bytes) -> None:
    for message_id in (HASH_REQUEST, HASHES, HASH_REJECT):
        with contextlib.suppress(PeerProtocolError):
            message = decode_body(bytes([message_id]) + tail)
            assert decode_body(encode(message)[4:]) == message


# -- merkle proofs ---------------------------------------------------------------------


@pytest.mark.parametrize("num_pieces", [2, 3, 5, 8, 13, 1000])
def test_every_aligned_run_with_its_uncles_proves_to_the_root(num_pieces: int) -> None:
    layer, root = piece_layer_tree(num_pieces)
    width = merkle.next_power_of_two(num_pieces)
    tree = merkle.layers_above(layer, width, BLOCKS_PER_PIECE)
    assert tree[-1] == [root]
    height = width.bit_length() - 1
    for count in (1 << k for k in range(height + 1)):
        for index in range(0, width, count):
            uncles = merkle.uncles(tree, index, count, height - 1)
            assert len(uncles) == uncle_count(count, height - 1)
            assert merkle.root_from_proof(tree[0][index : index + count], index, uncles) == root


@given(st.integers(2, 300), st.data())
def test_a_changed_hash_or_uncle_never_proves(num_pieces: int, data: st.DataObject) -> None:
    layer, root = piece_layer_tree(num_pieces, seed=num_pieces)
    width = merkle.next_power_of_two(num_pieces)
    tree = merkle.layers_above(layer, width, BLOCKS_PER_PIECE)
    height = width.bit_length() - 1
    count = 1 << data.draw(st.integers(0, height))
    index = data.draw(st.integers(0, width // count - 1)) * count
    hashes = tree[0][index : index + count]
    uncles = merkle.uncles(tree, index, count, height - 1)
    everything = [*hashes, *uncles]
    spoiled = data.draw(st.integers(0, len(everything) - 1))
    everything[spoiled] = hashlib.sha256(everything[spoiled]).digest()
    assert merkle.root_from_proof(everything[:count], index, everything[count:]) != root


def test_uncles_at_the_wrong_position_do_not_prove() -> None:
    layer, root = piece_layer_tree(8)
    tree = merkle.layers_above(layer, 8, BLOCKS_PER_PIECE)
    uncles = merkle.uncles(tree, 2, 2, 2)
    assert merkle.root_from_proof(tree[0][2:4], 2, uncles) == root
    assert merkle.root_from_proof(tree[0][2:4], 4, uncles) != root  # left and right swapped


def test_layers_above_refuses_a_row_wider_than_the_tree() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        merkle.layers_above([bytes(32)] * 5, 4)


# -- the peer core ---------------------------------------------------------------------


def open_core(*, num_pieces: int | None = 4) -> PeerProtocol:
    peer = PeerProtocol(
        info_hash=b"i" * 20, peer_id=b"o" * 20, num_pieces=num_pieces,
        piece_size=lambda index: PIECE_LENGTH, have_piece=lambda index: True, now=0.0,
    )  # fmt: skip
    data = Handshake(b"i" * 20, b"t" * 20, reserved_bits(FAST_EXTENSION)).encode()
    if num_pieces is not None:
        data += encode(HaveAll())
    peer.receive(data, now=0.0)
    peer.data_to_send()
    return peer


@pytest.mark.parametrize("bytewise", [False, True])
def test_a_hash_request_goes_up_and_answers_must_match_our_requests(bytewise: bool) -> None:
    peer = open_core()
    request = HashRequest(ROOT, 2, 0, 4, 1)
    peer.send(request)
    assert peer.data_to_send() == encode(request)
    stream = encode(HashRequest(ROOT, 2, 4, 4, 1)) + encode(Hashes(ROOT, 2, 0, 4, 1, bytes(32 * 4)))
    if bytewise:
        events = [event for at in range(len(stream)) for event in peer.receive(stream[at : at + 1], now=1.0)]
    else:
        events = peer.receive(stream, now=1.0)
    assert events == [HashRequest(ROOT, 2, 4, 4, 1), Hashes(ROOT, 2, 0, 4, 1, bytes(32 * 4))]
    assert peer.our_hash_requests == set()
    # The same answer again was not asked for.
    with pytest.raises(PeerProtocolError, match="never sent"):
        peer.receive(encode(Hashes(ROOT, 2, 0, 4, 1, bytes(32 * 4))), now=2.0)
    assert peer.state is PeerState.CLOSED


def test_an_unsolicited_hash_reject_is_a_protocol_error() -> None:
    peer = open_core()
    with pytest.raises(PeerProtocolError, match="hash reject for a hash request never sent"):
        peer.receive(encode(HashReject(ROOT, 2, 0, 4, 1)), now=1.0)
    assert peer.state is PeerState.CLOSED


def test_hash_requests_we_send_are_bounded() -> None:
    peer = open_core()
    for index in range(64):
        peer.send(HashRequest(ROOT, 2, index * 2, 2, 0))
    with pytest.raises(UsageError, match="too many hash requests"):
        peer.send(HashRequest(ROOT, 2, 200, 2, 0))


def test_in_the_metadata_phase_a_hash_request_is_rejected_by_the_core() -> None:
    peer = open_core(num_pieces=None)
    assert peer.receive(encode(HashRequest(ROOT, 2, 0, 4, 1)), now=1.0) == []
    assert peer.data_to_send() == encode(HashReject(ROOT, 2, 0, 4, 1))
    with pytest.raises(PeerProtocolError, match="never sent"):
        peer.receive(encode(Hashes(ROOT, 2, 0, 4, 1, bytes(32 * 4))), now=1.0)


# -- serving ---------------------------------------------------------------------------


def serve_for(num_pieces: int) -> tuple[HashServe, list[bytes], bytes]:
    layer, root = piece_layer_tree(num_pieces)
    serve = HashServe(PIECE_LENGTH, [v2_file(num_pieces, root)], {root: b"".join(layer)})
    return serve, layer, root


def test_a_seed_answers_with_the_piece_layer_and_its_uncles() -> None:
    serve, layer, root = serve_for(13)
    base = piece_layer_of(PIECE_LENGTH)
    answer = serve.answer(HashRequest(root, base, 4, 4, 3))
    assert isinstance(answer, Hashes)
    hashes = merkle.split_layer(answer.hashes)
    assert hashes[:4] == layer[4:8]
    assert len(hashes) == 4 + uncle_count(4, 3) == 6
    assert merkle.root_from_proof(hashes[:4], 4, hashes[4:]) == root
    # The whole layer, padded to 16, in one answer with no uncle.
    whole = serve.answer(HashRequest(root, base, 0, 16, 3))
    assert isinstance(whole, Hashes)
    assert merkle.split_layer(whole.hashes)[:13] == layer
    assert merkle.split_layer(whole.hashes)[13] == merkle.pad_hash(BLOCKS_PER_PIECE)


@pytest.mark.parametrize(
    ("base", "index", "length", "proof", "match"),
    [
        (2, 16, 16, 3, "the layer has 16"),  # past the end of the piece layer
        (2, 0, 32, 3, "the layer has 16"),
        (2, 0, 4, 4, "tree is 6 high"),  # a proof layer above the root
        (6, 0, 1, 0, "tree is 6 high"),  # the root's own layer
        (40, 0, 1, 0, "tree is 6 high"),
    ],
)
def test_requests_outside_the_file_tree_are_protocol_errors(
    base: int, index: int, length: int, proof: int, match: str
) -> None:
    serve, _, root = serve_for(13)
    with pytest.raises(PeerProtocolError, match=match):
        serve.answer(HashRequest(root, base, index, length, proof))


def test_requests_we_cannot_serve_are_rejected() -> None:
    serve, _, root = serve_for(13)
    # An unknown root, a file without a layer (its piece layer, or its blocks: the proof
    # above its pieces needs the layer).
    assert isinstance(serve.answer(HashRequest(bytes(32), 2, 0, 4, 1)), HashReject)
    _, other_root = piece_layer_tree(5, seed=9)
    bare = HashServe(PIECE_LENGTH, [v2_file(5, other_root)], {})
    assert isinstance(bare.answer(HashRequest(other_root, 2, 0, 8, 2)), HashReject)
    assert isinstance(bare.answer(HashRequest(other_root, 0, 0, 4, 4)), HashReject)
    # A layer above the piece layer, which no client asks for.
    assert isinstance(serve.answer(HashRequest(root, 3, 0, 8, 2)), HashReject)


# -- fetching --------------------------------------------------------------------------


def test_a_downloader_fetches_a_layer_in_runs_and_proves_each_against_the_root() -> None:
    num_pieces = 1300  # three runs of 512
    serve, layer, root = serve_for(num_pieces)
    fetch = HashFetch(PIECE_LENGTH, [v2_file(num_pieces, root, first_piece=7)])
    requests = fetch.requests_for("seed", lambda index: True, 0.0, has_all=True)
    assert [request.index for request in requests] == [0, 512, 1024]
    assert all(request.length == REQUEST_HASHES for request in requests)
    got: list[PieceLayerReceived] = []
    for request in reversed(requests):  # in any order
        answer = serve.answer(request)
        assert isinstance(answer, Hashes)
        got += fetch.received("seed", answer)
    assert got == [PieceLayerReceived(root, b"".join(layer))]
    assert fetch.is_done


def test_a_proof_that_does_not_hash_to_the_root_is_a_protocol_error() -> None:
    serve, _, root = serve_for(13)
    fetch = HashFetch(PIECE_LENGTH, [v2_file(13, root)])
    [request] = fetch.requests_for("liar", lambda index: True, 0.0)
    answer = serve.answer(request)
    assert isinstance(answer, Hashes)
    forged = dataclasses.replace(answer, hashes=bytes(32) + answer.hashes[32:])
    with pytest.raises(PeerProtocolError, match="do not prove"):
        fetch.received("liar", forged)
    # The run goes to the next peer once the liar is gone.
    fetch.peer_gone("liar")
    assert fetch.requests_for("honest", lambda index: True, 1.0) == [request]


def test_runs_go_only_to_peers_with_a_piece_of_them_and_a_reject_frees_the_run() -> None:
    _, root = piece_layer_tree(13)
    fetch = HashFetch(PIECE_LENGTH, [v2_file(13, root, first_piece=3)])
    assert fetch.requests_for("empty", lambda index: False, 0.0) == []
    [request] = fetch.requests_for("partial", lambda index: index == 3 + 12, 0.0)
    assert fetch.requests_for("other", lambda index: True, 1.0) == []  # asked of "partial"
    fetch.rejected("partial", HashReject(request.pieces_root, request.base_layer, request.index, request.length,
                                         request.proof_layers))  # fmt: skip
    assert fetch.requests_for("other", lambda index: True, 2.0) == [request]


def test_a_silent_peer_loses_its_run_after_the_timeout() -> None:
    _, root = piece_layer_tree(13)
    fetch = HashFetch(PIECE_LENGTH, [v2_file(13, root)])
    [request] = fetch.requests_for("slow", lambda index: True, 0.0)
    assert fetch.requests_for("fast", lambda index: True, 10.0) == []
    assert fetch.requests_for("fast", lambda index: True, 31.0) == [request]


def test_requests_per_peer_are_bounded_and_one_piece_files_need_none() -> None:
    files = [v2_file(3, piece_layer_tree(3, seed=n)[1], first_piece=3 * n) for n in range(10)]
    files.append(V2File(bytes(32), 1000, 30))  # one piece: its root is its hash
    fetch = HashFetch(PIECE_LENGTH, files)
    assert len(fetch.wanted_roots()) == 10
    assert len(fetch.requests_for("a", lambda index: True, 0.0)) == MAX_HASH_REQUESTS_PER_PEER
    assert len(fetch.requests_for("a", lambda index: True, 0.0)) == 0
    assert HashFetch(PIECE_LENGTH, [V2File(bytes(32), 1000, 0)]).is_done


def test_a_late_answer_to_a_run_already_in_is_ignored() -> None:
    serve, _, root = serve_for(5)
    fetch = HashFetch(PIECE_LENGTH, [v2_file(5, root)])
    [request] = fetch.requests_for("a", lambda index: True, 0.0)
    answer = serve.answer(request)
    assert isinstance(answer, Hashes)
    assert len(fetch.received("b", answer)) == 1
    assert fetch.received("a", answer) == []


# -- the swarm -------------------------------------------------------------------------


def swarm_with_a_seed(num_pieces: int) -> tuple[Swarm, PeerProtocol, HashServe, bytes]:
    """A swarm fetching one file's piece layer, and a peer core that has just said it has
    every piece; returns the swarm, the core, a server of the true layer, and the root."""
    serve, _, root = serve_for(num_pieces)
    swarm = Swarm(
        num_pieces=num_pieces, piece_size=lambda index: PIECE_LENGTH, have=[], rng=random.Random(5), now=0.0,
        priorities=[0] * num_pieces, hash_fetch=HashFetch(PIECE_LENGTH, [v2_file(num_pieces, root)]),
    )  # fmt: skip
    peer = PeerProtocol(
        info_hash=b"i" * 20, peer_id=b"o" * 20, num_pieces=num_pieces,
        piece_size=lambda index: PIECE_LENGTH, have_piece=swarm.has_piece, now=0.0,
    )  # fmt: skip
    swarm.add_peer("seed", peer, 0.0)
    handshake = Handshake(b"i" * 20, b"t" * 20, reserved_bits(FAST_EXTENSION)).encode()
    swarm.handle("seed", peer.receive(handshake + encode(HaveAll()), now=0.0), 0.0)
    return swarm, peer, serve, root


def sent_messages(peer: PeerProtocol) -> list[Message]:
    return FrameDecoder(1 << 20).feed(peer.data_to_send())


def test_the_swarm_asks_a_seed_for_the_layer_and_reports_it_proven() -> None:
    swarm, peer, serve, _ = swarm_with_a_seed(13)
    assert not swarm.is_seeding  # the pieces wait for their hashes
    [request] = [message for message in sent_messages(peer) if isinstance(message, HashRequest)]
    answer = serve.answer(request)
    assert isinstance(answer, Hashes)
    actions = swarm.handle("seed", peer.receive(encode(answer), now=1.0), 1.0)
    assert [type(action) for action in actions] == [PieceLayerReceived]
    assert swarm.hash_fetch is None
    # Once the layer is in, the pieces are wanted and requested.
    swarm.set_priorities(range(13), 1)
    assert peer.am_interested


def test_a_peer_whose_hashes_do_not_prove_loses_its_connection() -> None:
    swarm, peer, serve, _ = swarm_with_a_seed(13)
    [request] = [message for message in sent_messages(peer) if isinstance(message, HashRequest)]
    answer = serve.answer(request)
    assert isinstance(answer, Hashes)
    forged = dataclasses.replace(answer, hashes=answer.hashes[:-32] + bytes(32))
    actions = swarm.handle("seed", peer.receive(encode(forged), now=1.0), 1.0)
    [closed] = actions
    assert isinstance(closed, ClosePeer)
    assert "do not prove" in closed.reason
    assert swarm.hash_fetch is not None
    assert not swarm.hash_fetch.is_done


def test_a_swarm_without_layers_rejects_hash_requests() -> None:
    swarm, peer, _, root = swarm_with_a_seed(13)
    sent_messages(peer)
    swarm.handle("seed", peer.receive(encode(HashRequest(root, 2, 0, 16, 3)), now=1.0), 1.0)
    assert HashReject(root, 2, 0, 16, 3) in sent_messages(peer)


def test_requests_longer_than_we_serve_are_rejected_not_answered() -> None:
    serve, _, root = serve_for(1300)  # a piece layer 2048 wide
    base = piece_layer_of(PIECE_LENGTH)
    assert isinstance(serve.answer(HashRequest(root, base, 0, 512, 10)), Hashes)
    assert isinstance(serve.answer(HashRequest(root, base, 0, 1024, 10)), HashReject)


def test_a_flood_of_hash_requests_is_rejected_past_the_limit_until_the_next_tick() -> None:
    layer, root = piece_layer_tree(13)
    swarm = Swarm(
        num_pieces=13, piece_size=lambda index: PIECE_LENGTH, have=range(13), rng=random.Random(5), now=0.0,
        hash_serve=HashServe(PIECE_LENGTH, [v2_file(13, root)], {root: b"".join(layer)}),
    )  # fmt: skip
    peer = open_core(num_pieces=13)
    swarm.add_peer("greedy", peer, 0.0)
    request = HashRequest(root, piece_layer_of(PIECE_LENGTH), 0, 16, 3)
    flood = encode(request) * (MAX_HASH_ANSWERS_PER_TICK + 3)
    swarm.handle("greedy", peer.receive(flood, now=1.0), 1.0)
    answers = sent_messages(peer)
    assert sum(isinstance(message, Hashes) for message in answers) == MAX_HASH_ANSWERS_PER_TICK
    assert sum(isinstance(message, HashReject) for message in answers) == 3
    swarm.tick(2.0)
    sent_messages(peer)
    swarm.handle("greedy", peer.receive(encode(request), now=2.0), 2.0)
    assert [type(message) for message in sent_messages(peer)] == [Hashes]


@given(st.lists(st.integers(2, 1500), min_size=1, max_size=4), st.data())
def test_whatever_the_order_of_answers_rejects_and_departures_every_layer_comes_in_whole(
    sizes: list[int], data: st.DataObject
) -> None:
    files, layers, first = [], {}, 0
    for number, num_pieces in enumerate(sizes):
        layer, root = piece_layer_tree(num_pieces, seed=number * 7919 + num_pieces)
        files.append(v2_file(num_pieces, root, first_piece=first))
        layers[root] = b"".join(layer)
        first += num_pieces
    serve = HashServe(PIECE_LENGTH, files, dict(layers))
    fetch = HashFetch(PIECE_LENGTH, files)
    got: dict[bytes, bytes] = {}
    now = 0.0
    for _ in range(200):
        if fetch.is_done:
            break
        now += 1.0
        peer = data.draw(st.sampled_from(["a", "b", "c"]))
        requests = fetch.requests_for(peer, lambda index: True, now)
        for request in requests:
            fate = data.draw(st.sampled_from(["answer", "reject", "leave"]))
            if fate == "answer":
                answer = serve.answer(request)
                assert isinstance(answer, Hashes)
                got.update((layer.pieces_root, layer.layer) for layer in fetch.received(peer, answer))
            elif fate == "reject":
                fetch.rejected(peer, HashReject(request.pieces_root, request.base_layer, request.index,
                                                request.length, request.proof_layers))  # fmt: skip
            else:
                fetch.peer_gone(peer)
                break
    # Whatever is left, one patient peer finishes it.
    while not fetch.is_done:
        now += 100.0
        for request in fetch.requests_for("patient", lambda index: True, now):
            answer = serve.answer(request)
            assert isinstance(answer, Hashes)
            got.update((layer.pieces_root, layer.layer) for layer in fetch.received("patient", answer))
    assert got == layers


# -- block hashes (below the piece layer) ----------------------------------------------

# Six pieces of four blocks, the last one short (two blocks, the second partial): 22
# blocks, a tree 32 wide and 5 high whose piece layer is layer 2.
FILE_DATA = random.Random(7).randbytes(5 * PIECE_LENGTH + merkle.BLOCK_SIZE + 3616)
FIRST_PIECE = 3  # the file starts at piece 3 of the torrent


def pieces_of(data: bytes) -> list[bytes]:
    return [data[at : at + PIECE_LENGTH] for at in range(0, len(data), PIECE_LENGTH)]


def real_file(data: bytes = FILE_DATA) -> tuple[HashServe, bytes]:
    """A server of ``data``'s true piece layer, and its pieces root."""
    layer = [merkle.piece_root(piece, len(data), PIECE_LENGTH) for piece in pieces_of(data)]
    root = merkle.root(layer, merkle.next_power_of_two(len(layer)), BLOCKS_PER_PIECE)
    layers = {root: b"".join(layer)} if len(layer) > 1 else {}
    return HashServe(PIECE_LENGTH, [V2File(root, len(data), FIRST_PIECE)], layers), root


def answer_with(serve: HashServe, request: HashRequest, data: bytes = FILE_DATA) -> Hashes | HashReject:
    """Play the layer above: read the pieces asked for (from ``data``) and hash their blocks."""
    read = serve.answer(request)
    assert isinstance(read, ReadForHashes)
    pieces = pieces_of(data)
    return serve.answer_from_blocks(read, [merkle.block_hashes(pieces[index - FIRST_PIECE]) for index in read.pieces])


@pytest.mark.parametrize(
    ("base", "index", "length", "proof", "pieces"),
    [
        (0, 4 * piece, 4, 4, [piece])
        for piece in range(6)  # one piece's blocks, as libtorrent asks
    ]
    + [
        (0, 6, 2, 4, [1]),  # half a piece: the uncles inside the piece come from its blocks
        (0, 21, 1, 4, [5]),  # the last block, short
        (0, 8, 8, 4, [2, 3]),  # two pieces
        (0, 16, 16, 4, [4, 5]),  # past the file's end: padding
        (0, 24, 8, 4, []),  # padding alone
        (1, 2, 2, 3, [1]),  # a layer between the blocks and the pieces
        (0, 4, 4, 2, [1]),  # a proof that stops below the root
    ],
)
def test_block_hashes_of_pieces_we_have_prove_to_the_root(
    base: int, index: int, length: int, proof: int, pieces: list[int]
) -> None:
    serve, root = real_file()
    request = HashRequest(root, base, index, length, proof)
    read = serve.answer(request)
    assert isinstance(read, ReadForHashes)
    assert [index - FIRST_PIECE for index in read.pieces] == pieces
    answer = answer_with(serve, request)
    assert isinstance(answer, Hashes)
    hashes = merkle.split_layer(answer.hashes)
    assert len(hashes) == length + uncle_count(length, proof)
    # The uncles up to the root prove the hashes; a shorter proof is their first part.
    full = answer_with(serve, HashRequest(root, base, index, length, 4 - base))
    assert isinstance(full, Hashes)
    full_hashes = merkle.split_layer(full.hashes)
    assert full_hashes[: len(hashes)] == hashes
    assert merkle.root_from_proof(full_hashes[:length], index, full_hashes[length:]) == root
    # Block hashes are the blocks' own SHA-256, and past the file's end zero hashes.
    expected = [merkle.root(group, 1 << base) for group in _groups(merkle.block_hashes(FILE_DATA), 1 << base, 32)]
    assert hashes[:length] == expected[index : index + length]


def _groups(blocks: list[bytes], size: int, width: int) -> list[list[bytes]]:
    """Nodes of layer log2(size), as lists of the block hashes under each (padding left out)."""
    return [blocks[at : at + size] for at in range(0, width, size)]


def test_blocks_that_do_not_hash_to_the_piece_are_rejected_not_answered() -> None:
    # Data changed on disk after its piece was verified: no false proof goes out.
    serve, root = real_file()
    changed = bytearray(FILE_DATA)
    changed[PIECE_LENGTH + 5] ^= 1
    request = HashRequest(root, 0, 4, 4, 4)
    assert isinstance(answer_with(serve, request, bytes(changed)), HashReject)
    assert isinstance(answer_with(serve, request), Hashes)


def test_a_file_of_one_piece_answers_block_hashes_without_a_piece_layer() -> None:
    data = FILE_DATA[: 2 * merkle.BLOCK_SIZE + 700]  # three blocks, a tree 4 wide
    serve, root = real_file(data)
    for index, length in [(0, 4), (0, 2), (2, 2), (3, 1)]:
        request = HashRequest(root, 0, index, length, 1)
        answer = answer_with(serve, request, data)
        assert isinstance(answer, Hashes)
        hashes = merkle.split_layer(answer.hashes)
        assert merkle.root_from_proof(hashes[:length], index, hashes[length:]) == root


@pytest.mark.parametrize(
    ("base", "index", "length", "proof", "match"),
    [
        (0, 32, 2, 4, "the layer has 32"),  # past the end of the block layer
        (0, 0, 64, 0, "the layer has 32"),
        (0, 0, 2, 5, "tree is 5 high"),  # a proof layer above the root
    ],
)
def test_block_hash_requests_outside_the_tree_are_protocol_errors(
    base: int, index: int, length: int, proof: int, match: str
) -> None:
    serve, root = real_file()
    with pytest.raises(PeerProtocolError, match=match):
        serve.answer(HashRequest(root, base, index, length, proof))


def seeding_swarm(have: list[int]) -> tuple[Swarm, PeerProtocol, bytes]:
    serve, root = real_file()
    num_pieces = FIRST_PIECE + 6
    swarm = Swarm(
        num_pieces=num_pieces, piece_size=lambda index: PIECE_LENGTH, have=have, rng=random.Random(5), now=0.0,
        hash_serve=serve,
    )  # fmt: skip
    peer = open_core(num_pieces=num_pieces)
    swarm.add_peer("leecher", peer, 0.0)
    return swarm, peer, root


def test_the_swarm_reads_only_pieces_it_has_and_rejects_the_rest() -> None:
    swarm, peer, root = seeding_swarm(have=[FIRST_PIECE + 1])
    lacking = HashRequest(root, 0, 0, 4, 4)
    held = HashRequest(root, 0, 4, 4, 4)
    actions = swarm.handle("leecher", peer.receive(encode(lacking) + encode(held), now=1.0), 1.0)
    assert sent_messages(peer) == [HashReject(root, 0, 0, 4, 4)]
    [read] = actions
    assert isinstance(read, ReadBlockHashes)
    assert read.peer == "leecher"
    assert read.read.pieces == range(FIRST_PIECE + 1, FIRST_PIECE + 2)
    # The layer above read and hashed the piece: the answer goes out and proves.
    swarm.block_hashes_read("leecher", read.read, [merkle.block_hashes(pieces_of(FILE_DATA)[1])])
    [answer] = sent_messages(peer)
    assert isinstance(answer, Hashes)
    hashes = merkle.split_layer(answer.hashes)
    assert merkle.root_from_proof(hashes[:4], 4, hashes[4:]) == root
    # A read that failed is a reject; an answer for a peer gone since is dropped.
    swarm.handle("leecher", peer.receive(encode(held), now=1.0), 1.0)
    swarm.block_hashes_read("leecher", read.read, None)
    assert sent_messages(peer) == [HashReject(root, 0, 4, 4, 4)]
    swarm.handle("leecher", peer.receive(encode(held), now=1.0), 1.0)
    swarm.remove_peer("leecher")
    swarm.block_hashes_read("leecher", read.read, None)


def test_block_hash_reads_are_bounded_in_flight_and_per_tick() -> None:
    swarm, peer, root = seeding_swarm(have=list(range(FIRST_PIECE + 6)))
    request = HashRequest(root, 0, 0, 4, 4)
    flood = encode(request) * (MAX_BLOCK_HASH_READS_IN_FLIGHT + 3)
    reads = swarm.handle("leecher", peer.receive(flood, now=1.0), 1.0)
    assert len(reads) == MAX_BLOCK_HASH_READS_IN_FLIGHT
    assert sent_messages(peer) == [HashReject(root, 0, 0, 4, 4)] * 3
    blocks = [merkle.block_hashes(pieces_of(FILE_DATA)[0])]
    answered = 0
    # Each answer frees a place, until the tick's budget is spent.
    while True:
        read = reads.pop()
        assert isinstance(read, ReadBlockHashes)
        swarm.block_hashes_read("leecher", read.read, blocks)
        answered += 1
        reads += swarm.handle("leecher", peer.receive(encode(request), now=1.0), 1.0)
        if not reads:
            break
    assert answered == MAX_BLOCK_HASH_READS_PER_TICK
    messages = sent_messages(peer)
    assert sum(isinstance(message, Hashes) for message in messages) == MAX_BLOCK_HASH_READS_PER_TICK
    assert isinstance(messages[-1], HashReject)
    swarm.tick(2.0)
    sent_messages(peer)
    assert len(swarm.handle("leecher", peer.receive(encode(request), now=2.0), 2.0)) == 1


def test_block_hashes_of_a_file_of_one_block_are_rejected_as_libtorrent_asks_for_them() -> None:
    # Seen from libtorrent 2.0 after a one-block file's piece failed: base 0, two hashes.
    serve, root = real_file(FILE_DATA[:777])
    assert isinstance(serve.answer(HashRequest(root, 0, 0, 2, 0)), HashReject)
