"""A bundle's file read as plaintext while it downloads: a ``FileReader`` of the sealed file
underneath, opened one segment at a time.

A bundle's pieces hold whole segments (docs/bundle-format.md), so the segment under the
position is read from verified pieces, authenticated and decrypted, and kept until the
position leaves it. Nothing is returned from a segment that does not authenticate: the
read raises ``BundleError`` (the server answers 503, or closes a response already under
way). Positions, lengths and rates are the plaintext's; the window underneath moves in
sealed bytes.
"""

from __future__ import annotations

import os
from types import TracebackType

from bitswarm.bundle import format as fmt
from bitswarm.errors import UsageError
from bitswarm.metainfo import FileEntry
from bitswarm.stream.reader import FileReader


class SealedFileReader:
    """``seek``/``tell``/``read``/``readexactly``/``close`` over the plaintext of one file."""

    def __init__(self, inner: FileReader, sealer: fmt.FileSealer) -> None:
        if inner.length != sealer.sealed_size:
            raise fmt.BundleError(f"{inner.name}: {inner.length} bytes, the manifest gives {sealer.sealed_size} sealed")
        self.inner = inner
        self.sealer = sealer
        self.position = 0
        self._segment = -1
        self._plaintext = b""

    @property
    def entry(self) -> FileEntry:
        return self.inner.entry

    @property
    def length(self) -> int:
        return self.sealer.plain_size

    @property
    def name(self) -> str:
        return self.inner.name

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.length}.get(whence)
        if base is None:
            raise UsageError(f"seek: whence {whence}")
        if base + offset < 0:
            raise UsageError(f"seek: {base + offset} is before the start of the file")
        self.position = min(base + offset, self.length)
        self.inner.seek(self.position // fmt.PLAIN_SEGMENT * fmt.SEGMENT)
        return self.position

    async def read(self, size: int = fmt.PLAIN_SEGMENT) -> bytes:
        """Up to ``size`` bytes of plaintext from the position, at most to the end of its
        segment; b"" at the end of the file."""
        if size <= 0 or self.position >= self.length:
            return b""
        segment, offset = divmod(self.position, fmt.PLAIN_SEGMENT)
        if segment != self._segment:
            self.inner.seek(segment * fmt.SEGMENT)
            sealed = await self.inner.readexactly(self.sealer.plain_length(segment) + fmt.TAG_BYTES)
            self._plaintext = self.sealer.open(segment, sealed)
            self._segment = segment
        data = self._plaintext[offset : offset + size]
        self.position += len(data)
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
        self.inner.set_media_rate(bytes_per_s * fmt.SEGMENT / fmt.PLAIN_SEGMENT)

    def close(self) -> None:
        self.inner.close()

    async def __aenter__(self) -> SealedFileReader:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
