"""A swarm of viewers playing one video, in one process on a virtual clock.

The scenario of ``bench/stream_bench.py swarm``: one seed whose upload is capped at twice
the video's bitrate, viewers launched ``LAUNCH_INTERVAL_S`` apart, each with its upload
capped at the bitrate. Each viewer is a real ``Swarm`` with its peer cores and a
``ReadAhead`` window updated as ``FileReader`` updates it (when its position enters
another piece, at least every ``REFRESH_S`` while it reads or waits, not while the
player's buffer is full and nothing is read). Its player starts once ``STARTUP_S`` of
video is buffered, consumes at the bitrate, stalls when the bytes run out and resumes
once ``REBUFFER_S`` is buffered again (``bench/playback.py``); the HTTP client reading
for it keeps at most ``FORWARD_BUFFER_S`` ahead of the play head.

Uploads: each node serves the blocks asked of it per requester and piece, the pieces
nearest their requester's first missing piece first, then in the order asked (as
``UploadQueue`` and ``Swarm.upload_rank`` do), at
its capped rate in bytes per simulated second; a cancelled request not yet served is
skipped. Choking is each swarm's own, run by ``tick`` every ``TICK_S`` (as the session
does). The network itself is instant.

Differences from the benchmark: the seed is a bitswarm swarm (the benchmark's is
libtorrent), not super-seeding (libtorrent does not by default); there is no TCP
buffering between the reader and the player.

Each test's seed is in its id, so a failure replays exactly.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import pytest

from bitswarm.engine.picker import BLOCK_SIZE
from bitswarm.engine.readahead import ReadAhead
from bitswarm.engine.swarm import Action, CheckPiece, ServeBlock, Swarm, WriteBlock
from bitswarm.engine.upload_queue import UploadQueue
from bitswarm.stream.reader import REFRESH_S
from bitswarm.wire.messages import Piece
from bitswarm.wire.peer import PeerProtocol

INFO_HASH = b"w" * 20
PIECE_LENGTH = BLOCK_SIZE  # the benchmark's torrent's (the figures below before 2026-12-08: 64 KiB)
BITRATE = 270_336  # bytes per second: the benchmark's 2.16 Mbit/s video
VIDEO_S = 60.0
SEED_UP = 2 * BITRATE  # bytes per second
VIEWER_UP = BITRATE
VIEWERS = 8
LAUNCH_INTERVAL_S = 5.0
STARTUP_S = 2.0
REBUFFER_S = 2.0
FORWARD_BUFFER_S = 30.0
STEP_S = 0.05
TICK_S = 1.0  # the session ticks its swarms this often


@dataclass
class Player:
    """``bench/playback.py``'s ``Playhead``: start at ``STARTUP_S`` buffered, consume at
    ``BITRATE``, stall when the bytes run out, resume at ``REBUFFER_S`` buffered."""

    size: int
    launched_s: float
    position: float = 0.0
    available: int = 0
    last_s: float = 0.0
    started_s: float | None = None
    finished_s: float | None = None
    stalled_since_s: float | None = None
    stalls: list[tuple[float, float]] = field(default_factory=list)

    def update(self, now: float, available: int) -> None:
        if self.started_s is not None and self.stalled_since_s is None and self.finished_s is None:
            runs_out_s = self.last_s + (self.available - self.position) / BITRATE
            if runs_out_s >= now:
                self.position += (now - self.last_s) * BITRATE
            else:
                self.position = float(self.available)
                if self.available >= self.size:
                    self.finished_s = runs_out_s
                else:
                    self.stalled_since_s = runs_out_s
        self.available = max(self.available, min(available, self.size))
        self.last_s = now
        buffered = self.available - self.position
        if self.started_s is None:
            if buffered >= min(STARTUP_S * BITRATE, self.size):
                self.started_s = now
        elif self.stalled_since_s is not None and buffered >= min(REBUFFER_S * BITRATE, self.size - self.position):
            self.stalls.append((self.stalled_since_s, now))
            self.stalled_since_s = None

    def stalled_s(self, now: float) -> float:
        ongoing = now - self.stalled_since_s if self.stalled_since_s is not None else 0.0
        return sum(end - begin for begin, end in self.stalls) + ongoing


@dataclass
class Node:
    name: str
    swarm: Swarm
    content: bytearray
    up_bytes_per_s: float
    cores: dict[str, PeerProtocol] = field(default_factory=dict)
    uploads: UploadQueue[str, ServeBlock] = field(default_factory=UploadQueue)
    credit: float = 0.0  # bytes it may send now
    uploaded: int = 0
    # A viewer's reader (its HTTP response) and player.
    window: ReadAhead | None = None
    player: Player | None = None
    window_piece: int = -1
    window_set_at: float = float("-inf")


class ViewerSwarm:
    def __init__(self, seed: int, *, video_s: float = VIDEO_S) -> None:
        self.rng = random.Random(seed)
        self.data = self.rng.randbytes(int(video_s * BITRATE))
        self.num_pieces = -(-len(self.data) // PIECE_LENGTH)
        self.hashes = [
            hashlib.sha1(self.data[at : at + PIECE_LENGTH]).digest() for at in range(0, len(self.data), PIECE_LENGTH)
        ]
        self.now = 0.0
        self.next_tick = 0.0
        self.nodes: list[Node] = [self._node("seed", SEED_UP, have_all=True)]

    def piece_size(self, index: int) -> int:
        return min(PIECE_LENGTH, len(self.data) - index * PIECE_LENGTH)

    def _node(self, name: str, up: float, *, have_all: bool) -> Node:
        swarm = Swarm(
            num_pieces=self.num_pieces, piece_size=self.piece_size, have=range(self.num_pieces) if have_all else (),
            rng=random.Random(self.rng.random()), now=self.now, super_seed=not have_all,
        )  # fmt: skip
        # A viewer runs with an upload limit, so it super-seeds once it has everything (the
        # runtime's default); the seed stands for the benchmark's libtorrent, which does not.
        return Node(name, swarm, bytearray(self.data) if have_all else bytearray(len(self.data)), up)

    @property
    def viewers(self) -> list[Node]:
        return self.nodes[1:]

    def launch_viewer(self) -> Node:
        """A viewer connects to every node, and its player opens the file."""
        viewer = self._node(f"viewer-{len(self.nodes)}", VIEWER_UP, have_all=False)
        for other in self.nodes:
            for local, remote in ((viewer, other), (other, viewer)):
                core = PeerProtocol(
                    info_hash=INFO_HASH, peer_id=local.name.encode().ljust(20, b"-"), num_pieces=self.num_pieces,
                    piece_size=self.piece_size, have_piece=local.swarm.has_piece, now=self.now,
                )  # fmt: skip
                local.cores[remote.name] = core
                local.swarm.add_peer(remote.name, core, self.now)
            for local, remote in ((viewer, other), (other, viewer)):
                local.cores[remote.name]._small += local.cores[remote.name].handshake()
        self.nodes.append(viewer)
        viewer.window = ReadAhead(0, len(self.data), PIECE_LENGTH, self.now)
        viewer.window.set_media_rate(BITRATE, self.now)  # as the server learns it from the container
        viewer.player = Player(len(self.data), self.now)
        self.refresh(viewer, force=True)
        self.deliver()
        return viewer

    # -- the network ---------------------------------------------------------------------

    def deliver(self) -> None:
        """Every byte in flight arrives (the network itself is instant)."""
        by_name = {node.name: node for node in self.nodes}
        moved = True
        while moved:
            moved = False
            for node in self.nodes:
                for name, core in node.cores.items():
                    data = core.data_to_send()
                    if not data:
                        continue
                    moved = True
                    other = by_name[name]
                    events = other.cores[node.name].receive(data, self.now)
                    self.run(other, other.swarm.handle(node.name, events, self.now))

    def run(self, node: Node, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, WriteBlock):
                start = action.index * PIECE_LENGTH + action.begin
                node.content[start : start + len(action.data)] = action.data
            elif isinstance(action, CheckPiece):
                start = action.index * PIECE_LENGTH
                ok = hashlib.sha1(node.content[start : start + self.piece_size(action.index)]).digest()
                self.run(node, node.swarm.piece_checked(action.index, ok == self.hashes[action.index], [], self.now))
            elif isinstance(action, ServeBlock):
                node.uploads.push(str(action.peer), action.index, action)

    def upload(self, node: Node) -> None:
        """``node`` sends what was asked of it, oldest first, as its upload allows; a
        request cancelled meanwhile is skipped (BEP 3: the peer no longer wants it)."""
        node.credit = min(node.credit + node.up_bytes_per_s * STEP_S, node.up_bytes_per_s * STEP_S + BLOCK_SIZE)
        while node.credit >= BLOCK_SIZE and node.uploads:
            ((peer, serve),) = node.uploads.pop_batch(
                1, lambda peer, index: node.swarm.upload_rank(peer, index, self.now)
            )
            core = node.cores[peer]
            if (serve.index, serve.begin, serve.length) not in core.peer_requests:
                continue
            start = serve.index * PIECE_LENGTH + serve.begin
            core.send(Piece(serve.index, serve.begin, bytes(node.content[start : start + serve.length])))
            node.swarm.block_sent(peer, serve.index, serve.length, self.now)
            node.credit -= serve.length
            node.uploaded += serve.length
        if not node.uploads:
            node.credit = min(node.credit, BLOCK_SIZE)  # an idle link saves up no more than a block

    # -- the viewers' readers and players ----------------------------------------------------

    def refresh(self, viewer: Node, *, force: bool = False) -> None:
        """``FileReader._refresh``: the window's deadlines set again when the position
        entered another piece or ``REFRESH_S`` passed (or ``force``: a read waits)."""
        window, swarm = viewer.window, viewer.swarm
        assert window is not None
        piece = window.piece_at(window.position)
        if not force and piece == viewer.window_piece and self.now - viewer.window_set_at < REFRESH_S:
            return
        for index in list(window.pinned):
            if swarm.has_piece(index):
                window.piece_arrived(index)
        due = {index: at for index, at in window.deadlines(self.now).items() if not swarm.has_piece(index)}
        viewer.window_piece, viewer.window_set_at = piece, self.now
        swarm.set_deadlines("reader", due, self.now)

    def read(self, viewer: Node) -> None:
        """The HTTP client reads what is verified from the reader's position on, at most
        ``FORWARD_BUFFER_S`` ahead of the play head; its player moves on."""
        window, player, swarm = viewer.window, viewer.player, viewer.swarm
        assert window is not None
        assert player is not None
        player.update(self.now, window.position)
        limit = min(len(self.data), int(player.position + FORWARD_BUFFER_S * BITRATE))
        while window.position < limit:
            index = window.piece_at(window.position)
            if not swarm.has_piece(index):
                # The read waits for the piece, setting the window again every REFRESH_S.
                if self.now - viewer.window_set_at >= REFRESH_S or index != viewer.window_piece:
                    self.refresh(viewer, force=True)
                break
            taken = min((index + 1) * PIECE_LENGTH, limit) - window.position
            window.consumed(taken, self.now)
            self.refresh(viewer)
        player.update(self.now, window.position)

    # -- time ------------------------------------------------------------------------------

    def step(self) -> None:
        self.now += STEP_S
        for node in self.nodes:
            self.upload(node)
        self.deliver()
        if self.now >= self.next_tick:
            self.next_tick += TICK_S
            for node in self.nodes:
                self.run(node, node.swarm.tick(self.now))
            self.deliver()
        for viewer in self.viewers:
            self.read(viewer)
        self.deliver()


@dataclass(frozen=True)
class ViewerResult:
    start_delay_s: float | None
    stalls: int
    stalled_s: float
    finished: bool  # the player reached the end of the video


@dataclass(frozen=True)
class SwarmResult:
    viewers: list[ViewerResult]
    seed_upload_x: float  # the seed's upload, in copies of the file
    viewers_upload_x: float


def play_swarm(seed: int, *, video_s: float = VIDEO_S, viewers: int = VIEWERS) -> SwarmResult:
    """Launch the viewers and run until every player has played the whole video."""
    network = ViewerSwarm(seed, video_s=video_s)
    launches = [index * LAUNCH_INTERVAL_S for index in range(viewers)]
    give_up_s = launches[-1] + 4 * video_s
    while network.now < give_up_s:
        while launches and network.now >= launches[0] - 1e-9:
            launches.pop(0)
            network.launch_viewer()
        network.step()
        if not launches and all(v.player is not None and v.player.finished_s is not None for v in network.viewers):
            break
    results = []
    for viewer in network.viewers:
        player = viewer.player
        assert player is not None
        delay = player.started_s - player.launched_s if player.started_s is not None else None
        ongoing = 1 if player.stalled_since_s is not None else 0
        stalled_s = player.stalled_s(network.now)
        results.append(ViewerResult(delay, len(player.stalls) + ongoing, stalled_s, player.finished_s is not None))
    size = len(network.data)
    return SwarmResult(
        results,
        network.nodes[0].uploaded / size,
        sum(viewer.uploaded for viewer in network.viewers) / size,
    )


# Before the player was modelled (64 KiB pieces, seed 1): starts 1.4-4.9 s, 67 stalls
# (385 s), the seed sent 4.2x the file, the viewers 4.4x; the benchmark measured 66 stalls
# (333 s), 4.5x and 3.7x. Every reader catches up with the front (it reads as fast as the
# viewers ahead serve it, up to 30 s ahead of its player), where the next piece was due
# "now" for every viewer (the window was timed from the reader's position) and only the
# seed had it: each viewer asked the seed for the same pieces. With the player modelled
# from the media's rate and the seed asked only for what is due within SEED_SPARING_S:
# starts 1.4-6.2 s, 10 stalls (21 s), the seed 2.2x, the viewers 5.8x. The player model
# alone, or the sparing alone, changes little (79 stalls, 451 s; 70 stalls, 424 s).
# Then each later viewer took longer to start (seed 1: 1.4, 1.8, 2.0, 2.85, 3.65, 4.85,
# 5.85, 6.5 s; 9 stalls, 26 s): its first seconds came from viewers whose uploads were
# full of the others' read-ahead, 20 s of it each. With newcomers served first by the
# viewers (NEWCOMER_SERVE_S) and 8 s of read-ahead (MEDIA_READAHEAD_S): starts of
# 0.95-1.85 s, 11 stalls (23 s), the seed 2.2x, the viewers 5.9x (seeds 2 and 3: at most
# 1.85 and 1.9 s, 9 and 10 stalls). Newcomers first alone: 21 stalls (44 s); 8 s alone:
# 4 stalls (12 s) but starts up to 5.5 s. Then each node served the request nearest the
# requester's first missing piece first (within URGENT_SERVE_BYTES of it; the rest in the
# order asked), a newcomer's taken NEWCOMER_HEAD_START_BYTES nearer, where newcomers had
# gone first and then everyone in the order asked: no stall at all, starts of 1.0-1.5 s,
# the seed 2.3x, the viewers 5.8x (seeds 1-5; with the benchmark's 16 KiB pieces, seeds 1
# and 2: 0 and 1 stall, 0.6 s). The benchmark itself, with bitswarm at every node, still
# stalled 11-16 times (33-57 s): a viewer that had just joined asked at its own first
# missing piece, with seconds of video to spare, and went before those about to stall.
# Then the viewers told their peers when each piece is due (``bs_due``), each node served
# the earliest due first and what a viewer asked without a due time last, and hint-taking
# seeds were not spared: here, with 16 KiB pieces, no stall, starts of 0.95-1.35 s, the
# seed 2.25-2.27x (seeds 1-3; with 64 KiB pieces 2-5 stalls of 0.2-2.6 s each); in the
# benchmark no stall in 3 runs of 3, starts of at most 1.59 s.
@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda seed: f"seed={seed}")
def swarm_result(request: pytest.FixtureRequest) -> SwarmResult:
    return play_swarm(request.param)


def test_every_viewer_plays_to_the_end_and_starts_within_two_seconds(swarm_result: SwarmResult) -> None:
    # A viewer never asks a peer for more blocks than the peer queues (BEP 10 reqq): before
    # that limit, viewers asked the seed for 500 and more deadline blocks, and its core
    # raised a protocol error (a real peer drops the connection). A viewer that joins is
    # served first by the viewers ahead (Swarm.upload_rank): before, the eighth viewer took
    # 6.5 s to buffer its first 2 s.
    assert len(swarm_result.viewers) == VIEWERS
    for viewer in swarm_result.viewers:
        assert viewer.finished
        assert viewer.start_delay_s is not None
        assert viewer.start_delay_s <= 2.0


def test_the_viewers_feed_each_other_and_the_seed_sends_little_more_than_twice(swarm_result: SwarmResult) -> None:
    """With the player modelled (its media rate known) and the seed asked only for what is
    due within SEED_SPARING_S, the seed's upload goes to the viewer in front and the others
    trade: before, the seed sent 4.2 copies, the viewers 4.4, and the players stalled 67
    times for 385 s."""
    assert swarm_result.seed_upload_x <= 2.5
    assert swarm_result.viewers_upload_x >= 5.0
    assert sum(viewer.stalls for viewer in swarm_result.viewers) <= 16
    assert sum(viewer.stalled_s for viewer in swarm_result.viewers) <= 40.0


def test_every_viewer_starts_within_two_seconds_and_never_stalls(swarm_result: SwarmResult) -> None:
    for viewer in swarm_result.viewers:
        assert viewer.start_delay_s is not None
        assert viewer.start_delay_s <= 2.0
        assert viewer.stalls == 0
