"""Reading a torrent's file while it downloads: only verified bytes, as soon as they are.

A ``FileReader`` is an async file over one file of a running torrent (``TorrentRuntime.open``).
``read`` returns bytes of verified pieces only, read back from the disk where the piece
was written before it was counted verified; when the piece under the position is not
here yet it waits for it, for at most ``timeout_s`` (then ``StreamTimeout``). While the
reader is open its window (``bitswarm.engine.readahead``) sets deadlines on the pieces
under and ahead of its position, so the engine fetches those first; ``seek`` moves the
window at once and ``close`` drops it. A reader holds no piece in memory: one ``read``
returns at most ``MAX_READ_BYTES`` of one piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Protocol

from bitswarm.engine.readahead import ReadAhead
from bitswarm.errors import StreamTimeout, UsageError
from bitswarm.metainfo import FileEntry, Torrent

MAX_READ_BYTES = 256 * 1024
DEFAULT_TIMEOUT_S = 60.0
# The window's deadlines are set again at least this often while the reader reads in one
# piece (its rate changes), and whenever it enters another piece.
REFRESH_S = 1.0


class PieceSource(Protocol):
    """What a reader needs of a running torrent (``TorrentRuntime`` is one)."""

    @property
    def torrent(self) -> Torrent: ...

    def has_piece(self, index: int) -> bool: ...

    def set_deadlines(self, owner: object, deadlines: dict[int, float]) -> None: ...

    def clear_deadlines(self, owner: object) -> None: ...

    async def wait_for_piece(self, index: int) -> None: ...

    async def read_verified(self, index: int, begin: int, length: int) -> bytes: ...


class FileReader:
    """An async reader of one file of a torrent: ``seek``/``tell``/``read``/``close``.

    Also an async context manager (closed on exit). Raises ``StreamTimeout`` from ``read``
    when no source delivered the piece it needs within ``timeout_s``, ``UsageError`` when
    used after ``close``.
    """

    def __init__(
        self,
        source: PieceSource,
        entry: FileEntry,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        head_and_tail: bool = True,
    ) -> None:
        self.source = source
        self.entry = entry
        self.timeout_s = timeout_s
        torrent = source.torrent
        self.piece_length = torrent.piece_length
        self.window = ReadAhead(entry.offset, entry.length, self.piece_length, time.monotonic(),
                                head_and_tail=head_and_tail)  # fmt: skip
        self.closed = False
        self._window_piece = -1
        self._window_set_at = 0.0
        self._refresh(time.monotonic())

    @property
    def length(self) -> int:
        return self.entry.length

    @property
    def name(self) -> str:
        return "/".join(self.entry.path)

    def tell(self) -> int:
        return self.window.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (as ``io``'s seek); the window follows at once."""
        self._check_open()
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.window.position, os.SEEK_END: self.length}.get(whence)
        if base is None:
            raise UsageError(f"seek: whence {whence}")
        if base + offset < 0:
            raise UsageError(f"seek: {base + offset} is before the start of the file")
        self.window.seek(base + offset)
        self._refresh(time.monotonic())
        return self.window.position

    async def read(self, size: int = MAX_READ_BYTES) -> bytes:
        """Up to ``size`` bytes (at most ``MAX_READ_BYTES``, never past the end of the
        piece under the position) from the position on; b"" at the end of the file."""
        self._check_open()
        position = self.window.position
        if size <= 0 or position >= self.length:
            return b""
        stream_at = self.entry.offset + position
        index, begin = divmod(stream_at, self.piece_length)
        length = min(size, MAX_READ_BYTES, self.length - position, self.piece_length - begin)
        give_up_at = time.monotonic() + self.timeout_s
        while not self.source.has_piece(index):
            # Set again while waiting: a piece the engine could not take yet (a v2 piece
            # whose hashes are not in) gets its deadline once it can.
            now = time.monotonic()
            if now >= give_up_at:
                raise StreamTimeout(
                    f"{self.name}: piece {index} not received within {self.timeout_s:g} s (no source has it?)"
                )
            self._refresh(now, force=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(REFRESH_S, give_up_at - now)):
                    await self.source.wait_for_piece(index)
            self._check_open()
        data = await self.source.read_verified(index, begin, length)
        if self.closed:
            return b""
        if self.window.position == position:  # a seek made while this read waited wins
            self.window.consumed(len(data), time.monotonic())
            self._refresh(time.monotonic())
        return data

    async def readexactly(self, size: int) -> bytes:
        """``size`` bytes, or fewer only at the end of the file."""
        parts = []
        while size > 0:
            data = await self.read(size)
            if not data:
                break
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def set_media_rate(self, bytes_per_s: float) -> None:
        """The file plays at ``bytes_per_s``: from now on the window models the player (it
        shows media at that rate, never past what was read), and pieces are due when the
        player, not this reader, reaches them (``ReadAhead.set_media_rate``)."""
        if not self.closed:
            self.window.set_media_rate(bytes_per_s, time.monotonic())
            self._refresh(time.monotonic(), force=True)

    def close(self) -> None:
        """Drop the window's deadlines at once; further reads raise ``UsageError``."""
        if not self.closed:
            self.closed = True
            self.source.clear_deadlines(self)

    async def __aenter__(self) -> FileReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise UsageError(f"{self.name}: reader is closed")

    def _refresh(self, now: float, *, force: bool = False) -> None:
        """Set the window's deadlines again when the play head entered another piece, time
        passed, or a read waits."""
        piece = self.window.piece_at(self.window.position)
        if not force and piece == self._window_piece and now - self._window_set_at < REFRESH_S:
            return
        for index in list(self.window.pinned):
            if self.source.has_piece(index):
                self.window.piece_arrived(index)
        window = self.window.deadlines(now)
        deadlines = {index: due for index, due in window.items() if not self.source.has_piece(index)}
        self._window_piece, self._window_set_at = piece, now
        self.source.set_deadlines(self, deadlines)
