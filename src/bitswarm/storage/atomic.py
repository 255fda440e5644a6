"""Replacing a small file so that a crash leaves the old version or the new, never a mix.

The data goes to a temporary file beside the target (same file system, so the rename is
atomic), is flushed to disk, renamed over the target, and the folder is flushed so the
rename itself survives a power cut. Resume data, saved .torrent files, the DHT routing
table and the tracker's whitelist are all written this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_durably(target: Path, data: bytes) -> None:
    """Make ``target`` hold ``data``; raises OSError (the temporary file is removed)."""
    folder = target.parent if str(target.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
