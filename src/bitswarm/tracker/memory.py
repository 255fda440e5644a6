"""The in-memory tracker store: every swarm packed in byte arrays, answered without waiting.

A swarm is one ``bytearray`` per address family: a 12-byte header, then two regions,
the compact addresses of all peers (seeders first, then leechers), then their last-seen
seconds (u32) in the same order, so counts are arithmetic and no object exists per peer
(1,000,000 peers took 143 MiB as dictionaries; packed, about a sixth of it), and a peer
list is slices of the address region, with nothing to unpack. The IPv4 array is the
swarm (its header holds the completed count, the seeder count and the second it became
empty); IPv6 peers, rare, live in a second table with the same layout.

A peer is found with ``bytearray.find`` on the address region, accepted only at an
address's start; swarms above ``INDEX_MIN_PEERS`` peers also keep a dictionary from
address to peer number, since a scan grows with the swarm and the big swarms are the
busy ones. Removal moves the last peer (of its half; address and time) into the hole. An asker gets every peer of
its family that fits numwant, seeders first for a leecher, only leechers for a seeder,
never itself; when they do not fit, a contiguous window from a random start, wrapping
around, as opentracker draws them.

Last-seen times are ticks of a 64th of the timeout (a minute by default), rounded up, so a
peer is never dropped before it was silent for the full timeout. Expiry walks a bounded slice of swarms per call, so no
single call stalls the loop. A swarm emptied by stops or expiry that counted completions
stays, with no peers, so a scrape still shows its completed count (as opentracker does),
until it has been empty and silent for the peer timeout; a swarm with nothing to
remember goes at once.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Iterable

from bitswarm.tracker.swarm import (
    COMPACT_V4_BYTES,
    COMPACT_V6_BYTES,
    AnnounceRequest,
    Event,
    SwarmCounts,
    SwarmView,
)

# Header: completed, seeders (records before the leechers), the second the swarm became
# empty. An IPv6 array uses only its seeder count.
_HEADER = struct.Struct("<III")
HEADER_BYTES = _HEADER.size
_U32 = struct.Struct("<I")
_EMPTY_HEADER = bytes(HEADER_BYTES)
# Last-seen times are u16 ticks of a 64th of the peer timeout (at least a second), taken
# modulo 2^16: a tick count wraps after 1024 timeouts, long after expiry has dropped the
# peer, and two bytes instead of four save 2 MB per million peers, 7% of the store.
_SEEN = struct.Struct("<H")
_SEEN_BYTES = _SEEN.size
_TICK_MASK = 0xFFFF
TICKS_PER_TIMEOUT = 64
V4_RECORD_BYTES = COMPACT_V4_BYTES + _SEEN_BYTES
V6_RECORD_BYTES = COMPACT_V6_BYTES + _SEEN_BYTES
# Above this many records a swarm (one family of it) keeps an address index; below half
# of it the index goes again, so a swarm at the edge does not build and drop it in turn.
INDEX_MIN_PEERS = 256
# Arrays up to this size are kept as immutable ``bytes`` (a 33-byte object with the data
# inline) rather than a ``bytearray`` (56 bytes plus a separate, over-allocated buffer):
# about 48 bytes less per small swarm, a sixth of its memory, for two copies of a few
# hundred bytes per announce. Bigger arrays are changed in place.
FROZEN_MAX_BYTES = 512
# Ints rather than enum members in the hot path: comparing an IntEnum costs a call.
_STOPPED = int(Event.STOPPED)
_COMPLETED = int(Event.COMPLETED)
_STARTED = int(Event.STARTED)


def _records(array: bytes | bytearray, record_bytes: int) -> int:
    return (len(array) - HEADER_BYTES) // record_bytes


def _frozen(array: bytearray) -> bytes | bytearray:
    """What the tables keep: a small array as bytes, a big one as itself (see FROZEN_MAX_BYTES)."""
    return bytes(array) if len(array) <= FROZEN_MAX_BYTES else array


def _thawed(array: bytes | bytearray) -> bytearray:
    return array if isinstance(array, bytearray) else bytearray(array)


def _counts(swarm: bytes | bytearray, six: bytes | bytearray | None, seeders4: int) -> tuple[int, int]:
    """(seeders, leechers) of both families."""
    peers = (len(swarm) - HEADER_BYTES) // V4_RECORD_BYTES
    seeders = seeders4
    if six is not None:
        seeders += _U32.unpack_from(six, 4)[0]
        peers += (len(six) - HEADER_BYTES) // V6_RECORD_BYTES
    return seeders, peers - seeders


class MemoryStore:
    """Swarm state of one process. Sans-IO: time and chance are arguments."""

    def __init__(self, *, peer_timeout_s: float, rng: random.Random) -> None:
        self.peer_timeout_s = peer_timeout_s
        self.rng = rng
        self._tick_s = max(1.0, peer_timeout_s / TICKS_PER_TIMEOUT)
        # info-hash -> the swarm's IPv4 array (with the swarm's header); IPv6 records apart.
        self._swarms: dict[bytes, bytes | bytearray] = {}
        self._swarms6: dict[bytes, bytes | bytearray] = {}
        # Address -> record number, for the arrays of big swarms only.
        self._index4: dict[bytes, dict[bytes, int]] = {}
        self._index6: dict[bytes, dict[bytes, int]] = {}
        self._expiry_cursor: list[bytes] = []
        # Private mode: the totals each peer last reported, and each user's sums of growth.
        self._reported: dict[tuple[bytes, bytes], tuple[int, int]] = {}
        self._users: dict[str, tuple[int, int]] = {}

    @property
    def swarm_count(self) -> int:
        return len(self._swarms)

    @property
    def peer_count(self) -> int:
        v4 = sum(_records(array, V4_RECORD_BYTES) for array in self._swarms.values())
        return v4 + sum(_records(array, V6_RECORD_BYTES) for array in self._swarms6.values())

    # -- announce --------------------------------------------------------------------------

    def announce_now(self, request: AnnounceRequest, now: float) -> SwarmView:
        seeders, leechers, completed, peers = self.announce_packed(
            request.info_hash,
            request.address,
            int(request.event),
            request.left == 0,
            request.numwant,
            now,
            request.passkey,
            request.uploaded,
            request.downloaded,
        )
        size = len(request.address)
        return SwarmView(
            SwarmCounts(seeders, leechers, completed), [peers[at : at + size] for at in range(0, len(peers), size)]
        )

    def announce_packed(
        self,
        info_hash: bytes,
        address: bytes,
        event: int,
        is_seed: bool,
        numwant: int,
        now: float,
        passkey: str | None = None,
        uploaded: int = 0,
        downloaded: int = 0,
    ) -> tuple[int, int, int, bytes]:
        """One announce from plain values: (seeders, leechers, completed, compact peers).

        ``event`` is a BEP 15 event number and ``address`` a compact address (6 or 18
        bytes); the peers are the asker's family, concatenated. The hot path of the UDP
        server, which builds no request object for it; ``announce_now`` wraps it.
        """
        stored = self._swarms.get(info_hash)
        if stored is None:
            if event == _STOPPED:
                return 0, 0, 0, b""
            stored = _EMPTY_HEADER
        if passkey is not None:
            self._account(info_hash, address, event, passkey, uploaded, downloaded)
        # Rounded up, so a peer is never dropped before it was silent for the full timeout.
        tick = math.ceil(now / self._tick_s) & _TICK_MASK
        completed, seeders4, emptied = _HEADER.unpack_from(stored)
        records: bytes | bytearray
        if len(address) == COMPACT_V4_BYTES:
            records, record_bytes, indexes = stored, V4_RECORD_BYTES, self._index4
        else:
            records = self._swarms6.get(info_hash, _EMPTY_HEADER)
            record_bytes, indexes = V6_RECORD_BYTES, self._index6
        seeders = _U32.unpack_from(records, 4)[0]
        address_bytes = record_bytes - _SEEN_BYTES
        count = (len(records) - HEADER_BYTES) // record_bytes
        # Where the last-seen seconds start, after every address.
        times = HEADER_BYTES + count * address_bytes
        index = indexes.get(info_hash)
        if index is not None:
            at = index.get(address, -1)
        else:
            found = records.find(address, HEADER_BYTES, times)
            # A match that does not start an address is bytes of two addresses: look further.
            while found >= 0 and (found - HEADER_BYTES) % address_bytes:
                found = records.find(address, found + 1, times)
            at = -1 if found < 0 else (found - HEADER_BYTES) // address_bytes
        was_seed = 0 <= at < seeders

        swarm: bytes | bytearray
        six: bytes | bytearray | None
        if at >= 0 and is_seed == was_seed and event != _STOPPED and not emptied and type(records) is bytes:
            # A known peer in its place, in a frozen array: only its last-seen second
            # changes, so the new array is one concatenation, with no thaw and freeze.
            # (Nothing else changes: "completed" from a seeder that was seeding counts not.)
            seen_at = times + at * _SEEN_BYTES
            records = records[:seen_at] + _SEEN.pack(tick) + records[seen_at + _SEEN_BYTES :]
            if record_bytes == V4_RECORD_BYTES:
                swarm = self._swarms[info_hash] = records
                six = self._swarms6.get(info_hash)
            else:
                swarm = stored
                six = self._swarms6[info_hash] = records
        else:
            swarm = _thawed(stored)
            records = swarm if record_bytes == V4_RECORD_BYTES else _thawed(records)
            if event == _STOPPED:
                if at >= 0:
                    seeders = self._remove(records, at, seeders, count, address_bytes, index)
                    count -= 1
                    if index is not None and count < INDEX_MIN_PEERS // 2:
                        del indexes[info_hash]
                    _U32.pack_into(records, 4, seeders)
                return self._after_stop(info_hash, swarm, records, completed, math.ceil(now))

            if at < 0:
                seen = _SEEN.pack(tick)
                if is_seed and seeders < count:
                    # The first leecher moves to the end to make room at the seeders' end.
                    first_leecher = HEADER_BYTES + seeders * address_bytes
                    moved = records[first_leecher : first_leecher + address_bytes]
                    first_seen = times + seeders * _SEEN_BYTES
                    moved_seen = records[first_seen : first_seen + _SEEN_BYTES]
                    records[first_leecher : first_leecher + address_bytes] = address
                    records[first_seen : first_seen + _SEEN_BYTES] = seen
                    records[times:times] = moved
                    records += moved_seen
                    if index is not None:
                        index[bytes(moved)] = count
                    at = seeders
                else:
                    records[times:times] = address
                    records += seen
                    at = count
                count += 1
                times += address_bytes
                if index is not None:
                    index[address] = at
                elif count > INDEX_MIN_PEERS:
                    indexes[info_hash] = self._build_index(records, count, address_bytes)
                if is_seed:
                    seeders += 1
            elif is_seed != was_seed:
                # Becoming a seeder: swap with the first leecher; a leecher again: with the last seeder.
                other = seeders if is_seed else seeders - 1
                if other != at:
                    offset = HEADER_BYTES + at * address_bytes
                    other_offset = HEADER_BYTES + other * address_bytes
                    moved = records[other_offset : other_offset + address_bytes]
                    records[other_offset : other_offset + address_bytes] = address
                    records[offset : offset + address_bytes] = moved
                    seen_at = times + at * _SEEN_BYTES
                    other_seen = times + other * _SEEN_BYTES
                    records[seen_at : seen_at + _SEEN_BYTES] = records[other_seen : other_seen + _SEEN_BYTES]
                    if index is not None:
                        index[bytes(moved)] = at
                        index[address] = other
                    at = other
                # At the border already, moving the border is the whole move.
                _SEEN.pack_into(records, times + at * _SEEN_BYTES, tick)
                seeders += 1 if is_seed else -1
            else:
                _SEEN.pack_into(records, times + at * _SEEN_BYTES, tick)
            # A peer that says "completed" twice, or was already seeding, finished once.
            if is_seed and event == _COMPLETED and not was_seed:
                completed += 1
            if records is swarm:
                seeders4 = seeders
            else:
                _U32.pack_into(records, 4, seeders)
            _HEADER.pack_into(swarm, 0, completed, seeders4, 0)
            self._swarms[info_hash] = _frozen(swarm)
            if records is swarm:
                six = self._swarms6.get(info_hash)
            else:
                six = self._swarms6[info_hash] = _frozen(records)
        total_seeders, total_leechers = _counts(swarm, six, seeders4)

        # The asker's peers: seeders first for a leecher; a seeder only wants leechers.
        if is_seed:
            if count - seeders <= numwant:
                return (
                    total_seeders,
                    total_leechers,
                    completed,
                    bytes(records[HEADER_BYTES + seeders * address_bytes : times]),
                )
        elif count - 1 <= numwant:
            # Every other peer fits: the addresses before the asker's and after it.
            offset = HEADER_BYTES + at * address_bytes
            return (
                total_seeders,
                total_leechers,
                completed,
                b"".join((records[HEADER_BYTES:offset], records[offset + address_bytes : times])),
            )
        parts: list[bytes | bytearray] = []
        room = numwant
        if not is_seed and seeders and room > 0:
            taken = self._pick(records, 0, seeders, -1, room, address_bytes, parts)
            room -= taken
        if room > 0 and seeders < count:
            self._pick(records, seeders, count, at, room, address_bytes, parts)
        return total_seeders, total_leechers, completed, b"".join(parts)

    def _after_stop(
        self, info_hash: bytes, swarm: bytearray, records: bytearray, completed: int, second: int
    ) -> tuple[int, int, int, bytes]:
        """Store what a stop left: an emptied family goes, an emptied swarm waits or goes."""
        six: bytes | bytearray | None
        if records is swarm:
            six = self._swarms6.get(info_hash)
        elif len(records) == HEADER_BYTES:
            six = None
            self._swarms6.pop(info_hash, None)
        else:
            six = self._swarms6[info_hash] = _frozen(records)
        seeders, leechers = _counts(swarm, six, _U32.unpack_from(swarm, 4)[0])
        if not seeders and not leechers:
            if not completed:
                del self._swarms[info_hash]
                return 0, 0, 0, b""
            _HEADER.pack_into(swarm, 0, completed, 0, second)
        self._swarms[info_hash] = _frozen(swarm)
        return seeders, leechers, completed, b""

    def _pick(
        self,
        records: bytes | bytearray,
        low: int,
        high: int,
        skip: int,
        room: int,
        address_bytes: int,
        parts: list[bytes | bytearray],
    ) -> int:
        """Append to ``parts`` the addresses of up to ``room`` peers in [low, high), never
        peer ``skip``: all of them if they fit, else a window from a random start that
        wraps around. Returns how many were taken."""
        size = high - low
        skipping = low <= skip < high
        candidates = size - skipping
        runs: tuple[tuple[int, int], ...]
        if candidates <= room:
            runs = ((low, high),)
            room = candidates
        else:
            start = low + int(self.rng.random() * size)
            runs = ((start, high), (low, start))
        wanted = room
        for first, end in runs:
            if skipping and first <= skip < end:
                pieces: tuple[tuple[int, int], ...] = ((first, skip), (skip + 1, end))
            else:
                pieces = ((first, end),)
            for begin, stop in pieces:
                taken = min(stop - begin, wanted)
                if taken > 0:
                    offset = HEADER_BYTES + begin * address_bytes
                    parts.append(records[offset : offset + taken * address_bytes])
                    wanted -= taken
                if not wanted:
                    return room
        return room - wanted

    @staticmethod
    def _remove(
        records: bytearray, at: int, seeders: int, count: int, address_bytes: int, index: dict[bytes, int] | None
    ) -> int:
        """Drop peer ``at``, filling holes from the ends of the halves; returns the new seeder count."""
        times = HEADER_BYTES + count * address_bytes
        offset = HEADER_BYTES + at * address_bytes
        if index is not None:
            del index[bytes(records[offset : offset + address_bytes])]
        moves: tuple[tuple[int, int], ...]
        if at < seeders:
            # The last seeder fills the hole, the last peer fills the last seeder's place.
            moves = ((seeders - 1, at), (count - 1, seeders - 1))
            seeders -= 1
        else:
            moves = ((count - 1, at),)
        for source, target in moves:
            if source == target:
                continue
            source_offset = HEADER_BYTES + source * address_bytes
            target_offset = HEADER_BYTES + target * address_bytes
            moved = records[source_offset : source_offset + address_bytes]
            records[target_offset : target_offset + address_bytes] = moved
            source_seen = times + source * _SEEN_BYTES
            target_seen = times + target * _SEEN_BYTES
            records[target_seen : target_seen + _SEEN_BYTES] = records[source_seen : source_seen + _SEEN_BYTES]
            if index is not None:
                index[bytes(moved)] = target
        # The last peer's second is the array's end; its address ends the address region.
        del records[-_SEEN_BYTES:]
        del records[times - address_bytes : times]
        return seeders

    @staticmethod
    def _build_index(records: bytearray, count: int, address_bytes: int) -> dict[bytes, int]:
        return {
            bytes(records[offset : offset + address_bytes]): number
            for number, offset in enumerate(range(HEADER_BYTES, HEADER_BYTES + count * address_bytes, address_bytes))
        }

    def _account(
        self, info_hash: bytes, address: bytes, event: int, passkey: str, uploaded: int, downloaded: int
    ) -> None:
        key = (info_hash, address)
        before_up, before_down = (0, 0) if event == _STARTED else self._reported.get(key, (0, 0))
        # Totals that went down mean the client restarted counting: all of it is new.
        grown_up = uploaded - before_up if uploaded >= before_up else uploaded
        grown_down = downloaded - before_down if downloaded >= before_down else downloaded
        up, down = self._users.get(passkey, (0, 0))
        self._users[passkey] = (up + grown_up, down + grown_down)
        if event == _STOPPED:
            self._reported.pop(key, None)
        else:
            self._reported[key] = (uploaded, downloaded)

    def user_totals_now(self) -> dict[str, tuple[int, int]]:
        """(uploaded, downloaded) bytes per passkey, summed over every announce."""
        return dict(self._users)

    # -- scrape ----------------------------------------------------------------------------

    def _swarm_counts(self, info_hash: bytes, swarm: bytes | bytearray) -> SwarmCounts:
        completed, seeders4, _ = _HEADER.unpack_from(swarm)
        seeders, leechers = _counts(swarm, self._swarms6.get(info_hash), seeders4)
        return SwarmCounts(seeders, leechers, completed)

    def scrape_now(self, info_hashes: Iterable[bytes]) -> dict[bytes, SwarmCounts]:
        """Counts for each asked swarm; an unknown swarm counts zero."""
        result = {}
        for info_hash in info_hashes:
            swarm = self._swarms.get(info_hash)
            result[info_hash] = self._swarm_counts(info_hash, swarm) if swarm is not None else SwarmCounts()
        return result

    def full_scrape_now(self) -> dict[bytes, SwarmCounts]:
        return {info_hash: self._swarm_counts(info_hash, swarm) for info_hash, swarm in self._swarms.items()}

    # -- expiry ----------------------------------------------------------------------------

    def expire_now(self, now: float, *, max_swarms: int) -> int:
        """Drop peers silent for longer than the timeout in up to ``max_swarms`` swarms.

        Call it repeatedly: it resumes where it stopped and starts over after the last
        swarm. Returns the number of peers dropped.
        """
        if not self._expiry_cursor:
            self._expiry_cursor = list(self._swarms)
        batch = self._expiry_cursor[-max_swarms:]
        del self._expiry_cursor[-max_swarms:]
        deadline = now - self.peer_timeout_s
        dropped = 0
        for info_hash in batch:
            swarm = self._swarms.get(info_hash)
            if swarm is None:
                continue
            completed, _, empty_since = _HEADER.unpack_from(swarm)
            six = self._swarms6.get(info_hash)
            if len(swarm) == HEADER_BYTES and six is None:
                # Empty, kept for its completed count: gone once empty and silent for the timeout.
                if empty_since < deadline:
                    del self._swarms[info_hash]
                continue
            stale, kept = self._expire_array(info_hash, swarm, V4_RECORD_BYTES, self._index4, now)
            if kept is not None:
                dropped += stale
                swarm = self._swarms[info_hash] = _frozen(kept)
            if six is not None:
                stale, kept = self._expire_array(info_hash, six, V6_RECORD_BYTES, self._index6, now)
                if kept is not None:
                    dropped += stale
                    if len(kept) == HEADER_BYTES:
                        del self._swarms6[info_hash]
                    else:
                        self._swarms6[info_hash] = _frozen(kept)
            if len(swarm) == HEADER_BYTES and info_hash not in self._swarms6:
                if completed:
                    emptied = bytearray(swarm)
                    _HEADER.pack_into(emptied, 0, completed, 0, math.ceil(now))
                    self._swarms[info_hash] = _frozen(emptied)
                else:
                    del self._swarms[info_hash]
        return dropped

    def _expire_array(
        self,
        info_hash: bytes,
        records: bytes | bytearray,
        record_bytes: int,
        indexes: dict[bytes, dict[bytes, int]],
        now: float,
    ) -> tuple[int, bytearray | None]:
        """(peers dropped, the array without them), or (0, None) when none is stale;
        seeders stay first."""
        address_bytes = record_bytes - _SEEN_BYTES
        count = (len(records) - HEADER_BYTES) // record_bytes
        times = HEADER_BYTES + count * address_bytes
        # A peer last seen at tick s (its time rounded up) is stale once s * tick < now -
        # timeout; its age in ticks, modulo 2^16, is exact while it is below 2^16.
        now_tick = math.ceil(now / self._tick_s)
        oldest_fresh_age = now_tick - (now - self.peer_timeout_s) / self._tick_s
        with memoryview(records) as view, view[times:] as ticks:
            stale = [
                number
                for number, (tick,) in enumerate(_SEEN.iter_unpack(ticks))
                if (now_tick - tick) & _TICK_MASK > oldest_fresh_age
            ]
        if not stale:
            return 0, None
        seeders = _U32.unpack_from(records, 4)[0]
        dropping = set(stale)
        kept = bytearray(records[:HEADER_BYTES])
        kept_seen = bytearray()
        for number in range(count):
            if number not in dropping:
                offset = HEADER_BYTES + number * address_bytes
                kept += records[offset : offset + address_bytes]
                seen_at = times + number * _SEEN_BYTES
                kept_seen += records[seen_at : seen_at + _SEEN_BYTES]
        kept += kept_seen
        for number in stale:
            offset = HEADER_BYTES + number * address_bytes
            self._reported.pop((info_hash, bytes(records[offset : offset + address_bytes])), None)
        seeders -= sum(1 for number in stale if number < seeders)
        _U32.pack_into(kept, 4, seeders)
        count -= len(stale)
        if count > INDEX_MIN_PEERS // 2 and info_hash in indexes:
            indexes[info_hash] = self._build_index(kept, count, address_bytes)
        else:
            indexes.pop(info_hash, None)
        return len(stale), kept

    # The asynchronous face shared with stores that wait on a server.

    async def announce(self, request: AnnounceRequest, now: float) -> SwarmView:
        return self.announce_now(request, now)

    async def scrape(self, info_hashes: Iterable[bytes]) -> dict[bytes, SwarmCounts]:
        return self.scrape_now(info_hashes)

    async def full_scrape(self) -> dict[bytes, SwarmCounts]:
        return self.full_scrape_now()

    async def expire(self, now: float, *, max_swarms: int) -> int:
        return self.expire_now(now, max_swarms=max_swarms)

    async def user_totals(self) -> dict[str, tuple[int, int]]:
        return self.user_totals_now()

    async def close(self) -> None:
        return None
