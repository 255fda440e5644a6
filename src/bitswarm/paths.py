"""Paths from torrents: the one place that decides which names may reach the disk.

Every name and path element in metainfo is hostile until checked here. Elements that
could leave the download folder or mean something else on some system are refused
(``..``, separators, NUL and control characters, drive letters, empty elements); names
that are only awkward are made portable the same way on every platform, so a torrent
always lands under the same names (Windows device names and trailing dots or spaces get
an underscore, over-long names are shortened keeping their extension). Two files that
would land on the same path, even differing only in case, or a file that is also a
folder, are refused. ``resolve_inside`` backs all of this with a check on the final
resolved path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from bitswarm.errors import UnsafePathError

# Most file systems cap one name at 255 bytes.
MAX_NAME_BYTES = 255
# Deep enough for any real torrent; a bound on the work a hostile one can cause.
MAX_PATH_DEPTH = 64
# Kept when a long name is shortened, like "episode.mkv" keeps ".mkv".
_MAX_KEPT_EXTENSION_CHARS = 16

# C0 and C1 controls, and the bidirectional overrides that can disguise an extension
# ("exe.txt" shown for "txt.exe").
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_WINDOWS_DEVICE = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9]|CONIN\$|CONOUT\$)(\..*)?$", re.IGNORECASE)
_TRAILING_DOTS_SPACES = re.compile(r"[. ]+$")


def safe_name(raw: bytes | str, field: str) -> str:
    """Return the portable form of one path element, or raise ``UnsafePathError``."""
    name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        name.encode()
    except UnicodeEncodeError:  # a file name from the OS that is not UTF-8 (surrogate escapes)
        raise UnsafePathError(f"path element {name[:80]!r} is not valid UTF-8", field) from None
    if name in ("", ".", ".."):
        raise UnsafePathError(f"path element {name!r} is not allowed", field)
    if "/" in name or "\\" in name:
        raise UnsafePathError(f"path element {name[:80]!r} contains a path separator", field)
    if _CONTROL.search(name):
        raise UnsafePathError(f"path element {name[:80]!r} contains a control character", field)
    if _DRIVE.match(name):
        raise UnsafePathError(f"path element {name[:80]!r} looks like a drive letter", field)
    if _WINDOWS_DEVICE.match(name):
        stem, dot, extension = name.partition(".")
        name = f"{stem}_{dot}{extension}"
    # After shortening, which can expose a dot or space; the replacement keeps the length.
    name = _shorten(name)
    trailing = _TRAILING_DOTS_SPACES.search(name)
    if trailing:
        name = name[: trailing.start()] + "_" * len(trailing.group())
    return name


def _shorten(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_KEPT_EXTENSION_CHARS:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_NAME_BYTES - len(suffix.encode())
    # Cut on a character boundary: drop the partial UTF-8 sequence at the end.
    cut = stem.encode()[:budget].decode("utf-8", "ignore")
    return cut + suffix


def safe_path(elements: Sequence[bytes | str], field: str) -> tuple[str, ...]:
    """Return the portable form of a relative path given as elements; raise if unsafe."""
    if not elements:
        raise UnsafePathError("empty path", field)
    if len(elements) > MAX_PATH_DEPTH:
        raise UnsafePathError(f"path deeper than {MAX_PATH_DEPTH} elements", field)
    return tuple(safe_name(element, field) for element in elements)


def check_collisions(paths: Iterable[tuple[str, ...]], field: str) -> None:
    """Refuse two files on one path (case-insensitively) or a file that is also a folder."""
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for path in paths:
        folded = tuple(element.casefold() for element in path)
        if folded in files or folded in folders:
            raise UnsafePathError(f"{'/'.join(path)!r} collides with another file or folder", field)
        files.add(folded)
        for depth in range(1, len(folded)):
            folders.add(folded[:depth])
    if not files.isdisjoint(folders):
        clash = next(iter(files & folders))
        raise UnsafePathError(f"{'/'.join(clash)!r} is both a file and a folder", field)


def resolve_inside(root: Path, relative: Sequence[str]) -> Path:
    """Join ``relative`` to ``root`` and check that the resolved result stays inside root.

    Symbolic links already on disk are followed, so a link planted in the download folder
    cannot redirect a write. Raises ``UnsafePathError`` when the result escapes.
    """
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(base.joinpath(*relative)))
    if target == base or base not in target.parents:
        raise UnsafePathError(f"{'/'.join(relative)!r} resolves outside {str(root)!r}", "path")
    return target
