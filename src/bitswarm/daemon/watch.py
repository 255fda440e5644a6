"""The watch folder: .torrent and .magnet files dropped into ``watch-dir`` are added once.

Each scan (once a second, from the daemon's loop) lists the folder:

- only names ending in ``.torrent`` or ``.magnet`` count; hidden names (``.x.torrent``, as
  ``bitswarm subscribe`` and most tools write before renaming) and editors' and browsers'
  temporary names are never read;
- a file is read only once its size and modification time are the same in two scans in a
  row, so a half-written file waits (a writer that pauses for longer than a scan and then
  goes on is caught by the parser: the file is not a torrent yet, and gets ``.invalid``);
- a symlink is followed only when it points to a file inside the folder; one pointing out
  of it is refused (the daemon's user may read files the dropper may not);
- a file over ``MAX_TORRENT_BYTES`` is not read.

A file that was added (or was there already) is renamed ``NAME.added``, or removed when
``trash-original-torrent-files`` is on (Transmission's behaviour); one that is not a
torrent, not a magnet link, too large or a symlink out is renamed ``NAME.invalid`` with
one log line. Either way it is never looked at again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bitswarm import magnet
from bitswarm.daemon.service import AddRequest, Daemon
from bitswarm.errors import BitswarmError, DecodeError, MetainfoError
from bitswarm.metainfo import MAX_TORRENT_BYTES

log = logging.getLogger("bitswarm.daemon")

SUFFIXES = (".torrent", ".magnet")
ADDED_SUFFIX = ".added"
INVALID_SUFFIX = ".invalid"
# A magnet file holds one link; anything longer is not one.
MAX_MAGNET_BYTES = 64 << 10
# Files taken per scan: a folder flooded with thousands waits for later scans.
MAX_FILES_PER_SCAN = 100
# How often the folder is listed; a file is taken at the second listing that finds it unchanged.
WATCH_PERIOD_S = 1.0
# Names a writer uses before the file is complete (browsers, editors, rsync, curl).
TEMPORARY_ENDINGS = (".part", ".tmp", ".crdownload", ".partial", "~", ".swp")


def is_candidate(name: str) -> bool:
    """Whether a name in the folder is a finished .torrent or .magnet file to look at."""
    lower = name.lower()
    if name.startswith(".") or lower.endswith(TEMPORARY_ENDINGS):
        return False
    return lower.endswith(SUFFIXES)


@dataclass(frozen=True, slots=True)
class Seen:
    """One candidate as a scan found it: ``target`` is the file to read (a symlink's
    target), ``outside`` True for a symlink out of the folder."""

    name: str
    size: int
    mtime_ns: int
    target: Path
    outside: bool


def _list(folder: Path) -> list[Seen]:
    """The candidates in the folder (blocking: run in a thread); raises OSError."""
    base = Path(os.path.realpath(folder))
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not is_candidate(entry.name):
                continue
            try:
                target = Path(os.path.realpath(entry.path))
                outside = base not in target.parents
                info = os.stat(entry.path, follow_symlinks=not outside)
            except OSError:
                continue  # gone since, or a dangling link: the next scan sees
            if not outside and not os.path.isfile(target):
                continue
            found.append(Seen(entry.name, info.st_size, info.st_mtime_ns, target, outside))
    found.sort(key=lambda seen: seen.name)
    return found


def _read(seen: Seen) -> bytes:
    with open(seen.target, "rb") as file:
        return file.read(MAX_TORRENT_BYTES + 1)


class WatchFolder:
    """Scans one folder; ``add`` is the daemon's (it returns whether the torrent was new)."""

    def __init__(self, add: Callable[[AddRequest], Awaitable[object]]) -> None:
        self.add = add
        # Per name: (size, mtime) at the last scan, to see that a file stopped growing.
        self._last: dict[str, tuple[int, int]] = {}
        self._folder: Path | None = None
        self._failing = False

    async def scan(self, folder: Path, *, trash: bool) -> None:
        """One scan; errors listing the folder are logged once per change of folder."""
        if folder != self._folder:
            self._folder, self._last, self._failing = folder, {}, False
        try:
            listing = await asyncio.to_thread(_list, folder)
        except OSError as error:
            if not self._failing:
                log.error("watch folder %s: %s", folder, error.strerror or error)
            self._failing = True
            return
        self._failing = False
        current = {seen.name: (seen.size, seen.mtime_ns) for seen in listing}
        ready = [seen for seen in listing if self._last.get(seen.name) == current[seen.name]]
        self._last = current
        for seen in ready[:MAX_FILES_PER_SCAN]:
            self._last.pop(seen.name, None)
            await self._take(folder, seen, trash=trash)

    async def _take(self, folder: Path, seen: Seen, *, trash: bool) -> None:
        path = folder / seen.name
        problem = ""
        request: AddRequest | None = None
        if seen.outside:
            problem = "a symlink out of the watch folder, not followed"
        elif seen.size > MAX_TORRENT_BYTES:
            problem = f"larger than {MAX_TORRENT_BYTES} bytes"
        else:
            try:
                data = await asyncio.to_thread(_read, seen)
            except OSError as error:
                log.error("watch folder: %s: %s", path, error.strerror or error)
                return
            if len(data) > MAX_TORRENT_BYTES:
                problem = f"larger than {MAX_TORRENT_BYTES} bytes"
            elif seen.name.lower().endswith(".magnet"):
                request, problem = _magnet_request(data)
            else:
                request = AddRequest(metainfo=data)
        if request is not None:
            try:
                await self.add(request)
            except (MetainfoError, DecodeError) as error:
                problem = f"not a torrent: {error}"
            except BitswarmError as error:
                problem = str(error)
            except OSError as error:
                log.error("watch folder: %s: not added: %s", path, error.strerror or error)
                return
        try:
            if problem:
                log.warning("watch folder: %s: %s; renamed %s", path, problem, INVALID_SUFFIX)
                await asyncio.to_thread(os.replace, path, path.with_name(seen.name + INVALID_SUFFIX))
            elif trash:
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(path.unlink)
            else:
                await asyncio.to_thread(os.replace, path, path.with_name(seen.name + ADDED_SUFFIX))
        except OSError as error:
            log.error("watch folder: %s: %s", path, error.strerror or error)


def _magnet_request(data: bytes) -> tuple[AddRequest | None, str]:
    if len(data) > MAX_MAGNET_BYTES:
        return None, f"larger than {MAX_MAGNET_BYTES} bytes for a magnet link"
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    link = lines[0] if lines else ""
    try:
        magnet.parse(link)
    except BitswarmError as error:
        return None, f"not a magnet link: {error}"
    return AddRequest(link=link), ""


async def run_watch_folder(daemon: Daemon, period_s: float = WATCH_PERIOD_S) -> None:
    """Scan ``watch-dir`` while ``watch-dir-enabled`` (both may change through session-set)."""
    watcher = WatchFolder(daemon.add)
    while True:
        await asyncio.sleep(period_s)
        folder = str(daemon.setting("watch-dir"))
        if daemon.setting("watch-dir-enabled") and folder:
            await watcher.scan(Path(folder), trash=bool(daemon.setting("trash-original-torrent-files")))
