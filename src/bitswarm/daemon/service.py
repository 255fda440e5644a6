"""The always-on session: many torrents in one engine ``Session``, remembered across restarts.

A ``Daemon`` owns the engine's ``Session`` and the persistent state (``StateStore``). Each
torrent has a record (its id, download folder, the user's stop, labels, files, limits,
queue position) and, while the daemon runs, a runtime: a ``TorrentRuntime``, or a
``MagnetRuntime`` until a magnet link's metadata is in. Every runtime starts paused (its
verified pieces come from the engine's resume data, not from a re-hash) and the
scheduler decides which run (after every change, once a second while something moves in a
torrent, and when a seed's idle goal falls due):

- a torrent the user stopped, or that has an error, stays paused;
- downloads, in queue order, up to ``download-queue-size`` (when queueing is on), seeds
  likewise up to ``seed-queue-size``; a torrent started with ``start-now`` skips the queue;
- a download starts only when its folder has room for what it still lacks;
- a seed whose ratio or idle goal is met is stopped, as Transmission does.

The state is saved atomically after every change a user makes and every ``SAVE_PERIOD_S``
(for the transfer totals; nothing is written when nothing changed), and at close, after
every torrent has announced ``stopped`` and written its resume data. Saves asked for while
one is being written are folded into the next one, so a burst of ``torrent-add`` costs a
few writes, and each caller still returns only once a write holding its change is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bitswarm import magnet, paths, renames
from bitswarm.daemon.altspeed import AltSpeedSchedule, weekday_sunday_0
from bitswarm.daemon.config import DaemonConfig
from bitswarm.daemon.state import MAX_LABEL_CHARS, MAX_LABELS, DaemonState, StateStore, TorrentRecord
from bitswarm.errors import BitswarmError, MetainfoError, UsageError
from bitswarm.metainfo import FileEntry, Torrent, read_torrent_file
from bitswarm.net.magnet import MagnetRuntime
from bitswarm.net.session import (
    FILE_PRIORITY_HIGH,
    FILE_PRIORITY_LOW,
    Session,
    TorrentOptions,
    TorrentRuntime,
)
from bitswarm.storage import resume
from bitswarm.storage.backend import PARTS_FOLDER

log = logging.getLogger("bitswarm.daemon")

SCHEDULE_PERIOD_S = 1.0
SAVE_PERIOD_S = 30.0
# The torrent set unchanged this long after adds or removes: the objects of the torrents are
# collected once and frozen out of the collector's full passes (see ``_freeze_heap``).
GC_SETTLE_S = 5.0
# "recently-active" (Transmission): changed or moving data within this time.
RECENTLY_ACTIVE_S = 60.0
# Removed ids kept for "recently-active" answers; beyond it the oldest go.
MAX_REMOVED_REMEMBERED = 10_000
# Transmission's speeds are in kB/s of 1000 bytes.
KILO = 1000


class TorrentState:
    """Transmission's status numbers (tr_torrent_activity)."""

    STOPPED = 0
    CHECK_WAIT = 1
    CHECK = 2
    DOWNLOAD_WAIT = 3
    DOWNLOAD = 4
    SEED_WAIT = 5
    SEED = 6


@dataclass
class Entry:
    """A torrent while the daemon runs: its record and what the engine has of it."""

    record: TorrentRecord
    torrent: Torrent | None = None
    runtime: TorrentRuntime | None = None
    magnet_runtime: MagnetRuntime | None = None
    # Started with start-now: not held back by the queue.
    forced: bool = False
    checking: bool = False
    # Being moved from incomplete-dir to its download folder.
    moving: bool = False
    # A magnet link's metadata is being fetched (its runtime may not exist yet).
    fetching: bool = False
    # The engine's totals at launch are the record's; its counters start at 0.
    base_uploaded: int = 0
    base_downloaded: int = 0
    last_active: float = 0.0
    # When seeding began in this run (for secondsSeeding and the idle goal).
    seeding_since: float | None = None
    last_upload: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    # Whether the engine had it finished at the last scheduling pass: a download that
    # finishes since wants a pass (done date, move on completion, seeding time).
    tracked_finished: bool = False
    # The lengths of the files that hold content, for ``torrent`` (torrent-get asks for them,
    # as fileCount, leftUntilDone and haveValid, of every torrent in every call).
    _lengths: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _lengths_of: Torrent | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def is_running(self) -> bool:
        return (self.runtime is not None and not self.runtime.paused) or self.fetching

    @property
    def is_finished(self) -> bool:
        return self.runtime is not None and self.runtime.finished.is_set()

    def data_lengths(self) -> tuple[int, ...]:
        """The lengths of the files that hold content, in Transmission's order."""
        torrent = self.torrent
        if torrent is None:
            return ()
        if self._lengths_of is not torrent:
            self._lengths = tuple(item.length for item in torrent.data_files())
            self._lengths_of = torrent
        return self._lengths

    def uploaded(self) -> int:
        swarm = self.runtime.swarm if self.runtime is not None else None
        return self.base_uploaded + (swarm.uploaded if swarm is not None else 0)

    def downloaded(self) -> int:
        swarm = self.runtime.swarm if self.runtime is not None else None
        return self.base_downloaded + (swarm.downloaded if swarm is not None else 0)


@dataclass(frozen=True, slots=True)
class AddRequest:
    """What torrent-add asks for: one of ``metainfo`` and ``link``."""

    metainfo: bytes | None = None
    link: str | None = None
    download_dir: str | None = None
    paused: bool = False
    labels: tuple[str, ...] = ()
    unwanted: tuple[int, ...] = ()
    wanted: tuple[int, ...] = ()
    priority_high: tuple[int, ...] = ()
    priority_low: tuple[int, ...] = ()
    bandwidth_priority: int = 0


def check_labels(labels: Iterable[str]) -> list[str]:
    """Labels as Transmission keeps them; raises UsageError for too many, too long, or a comma."""
    result = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if len(result) > MAX_LABELS or any(len(label) > MAX_LABEL_CHARS or "," in label for label in result):
        raise UsageError(f"labels: at most {MAX_LABELS}, each under {MAX_LABEL_CHARS} characters, no commas")
    return result


class Daemon:
    """The torrents of one state folder, run by one engine session."""

    def __init__(self, config: DaemonConfig, store: StateStore, session: Session) -> None:
        self.config = config
        self.store = store
        self.session = session
        self.state = DaemonState()
        self.entries: dict[int, Entry] = {}
        self.by_hash: dict[str, int] = {}
        self.removed: dict[int, float] = {}
        self.started_at = time.time()
        # Session totals since start (session-stats' current-stats).
        self.session_uploaded = 0
        self.session_downloaded = 0
        self.session_count = 1
        self._dirty = False
        # A full scheduling pass is wanted at the next second (something changed).
        self._schedule_wanted = False
        # The entries the once-a-second look visits (ids, in order): those checked, fetched,
        # moved or downloading, and those whose runtime the session woke (a peer came, it
        # was resumed) until a pass has seen their last upload. A seed at rest is in none of
        # them, so the look costs nothing per idle torrent.
        self._watched: dict[int, None] = {}
        # Ids watched since the last save: only their transfer totals can have moved.
        self._since_save: set[int] = set()
        # When the earliest idle-seeding goal falls due (monotonic), from the last pass.
        self._goal_due = float("inf")
        # When torrents were last added or removed since the heap was last frozen (None: not since).
        self._heap_changed_at: float | None = time.monotonic()
        # The save callers wait for, not started yet (every change before its start is in
        # it), and the task writing saves one after another.
        self._next_save: asyncio.Future[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        # What the alt-speed schedule said last (None: not asked yet, or the schedule is off).
        self._alt_scheduled: bool | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    # -- settings --------------------------------------------------------------------

    def setting(self, name: str) -> Any:
        """A session setting under its RPC name: the saved session-set value, else the config's."""
        if name in self.state.settings:
            return self.state.settings[name]
        return _CONFIG_SETTINGS[name](self.config)

    def change_settings(self, changes: dict[str, Any]) -> None:
        self.state.settings.update(changes)
        self.apply_session_limits()
        self.mark_dirty()

    def apply_session_limits(self) -> None:
        alt = bool(self.setting("alt-speed-enabled"))
        down = self.setting("alt-speed-down") if alt else self.setting("speed-limit-down")
        up = self.setting("alt-speed-up") if alt else self.setting("speed-limit-up")
        down_on = alt or bool(self.setting("speed-limit-down-enabled"))
        up_on = alt or bool(self.setting("speed-limit-up-enabled"))
        self.session.down_limit.set_rate(down * KILO if down_on else 0)
        self.session.up_limit.set_rate(up * KILO if up_on else 0)

    def check_alt_speed_schedule(self, local: datetime) -> None:
        """Follow the alt-speed schedule at this local time: turn the alternative limits on
        or off when the schedule's answer changes (the user's switch stands in between)."""
        if not self.setting("alt-speed-time-enabled"):
            self._alt_scheduled = None
            return
        schedule = AltSpeedSchedule(
            int(self.setting("alt-speed-time-begin")),
            int(self.setting("alt-speed-time-end")),
            int(self.setting("alt-speed-time-day")),
        )
        active = schedule.is_active(weekday_sunday_0(local.weekday()), local.hour * 60 + local.minute)
        if active != self._alt_scheduled:
            self._alt_scheduled = active
            if bool(self.setting("alt-speed-enabled")) != active:
                log.info("alternative speed limits %s by the schedule", "on" if active else "off")
                self.change_settings({"alt-speed-enabled": active})

    def reload(self, config: DaemonConfig) -> None:
        """SIGHUP: the new config's limits, queues and RPC rules apply from now (the RPC and
        peer addresses stay as bound)."""
        self.config = config
        self.apply_session_limits()

    # -- start and stop --------------------------------------------------------------

    async def open(self) -> None:
        """Load the state and re-add every torrent (paused, each from its resume data),
        then start scheduling; raises UsageError for a damaged state file."""
        self.state = await asyncio.to_thread(self.store.load)
        self.session_count = int(self.state.settings.get("session-count", 0)) + 1
        self.state.settings["session-count"] = self.session_count
        self.apply_session_limits()
        self.session.on_wake = self._runtime_woken
        for record in sorted(self.state.torrents, key=lambda item: item.queue_position):
            entry = Entry(record, base_uploaded=record.uploaded_ever, base_downloaded=record.downloaded_ever)
            self.entries[record.id] = entry
            self.by_hash[record.info_hash] = record.id
            try:
                await self._load(entry)
            except BitswarmError as error:
                record.error_string = str(error)
                log.error("torrent %d: %s", record.id, error)
        self._renumber_queue()
        self.schedule()
        self._loop_task = asyncio.get_running_loop().create_task(self._loop())
        await self.save()

    async def _load(self, entry: Entry) -> None:
        record = entry.record
        if record.magnet is None:
            data = await asyncio.to_thread(self.store.load_torrent, record.info_hash)
            entry.torrent = renames.replay(read_torrent_file(data), record.renames)
            await self._launch(entry)

    async def close(self) -> None:
        """Stop every torrent (``stopped`` announces, resume data written) and save the state."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, BitswarmError, OSError):
                await task
        self._fold_totals()
        await self.session.close()
        await self.save()
        gc.unfreeze()

    async def _loop(self) -> None:
        saved_at = time.monotonic()
        while True:
            await asyncio.sleep(SCHEDULE_PERIOD_S)
            async with self._lock:
                self.check_alt_speed_schedule(datetime.now())  # the schedule is in local time
                now = time.monotonic()
                if self._schedule_wanted or now >= self._goal_due or self._any_moving():
                    self.schedule()
                if self._heap_changed_at is not None and now - self._heap_changed_at >= GC_SETTLE_S:
                    self._heap_changed_at = None
                    _freeze_heap()
            now = time.monotonic()
            if self._dirty or (now - saved_at >= SAVE_PERIOD_S and self._totals_moved()):
                saved_at = now
                try:
                    await self.save()
                except OSError as error:
                    log.error("state not saved: %s", error)

    def _watch(self, entry: Entry) -> None:
        """Look at ``entry`` each second from now on, while it may move."""
        self._watched[entry.id] = None
        self._since_save.add(entry.id)

    def _runtime_woken(self, runtime: TorrentRuntime) -> None:
        number = self.by_hash.get(runtime.info_hash.hex())
        entry = self.entries.get(number) if number is not None else None
        if entry is not None and entry.runtime is runtime:
            self._watch(entry)

    def _any_moving(self) -> bool:
        """Whether a watched entry moves; forgets those that cannot any more."""
        moving = False
        for number in list(self._watched):
            entry = self.entries.get(number)
            if entry is None:
                del self._watched[number]
            elif self._is_moving(entry):
                moving = True
            elif not self._may_move(entry):
                del self._watched[number]
        return moving

    def _totals_moved(self) -> bool:
        """Whether a transfer total differs from the saved record (only watched entries
        can have uploaded or downloaded)."""
        for number in self._since_save | set(self._watched):
            entry = self.entries.get(number)
            if entry is not None and (
                entry.uploaded() != entry.record.uploaded_ever or entry.downloaded() != entry.record.downloaded_ever
            ):
                return True
        return False

    def mark_dirty(self) -> None:
        """Something in the state changed: saved, and scheduled again, within a second."""
        self._dirty = True
        self._schedule_wanted = True

    def _fold_totals(self) -> None:
        for entry in self.entries.values():
            entry.record.uploaded_ever = entry.uploaded()
            entry.record.downloaded_ever = entry.downloaded()

    async def save(self) -> None:
        """Return once the state file (replaced atomically and durably) holds every change
        made before the call; raises OSError. A save asked for while another is written
        waits for the next write, which starts after it and serves every caller since."""
        if self._next_save is None:
            self._next_save = asyncio.get_running_loop().create_future()
            # Retrieved here, so an error nobody waits for any more is not reported twice.
            self._next_save.add_done_callback(lambda future: future.cancelled() or future.exception())
        waited = self._next_save
        if self._saver is None:
            self._saver = asyncio.get_running_loop().create_task(self._write_saves())
        await asyncio.shield(waited)

    async def _write_saves(self) -> None:
        try:
            while self._next_save is not None:
                waited, self._next_save = self._next_save, None
                try:
                    # The snapshot is taken here, in the loop, after every change its callers made.
                    self._dirty = False
                    self._since_save.clear()
                    self._fold_totals()
                    self.state.torrents = [entry.record for entry in self.entries.values()]
                    snapshot = self.store.snapshot(self.state)
                    await asyncio.to_thread(self.store.write, snapshot)
                except Exception as error:  # OSError, or our bug: raised to every caller, not lost
                    waited.set_exception(error)
                else:
                    waited.set_result(None)
        finally:
            self._saver = None

    # -- adding ----------------------------------------------------------------------

    async def add(self, request: AddRequest) -> tuple[Entry, bool]:
        """Add a torrent or magnet link; (its entry, True) when it was there already.

        Raises MetainfoError for a torrent that does not parse, UsageError for bad arguments,
        OSError when the state cannot be written.
        """
        torrent: Torrent | None = None
        link: magnet.Magnet | None = None
        if request.metainfo is not None:
            torrent = read_torrent_file(request.metainfo)
            hash_bytes = torrent.info_hash_v1 or (torrent.info_hash_v2 or b"")[:20]
        else:
            assert request.link is not None
            link = magnet.parse(request.link)
            hash_bytes = link.info_hash_v1 or (link.info_hash_v2 or b"")[:20]
        info_hash = hash_bytes.hex()
        async with self._lock:
            existing = self.by_hash.get(info_hash)
            if existing is not None:
                return self.entries[existing], True
            labels = check_labels(request.labels)
            folder = request.download_dir or str(self.setting("download-dir"))
            if not os.path.isabs(os.path.expanduser(folder)):
                raise UsageError(f"download-dir {folder!r}: not an absolute path")
            if torrent is not None:
                file_count = sum(1 for _ in torrent.data_files())
                for index in (*request.unwanted, *request.wanted, *request.priority_high, *request.priority_low):
                    if not 0 <= index < file_count:
                        raise UsageError(f"file {index}: the torrent has files 0 to {file_count - 1}")
            record = TorrentRecord(
                id=self.state.next_id,
                info_hash=info_hash,
                download_dir=os.path.expanduser(folder),
                added_date=int(time.time()),
                queue_position=len(self.entries),
                name=torrent.name if torrent is not None else (link.display_name if link else None) or info_hash,
                magnet=request.link if torrent is None else None,
                paused=request.paused,
                labels=labels,
                unwanted=sorted(set(request.unwanted) - set(request.wanted)),
                priority_high=sorted(set(request.priority_high)),
                priority_low=sorted(set(request.priority_low)),
                bandwidth_priority=request.bandwidth_priority,
                seed_ratio_limit=float(self.setting("seedRatioLimit")),
                incomplete_dir=self._incomplete_dir(),
            )
            if torrent is not None:
                assert request.metainfo is not None
                await asyncio.to_thread(self.store.save_torrent, info_hash, request.metainfo)
            self.state.next_id += 1
            entry = Entry(record, torrent=torrent)
            self.entries[record.id] = entry
            self.by_hash[info_hash] = record.id
            entry.last_active = time.monotonic()
            self._heap_changed_at = entry.last_active
            if torrent is not None:
                try:
                    await self._launch(entry)
                except BitswarmError as error:
                    record.error_string = str(error)
            self.schedule()
        # Outside the lock, so the saves of adds arriving together are folded into one;
        # the caller hears of its torrent only once a save holding it is on disk.
        await self.save()
        return entry, False

    def _incomplete_dir(self) -> str:
        """Where a new torrent downloads: incomplete-dir when that is on, else "" (its download folder)."""
        folder = str(self.setting("incomplete-dir"))
        return os.path.expanduser(folder) if self.setting("incomplete-dir-enabled") and folder else ""

    async def _move_completed(self, entry: Entry) -> None:
        """A complete torrent from incomplete-dir to its download folder, resume data along
        (the runtime is closed first, so the resume data names every verified piece, and the
        torrent comes back from it without hashing)."""
        async with self._lock:
            record = entry.record
            if not record.incomplete_dir or entry.torrent is None or self.entries.get(entry.id) is not entry:
                entry.moving = False
                return
            old, new = Path(record.incomplete_dir), Path(record.download_dir)
            try:
                await self._unload(entry)
                await asyncio.to_thread(_move_content, entry.torrent, record.info_hash, old, new)
                record.incomplete_dir = ""
                log.info("torrent %d: complete, moved to %s", entry.id, new)
            except OSError as error:
                # Left where it is, and still complete there: an error on the torrent, not a loss.
                record.error_string = f"moving to {new}: {error.strerror or error}"
                log.error("torrent %d: %s", entry.id, record.error_string)
            try:
                await self._launch(entry)
            except BitswarmError as error:
                record.error_string = str(error)
            finally:
                entry.moving = False
            self.schedule()
        await self.save()

    def _options(self, entry: Entry, torrent: Torrent | None) -> TorrentOptions:
        record = entry.record
        options = TorrentOptions(
            max_down=record.download_limit * KILO if record.download_limited else 0.0,
            max_up=record.upload_limit * KILO if record.upload_limited else 0.0,
            pex=self.config.pex,
        )
        if torrent is not None and record.unwanted:
            options.wanted_files = _engine_wanted(torrent, set(record.unwanted))
        if torrent is not None:
            options.file_priorities = _engine_priorities(torrent, record.priority_high, record.priority_low)
        return options

    async def _launch(self, entry: Entry) -> None:
        """The torrent into the engine, paused: the scheduler starts it."""
        assert entry.torrent is not None
        record = entry.record
        folder = Path(record.data_dir)
        entry.checking = True
        self._watch(entry)
        try:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            entry.runtime = await self.session.add(
                entry.torrent, folder, self._options(entry, entry.torrent), paused=True
            )
        except OSError as error:
            raise UsageError(f"{folder}: {error.strerror or error}") from None
        finally:
            entry.checking = False
        record.name = entry.torrent.name
        if entry.runtime.finished.is_set() and not record.done_date:
            record.done_date = int(time.time())

    def _launch_magnet(self, entry: Entry) -> None:
        record = entry.record
        assert record.magnet is not None
        link = magnet.parse(record.magnet)
        folder = Path(record.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        entry.fetching = True
        self._watch(entry)
        self._spawn(self._fetch_metadata(entry, link, folder))

    async def _fetch_metadata(self, entry: Entry, link: magnet.Magnet, folder: Path) -> None:
        try:
            runtime = await self.session.add_magnet(link, folder, self._options(entry, None))
        except UsageError as error:
            entry.fetching = False
            entry.record.error_string = str(error)
            return
        entry.magnet_runtime = runtime
        try:
            torrent_runtime = await runtime.wait_for_torrent()
            assert runtime.torrent_path is not None
            data = await asyncio.to_thread(runtime.torrent_path.read_bytes)
            await asyncio.to_thread(self.store.save_torrent, entry.record.info_hash, data)
        except (BitswarmError, OSError) as error:
            if entry.magnet_runtime is runtime:  # not stopped by the user or the queue
                entry.record.error_string = str(error)
                log.error("torrent %d: %s", entry.id, error)
            return
        finally:
            entry.magnet_runtime = None
            entry.fetching = False
        entry.torrent = torrent_runtime.torrent
        entry.runtime = torrent_runtime
        entry.record.magnet = None
        entry.record.name = torrent_runtime.torrent.name
        if entry.record.unwanted or entry.record.priority_high or entry.record.priority_low:
            self._apply_wanted(entry)
        self.mark_dirty()

    # -- scheduling ------------------------------------------------------------------

    def status(self, entry: Entry) -> int:
        if entry.checking:
            return TorrentState.CHECK
        if entry.record.paused or entry.record.error_string:
            return TorrentState.STOPPED
        if entry.fetching:
            return TorrentState.DOWNLOAD
        if entry.runtime is None:
            return TorrentState.DOWNLOAD_WAIT
        if entry.is_finished:
            return TorrentState.SEED if entry.is_running else TorrentState.SEED_WAIT
        return TorrentState.DOWNLOAD if entry.is_running else TorrentState.DOWNLOAD_WAIT

    def schedule(self) -> None:
        """Start and stop runtimes to follow the user's stops, the queues and the goals."""
        self._schedule_wanted = False
        self._goal_due = float("inf")
        now = time.monotonic()
        downloads: list[Entry] = []
        seeds: list[Entry] = []
        for entry in sorted(self.entries.values(), key=lambda item: item.record.queue_position):
            self._track(entry, now)
            if entry.checking:
                continue
            wants_to_run = not entry.record.paused and not entry.record.error_string
            if not wants_to_run:
                self._pause(entry)
            elif entry.is_finished:
                seeds.append(entry)
            else:
                downloads.append(entry)
        self._run_queue(
            downloads, bool(self.setting("download-queue-enabled")), int(self.setting("download-queue-size"))
        )
        self._run_queue(seeds, bool(self.setting("seed-queue-enabled")), int(self.setting("seed-queue-size")))

    def _run_queue(self, entries: list[Entry], enabled: bool, size: int) -> None:
        slots = size if enabled else len(entries)
        for entry in entries:
            if entry.forced:
                self._resume(entry)
            elif slots > 0:
                slots -= 1
                self._resume(entry)
            else:
                self._pause(entry)

    def _track(self, entry: Entry, now: float) -> None:
        """Done date, move on completion, activity, and the seeding goals."""
        record = entry.record
        runtime = entry.runtime
        if runtime is None or runtime.swarm is None:
            return
        if entry.is_finished and not record.done_date:
            record.done_date = int(time.time())
            self.mark_dirty()
        if entry.is_finished and record.incomplete_dir and not entry.moving and not entry.checking:
            entry.moving = True
            self._watch(entry)
            self._spawn(self._move_completed(entry))
        uploaded = entry.uploaded()
        if uploaded != entry.last_upload or (entry.is_running and not entry.is_finished):
            entry.last_upload = uploaded
            entry.idle_since = now
            entry.last_active = now
        entry.tracked_finished = entry.is_finished
        if entry.is_finished and entry.is_running:
            if entry.seeding_since is None:
                entry.seeding_since = now
            if self._goal_reached(entry, now):
                log.info("torrent %d: seeding goal reached", entry.id)
                record.paused = True
                entry.last_active = now
                self.mark_dirty()
            else:
                idle_s = self._idle_limit_s(entry)
                if idle_s is not None:
                    self._goal_due = min(self._goal_due, entry.idle_since + idle_s)
        elif entry.seeding_since is not None:
            record.seconds_seeding += int(now - entry.seeding_since)
            entry.seeding_since = None

    def _is_moving(self, entry: Entry) -> bool:
        """Whether the scheduler must look at ``entry`` this second: it is checked, fetched
        or moved, downloads, finished since the last look, or uploaded since. A seed that did
        not upload changes only by time (the idle goal, whose due time the pass keeps) or by
        an event (which asks for a pass), peers or not: ``_track`` has nothing new to see."""
        if entry.checking or entry.fetching or entry.moving:
            return True
        runtime = entry.runtime
        if runtime is None or runtime.swarm is None:
            return False
        if runtime.finished.is_set() != entry.tracked_finished:
            return True
        if runtime.paused:
            return False
        return not runtime.finished.is_set() or entry.uploaded() != entry.last_upload

    def _may_move(self, entry: Entry) -> bool:
        """Whether ``entry`` can start moving with no event to wake it: checked, fetched,
        moved, running unfinished, or with peers."""
        if entry.checking or entry.fetching or entry.moving:
            return True
        runtime = entry.runtime
        return runtime is not None and not runtime.paused and (bool(runtime.peers) or not runtime.finished.is_set())

    def _goal_reached(self, entry: Entry, now: float) -> bool:
        record = entry.record
        if record.seed_ratio_mode == 1:
            limit: float | None = record.seed_ratio_limit
        elif record.seed_ratio_mode == 0 and self.setting("seedRatioLimited"):
            limit = float(self.setting("seedRatioLimit"))
        else:
            limit = None
        if limit is not None and self.ratio(entry) >= limit:
            return True
        idle_s = self._idle_limit_s(entry)
        return idle_s is not None and now - entry.idle_since >= idle_s

    def _idle_limit_s(self, entry: Entry) -> float | None:
        """The seconds of seeding without uploads after which ``entry`` stops; None: never."""
        record = entry.record
        if record.seed_idle_mode == 1:
            return record.seed_idle_limit * 60.0
        if record.seed_idle_mode == 0 and self.setting("idle-seeding-limit-enabled"):
            return int(self.setting("idle-seeding-limit")) * 60.0
        return None

    def ratio(self, entry: Entry) -> float:
        """Uploaded over downloaded (over the size when nothing was downloaded here: a seed
        added with its data), as Transmission counts it."""
        base = entry.downloaded() or self.size_when_done(entry)
        return entry.uploaded() / base if base else 0.0

    def _pause(self, entry: Entry) -> None:
        entry.forced = False if entry.record.paused else entry.forced
        if entry.magnet_runtime is not None:
            magnet_runtime = entry.magnet_runtime
            entry.magnet_runtime = None
            entry.fetching = False
            self._spawn(magnet_runtime.close())
        if entry.runtime is not None and not entry.runtime.paused:
            entry.last_active = time.monotonic()
            self._schedule_wanted = True  # the next pass counts its seeding time, as before
            self._spawn(entry.runtime.pause())

    def _resume(self, entry: Entry) -> None:
        record = entry.record
        if entry.runtime is None:
            if record.magnet is not None and not entry.fetching:
                try:
                    self._launch_magnet(entry)
                except (BitswarmError, OSError) as error:
                    record.error_string = str(error)
            return
        if not entry.runtime.paused:
            return
        if not entry.is_finished:
            missing = self.left_until_done(entry)
            try:
                free = shutil.disk_usage(record.data_dir).free
            except OSError as error:
                record.error_string = f"{record.data_dir}: {error.strerror}"
                return
            if free < missing:
                record.error_string = f"not enough free space in {record.data_dir}: {missing} bytes needed, {free} free"
                log.error("torrent %d: %s", entry.id, record.error_string)
                self.mark_dirty()
                return
        entry.last_active = time.monotonic()
        entry.idle_since = time.monotonic()
        self._schedule_wanted = True  # the next pass sees it running (seeding time, goals)
        entry.runtime.resume()

    def run_beside(self, coroutine: Any) -> None:
        """A task that lives as long as the daemon (the watch folder, subscriptions): cancelled at close."""
        self._spawn(coroutine)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("daemon task failed", exc_info=task.exception())

    # -- what the RPC changes --------------------------------------------------------

    def select(self, ids: Iterable[int] | None) -> list[Entry]:
        """The entries of ``ids`` that exist, in id order (None: every one)."""
        if ids is None:
            return sorted(self.entries.values(), key=lambda entry: entry.id)
        return [self.entries[number] for number in sorted(set(ids)) if number in self.entries]

    def id_of_hash(self, info_hash: str) -> int | None:
        return self.by_hash.get(info_hash.lower())

    def start(self, entries: Iterable[Entry], *, now: bool = False) -> None:
        for entry in entries:
            entry.record.paused = False
            entry.record.error_string = ""
            entry.forced = now
            entry.last_active = time.monotonic()
        self.schedule()
        self.mark_dirty()

    def stop(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            entry.record.paused = True
            entry.forced = False
        self.schedule()
        self.mark_dirty()

    async def remove(self, entries: Iterable[Entry], *, delete_data: bool) -> None:
        """Out of the session and the state; with ``delete_data`` its files too (only the
        torrent's own files, found inside its folder)."""
        for entry in list(entries):
            async with self._lock:
                if self.entries.pop(entry.id, None) is None:
                    continue
                self.by_hash.pop(entry.record.info_hash, None)
                self.removed[entry.id] = time.monotonic()
                self._heap_changed_at = self.removed[entry.id]
                while len(self.removed) > MAX_REMOVED_REMEMBERED:
                    del self.removed[next(iter(self.removed))]
                await self._unload(entry)
                await asyncio.to_thread(self.store.forget_torrent, entry.record.info_hash)
                if delete_data and entry.torrent is not None:
                    await asyncio.to_thread(_delete_content, entry.torrent, Path(entry.record.data_dir))
                self._renumber_queue()
        await self.save()

    async def _unload(self, entry: Entry) -> None:
        if entry.magnet_runtime is not None:
            with contextlib.suppress(UsageError):
                await self.session.remove(entry.magnet_runtime.info_hash)
            entry.magnet_runtime = None
        if entry.runtime is not None:
            self._fold_one(entry)
            with contextlib.suppress(UsageError):
                await self.session.remove(entry.runtime.info_hash)
            entry.runtime = None

    def _fold_one(self, entry: Entry) -> None:
        entry.record.uploaded_ever = entry.uploaded()
        entry.record.downloaded_ever = entry.downloaded()
        entry.base_uploaded = entry.record.uploaded_ever
        entry.base_downloaded = entry.record.downloaded_ever

    async def verify(self, entries: Iterable[Entry]) -> None:
        """Hash every piece again: the resume data is dropped and the torrent re-added."""
        for entry in list(entries):
            if entry.torrent is None or entry.checking:
                continue
            async with self._lock:
                entry.checking = True
                self._watch(entry)
                try:
                    await self._unload(entry)
                    info_hash = entry.record.info_hash
                    record_path = Path(entry.record.data_dir) / resume.RESUME_FOLDER / f"{info_hash}.resume"
                    await asyncio.to_thread(record_path.unlink, missing_ok=True)
                    entry.record.error_string = ""
                    await self._launch(entry)
                except BitswarmError as error:
                    entry.record.error_string = str(error)
                finally:
                    entry.checking = False
                self.schedule()

    async def set_location(self, entries: Iterable[Entry], location: str, *, move: bool) -> None:
        """A new download folder; with ``move`` the content (and its resume data) goes along."""
        target = Path(os.path.expanduser(location))
        if not target.is_absolute():
            raise UsageError(f"location {location!r}: not an absolute path")
        for entry in list(entries):
            async with self._lock:
                old = Path(entry.record.data_dir)
                if old == target:
                    continue
                await self._unload(entry)
                if move and entry.torrent is not None:
                    await asyncio.to_thread(_move_content, entry.torrent, entry.record.info_hash, old, target)
                entry.record.download_dir = str(target)
                entry.record.incomplete_dir = ""
                if entry.torrent is not None:
                    try:
                        await self._launch(entry)
                    except BitswarmError as error:
                        entry.record.error_string = str(error)
                self.schedule()
        self.mark_dirty()

    async def rename_path(self, entry: Entry, path: str, name: str) -> None:
        """The file or folder ``path`` of the torrent (as torrent-get names its files) is
        called ``name`` from now on, on disk too; the torrent and its verified pieces stay."""
        async with self._lock:
            if entry.torrent is None:
                raise UsageError("the torrent's metadata is not here yet: nothing to rename")
            renamed, old, new = renames.rename(entry.torrent, path, name)
            if old == new:
                return
            folder = Path(entry.record.data_dir)
            await self._unload(entry)
            try:
                await asyncio.to_thread(_rename_on_disk, folder, old, new)
            except BitswarmError:
                await self._launch(entry)  # as it was
                raise
            entry.record.renames.append([path, name])
            entry.torrent = renamed
            try:
                await self._launch(entry)
            except BitswarmError as error:
                entry.record.error_string = str(error)
            self.schedule()
        self.mark_dirty()

    def set_wanted(self, entry: Entry, wanted: Iterable[int], unwanted: Iterable[int]) -> None:
        files = set(entry.record.unwanted)
        files -= set(wanted)
        files |= set(unwanted)
        entry.record.unwanted = sorted(files)
        self._apply_wanted(entry)
        self.mark_dirty()

    def apply_files(self, entry: Entry) -> None:
        """The record's wanted files and priorities to the engine (torrent-set changed them)."""
        self._apply_wanted(entry)
        self.mark_dirty()

    def _apply_wanted(self, entry: Entry) -> None:
        runtime = entry.runtime
        torrent = entry.torrent
        if runtime is None or torrent is None:
            return
        runtime.set_files(
            _engine_wanted(torrent, set(entry.record.unwanted)),
            _engine_priorities(torrent, entry.record.priority_high, entry.record.priority_low),
        )

    def apply_limits(self, entry: Entry) -> None:
        record = entry.record
        if entry.runtime is not None:
            entry.runtime.down_limit.set_rate(record.download_limit * KILO if record.download_limited else 0)
            entry.runtime.up_limit.set_rate(record.upload_limit * KILO if record.upload_limited else 0)
        self.mark_dirty()

    def move_queue(self, entries: list[Entry], how: str) -> None:
        ordered = sorted(self.entries.values(), key=lambda item: item.record.queue_position)
        chosen = {entry.id for entry in entries}
        if how == "top":
            ordered = [e for e in ordered if e.id in chosen] + [e for e in ordered if e.id not in chosen]
        elif how == "bottom":
            ordered = [e for e in ordered if e.id not in chosen] + [e for e in ordered if e.id in chosen]
        elif how == "up":
            for position in range(1, len(ordered)):
                if ordered[position].id in chosen and ordered[position - 1].id not in chosen:
                    ordered[position - 1], ordered[position] = ordered[position], ordered[position - 1]
        elif how == "down":
            for position in range(len(ordered) - 2, -1, -1):
                if ordered[position].id in chosen and ordered[position + 1].id not in chosen:
                    ordered[position + 1], ordered[position] = ordered[position], ordered[position + 1]
        for position, entry in enumerate(ordered):
            entry.record.queue_position = position
        self.schedule()
        self.mark_dirty()

    def set_queue_position(self, entry: Entry, position: int) -> None:
        ordered = [
            e for e in sorted(self.entries.values(), key=lambda item: item.record.queue_position) if e is not entry
        ]
        ordered.insert(max(0, min(position, len(ordered))), entry)
        for number, item in enumerate(ordered):
            item.record.queue_position = number
        self.mark_dirty()

    def _renumber_queue(self) -> None:
        ordered = sorted(self.entries.values(), key=lambda item: item.record.queue_position)
        for position, entry in enumerate(ordered):
            entry.record.queue_position = position

    def reannounce(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if entry.runtime is not None and not entry.runtime.paused:
                # Re-announcing is the announce loop's; a pause and resume forces it now.
                self._spawn(_reannounce(entry.runtime))

    # -- figures ---------------------------------------------------------------------

    def have_valid(self, entry: Entry) -> int:
        """Verified bytes (pad files excluded)."""
        torrent, runtime = entry.torrent, entry.runtime
        if torrent is None or runtime is None or runtime.swarm is None:
            return 0
        picker = runtime.swarm.picker
        if picker.have_count == torrent.num_pieces:  # a seed: no need to walk its pieces
            return sum(entry.data_lengths())
        have = picker.have
        return sum(
            _overlap(item, index, torrent.piece_length)
            for item in torrent.data_files()
            for index in item.piece_range(torrent.piece_length)
            if have[index]
        )

    def file_progress(self, entry: Entry) -> list[int]:
        """Verified bytes of each file in Transmission's order."""
        torrent, runtime = entry.torrent, entry.runtime
        if torrent is None:
            return []
        picker = runtime.swarm.picker if runtime is not None and runtime.swarm is not None else None
        # torrent-get asks this of every torrent: a seed's files are whole and a torrent with
        # no piece has none, without walking the pieces.
        if picker is not None and picker.have_count == torrent.num_pieces:
            return list(entry.data_lengths())
        if picker is None or picker.have_count == 0:
            return [0] * len(entry.data_lengths())
        have = picker.have
        return [
            sum(
                _overlap(item, index, torrent.piece_length)
                for index in item.piece_range(torrent.piece_length)
                if have[index]
            )
            for item in torrent.data_files()
        ]

    def file_count(self, entry: Entry) -> int:
        """How many files hold content (Transmission's fileCount)."""
        return len(entry.data_lengths()) if entry.torrent is not None else 0

    def size_when_done(self, entry: Entry) -> int:
        torrent = entry.torrent
        if torrent is None:
            return 0
        unwanted = set(entry.record.unwanted)
        return sum(length for position, length in enumerate(entry.data_lengths()) if position not in unwanted)

    def left_until_done(self, entry: Entry) -> int:
        torrent = entry.torrent
        if torrent is None:
            return 0
        runtime = entry.runtime
        if runtime is not None and runtime.swarm is not None and runtime.swarm.picker.have_count == torrent.num_pieces:
            return 0  # every file whole: what torrent-get asks of a thousand seeds, answered at once
        unwanted = set(entry.record.unwanted)
        progress = self.file_progress(entry)
        return sum(
            length - progress[position]
            for position, length in enumerate(entry.data_lengths())
            if position not in unwanted
        )


def _freeze_heap() -> None:
    """Collect every generation once, then move what is left (the torrents' metainfo,
    pickers, runtimes: some 150,000 objects with 1,000 torrents) out of the collector's view.
    A full pass over them took 90-120 ms of CPU and fell, unasked, inside a ``torrent-get``
    (its 21,000 values promote enough objects to start one every 30 calls or so): that
    was the call's p99. Frozen objects are not freed even when unreachable, so each freeze
    first unfreezes and collects; the daemon freezes again after adds or removes settle."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _trim_c_heap()


def _trim_c_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``): the
    buffers of a thousand adds, hashes and resume reads leave holes that glibc keeps, 6 MiB
    of the resident size with 1,000 seeds at rest. Elsewhere (musl, macOS) nothing is done."""
    import ctypes  # noqa: PLC0415  (only here: most of a daemon's life has no use for it)

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


async def _reannounce(runtime: TorrentRuntime) -> None:
    await runtime.pause()
    runtime.resume()


def _overlap(item: FileEntry, index: int, piece_length: int) -> int:
    start = max(item.offset, index * piece_length)
    end = min(item.offset + item.length, (index + 1) * piece_length)
    return max(0, end - start)


def _engine_wanted(torrent: Torrent, unwanted: set[int]) -> set[int] | None:
    """Transmission's file indices (data files only) to the engine's (all of torrent.files)."""
    if not unwanted:
        return None
    data_ids = {id(item) for item in torrent.data_files()}
    data_positions = [position for position, item in enumerate(torrent.files) if id(item) in data_ids]
    wanted = {position for number, position in enumerate(data_positions) if number not in unwanted}
    return wanted


def _engine_priorities(torrent: Torrent, high: Iterable[int], low: Iterable[int]) -> dict[int, int] | None:
    """Transmission's high and low file indices (data files only) to the engine's file
    priorities (indices in torrent.files); None when every file is normal, so a torrent
    without priorities is picked as ``bitswarm get`` picks."""
    data_ids = {id(item) for item in torrent.data_files()}
    data_positions = [position for position, item in enumerate(torrent.files) if id(item) in data_ids]
    priorities: dict[int, int] = {}
    for value, indices in ((FILE_PRIORITY_LOW, low), (FILE_PRIORITY_HIGH, high)):
        for number in indices:
            if 0 <= number < len(data_positions):
                priorities[data_positions[number]] = value
    return priorities or None


def _delete_content(torrent: Torrent, folder: Path) -> None:
    """The torrent's files, the folders they leave empty, its resume and part data."""
    info_hash = (torrent.info_hash_v1 or (torrent.info_hash_v2 or b"")[:20]).hex()
    touched: set[Path] = set()
    for item in torrent.files:
        if item.is_pad:
            continue
        try:
            path = paths.resolve_inside(folder, item.path)
        except MetainfoError:
            continue  # a link planted since: never followed out of the folder
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        touched.update(path.parents)
    base = Path(os.path.realpath(folder))
    for directory in sorted(touched, key=lambda item: len(item.parts), reverse=True):
        if base in directory.parents:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty
    for extra in (folder / resume.RESUME_FOLDER / f"{info_hash}.resume", folder / PARTS_FOLDER / info_hash):
        with contextlib.suppress(OSError):
            extra.unlink()


def _rename_on_disk(folder: Path, old: tuple[str, ...], new: tuple[str, ...]) -> None:
    """Move ``folder/old`` to ``folder/new`` when it is there (a file not yet written has
    nothing to move); raises UsageError when something is in the way."""
    source = paths.resolve_inside(folder, old)
    target = paths.resolve_inside(folder, new)
    if target.exists():
        raise UsageError(f"{'/'.join(new)!r} is in the way in {str(folder)!r}")
    if not source.exists():
        return
    try:
        source.rename(target)
    except OSError as error:
        raise UsageError(f"renaming {'/'.join(old)!r}: {error.strerror or error}") from None


def _move_content(torrent: Torrent, info_hash: str, old: Path, new: Path) -> None:
    new.mkdir(parents=True, exist_ok=True)
    top = paths.resolve_inside(old, (torrent.name,))
    if top.exists():
        shutil.move(top, paths.resolve_inside(new, (torrent.name,)))
    for folder_name, name in ((resume.RESUME_FOLDER, f"{info_hash}.resume"), (PARTS_FOLDER, info_hash)):
        source = old / folder_name / name
        if source.exists():
            (new / folder_name).mkdir(exist_ok=True)
            shutil.move(source, new / folder_name / name)


# Session settings and where the config gives their defaults (session-set keeps changes).
_CONFIG_SETTINGS: dict[str, Any] = {
    "download-dir": lambda c: os.path.expanduser(c.download_dir),
    "speed-limit-down": lambda c: c.max_down // KILO,
    "speed-limit-down-enabled": lambda c: c.max_down > 0,
    "speed-limit-up": lambda c: c.max_up // KILO,
    "speed-limit-up-enabled": lambda c: c.max_up > 0,
    "alt-speed-enabled": lambda c: False,
    "alt-speed-down": lambda c: c.alt_speed_down,
    "alt-speed-up": lambda c: c.alt_speed_up,
    "alt-speed-time-enabled": lambda c: c.alt_speed_time_enabled,
    "alt-speed-time-begin": lambda c: c.alt_speed_time_begin,
    "alt-speed-time-end": lambda c: c.alt_speed_time_end,
    "alt-speed-time-day": lambda c: c.alt_speed_time_day,
    "watch-dir": lambda c: os.path.expanduser(c.watch_dir) if c.watch_dir else "",
    "watch-dir-enabled": lambda c: c.watch_dir_enabled,
    "trash-original-torrent-files": lambda c: c.trash_original_torrent_files,
    "incomplete-dir": lambda c: os.path.expanduser(c.incomplete_dir) if c.incomplete_dir else "",
    "incomplete-dir-enabled": lambda c: c.incomplete_dir_enabled,
    "download-queue-enabled": lambda c: c.download_queue_enabled,
    "download-queue-size": lambda c: c.download_queue_size,
    "seed-queue-enabled": lambda c: c.seed_queue_enabled,
    "seed-queue-size": lambda c: c.seed_queue_size,
    "seedRatioLimited": lambda c: c.seed_ratio_limited,
    "seedRatioLimit": lambda c: c.seed_ratio_limit,
    "idle-seeding-limit-enabled": lambda c: c.idle_seeding_limit_enabled,
    "idle-seeding-limit": lambda c: c.idle_seeding_limit_min,
}
SESSION_SETTINGS = frozenset(_CONFIG_SETTINGS)
