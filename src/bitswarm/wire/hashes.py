"""BEP 52 hash messages: answering hash requests, and fetching the piece layers we lack.

A v2 file's tree has its 16 KiB blocks as leaves, padded to a power of two; the *piece
layer* is the row ``log2(piece length / 16 KiB)`` layers up, and a .torrent carries it
for every file of more than one piece. A magnet link gives only the info dictionary,
whose files name their pieces roots: the piece layers come from peers, in ``hashes``
messages whose uncle hashes prove them against the root (``bitswarm.merkle``).

- ``HashServe`` answers a ``HashRequest`` from the piece layers it knows: the requested
  hashes of the piece layer and the uncle hashes above them. A request outside the
  file's tree is the peer's error (``PeerProtocolError``); a request for a file we have
  no layer for, for a layer above the piece layer, or for more than
  ``MAX_SERVED_HASHES``, gets a ``HashReject``. A request below the piece layer (the
  block hashes libtorrent asks for after a piece failed its check, to find the bad
  block) needs the pieces' data: ``answer`` returns ``ReadForHashes`` naming them, the
  layer above reads them off the event loop and hashes their blocks, and
  ``answer_from_blocks`` builds the answer from those block hashes, with the proof
  inside each piece from them and the proof above the piece layer from its tree.
- ``HashFetch`` plans our requests: each file's piece layer in runs of
  ``REQUEST_HASHES``, each asked of one peer at a time (a peer that has a piece of the
  run, as BEP 52 advises), with proof layers up to the root, so every answer is checked
  against the pieces root on its own. A wrong proof raises ``PeerProtocolError`` (that
  peer's connection goes); a reject, a lost peer or an answer that takes longer than
  ``HASH_REQUEST_TIMEOUT_S`` puts the run back for another peer.

Sans-IO: peers are opaque keys and the time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from bitswarm import merkle
from bitswarm.errors import PeerProtocolError
from bitswarm.wire.messages import Hashes, HashReject, HashRequest

PeerKey = Hashable

# BEP 52: a request "should not" name more than 512 hashes; libtorrent asks for 512.
REQUEST_HASHES = 512
# Longer requests are rejected rather than answered: an answer stays under 17 KiB, so a
# 53-byte request cannot make us send a quarter of a megabyte.
MAX_SERVED_HASHES = REQUEST_HASHES
# Hash requests we keep outstanding with one peer.
MAX_HASH_REQUESTS_PER_PEER = 4
# A peer must answer every hash request (BEP 52); one that has not in this long is
# asked no more for that run, which goes to another peer.
HASH_REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ReadForHashes:
    """Instruction: ``request`` asks for hashes below the piece layer; read pieces
    ``pieces`` (torrent indexes, each its file's bytes only), hash their 16 KiB blocks
    (``merkle.block_hashes``) and hand them to ``HashServe.answer_from_blocks``."""

    request: HashRequest
    pieces: range


@dataclass(frozen=True, slots=True)
class V2File:
    """One v2 file as the hash messages see it: its root, its size, its first piece."""

    pieces_root: bytes
    length: int
    first_piece: int

    def num_pieces(self, piece_length: int) -> int:
        return -(-self.length // piece_length)


def _height(length: int) -> int:
    """Layers above the leaves of a file's tree (0 for a file of one block)."""
    return merkle.next_power_of_two(-(-length // merkle.BLOCK_SIZE)).bit_length() - 1


def piece_layer_of(piece_length: int) -> int:
    """The layer (counted from the blocks) whose hashes each cover one piece."""
    return (piece_length // merkle.BLOCK_SIZE).bit_length() - 1


class HashServe:
    """Answers hash requests from the piece layers in ``layers`` (pieces root -> layer)."""

    def __init__(self, piece_length: int, files: Iterable[V2File], layers: dict[bytes, bytes]) -> None:
        self.piece_length = piece_length
        self.piece_layer = piece_layer_of(piece_length)
        # Identical files share a root, and so their trees: any one of them will do.
        self.files = {entry.pieces_root: entry for entry in files}
        self.layers = layers
        # The whole tree above each piece layer asked about, built once (twice the layer).
        self._trees: dict[bytes, list[list[bytes]]] = {}

    def add_layer(self, pieces_root: bytes, layer: bytes) -> None:
        """A layer proven since (fetched for a magnet link): it can be served now."""
        self.layers[pieces_root] = layer

    def answer(self, request: HashRequest) -> Hashes | HashReject | ReadForHashes:
        """The ``hashes`` message for ``request``, a reject when we cannot serve it, or for
        a layer below the piece layer the pieces to read first (``ReadForHashes``; the
        caller checks that we have them).

        Raises ``PeerProtocolError`` when the request does not fit the file's tree.
        """
        entry = self.files.get(request.pieces_root)
        if entry is None:
            return _reject(request)
        height = _height(entry.length)
        if height == 0:
            # A file of one block: its root is that block's hash, a tree with no layer to
            # ask for. libtorrent still asks for its block hashes (two of them, base layer
            # 0) when such a piece fails; that is a reject, not a broken peer.
            return _reject(request)
        width = 1 << (height - request.base_layer) if request.base_layer <= height else 0
        if request.base_layer >= height or request.proof_layers >= height - request.base_layer:
            raise PeerProtocolError(
                f"hash request for layer {request.base_layer} with {request.proof_layers} proof layers;"
                f" the file's tree is {height} high"
            )
        if request.index + request.length > width:
            raise PeerProtocolError(
                f"hash request for {request.length} hashes at {request.index}; the layer has {width}"
            )
        if request.length > MAX_SERVED_HASHES:
            return _reject(request)
        layer = self.layers.get(request.pieces_root)
        piece_height = self._piece_height(entry)
        if request.base_layer < piece_height:
            # A file of one piece has no piece layer: its tree is that piece's alone.
            if layer is None and entry.num_pieces(self.piece_length) > 1:
                return _reject(request)
            width_blocks = 1 << piece_height
            first = (request.index << request.base_layer) // width_blocks
            end = -(-((request.index + request.length) << request.base_layer) // width_blocks)
            # Pieces past the file's end only pad its tree: their hashes are known zeros.
            end = min(end, entry.num_pieces(self.piece_length))
            return ReadForHashes(request, range(entry.first_piece + first, entry.first_piece + max(first, end)))
        if request.base_layer != self.piece_layer or layer is None:
            return _reject(request)
        tree = self._tree(request.pieces_root, layer, width)
        hashes = tree[0][request.index : request.index + request.length]
        hashes += merkle.uncles(tree, request.index, request.length, request.proof_layers)
        return _hashes(request, hashes)

    def _piece_height(self, entry: V2File) -> int:
        """Layers from the blocks up to one piece's hash in ``entry``'s tree."""
        return merkle.piece_width(entry.length, self.piece_length).bit_length() - 1

    def _tree(self, pieces_root: bytes, layer: bytes, width: int) -> list[list[bytes]]:
        """Every layer from the piece layer (``width`` wide, padded) up to the root."""
        tree = self._trees.get(pieces_root)
        if tree is None:
            tree = merkle.layers_above(merkle.split_layer(layer), width, 1 << self.piece_layer)
            self._trees[pieces_root] = tree
        return tree

    def answer_from_blocks(self, read: ReadForHashes, block_hashes: list[list[bytes]]) -> Hashes | HashReject:
        """The answer to ``read.request`` from the block hashes of ``read.pieces`` (one list
        per piece, in order). Each piece's blocks must hash to its known piece hash: data
        that changed on disk since it was verified gets a reject, never a false proof."""
        request = read.request
        entry = self.files[request.pieces_root]
        if len(block_hashes) != len(read.pieces):
            raise ValueError(f"{len(block_hashes)} pieces of block hashes for {len(read.pieces)} pieces")
        piece_height = self._piece_height(entry)
        piece_width = 1 << piece_height
        layer = self.layers.get(request.pieces_root)
        subtrees: dict[int, list[list[bytes]]] = {}
        for index, hashes in zip(read.pieces, block_hashes, strict=True):
            position = index - entry.first_piece
            if len(hashes) > piece_width:
                return _reject(request)
            subtree = merkle.layers_above(hashes, piece_width)
            expected = request.pieces_root if layer is None else layer[position * 32 : position * 32 + 32]
            if subtree[-1][0] != expected:
                return _reject(request)
            subtrees[position] = subtree
        num_pieces = entry.num_pieces(self.piece_length)

        def node(level: int, at: int) -> bytes:
            """The hash at ``at`` in layer ``level`` (counted from the blocks)."""
            if level >= piece_height:
                assert layer is not None  # a file of one piece has no node that high below its root
                return self._tree(request.pieces_root, layer, 1 << (_height(entry.length) - piece_height))[
                    level - piece_height
                ][at]
            piece = (at << level) >> piece_height
            if piece >= num_pieces:
                return merkle.pad_hash(1 << level)
            # The caller read every real piece under the requested hashes, and an uncle
            # below the piece layer is a sibling inside the same piece.
            return subtrees[piece][level][at - (piece << (piece_height - level))]

        base, index, length = request.base_layer, request.index, request.length
        hashes = [node(base, at) for at in range(index, index + length)]
        first_uncle = length.bit_length() - 1
        hashes += [node(base + level, (index >> level) ^ 1) for level in range(first_uncle, request.proof_layers + 1)]
        return _hashes(request, hashes)


def _hashes(request: HashRequest, hashes: list[bytes]) -> Hashes:
    return Hashes(
        request.pieces_root,
        request.base_layer,
        request.index,
        request.length,
        request.proof_layers,
        b"".join(hashes),
    )


def _reject(request: HashRequest) -> HashReject:
    return HashReject(request.pieces_root, request.base_layer, request.index, request.length, request.proof_layers)


@dataclass(frozen=True, slots=True)
class PieceLayerReceived:
    """Fact: the whole piece layer of the file with ``pieces_root``, proven against it."""

    pieces_root: bytes
    layer: bytes


@dataclass(slots=True)
class _Run:
    entry: V2File
    request: HashRequest
    asked: PeerKey | None = None
    asked_at: float = 0.0


class HashFetch:
    """The piece layers of ``files`` (those of more than one piece), fetched from peers.

    Runs wait in ``_waiting`` until asked; asked ones sit in ``_asked`` (at most
    ``MAX_HASH_REQUESTS_PER_PEER`` for each peer), so finding work for a peer never looks
    at runs already out, and nothing here grows with what peers send.
    """

    def __init__(self, piece_length: int, files: Iterable[V2File]) -> None:
        self.piece_length = piece_length
        self.piece_layer = piece_layer_of(piece_length)
        self._waiting: dict[HashRequest, _Run] = {}
        self._asked: dict[HashRequest, _Run] = {}
        self._asked_of: dict[PeerKey, int] = {}
        # Proven hashes of each file's piece layer, by the index of their run, and the
        # count of its runs still to come.
        self._proven: dict[bytes, dict[int, list[bytes]]] = {}
        self._remaining: dict[bytes, int] = {}
        for entry in files:
            num_pieces = entry.num_pieces(piece_length)
            if num_pieces < 2 or entry.pieces_root in self._remaining:
                continue  # one piece: its root is its hash; identical files: fetched once
            self._proven[entry.pieces_root] = {}
            width = merkle.next_power_of_two(num_pieces)
            count = min(REQUEST_HASHES, width)
            # Proof up to the root: every answer is checked against the pieces root alone.
            proof_layers = width.bit_length() - 2
            for index in range(0, num_pieces, count):
                request = HashRequest(entry.pieces_root, self.piece_layer, index, count, proof_layers)
                self._waiting[request] = _Run(entry, request)
            self._remaining[entry.pieces_root] = -(-num_pieces // count)

    @property
    def is_done(self) -> bool:
        return not self._remaining

    def wanted_roots(self) -> set[bytes]:
        """Roots of the files whose piece layer is not in yet."""
        return set(self._remaining)

    def requests_for(
        self, peer: PeerKey, peer_has: Callable[[int], bool], now: float, *, has_all: bool = False
    ) -> list[HashRequest]:
        """Runs to ask ``peer`` for now: not asked of anyone (or not answered within
        ``HASH_REQUEST_TIMEOUT_S``), and covering a piece it has."""
        room = MAX_HASH_REQUESTS_PER_PEER - self._asked_of.get(peer, 0)
        if room <= 0:
            return []
        late = [run for run in self._asked.values() if now - run.asked_at >= HASH_REQUEST_TIMEOUT_S]
        chosen: list[HashRequest] = []
        for run in [*late, *self._waiting.values()]:
            if len(chosen) >= room:
                break
            first = run.entry.first_piece + run.request.index
            last = min(first + run.request.length, run.entry.first_piece + run.entry.num_pieces(self.piece_length))
            if not has_all and not any(peer_has(index) for index in range(first, last)):
                continue
            self._release(run)
            self._waiting.pop(run.request, None)
            run.asked, run.asked_at = peer, now
            self._asked[run.request] = run
            self._asked_of[peer] = self._asked_of.get(peer, 0) + 1
            chosen.append(run.request)
        return chosen

    def _release(self, run: _Run) -> None:
        """``run`` is no longer out with the peer it was asked of."""
        if run.asked is None:
            return
        left = self._asked_of[run.asked] - 1
        if left:
            self._asked_of[run.asked] = left
        else:
            del self._asked_of[run.asked]
        run.asked = None
        self._asked.pop(run.request, None)

    def _wait_again(self, run: _Run) -> None:
        self._release(run)
        self._waiting[run.request] = run

    def received(self, peer: PeerKey, message: Hashes) -> list[PieceLayerReceived]:
        """Take ``message`` (an answer the peer core matched to our request); returns the
        layers it completes. Raises ``PeerProtocolError`` when its proof fails."""
        request = message.request
        run = self._asked.get(request) or self._waiting.get(request)
        if run is None:
            return []  # a late answer to a run another peer answered first
        hashes = merkle.split_layer(message.hashes)
        count = request.length
        # The core checked the count of hashes against the request's fields.
        if merkle.root_from_proof(hashes[:count], request.index, hashes[count:]) != request.pieces_root:
            raise PeerProtocolError(f"hashes for {request.pieces_root.hex()[:16]} that do not prove to the root")
        self._release(run)
        self._waiting.pop(request, None)
        root = request.pieces_root
        self._proven[root][request.index] = hashes[:count]
        self._remaining[root] -= 1
        if self._remaining[root]:
            return []
        del self._remaining[root]
        proven = self._proven.pop(root)
        layer = [digest for index in sorted(proven) for digest in proven[index]]
        # Hashes past the file's last piece only pad the tree (BEP 52 leaves them out).
        return [PieceLayerReceived(root, b"".join(layer[: run.entry.num_pieces(self.piece_length)]))]

    def rejected(self, peer: PeerKey, message: HashReject) -> None:
        run = self._asked.get(message.request)
        if run is not None and run.asked == peer:
            self._wait_again(run)

    def peer_gone(self, peer: PeerKey) -> None:
        for run in [run for run in self._asked.values() if run.asked == peer]:
            self._wait_again(run)


__all__ = [
    "HashFetch",
    "HashServe",
    "PieceLayerReceived",
    "ReadForHashes",
    "V2File",
    "piece_layer_of",
]
