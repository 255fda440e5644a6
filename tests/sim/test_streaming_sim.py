"""A viewer streaming from a seed in one process: real swarms and peer cores on a virtual
clock, the seed's upload the bottleneck. The viewer's window (``ReadAhead``) sets the
swarm's deadlines; after a seek the pieces under the play head arrive before any piece
asked for after it.

Each test's seed is in its id, so a failure replays exactly.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import pytest

from bitswarm.engine.picker import BLOCK_SIZE
from bitswarm.engine.readahead import ReadAhead
from bitswarm.engine.swarm import Action, CheckPiece, PieceVerified, ServeBlock, Swarm, WriteBlock
from bitswarm.wire.messages import Cancel, Piece
from bitswarm.wire.peer import PeerProtocol

PIECE_LENGTH = 16 * BLOCK_SIZE  # 256 KiB: the window (at least 10 MiB) is 40 pieces
INFO_HASH = b"v" * 20
SEED_BLOCKS_PER_S = 64  # 1 MiB/s: twice the rate a player is assumed to read at
PLAY_BYTES_PER_S = 512 * 1024  # the rate the window assumes
STEP_S = 0.25


@dataclass
class Node:
    name: str
    swarm: Swarm
    content: bytearray
    cores: dict[str, PeerProtocol] = field(default_factory=dict)
    pending_uploads: list[ServeBlock] = field(default_factory=list)
    verified: list[tuple[float, int]] = field(default_factory=list)


class StreamNetwork:
    """A seed whose upload is limited to ``SEED_BLOCKS_PER_S``, and a viewer."""

    def __init__(self, data: bytes, seed: int) -> None:
        self.data = data
        self.now = 0.0
        self.rng = random.Random(seed)
        self.num_pieces = -(-len(data) // PIECE_LENGTH)
        self.hashes = [hashlib.sha1(data[at : at + PIECE_LENGTH]).digest() for at in range(0, len(data), PIECE_LENGTH)]
        self.seed = self._node("seed", have_all=True)
        self.viewer = self._node("viewer", have_all=False)
        for local, remote in ((self.seed, self.viewer), (self.viewer, self.seed)):
            core = PeerProtocol(
                info_hash=INFO_HASH, peer_id=local.name.encode().ljust(20, b"-"), num_pieces=self.num_pieces,
                piece_size=self.piece_size, have_piece=local.swarm.has_piece, now=self.now,
            )  # fmt: skip
            local.cores[remote.name] = core
            local.swarm.add_peer(remote.name, core, self.now)
        for local, remote in ((self.seed, self.viewer), (self.viewer, self.seed)):
            local.cores[remote.name]._small += local.cores[remote.name].handshake()

    def _node(self, name: str, *, have_all: bool) -> Node:
        swarm = Swarm(
            num_pieces=self.num_pieces, piece_size=self.piece_size, have=range(self.num_pieces) if have_all else (),
            rng=random.Random(self.rng.random()), now=self.now,
        )  # fmt: skip
        return Node(name, swarm, bytearray(self.data) if have_all else bytearray(len(self.data)))

    def piece_size(self, index: int) -> int:
        return min(PIECE_LENGTH, len(self.data) - index * PIECE_LENGTH)

    def deliver(self) -> None:
        """Every byte in flight arrives (the network itself is instant)."""
        moved = True
        while moved:
            moved = False
            for node, other in ((self.seed, self.viewer), (self.viewer, self.seed)):
                data = node.cores[other.name].data_to_send()
                if data:
                    moved = True
                    events = other.cores[node.name].receive(data, self.now)
                    cancelled = {(e.index, e.begin, e.length) for e in events if isinstance(e, Cancel)}
                    if cancelled:  # a cancelled request leaves the sender's queue (BEP 3)
                        other.pending_uploads = [
                            serve
                            for serve in other.pending_uploads
                            if (serve.index, serve.begin, serve.length) not in cancelled
                        ]
                    self.run_actions(other, other.swarm.handle(node.name, events, self.now))

    def run_actions(self, node: Node, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, WriteBlock):
                start = action.index * PIECE_LENGTH + action.begin
                node.content[start : start + len(action.data)] = action.data
            elif isinstance(action, CheckPiece):
                start = action.index * PIECE_LENGTH
                ok = hashlib.sha1(node.content[start : start + self.piece_size(action.index)]).digest()
                self.run_actions(
                    node, node.swarm.piece_checked(action.index, ok == self.hashes[action.index], [], self.now)
                )
            elif isinstance(action, PieceVerified):
                node.verified.append((self.now, action.index))
            elif isinstance(action, ServeBlock):
                node.pending_uploads.append(action)  # served in order, as the upload allows

    def upload(self, node: Node, blocks: int) -> None:
        """``node`` sends up to ``blocks`` of the blocks asked of it, oldest first; a request
        cancelled meanwhile is skipped (BEP 3: the peer no longer wants it)."""
        while blocks and node.pending_uploads:
            serve = node.pending_uploads.pop(0)
            core = node.cores[str(serve.peer)]
            if (serve.index, serve.begin, serve.length) not in core.peer_requests:
                continue
            start = serve.index * PIECE_LENGTH + serve.begin
            core.send(Piece(serve.index, serve.begin, bytes(node.content[start : start + serve.length])))
            node.swarm.block_sent(serve.peer, serve.index, serve.length, self.now)
            blocks -= 1

    def step(self) -> None:
        """One ``STEP_S`` of virtual time: the seed uploads its share, everything is delivered."""
        self.now += STEP_S
        self.upload(self.seed, int(SEED_BLOCKS_PER_S * STEP_S))
        self.deliver()
        for node in (self.seed, self.viewer):
            self.run_actions(node, node.swarm.tick(self.now))
        self.deliver()


def play(network: StreamNetwork, reader: ReadAhead) -> None:
    """The player reads ``PLAY_BYTES_PER_S`` for a step from its play head, as far as the
    viewer has verified pieces (it stalls at a piece still missing)."""
    budget = int(PLAY_BYTES_PER_S * STEP_S)
    while budget and reader.position < reader.length:
        index = reader.piece_at(reader.position)
        if not network.viewer.swarm.has_piece(index):
            return
        end_of_piece = (index + 1) * PIECE_LENGTH - reader.start
        taken = min(budget, end_of_piece - reader.position, reader.length - reader.position)
        reader.consumed(taken, network.now)
        budget -= taken


def stream(network: StreamNetwork, reader: ReadAhead, until_s: float) -> None:
    """Run until ``until_s``, the viewer playing and setting its window's deadlines again
    at every step (as the stream reader does as time passes): pieces it has are left out."""
    viewer = network.viewer.swarm
    while network.now < until_s and not viewer.is_seeding:
        for index in range(network.num_pieces):
            if viewer.has_piece(index):
                reader.piece_arrived(index)
        due = {index: at for index, at in reader.deadlines(network.now).items() if not viewer.has_piece(index)}
        viewer.set_deadlines("reader", due, network.now)
        network.deliver()
        network.step()
        play(network, reader)


def open_stream(seed: int) -> tuple[StreamNetwork, ReadAhead]:
    """A 24 MiB file (96 pieces) on a seed, and a viewer connected to it opening the file."""
    network = StreamNetwork(random.Random(seed).randbytes(96 * PIECE_LENGTH), seed)
    network.deliver()  # the handshakes: the viewer asks for a first piece at random
    return network, ReadAhead(0, len(network.data), PIECE_LENGTH, network.now)


def verified_after(network: StreamNetwork, at: float) -> list[int]:
    return [index for when, index in network.viewer.verified if when > at]


@pytest.mark.parametrize("seed", [20, 21, 22])
def test_the_first_and_last_pieces_of_a_file_opened_for_playing_come_first(seed: int) -> None:
    network, reader = open_stream(seed)
    stream(network, reader, until_s=1.0)
    first = [index for _at, index in network.viewer.verified]
    assert first[0] == 0
    assert network.num_pieces - 1 in first[:3]  # the tail (an MP4's index) right after


@pytest.mark.parametrize(("seed", "seek_to"), [(21, 50), (22, 50), (23, 70), (24, 70)])
def test_after_a_seek_the_pieces_under_the_play_head_come_before_any_piece_asked_for_later(
    seed: int, seek_to: int
) -> None:
    network, reader = open_stream(seed)
    stream(network, reader, until_s=2.0)  # playing from the start
    seek_at = network.now
    # What the viewer asked for before the seek is on its way already: it may come first.
    asked_before = {index for index, _begin, _length in network.viewer.cores["seed"].our_requests}
    reader.seek(seek_to * PIECE_LENGTH + 1000)
    # Under the play head: the pieces the player needs in its first two seconds (512 KiB/s).
    under_play_head = {index for index in range(seek_to, seek_to + 4) if not network.viewer.swarm.has_piece(index)}
    stream(network, reader, until_s=60.0)
    assert network.viewer.swarm.is_seeding
    assert bytes(network.viewer.content) == network.data
    after = verified_after(network, seek_at)
    last_of_play_head = max(after.index(index) for index in under_play_head)
    came_between = [index for index in after[:last_of_play_head] if index not in under_play_head]
    assert [index for index in came_between if index not in asked_before] == []


@pytest.mark.parametrize("seed", [20, 21, 22, 23])
def test_a_player_at_half_the_seeds_rate_never_stalls_once_it_has_started(seed: int) -> None:
    network, reader = open_stream(seed)
    started = False
    stalled_at: list[float] = []
    while network.now < 12.0:
        before = reader.position
        stream(network, reader, until_s=network.now + STEP_S)
        played = reader.position - before
        if started and played < PLAY_BYTES_PER_S * STEP_S:
            stalled_at.append(network.now)
        started = started or played > 0
    assert started
    assert stalled_at == []
