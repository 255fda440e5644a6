"""Drive either tracker store from plain (synchronous) tests, and build announces tersely."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from bitswarm.tracker.memory import MemoryStore
from bitswarm.tracker.redis_store import RedisStore
from bitswarm.tracker.store import TrackerStore
from bitswarm.tracker.swarm import AnnounceRequest, Event, SwarmCounts, SwarmView

T = TypeVar("T")

PEER_TIMEOUT_S = 100.0
START = 1_700_000_000.0
HASH_A = bytes.fromhex("aa" * 20)
HASH_B = bytes.fromhex("bb" * 20)


def v4(number: int, port: int = 6881) -> bytes:
    """A compact IPv4 address; numbers beyond 255 spill into the third byte."""
    return bytes([10, 0, number >> 8, number & 0xFF]) + port.to_bytes(2, "big")


def v6(number: int, port: int = 6881) -> bytes:
    return bytes.fromhex("fd00" + "00" * 12) + number.to_bytes(2, "big") + port.to_bytes(2, "big")


class SyncStore:
    """A TrackerStore whose calls run to completion on the test's own event loop."""

    def __init__(self, store: TrackerStore, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def announce(
        self,
        address: bytes,
        *,
        left: int = 1000,
        event: Event = Event.NONE,
        numwant: int = 50,
        info_hash: bytes = HASH_A,
        now: float = START,
        passkey: str | None = None,
        uploaded: int = 0,
        downloaded: int = 0,
    ) -> SwarmView:
        request = AnnounceRequest(
            info_hash=info_hash,
            peer_id=b"-BS0001-" + address[:12].ljust(12, b"\0"),
            address=address,
            event=event,
            left=left,
            uploaded=uploaded,
            downloaded=downloaded,
            numwant=numwant,
            passkey=passkey,
        )
        return self.run(self.store.announce(request, now))

    def scrape(self, info_hashes: Iterable[bytes]) -> dict[bytes, SwarmCounts]:
        return self.run(self.store.scrape(info_hashes))

    def full_scrape(self) -> dict[bytes, SwarmCounts]:
        return self.run(self.store.full_scrape())

    def expire(self, now: float, *, max_swarms: int = 1000) -> int:
        return self.run(self.store.expire(now, max_swarms=max_swarms))

    def user_totals(self) -> dict[str, tuple[int, int]]:
        return self.run(self.store.user_totals())

    def close(self) -> None:
        self.run(self.store.close())
        self.loop.close()


def open_sync_store(kind: str, redis_url: str | None, *, seed: int = 1) -> SyncStore:
    """A fresh store: ``memory``, or ``redis`` on ``redis_url`` (a flushed database)."""
    loop = asyncio.new_event_loop()
    store: TrackerStore
    if kind == "memory":
        store = MemoryStore(peer_timeout_s=PEER_TIMEOUT_S, rng=random.Random(seed))
    else:
        assert redis_url is not None
        store = loop.run_until_complete(RedisStore.open(redis_url, peer_timeout_s=PEER_TIMEOUT_S))
    return SyncStore(store, loop)
