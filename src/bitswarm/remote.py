"""A client for a daemon's Transmission RPC: bitswarm's own daemon or transmission-daemon.

The HTTP side (the 409 ``X-Transmission-Session-Id`` handshake, Basic authentication,
base64 metainfo) is the ``transmission-rpc`` package's. This module turns its errors into
ours (one line each), checks the torrent ids a user typed, resolves them against what the
daemon has (Transmission ignores ids it does not know, so a typo would otherwise do
nothing and report success), and returns the daemon's fields as plain dicts under the
protocol's own names (``percentDone``, ``rateDownload``) for the command to format.

Only the classic dialect (``{method, arguments}``, rpc-version 16 and later) is spoken:
both Transmission 3.00 and 4.x and bitswarm's daemon answer it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bitswarm.errors import RemoteAuthError, RemoteError, RemoteUnreachable, TorrentNotFound, UsageError

if TYPE_CHECKING:
    import transmission_rpc

DEFAULT_RPC_URL = "http://127.0.0.1:9091/transmission/rpc"
DEFAULT_TIMEOUT_S = 10.0
# Transmission's id is a positive int; an info-hash is v1 hex (what `hashString` holds,
# also for a hybrid torrent).
INFO_HASH_HEX_CHARS = 40
# More ids than this on one command line is a mistake (a glob gone wrong), not a request.
MAX_IDS = 10_000

TorrentId = int | str
# A speed limit that is switched off rather than set.
LIMIT_OFF = -1

# What `list` shows; unknown fields are ignored by the daemon, so asking is harmless.
LIST_FIELDS = (
    "id",
    "hashString",
    "name",
    "status",
    "error",
    "errorString",
    "percentDone",
    "metadataPercentComplete",
    "sizeWhenDone",
    "leftUntilDone",
    "haveValid",
    "totalSize",
    "eta",
    "rateUpload",
    "rateDownload",
    "uploadRatio",
    "uploadedEver",
    "downloadedEver",
    "downloadDir",
    "labels",
    "addedDate",
    "peersConnected",
)
INFO_FIELDS = (
    *LIST_FIELDS,
    "comment",
    "creator",
    "dateCreated",
    "doneDate",
    "isPrivate",
    "magnetLink",
    "pieceCount",
    "pieceSize",
    "files",
    "fileStats",
    "peers",
    "trackerStats",
)
_NAME_FIELDS = ("id", "hashString", "name")


def parse_torrent_id(text: str) -> TorrentId:
    """'3' -> 3, a 40-digit hex info-hash -> it in lower case.

    Raises ``UsageError`` for anything else.
    """
    cleaned = text.strip()
    if cleaned.isascii() and cleaned.isdecimal() and int(cleaned) > 0:
        return int(cleaned)
    if len(cleaned) == INFO_HASH_HEX_CHARS and re.fullmatch(r"[0-9a-fA-F]+", cleaned):
        return cleaned.lower()
    raise UsageError(f"{text!r} is not a torrent id (a number from `list`) or a 40-digit hex info-hash")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the RPC is and who we are to it."""

    url: str
    username: str | None = None
    password: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class AddSource:
    """One thing to add: a .torrent's bytes, or a magnet link or URL the daemon fetches."""

    label: str
    metainfo: bytes | None = None
    filename: str | None = None
    # v1 hex, when known before asking the daemon (a .torrent, a magnet with btih).
    info_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Added:
    """The daemon's answer to one ``torrent-add``: the torrent, and whether it was there already."""

    source: str
    id: int
    info_hash: str
    name: str
    is_duplicate: bool


def split_rpc_url(url: str) -> tuple[str, str, int, str, str | None, str | None]:
    """(scheme, host, port, path, user, password) of an RPC URL; ``UsageError`` if it is not one."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UsageError(f"--rpc {url!r}: {error}") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--rpc {url!r}: not an http:// or https:// URL with a host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 9091
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return parts.scheme, host, port or default_port, parts.path or "/transmission/rpc", user, password


def _os_reason(error: BaseException) -> str:
    """The system's words for a failed connection, out of requests' nested message."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
    return found.group(1).strip().lower() if found else "no connection"


class RemoteDaemon:
    """A connection to one daemon's RPC. Every method raises ``RemoteError`` (or a subclass)."""

    def __init__(self, endpoint: Endpoint) -> None:
        """Connect and ask for the session (which also learns the session id)."""
        scheme, host, port, path, url_user, url_password = split_rpc_url(endpoint.url)
        self.endpoint = endpoint
        # Shown in messages without a password that may sit in the URL.
        self.url = urllib.parse.urlunsplit((scheme, f"{host}:{port}", path, "", ""))
        self._has_credentials = bool(endpoint.username or url_user)
        # transmission-rpc logs warnings (an old rpc-version) that would reach stderr
        # through logging's last resort; the command reports what matters itself.
        logger = logging.getLogger("bitswarm.remote.rpc")
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
            logger.propagate = False
        # Imported here: transmission-rpc brings requests (~170 ms), and every other
        # `bitswarm` command imports this module through the command line's group.
        import transmission_rpc  # noqa: PLC0415

        self._client: transmission_rpc.Client
        with self._translated("session-get"):
            try:
                self._client = transmission_rpc.Client(
                    protocol="https" if scheme == "https" else "http",
                    host=host,
                    port=port,
                    path=path,
                    username=endpoint.username or url_user,
                    password=endpoint.password if endpoint.username else url_password,
                    timeout=endpoint.timeout_s,
                    logger=logger,
                )
            except KeyError as error:
                raise RemoteError(f"{self.url}: session-get lacks {error} (not a Transmission RPC?)") from error

    @contextlib.contextmanager
    def _translated(self, method: str) -> Iterator[None]:
        from transmission_rpc.error import (  # noqa: PLC0415 - see __init__
            TransmissionAuthError,
            TransmissionConnectError,
            TransmissionError,
            TransmissionTimeoutError,
        )

        try:
            yield
        except TransmissionAuthError as error:
            status = getattr(error.original, "status_code", 401)
            if status == 403:
                raise RemoteAuthError(f"{self.url}: the daemon refuses this address (403 Forbidden)") from error
            if self._has_credentials:
                raise RemoteAuthError(f"{self.url}: wrong user name or password (401 Unauthorized)") from error
            raise RemoteAuthError(
                f"{self.url}: the daemon wants a user name and password (401 Unauthorized; use --auth USER:PASS)"
            ) from error
        except TransmissionTimeoutError as error:
            raise RemoteUnreachable(f"{self.url}: no answer within {self.endpoint.timeout_s:g} s") from error
        except TransmissionConnectError as error:
            raise RemoteUnreachable(
                f"{self.url}: cannot connect ({_os_reason(error)}); is the daemon running?"
            ) from error
        except TransmissionError as error:
            response = error.response if isinstance(error.response, dict) else None
            if response is not None and "result" in response:
                raise RemoteError(f"{method}: the daemon answered {response['result']!r}") from error
            if error.raw_response is not None:
                raise RemoteError(f"{self.url}: the answer is not Transmission RPC (wrong URL?)") from error
            raise RemoteError(f"{self.url}: {error.message}") from error

    @property
    def server_version(self) -> str:
        return self._client.server_version

    def torrents(
        self, fields: Sequence[str] = LIST_FIELDS, ids: Sequence[TorrentId] | None = None
    ) -> list[dict[str, Any]]:
        """The daemon's fields of each torrent (all of them when ``ids`` is None), by id."""
        with self._translated("torrent-get"):
            found = self._client.get_torrents(list(ids) if ids is not None else None, arguments=list(fields))
        return sorted((dict(torrent.fields) for torrent in found), key=lambda fields: int(fields.get("id", 0)))

    def resolve(self, ids: Sequence[TorrentId], fields: Sequence[str] = _NAME_FIELDS) -> list[dict[str, Any]]:
        """The torrents ``ids`` name, in the order given, each once.

        Raises ``TorrentNotFound`` for the first id the daemon does not have.
        """
        if len(ids) > MAX_IDS:
            raise UsageError(f"{len(ids)} ids: at most {MAX_IDS} at once")
        wanted = list(dict.fromkeys(ids))
        found = self.torrents(tuple(dict.fromkeys((*_NAME_FIELDS, *fields))), wanted) if wanted else []
        by_id = {torrent["id"]: torrent for torrent in found}
        by_hash = {str(torrent.get("hashString", "")).lower(): torrent for torrent in found}
        resolved: dict[int, dict[str, Any]] = {}
        for torrent_id in wanted:
            torrent = by_id.get(torrent_id) if isinstance(torrent_id, int) else by_hash.get(torrent_id)
            if torrent is None:
                raise TorrentNotFound(torrent_id)
            resolved.setdefault(torrent["id"], torrent)
        return list(resolved.values())

    def add(
        self, source: AddSource, *, download_dir: str | None = None, paused: bool = False, labels: Sequence[str] = ()
    ) -> Added:
        """Add one torrent; a torrent the daemon already has is reported, not an error.

        Labels are set with ``torrent-set`` after the add: Transmission 3.00 (rpc-version
        16) takes them there but ignores them in ``torrent-add``.
        """
        if source.info_hash is not None:
            # 4.x and bitswarm's daemon answer a duplicate with "success"; only asking first tells.
            already = self.torrents(_NAME_FIELDS, [source.info_hash])
            if already:
                return self._added(source, already[0], is_duplicate=True)
        torrent: str | bytes = source.metainfo if source.metainfo is not None else source.filename or ""
        try:
            with self._translated("torrent-add"):
                answer = self._client.add_torrent(torrent, download_dir=download_dir, paused=paused)
            fields, is_duplicate = dict(answer.fields), False
        except RemoteError as error:
            # Transmission 3.00 answers a duplicate with the result "duplicate torrent" and
            # the torrent it has in the arguments (a URL's hash is not known beforehand).
            response = getattr(error.__cause__, "response", None)
            arguments = response.get("arguments", {}) if isinstance(response, dict) else {}
            if not isinstance(arguments, dict) or "torrent-duplicate" not in arguments:
                raise RemoteError(f"{source.label}: {error}") from error
            fields, is_duplicate = dict(arguments["torrent-duplicate"]), True
        added = self._added(source, fields, is_duplicate=is_duplicate)
        if labels and not is_duplicate:
            with self._translated("torrent-set"):
                self._client.change_torrent(added.id, labels=list(labels))
        return added

    @staticmethod
    def _added(source: AddSource, fields: dict[str, Any], *, is_duplicate: bool) -> Added:
        return Added(
            source=source.label,
            id=int(fields["id"]),
            info_hash=str(fields.get("hashString", "")).lower(),
            name=str(fields.get("name", "")),
            is_duplicate=is_duplicate,
        )

    def stop(self, ids: Sequence[int]) -> None:
        with self._translated("torrent-stop"):
            self._client.stop_torrent(list(ids))

    def start(self, ids: Sequence[int]) -> None:
        with self._translated("torrent-start"):
            self._client.start_torrent(list(ids))

    def verify(self, ids: Sequence[int]) -> None:
        with self._translated("torrent-verify"):
            self._client.verify_torrent(list(ids))

    def remove(self, ids: Sequence[int], *, delete_data: bool) -> None:
        with self._translated("torrent-remove"):
            self._client.remove_torrent(list(ids), delete_data=delete_data)

    def session(self) -> dict[str, Any]:
        """``session-get``: the daemon's settings, under the protocol's names."""
        with self._translated("session-get"):
            return dict(self._client.get_session().fields)

    def session_stats(self) -> dict[str, Any]:
        with self._translated("session-stats"):
            return dict(self._client.session_stats().fields)

    def set_speed_limits(self, *, down_kb_s: int | None, up_kb_s: int | None) -> None:
        """Set the session's speed limits in Transmission's kB/s (``units.speed-bytes`` of
        session-get, 1000 bytes): None leaves a limit as it is, ``LIMIT_OFF`` turns it off
        (0 is a limit: nothing moves)."""
        arguments: dict[str, Any] = {}
        for direction, value in (("down", down_kb_s), ("up", up_kb_s)):
            if value == LIMIT_OFF:
                arguments[f"speed_limit_{direction}_enabled"] = False
            elif value is not None:
                arguments[f"speed_limit_{direction}"] = value
                arguments[f"speed_limit_{direction}_enabled"] = True
        if arguments:
            with self._translated("session-set"):
                self._client.set_session(**arguments)
