"""Which blocks to ask which peer for: rarest first, with the usual refinements.

Pieces we want and have not started wait in buckets keyed by (priority, availability),
so the rarest piece of the highest priority is found without scanning the torrent. A
started piece is *partial*: its blocks are missing, requested (by which peers) or
received, and partial pieces are finished before new ones are started, so verified
pieces, the only ones worth sharing, appear as early as possible.

- The first few pieces are picked at random instead: the rarest pieces are the ones
  everybody is chasing, and a newcomer needs something to trade quickly.
- Sequential mode takes the lowest wanted piece (for streaming).
- Endgame: once every missing block is requested, a block may be requested from a second
  peer too; when it arrives the others are told to cancel.
- Priority 0 means "do not download" (skipped files). Higher priorities come first: while
  pieces of more than one wanted priority exist (a daemon's high, normal and low files),
  each class is served whole before the next, partial pieces and new ones alike (rarest
  first, the random first pieces and sequential mode within the class), so a peer that
  has nothing of the high class is still asked for the best it has. With one class, as
  ``bitswarm get`` has, that is the plain rarest-first order above.
- Deadlines (streaming): readers name pieces they need by a time (``set_deadlines``, one
  set per reader, merged by taking the earliest). Such pieces leave the rarest-first
  buckets and are handed out by ``pick_deadline`` alone, earliest deadline first, to the
  peers the swarm chooses (the fastest first). A piece still incomplete ``LATE_GRACE_S``
  after its deadline is late: its missing blocks are asked of a second peer as well, and
  the copy that arrives second is cancelled (as libtorrent's time-critical pieces).

Sans-IO: peers are opaque hashable keys, chance is a ``random.Random``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import NamedTuple

BLOCK_SIZE = 16 * 1024
RANDOM_FIRST_PIECES = 4
MAX_PRIORITY = 7
# In endgame a block is asked of at most this many peers at once.
ENDGAME_DUPLICATES = 2
# A deadline piece not in this long after its deadline has its missing blocks asked of a
# second peer too: one slow or stalled peer must not stall a player.
LATE_GRACE_S = 0.5
LATE_DUPLICATES = 2

PeerKey = Hashable


class BlockRequest(NamedTuple):
    # A tuple, not a dataclass: one is made per block requested (65,536 per GiB), and it
    # is also the key a peer core files its outstanding requests under. (The field hides
    # tuple.index, which nothing here calls.)
    index: int  # type: ignore[assignment]
    begin: int
    length: int


class _Partial:
    __slots__ = ("blocks", "received", "requesters", "size", "unrequested")

    def __init__(self, size: int) -> None:
        self.size = size
        self.blocks = -(-size // BLOCK_SIZE)
        self.unrequested = list(range(self.blocks - 1, -1, -1))  # popped from the end: block 0 first
        self.requesters: dict[int, set[PeerKey]] = {}
        self.received: set[int] = set()


class PiecePicker:
    def __init__(
        self,
        num_pieces: int,
        piece_size: Callable[[int], int],
        rng: random.Random,
        *,
        have: Iterable[int] = (),
        priorities: list[int] | None = None,
    ) -> None:
        self.num_pieces = num_pieces
        self.piece_size = piece_size
        self.rng = rng
        self.sequential = False
        self.have = bytearray(num_pieces)
        for index in have:
            self.have[index] = 1
        self.have_count = sum(self.have)
        # One byte per piece (priorities are 0..MAX_PRIORITY): a list would be eight.
        self.priority = bytearray(priorities) if priorities is not None else bytearray(b"\x01" * num_pieces)
        # Pieces per priority: more than one wanted class makes ``pick`` go class by class.
        self._priority_counts = [0] * (MAX_PRIORITY + 1)
        for value in self.priority:
            self._priority_counts[value] += 1
        self.availability = [0] * num_pieces
        self.seed_count = 0
        self._partial: dict[int, _Partial] = {}
        self._buckets: dict[tuple[int, int], set[int]] = {}
        # Deadlines: each owner's (a stream reader's) pieces, and the earliest per piece.
        self._deadline_owners: dict[Hashable, dict[int, float]] = {}
        self._deadlines: dict[int, float] = {}
        self._deadline_order: list[int] | None = None  # by deadline; None: to sort again
        for index in range(num_pieces):
            self._file(index)

    # -- bookkeeping of the buckets ------------------------------------------------------

    def _key(self, index: int) -> tuple[int, int]:
        return (-self.priority[index], self.availability[index])

    def _is_waiting(self, index: int) -> bool:
        """Unstarted, wanted and in a bucket (a piece with a deadline is handed out apart)."""
        return (
            not self.have[index]
            and self.priority[index] > 0
            and index not in self._partial
            and index not in self._deadlines
        )

    def _file(self, index: int) -> None:
        if self._is_waiting(index):
            self._buckets.setdefault(self._key(index), set()).add(index)

    def _unfile(self, index: int) -> None:
        if self._is_waiting(index):
            key = self._key(index)
            bucket = self._buckets[key]
            bucket.discard(index)
            if not bucket:
                del self._buckets[key]

    def _change_availability(self, index: int, delta: int) -> None:
        self._unfile(index)
        self.availability[index] += delta
        self._file(index)

    # -- what peers have -----------------------------------------------------------------

    def peer_has_all(self) -> None:
        self.seed_count += 1

    def peer_lost_all(self) -> None:
        self.seed_count -= 1

    def peer_has(self, index: int) -> None:
        self._change_availability(index, +1)

    def peer_lost(self, index: int) -> None:
        self._change_availability(index, -1)

    def set_priority(self, index: int, priority: int) -> None:
        if not 0 <= priority <= MAX_PRIORITY:
            raise ValueError(f"priority {priority} outside 0..{MAX_PRIORITY}")
        self._unfile(index)
        self._priority_counts[self.priority[index]] -= 1
        self.priority[index] = priority
        self._priority_counts[priority] += 1
        self._file(index)

    @property
    def has_priority_classes(self) -> bool:
        """Whether wanted pieces have more than one priority."""
        return sum(1 for count in self._priority_counts[1:] if count) > 1

    @property
    def is_complete(self) -> bool:
        """Every wanted piece is here (skipped pieces are not wanted)."""
        return all(self.have[index] or not self.priority[index] for index in range(self.num_pieces))

    # -- picking -------------------------------------------------------------------------

    def pick(
        self, peer: PeerKey, peer_has: Callable[[int], bool], count: int, *, has_all: bool = False
    ) -> list[BlockRequest]:
        """Up to ``count`` blocks to request from ``peer``, which has the pieces ``peer_has``
        says (every piece when ``has_all``: then no piece needs asking about)."""
        picked: list[BlockRequest] = []
        if self.has_priority_classes:
            self._pick_by_class(peer, peer_has, count, picked, has_all)
        else:
            self._pick_from_partials(peer, peer_has, count, picked)
            while len(picked) < count:
                index = self._start_piece(peer_has, has_all)
                if index is None:
                    break
                self._take_blocks(index, self._partial[index], peer, count, picked)
        if len(picked) < count and not self._buckets:
            self._pick_endgame(peer, peer_has, count, picked)
        return picked

    def _pick_by_class(
        self, peer: PeerKey, peer_has: Callable[[int], bool], count: int, picked: list[BlockRequest], has_all: bool
    ) -> None:
        """``pick`` with priority classes: the highest first, its partial pieces then new
        ones, before anything of the next class."""
        classes = {self.priority[index] for index, partial in self._partial.items() if partial.unrequested}
        classes.update(-key[0] for key in self._buckets)
        for priority in sorted(classes, reverse=True):
            self._pick_from_partials(peer, peer_has, count, picked, priority)
            while len(picked) < count:
                index = self._start_piece(peer_has, has_all, priority)
                if index is None:
                    break
                self._take_blocks(index, self._partial[index], peer, count, picked)
            if len(picked) >= count:
                return

    def _pick_from_partials(
        self,
        peer: PeerKey,
        peer_has: Callable[[int], bool],
        count: int,
        picked: list[BlockRequest],
        priority: int | None = None,
    ) -> None:
        """Blocks of started pieces (of ``priority`` only, when given)."""
        for index, partial in self._partial.items():
            if len(picked) >= count:
                return
            if priority is not None and self.priority[index] != priority:
                continue
            if partial.unrequested and index not in self._deadlines and peer_has(index):
                self._take_blocks(index, partial, peer, count, picked)

    def _take_blocks(
        self, index: int, partial: _Partial, peer: PeerKey, count: int, picked: list[BlockRequest]
    ) -> None:
        unrequested, requesters, size = partial.unrequested, partial.requesters, partial.size
        while unrequested and len(picked) < count:
            block = unrequested.pop()
            requesters[block] = {peer}
            begin = block * BLOCK_SIZE
            picked.append(BlockRequest(index, begin, min(BLOCK_SIZE, size - begin)))

    def _block(self, index: int, block: int) -> BlockRequest:
        begin = block * BLOCK_SIZE
        return BlockRequest(index, begin, min(BLOCK_SIZE, self.piece_size(index) - begin))

    def _start_piece(self, peer_has: Callable[[int], bool], has_all: bool, priority: int | None = None) -> int | None:
        index = self._choose_new_piece(peer_has, has_all, priority)
        if index is not None:
            self._begin(index)
        return index

    def _begin(self, index: int) -> None:
        """Waiting piece ``index`` is started: out of its bucket, every block missing."""
        self._unfile(index)
        self._partial[index] = _Partial(self.piece_size(index))

    def _choose_new_piece(
        self, peer_has: Callable[[int], bool], has_all: bool, priority: int | None = None
    ) -> int | None:
        """A waiting piece the peer has (of ``priority`` only, when given); None when none."""

        # From a seed every waiting piece qualifies: the buckets are taken whole, where
        # asking about each piece cost a call per piece per piece started (a twentieth of
        # a downloader's main thread at 2,048 pieces). Same choices for the same draws.
        def having(indexes: Iterable[int]) -> list[int]:
            return list(indexes) if has_all else [i for i in indexes if peer_has(i)]

        buckets = self._buckets
        if priority is not None:
            buckets = {key: bucket for key, bucket in buckets.items() if key[0] == -priority}
        if self.sequential:
            return min((i for bucket in buckets.values() for i in having(bucket)), default=None)
        keys = sorted(buckets)  # highest priority first, then rarest
        if self.have_count < RANDOM_FIRST_PIECES:
            for negated in sorted({key[0] for key in keys}):
                pool = having(i for key in keys if key[0] == negated for i in buckets[key])
                if pool:
                    return self.rng.choice(pool)
            return None
        for key in keys:
            if has_all:
                # rng.choice(list(bucket)) without the list (a set of up to every piece per
                # piece started): the same draw, the same piece.
                bucket = buckets[key]
                return next(itertools.islice(bucket, self.rng.randrange(len(bucket)), None))
            candidates = having(buckets[key])
            if candidates:
                return self.rng.choice(candidates)
        return None

    def _pick_endgame(
        self, peer: PeerKey, peer_has: Callable[[int], bool], count: int, picked: list[BlockRequest]
    ) -> None:
        for index, partial in self._partial.items():
            if index in self._deadlines or not peer_has(index):
                continue
            for block, requesters in partial.requesters.items():
                if len(picked) >= count:
                    return
                if block not in partial.received and peer not in requesters and len(requesters) < ENDGAME_DUPLICATES:
                    requesters.add(peer)
                    picked.append(self._block(index, block))

    # -- deadlines (streaming) -----------------------------------------------------------

    def set_deadlines(self, owner: Hashable, deadlines: Mapping[int, float]) -> None:
        """``owner`` (a reader) needs these pieces by these times; replaces its earlier set."""
        for index in deadlines:
            if not 0 <= index < self.num_pieces:
                raise ValueError(f"piece {index} outside 0..{self.num_pieces - 1}")
        old = self._deadline_owners.pop(owner, {})
        if deadlines:
            self._deadline_owners[owner] = dict(deadlines)
        self._merge_deadlines(old.keys() | deadlines.keys())

    def clear_deadlines(self, owner: Hashable) -> None:
        """``owner`` needs nothing any more (a reader that went away)."""
        old = self._deadline_owners.pop(owner, None)
        if old:
            self._merge_deadlines(old.keys())

    def _merge_deadlines(self, indices: Iterable[int]) -> None:
        for index in indices:
            times = [mine[index] for mine in self._deadline_owners.values() if index in mine]
            earliest = min(times) if times and not self.have[index] else None
            if earliest is None:
                if self._deadlines.pop(index, None) is not None:
                    self._file(index)  # back to rarest first (after the pop: it waits again)
            else:
                if index not in self._deadlines:
                    self._unfile(index)  # before it counts as a deadline piece
                self._deadlines[index] = earliest
        self._deadline_order = None

    @property
    def has_deadlines(self) -> bool:
        return bool(self._deadlines)

    def deadline_of(self, index: int) -> float | None:
        return self._deadlines.get(index)

    def deadline_pieces(self) -> list[int]:
        """Pieces with a deadline that are not here yet, earliest first."""
        if self._deadline_order is None:
            self._deadline_order = sorted(self._deadlines, key=lambda index: (self._deadlines[index], index))
        return self._deadline_order

    def next_deadline_position(
        self, now: float, start: int = 0, peer: PeerKey | None = None, peer_has: Callable[[int], bool] | None = None
    ) -> int | None:
        """Where in ``deadline_pieces()``, from ``start`` on, is the earliest piece
        ``pick_deadline`` could give a block of to anyone (``peer`` None) or to ``peer``,
        which has the pieces ``peer_has`` says (all when None); None when there is none.
        A piece before the first one with work for anyone has none for any peer, so a
        caller asking for each peer starts where the answer for anyone was."""
        order = self.deadline_pieces()
        deadlines, partials = self._deadlines, self._partial
        for position in range(start, len(order)):
            index = order[position]
            partial = partials.get(index)
            has_work = (
                partial is None
                or bool(partial.unrequested)
                or (
                    now >= deadlines[index] + LATE_GRACE_S
                    and any(
                        len(requesters) < LATE_DUPLICATES and peer not in requesters
                        for requesters in partial.requesters.values()
                    )
                )
            )
            if has_work and (peer_has is None or peer_has(index)):
                return position
        return None

    def pick_deadline(
        self,
        peer: PeerKey,
        peer_has: Callable[[int], bool],
        count: int,
        now: float,
        *,
        has_all: bool = False,
        start: int = 0,
    ) -> list[BlockRequest]:
        """Up to ``count`` blocks of deadline pieces for ``peer``, earliest deadline first:
        blocks nobody was asked for, then, of late pieces, blocks another peer was asked
        for and has not sent (``LATE_DUPLICATES`` peers at most per block). ``start``: a
        position in ``deadline_pieces()`` before which no piece has work for ``peer``."""
        picked: list[BlockRequest] = []
        order = self.deadline_pieces()
        for position in range(start, len(order)):
            index = order[position]
            if len(picked) >= count:
                break
            if not has_all and not peer_has(index):
                continue
            partial = self._partial.get(index)
            if partial is None:
                self._begin(index)
                partial = self._partial[index]
            self._take_blocks(index, partial, peer, count, picked)
            if len(picked) < count and now >= self._deadlines[index] + LATE_GRACE_S:
                for block, requesters in partial.requesters.items():
                    if len(picked) >= count:
                        break
                    if peer not in requesters and len(requesters) < LATE_DUPLICATES:
                        requesters.add(peer)
                        picked.append(self._block(index, block))
        return picked

    # -- answers -------------------------------------------------------------------------

    def block_received(self, index: int, begin: int, peer: PeerKey) -> tuple[bool, list[PeerKey]]:
        """Record a block; returns (the piece has every block now, other peers to cancel it with)."""
        partial = self._partial.get(index)
        block = begin // BLOCK_SIZE
        if partial is None or block in partial.received:
            return False, []
        requesters = partial.requesters.pop(block, set())
        if block in partial.unrequested:
            partial.unrequested.remove(block)
        partial.received.add(block)
        others = [other for other in requesters if other != peer]
        return len(partial.received) == partial.blocks, others

    def is_block_missing(self, index: int, begin: int) -> bool:
        """Whether the block at ``begin`` of started piece ``index`` is still to come."""
        partial = self._partial.get(index)
        return partial is not None and begin // BLOCK_SIZE not in partial.received

    def request_dropped(self, request: BlockRequest, peer: PeerKey) -> None:
        """``peer`` will not send this block (rejected, choked, gone): ask someone else."""
        partial = self._partial.get(request.index)
        block = request.begin // BLOCK_SIZE
        if partial is None or block in partial.received:
            return
        requesters = partial.requesters.get(block)
        if requesters is None:
            return
        requesters.discard(peer)
        if not requesters:
            del partial.requesters[block]
            partial.unrequested.append(block)

    def piece_verified(self, index: int) -> None:
        self._unfile(index)  # when it was waiting in a bucket (verified from disk, say)
        self._partial.pop(index, None)
        if self._deadlines.pop(index, None) is not None:
            self._deadline_order = None
        if not self.have[index]:
            self.have[index] = 1
            self.have_count += 1

    def piece_failed(self, index: int) -> None:
        """The piece's hash did not match: every block of it is needed again."""
        self._partial.pop(index, None)
        self._file(index)

    def start_piece_for_webseed(self, seed: PeerKey) -> int | None:
        """A wanted piece nobody is downloading, every block of it requested of ``seed``
        (a BEP 19 web seed fetches whole pieces); None when there is none.

        A piece that peers started and left, none of its blocks asked of anyone now, is
        taken first: no peer may come back for it, and the seed's copy fills its gaps
        (``Swarm.webseed_piece`` takes only the blocks still missing)."""
        index = self._free_deadline_piece()
        if index is None:
            index = next(
                (
                    index
                    for index, partial in self._partial.items()
                    if partial.unrequested and not partial.requesters and self.priority[index] > 0
                ),
                None,
            )
        if index is None:
            index = self._start_piece(lambda _index: True, True)
        if index is not None:
            self._give_to_webseed(index, seed)
        return index

    def start_run_for_webseed(self, seed: PeerKey, max_pieces: int, after: int | None = None) -> list[int]:
        """Up to ``max_pieces`` consecutive pieces for ``seed``: the one
        ``start_piece_for_webseed`` picks, then those after it while they wait unstarted
        (wanted, not held back, nobody on them), every block of each asked of ``seed``.
        A run of a file's pieces is one HTTP range; empty when there is no piece.

        ``after`` (the piece after the seed's last run) starts the run when it waits
        unstarted and no piece has a deadline: a seed going on where it left off asks for
        long stretches of a file rather than runs cut short by pieces started at random."""
        if after is not None and not self._deadlines and 0 <= after < self.num_pieces and self._is_untouched(after):
            self._begin(after)
            self._give_to_webseed(after, seed)
            first: int | None = after
        else:
            first = self.start_piece_for_webseed(seed)
        if first is None:
            return []
        run = [first]
        index = first + 1
        while len(run) < max_pieces and index < self.num_pieces and self._is_untouched(index):
            self._begin(index)
            self._give_to_webseed(index, seed)
            run.append(index)
            index += 1
        return run

    def _free_deadline_piece(self) -> int | None:
        """The earliest deadline piece nobody is on (a web seed streams what a player needs
        first); started when it was not."""
        for index in self.deadline_pieces():
            partial = self._partial.get(index)
            if partial is None:
                self._begin(index)
                return index
            if partial.unrequested and not partial.requesters:
                return index
        return None

    def _is_untouched(self, index: int) -> bool:
        """Not here and not started, and wanted or needed by a deadline."""
        return (
            not self.have[index]
            and index not in self._partial
            and (self.priority[index] > 0 or index in self._deadlines)
        )

    def _give_to_webseed(self, index: int, seed: PeerKey) -> None:
        partial = self._partial[index]
        for block in partial.unrequested:
            partial.requesters[block] = {seed}
        partial.unrequested.clear()

    def piece_abandoned(self, index: int, seed: PeerKey) -> None:
        """``seed`` will not deliver piece ``index`` after all: its blocks go back to the others."""
        partial = self._partial.get(index)
        if partial is None:
            return
        for block, requesters in list(partial.requesters.items()):
            if seed in requesters:
                self.request_dropped(self._block(index, block), seed)
        if not partial.received and not partial.requesters:
            # Nobody holds any of it: the piece waits in its bucket like any unstarted one.
            del self._partial[index]
            self._file(index)

    def requests_of(self, peer: PeerKey) -> list[BlockRequest]:
        """Blocks ``peer`` is asked for (to give back when it leaves)."""
        return [
            self._block(index, block)
            for index, partial in self._partial.items()
            for block, requesters in partial.requesters.items()
            if peer in requesters
        ]
