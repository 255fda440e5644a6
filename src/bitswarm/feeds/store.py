"""Where subscriptions live between runs: a state folder holding

- ``subscriptions.json``, the subscriptions (``Subscription.to_json``), replaced atomically
  on every change so that a crash leaves the old list or the new one;
- ``seen.sqlite3``, the seen-database (SQLite from the standard library: one small file,
  one writer at a time, nothing to install): the dedup keys of every item handed on (its
  GUID and info-hash, across feeds), the episodes downloaded per series, the releases
  held while a better one may come, and each feed's ``ETag``/``Last-Modified`` and the
  time of its next poll.

The database is read and written from the event loop's thread: each call is one small
indexed statement on a local file, far below what a thread hop would cost.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bitswarm.errors import UsageError
from bitswarm.feeds.document import FeedItem
from bitswarm.feeds.matching import GrabbedEpisode, HeldItem, History, Hold
from bitswarm.feeds.rules import Subscription, normalise_series_name
from bitswarm.storage.atomic import replace_durably

SUBSCRIPTIONS_FILE = "subscriptions.json"
SEEN_DATABASE_FILE = "seen.sqlite3"
# A subscriptions file is written by `subscribe add`; one this large is not ours.
MAX_SUBSCRIPTIONS_FILE_BYTES = 4 << 20
# Releases held per subscription while waiting for a better quality: a few polls' worth of
# a busy feed. Past it, new ones are not held (the ones held keep their turn).
MAX_HELD_PER_SUBSCRIPTION = 2000

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, title TEXT NOT NULL, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (
    series TEXT NOT NULL, episode TEXT NOT NULL, info_hash TEXT, is_proper INTEGER NOT NULL,
    grabbed_at REAL NOT NULL, title TEXT NOT NULL, PRIMARY KEY (series, episode));
CREATE TABLE IF NOT EXISTS held (
    subscription INTEGER NOT NULL, guid TEXT NOT NULL, series TEXT NOT NULL, episodes TEXT NOT NULL,
    first_seen_at REAL NOT NULL, item TEXT NOT NULL, PRIMARY KEY (subscription, guid));
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, next_poll_at REAL NOT NULL);
"""


def default_state_folder() -> Path:
    """$XDG_DATA_HOME/bitswarm/subscriptions, else ~/.local/share/bitswarm/subscriptions."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "bitswarm" / "subscriptions"


class SubscriptionFile:
    """The subscriptions of one state folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / SUBSCRIPTIONS_FILE

    def load(self) -> list[Subscription]:
        """Raises ``UsageError`` for a file that is not ours, ``OSError`` when unreadable."""
        if not self.path.exists():
            return []
        if self.path.stat().st_size > MAX_SUBSCRIPTIONS_FILE_BYTES:
            raise UsageError(f"{self.path}: larger than {MAX_SUBSCRIPTIONS_FILE_BYTES} bytes")
        try:
            data = json.loads(self.path.read_bytes())
        except ValueError as error:
            raise UsageError(f"{self.path}: not JSON ({error})") from None
        if not isinstance(data, dict) or not isinstance(data.get("subscriptions"), list):
            raise UsageError(f"{self.path}: no 'subscriptions' list")
        try:
            return [Subscription.from_json(item) for item in data["subscriptions"]]
        except UsageError as error:
            raise UsageError(f"{self.path}: {error}") from None

    def save(self, subscriptions: Sequence[Subscription]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"subscriptions": [subscription.to_json() for subscription in subscriptions]}
        replace_durably(self.path, json.dumps(document, indent=2).encode() + b"\n")

    def next_id(self) -> int:
        return max((subscription.id for subscription in self.load()), default=0) + 1


@dataclass(frozen=True, slots=True)
class FeedState:
    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: float = 0.0


class SeenDatabase:
    """The seen-database of one state folder; ``close`` it (or use ``with``)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / SEEN_DATABASE_FILE, isolation_level=None)
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            self._db.close()
            raise UsageError(f"{folder / SEEN_DATABASE_FILE}: made by a newer bitswarm (schema {version})")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def __enter__(self) -> SeenDatabase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def is_seen(self, keys: Iterable[str]) -> bool:
        """Whether any of an item's dedup keys (GUID, info-hash) was handed on before."""
        keys = list(keys)
        if not keys:
            return False
        marks = ",".join("?" * len(keys))
        return self._db.execute(f"SELECT 1 FROM seen WHERE key IN ({marks}) LIMIT 1", keys).fetchone() is not None  # noqa: S608 - only placeholders

    def seen_count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM seen").fetchone()
        return int(count)

    def record_handed_on(
        self,
        keys: Iterable[str],
        title: str,
        now: float,
        *,
        subscription: int,
        series: str | None = None,
        episodes: Sequence[str] = (),
        info_hash: str | None = None,
        is_proper: bool = False,
    ) -> None:
        """Remember an item given to the sink: its keys as seen, its episodes as downloaded,
        and no more holding of other releases of those episodes. One transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO seen (key, title, seen_at) VALUES (?, ?, ?)", [(k, title, now) for k in keys]
            )
            if series is None:
                return
            name = normalise_series_name(series)
            self._db.executemany(
                "INSERT OR REPLACE INTO episodes (series, episode, info_hash, is_proper, grabbed_at, title)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(name, episode, info_hash, int(is_proper), now, title) for episode in episodes],
            )
            for row_guid, row_episodes in self._db.execute(
                "SELECT guid, episodes FROM held WHERE subscription = ? AND series = ?", (subscription, name)
            ).fetchall():
                if set(json.loads(row_episodes)) & set(episodes):
                    self._db.execute("DELETE FROM held WHERE subscription = ? AND guid = ?", (subscription, row_guid))

    def hold(self, subscription: int, hold: Hold) -> bool:
        """Keep a held release (again); False when the subscription holds its maximum."""
        (count,) = self._db.execute("SELECT COUNT(*) FROM held WHERE subscription = ?", (subscription,)).fetchone()
        if count >= MAX_HELD_PER_SUBSCRIPTION:
            return False
        self._db.execute(
            "INSERT INTO held (subscription, guid, series, episodes, first_seen_at, item) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (subscription, guid) DO UPDATE SET item = excluded.item",
            (
                subscription,
                hold.item.guid,
                normalise_series_name(hold.series),
                json.dumps(list(hold.episodes)),
                hold.first_seen_at,
                json.dumps(asdict(hold.item)),
            ),
        )
        return True

    def history(self, subscription: Subscription) -> History:
        """What the matching core needs to know about ``subscription``'s series."""
        names = {normalise_series_name(name): name for name in subscription.series}
        grabbed: dict[tuple[str, str], GrabbedEpisode] = {}
        for name, spelled in names.items():
            for episode, info_hash, is_proper, grabbed_at in self._db.execute(
                "SELECT episode, info_hash, is_proper, grabbed_at FROM episodes WHERE series = ?", (name,)
            ):
                grabbed[(spelled, episode)] = GrabbedEpisode(info_hash, bool(is_proper), grabbed_at)
        held = [
            HeldItem(FeedItem(**json.loads(item)), names.get(series, series), tuple(json.loads(episodes)), first_seen)
            for series, episodes, first_seen, item in self._db.execute(
                "SELECT series, episodes, first_seen_at, item FROM held WHERE subscription = ?", (subscription.id,)
            )
        ]
        return History(grabbed, held)

    def held_count(self, subscription: int) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM held WHERE subscription = ?", (subscription,)).fetchone()
        return int(count)

    def forget_subscription(self, subscription: int) -> None:
        self._db.execute("DELETE FROM held WHERE subscription = ?", (subscription,))

    def feed_state(self, url: str) -> FeedState:
        row = self._db.execute("SELECT etag, last_modified, next_poll_at FROM feeds WHERE url = ?", (url,)).fetchone()
        return FeedState(*row) if row is not None else FeedState()

    def set_feed_state(self, url: str, state: FeedState) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO feeds (url, etag, last_modified, next_poll_at) VALUES (?, ?, ?, ?)",
            (url, state.etag, state.last_modified, state.next_poll_at),
        )
