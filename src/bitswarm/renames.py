"""A file or folder of a torrent saved under another name (``torrent-rename-path``). Sans-IO.

Transmission's ``torrent-rename-path`` and libtorrent's ``rename_file`` let a user choose
where a torrent's files land without changing the torrent: the info dictionary, and so the
info-hash and every piece, stay as they are; only the paths the storage uses change. The
daemon keeps each rename (the path as it was, the new last element) and replays them in
order on the torrent it reads back at start. A new name is held to the rules a name from
metainfo is held to (``paths.safe_name``), and is refused rather than altered, so the user
gets the name asked for or a clear error; two files may never end up on one path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from bitswarm import paths
from bitswarm.errors import UnsafePathError, UsageError
from bitswarm.metainfo import Torrent


def split(path: str) -> tuple[str, ...]:
    """``path`` as Transmission writes it ("name/folder/file") as elements."""
    elements = tuple(path.split("/"))
    if not path or "" in elements or len(elements) > paths.MAX_PATH_DEPTH:
        raise UsageError(f"path {path[:200]!r}: not a path of this torrent")
    return elements


def rename(torrent: Torrent, path: str, name: str) -> tuple[Torrent, tuple[str, ...], tuple[str, ...]]:
    """``torrent`` with the file or folder at ``path`` called ``name``, the old path and
    the new one. Renaming the top element (a single file, or the folder of a multi-file
    torrent) renames the torrent as its user sees it."""
    old = split(path)
    try:
        checked = paths.safe_name(name, "name")
    except UnsafePathError as error:
        raise UsageError(f"name: {error}") from None
    if checked != name:
        raise UsageError(f"name {name[:200]!r} is not a portable file name (it would be {checked[:200]!r})")
    depth = len(old)
    if not any(entry.path[:depth] == old for entry in torrent.files if not entry.is_pad):
        raise UsageError(f"path {path[:200]!r} is not in this torrent")
    new = (*old[:-1], name)
    if new == old:
        return torrent, old, new
    files = tuple(
        dataclasses.replace(entry, path=new + entry.path[depth:]) if entry.path[:depth] == old else entry
        for entry in torrent.files
    )
    try:
        paths.check_collisions((entry.path for entry in files if not entry.is_pad), "name")
    except UnsafePathError as error:
        raise UsageError(f"name {name[:200]!r}: {error}") from None
    renamed = dataclasses.replace(torrent, files=files, name=name if depth == 1 else torrent.name)
    return renamed, old, new


def replay(torrent: Torrent, renames: Iterable[Sequence[str]]) -> Torrent:
    """``torrent`` after each (path, name) of ``renames`` in order."""
    for path, name in renames:
        torrent = rename(torrent, path, name)[0]
    return torrent
