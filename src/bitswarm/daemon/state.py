"""The daemon's persistent state: its torrents (with ids that survive restarts) and settings.

``STATE/state.json`` holds the list of torrents and the session settings; each torrent's
.torrent bytes live beside it in ``STATE/torrents/HEX.torrent`` (written once, when the
torrent is added or its magnet link's metadata arrives). Both are replaced atomically and
durably (``bitswarm.storage.atomic``), so ``kill -9`` leaves the old version or the new.

Which pieces are verified is not kept here: the engine's resume data, beside the content,
follows the disk (``bitswarm.storage.resume``), and a restart trusts it without hashing.

Parsing is strict: a file that is not ours, or is damaged, is one clear ``UsageError`` at
start rather than a daemon that silently forgets its torrents.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitswarm.errors import UsageError
from bitswarm.metainfo import MAX_TORRENT_BYTES
from bitswarm.storage.atomic import replace_durably

FORMAT = 1
STATE_FILE = "state.json"
TORRENTS_FOLDER = "torrents"
# A state file for 100,000 torrents is some tens of MiB; anything far larger is not ours.
MAX_STATE_BYTES = 256 << 20
# Labels as Transmission bounds them in practice: a few short words.
MAX_LABELS = 32
MAX_LABEL_CHARS = 256


@dataclass
class TorrentRecord:
    """One torrent as the daemon remembers it across restarts."""

    id: int
    info_hash: str  # hex, the hash the torrent runs under (a hybrid's v1)
    download_dir: str
    added_date: int
    queue_position: int
    name: str = ""
    # Set while only the magnet link is known; cleared once the .torrent is in the state.
    magnet: str | None = None
    # The user's stop: a queued torrent is not paused, it waits its turn.
    paused: bool = False
    labels: list[str] = field(default_factory=list)
    # Indices of Transmission's file list (pad files excluded) not wanted; high/low priorities.
    unwanted: list[int] = field(default_factory=list)
    priority_high: list[int] = field(default_factory=list)
    priority_low: list[int] = field(default_factory=list)
    # KB/s as Transmission counts them (1000 bytes); the flags say whether they apply.
    download_limit: int = 100
    download_limited: bool = False
    upload_limit: int = 100
    upload_limited: bool = False
    honors_session_limits: bool = True
    # 0: the session's goal, 1: this torrent's, 2: unlimited (Transmission's tr_ratiolimit).
    seed_ratio_mode: int = 0
    seed_ratio_limit: float = 2.0
    seed_idle_mode: int = 0
    seed_idle_limit: int = 30
    bandwidth_priority: int = 0
    done_date: int = 0
    # Totals of earlier runs; the running engine adds its own.
    uploaded_ever: int = 0
    downloaded_ever: int = 0
    seconds_seeding: int = 0
    seconds_downloading: int = 0
    error_string: str = ""
    # Transmission's incomplete-dir: where the data is while the torrent is incomplete
    # ("" once it is in download_dir, where it moves when complete).
    incomplete_dir: str = ""
    # torrent-rename-path calls, each [path as it was, new name], replayed in order at start.
    renames: list[list[str]] = field(default_factory=list)

    @property
    def data_dir(self) -> str:
        """The folder the torrent's data is in now."""
        return self.incomplete_dir or self.download_dir


@dataclass
class DaemonState:
    next_id: int = 1
    torrents: list[TorrentRecord] = field(default_factory=list)
    # session-set values that outlive a restart, under their RPC names.
    settings: dict[str, Any] = field(default_factory=dict)


_RECORD_FIELDS = {item.name: item for item in dataclasses.fields(TorrentRecord)}


def _check_type(name: str, value: Any, expected: str) -> None:
    checks = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "str | None": lambda v: v is None or isinstance(v, str),
        "list[str]": lambda v: isinstance(v, list) and all(isinstance(item, str) for item in v),
        "list[list[str]]": lambda v: (
            isinstance(v, list)
            and all(isinstance(pair, list) and len(pair) == 2 for pair in v)
            and all(isinstance(item, str) for pair in v for item in pair)
        ),
        "list[int]": lambda v: (
            isinstance(v, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in v)
        ),
    }
    if not checks[expected](value):
        raise UsageError(f"{name}: expected {expected}")


def record_from_json(value: Any) -> TorrentRecord:
    """A record from its JSON form; raises UsageError naming the bad field."""
    if not isinstance(value, dict):
        raise UsageError("a torrent is not an object")
    unknown = set(value) - set(_RECORD_FIELDS)
    if unknown:
        raise UsageError(f"unknown field {sorted(unknown)[0]!r}")
    for name, item in value.items():
        _check_type(name, item, str(_RECORD_FIELDS[name].type))
    try:
        record = TorrentRecord(**value)
    except TypeError as error:  # a required field missing
        raise UsageError(str(error)) from None
    if record.seed_ratio_limit != float(record.seed_ratio_limit):
        raise UsageError("seed_ratio_limit")
    record.seed_ratio_limit = float(record.seed_ratio_limit)
    if len(record.info_hash) != 40 or any(char not in "0123456789abcdef" for char in record.info_hash):
        raise UsageError(f"info_hash {record.info_hash!r}")
    return record


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The state as it was at one moment: plain values, safe to write from another thread."""

    next_id: int
    settings: dict[str, Any]
    records: list[dict[str, Any]]


# The record fields holding lists: copied into a snapshot, as the daemon changes them in place.
_LIST_FIELDS = tuple(item.name for item in dataclasses.fields(TorrentRecord) if str(item.type).startswith("list"))


class StateStore:
    """``STATE/``: loads the state once, saves it whole when asked.

    Saving encodes again only the records that changed since the last write (each record is
    one line of the file), and writes nothing when nothing changed: with 1,000 torrents a
    save after one ``torrent-add`` costs one record's encoding and one fsync, not 1,000.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STATE_FILE
        self.torrents_folder = folder / TORRENTS_FOLDER
        # What the file holds since the last write: record id -> (its values, its line), and
        # the rest of the document. Only ``write`` touches them, one call at a time.
        self._written_records: dict[int, tuple[dict[str, Any], str]] = {}
        self._written_head: str | None = None
        self._written_ids: list[int] = []

    def load(self) -> DaemonState:
        """The saved state (an empty one when there is none); raises UsageError when the
        file is damaged or not ours, naming it."""
        self.torrents_folder.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.stat().st_size > MAX_STATE_BYTES:
                raise UsageError(f"{self.path}: larger than {MAX_STATE_BYTES} bytes")
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return DaemonState()
        except OSError as error:
            raise UsageError(f"{self.path}: {error.strerror}") from None
        try:
            value = json.loads(raw)
            if not isinstance(value, dict) or value.get("format") != FORMAT:
                raise UsageError("not a bitswarm daemon state (format 1)")
            torrents = value.get("torrents")
            settings = value.get("settings")
            next_id = value.get("next_id")
            if not isinstance(torrents, list) or not isinstance(settings, dict) or not isinstance(next_id, int):
                raise UsageError("torrents, settings or next_id missing")
            records = [record_from_json(item) for item in torrents]
        except (ValueError, UsageError) as error:
            raise UsageError(f"{self.path}: {error}") from None
        ids = [record.id for record in records]
        if len(set(ids)) != len(ids) or any(number < 1 or number >= next_id for number in ids):
            raise UsageError(f"{self.path}: torrent ids repeat or are not below next_id")
        return DaemonState(next_id=next_id, torrents=records, settings=settings)

    def save(self, state: DaemonState) -> None:
        """Replace the state file atomically and durably; raises OSError."""
        self.write(self.snapshot(state))

    @staticmethod
    def snapshot(state: DaemonState) -> StateSnapshot:
        """The state's values now (cheap: a shallow copy of each record, its lists copied)."""
        records = []
        for record in state.torrents:
            values = dict(vars(record))
            for name in _LIST_FIELDS:
                values[name] = list(values[name])
            records.append(values)
        return StateSnapshot(state.next_id, copy.deepcopy(state.settings), records)

    def write(self, snapshot: StateSnapshot) -> bool:
        """Replace the state file atomically and durably with ``snapshot``, unless it holds
        that already; whether it wrote. Raises OSError (and then forgets what it wrote, so
        the next call writes)."""
        head = json.dumps({"format": FORMAT, "next_id": snapshot.next_id, "settings": snapshot.settings},
                          sort_keys=True)  # fmt: skip
        records: dict[int, tuple[dict[str, Any], str]] = {}
        lines = []
        ids = [values["id"] for values in snapshot.records]
        changed = head != self._written_head
        for values in snapshot.records:
            known = self._written_records.get(values["id"])
            if known is not None and known[0] == values:
                line = known[1]
            else:
                line = json.dumps(values, sort_keys=True)
                changed = True
            records[values["id"]] = (values, line)
            lines.append(line)
        if not changed and ids == self._written_ids:
            return False
        # One object: the head's keys, then "torrents" with one record a line (sort_keys
        # order, as "torrents" sorts after the head's keys).
        document = head[:-1] + ', "torrents": [\n' + ",\n".join(lines) + "\n]}\n"
        self._written_head = None
        try:
            replace_durably(self.path, document.encode())
        except BaseException:
            self._written_records = {}
            self._written_ids = []
            raise
        self._written_records = records
        self._written_head = head
        self._written_ids = ids
        return True

    def torrent_path(self, info_hash: str) -> Path:
        return self.torrents_folder / f"{info_hash}.torrent"

    def save_torrent(self, info_hash: str, data: bytes) -> None:
        """Keep a torrent's metainfo (before the record naming it is saved); raises OSError."""
        replace_durably(self.torrent_path(info_hash), data)

    def load_torrent(self, info_hash: str) -> bytes:
        """A kept torrent's bytes; raises UsageError when missing or too large."""
        path = self.torrent_path(info_hash)
        try:
            if path.stat().st_size > MAX_TORRENT_BYTES:
                raise UsageError(f"{path}: larger than {MAX_TORRENT_BYTES} bytes")
            return path.read_bytes()
        except OSError as error:
            raise UsageError(f"{path}: {error.strerror}") from None

    def forget_torrent(self, info_hash: str) -> None:
        self.torrent_path(info_hash).unlink(missing_ok=True)
