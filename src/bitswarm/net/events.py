"""What a torrent tells the programs that watch it: ``TorrentRuntime.events()``.

A subscriber gets its own bounded queue, so a reader that falls behind costs memory up
to its bound and nothing else: past it the oldest events go (``dropped`` counts them),
and the torrent never waits for a reader. The stream ends after ``TorrentRemoved``.

The facts are the engine's own (``PieceVerified``, ``DownloadFinished``) and the session's
(paused, resumed, removed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bitswarm.engine.swarm import DownloadFinished, PieceVerified

DEFAULT_EVENT_BACKLOG = 4096


@dataclass(frozen=True, slots=True)
class TorrentPaused:
    pass


@dataclass(frozen=True, slots=True)
class TorrentResumed:
    pass


@dataclass(frozen=True, slots=True)
class TorrentRemoved:
    pass


TorrentEvent = PieceVerified | DownloadFinished | TorrentPaused | TorrentResumed | TorrentRemoved


class EventStream:
    """An async iterator of one torrent's events from the moment of subscribing."""

    def __init__(self, unsubscribe: Callable[[EventStream], None], backlog: int = DEFAULT_EVENT_BACKLOG) -> None:
        self._queue: asyncio.Queue[TorrentEvent] = asyncio.Queue(maxsize=max(1, backlog))
        self._unsubscribe = unsubscribe
        self._ended = False
        self.dropped = 0

    def put(self, event: TorrentEvent) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    def close(self) -> None:
        """Stop receiving events; those already queued can still be read."""
        self._unsubscribe(self)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> TorrentEvent:
        if self._ended:
            raise StopAsyncIteration
        event = await self._queue.get()
        if isinstance(event, TorrentRemoved):
            self._ended = True
        return event
