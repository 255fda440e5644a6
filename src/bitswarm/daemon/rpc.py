"""The Transmission RPC over the daemon's state: requests in, answers out, no HTTP.

The classic dialect of Transmission 4.0's ``docs/rpc-spec.md``: a request is
``{"method", "arguments", "tag"}`` and the answer ``{"result", "arguments", "tag"}``, with
``result`` "success" or a sentence saying what was wrong. rpc-version 17, minimum 14.

As Transmission does, unknown ``torrent-get`` fields and ids that name no torrent are
ignored silently; but an argument of the wrong type, an unknown method or a torrent that
cannot be read is a ``result`` string naming it, never a crash and never a partial change.
``ids`` may be a number, a hash string, a list of both, or "recently-active" (the answer
then carries ``removed``: the ids removed within the last minute).

The HTTP side (the session-id handshake, authentication, Host and address checks, body
limits) is ``bitswarm.daemon.app``'s.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bitswarm import __version__
from bitswarm.daemon import jsonrpc
from bitswarm.daemon.clients import client_name
from bitswarm.daemon.config import ALL_DAYS, MINUTES_PER_DAY
from bitswarm.daemon.service import (
    KILO,
    RECENTLY_ACTIVE_S,
    SESSION_SETTINGS,
    AddRequest,
    Daemon,
    Entry,
    TorrentState,
    check_labels,
)
from bitswarm.errors import BitswarmError, DecodeError, MetainfoError, RpcRequestError, UsageError
from bitswarm.metainfo import MAX_TORRENT_BYTES
from bitswarm.net.session import TrackerAnswer

RPC_VERSION = 17
RPC_VERSION_MINIMUM = 14
# Transmission 4.0's RPC semver for rpc-version 17.
RPC_VERSION_SEMVER = "5.3.0"
# Clients such as Sonarr read the leading number as Transmission's version (>= 2.40 wanted).
VERSION = f"4.0.6 (bitswarm {__version__})"
# What the JSON-RPC 2.0 dialect reports: the release that brought it.
VERSION_JSONRPC = f"4.1.0 (bitswarm {__version__})"
# ids in one request: far more than any daemon holds, still cheap to walk.
MAX_IDS = 1_000_000
INFO_HASH_HEX_CHARS = 40

FetchUrl = Callable[[str], Awaitable[bytes]]


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcRequestError(f"{name} must be an integer")
    return value


def _bool(value: Any, name: str) -> bool:
    # Transmission's variants take 0/1 for booleans too (old clients send them).
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise RpcRequestError(f"{name} must be a boolean")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RpcRequestError(f"{name} must be a number")
    return float(value)


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RpcRequestError(f"{name} must be a string")
    return value


def _int_list(value: Any, name: str) -> list[int]:
    if not isinstance(value, list):
        raise RpcRequestError(f"{name} must be a list of file indices")
    return [_int(item, name) for item in value]


def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        raise RpcRequestError(f"{name} must be a list of strings")
    return [_str(item, name) for item in value]


class TransmissionRpc:
    """Answers Transmission RPC requests from a ``Daemon``'s state."""

    def __init__(self, daemon: Daemon, *, session_id: str, fetch_url: FetchUrl | None = None) -> None:
        self.daemon = daemon
        self.session_id = session_id
        self.fetch_url = fetch_url
        self.closing: Callable[[], None] | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "torrent-add": self.torrent_add,
            "torrent-get": self.torrent_get,
            "torrent-set": self.torrent_set,
            "torrent-start": self.torrent_start,
            "torrent-start-now": self.torrent_start_now,
            "torrent-stop": self.torrent_stop,
            "torrent-verify": self.torrent_verify,
            "torrent-reannounce": self.torrent_reannounce,
            "torrent-remove": self.torrent_remove,
            "torrent-set-location": self.torrent_set_location,
            "torrent-rename-path": self.torrent_rename_path,
            "session-get": self.session_get,
            "session-set": self.session_set,
            "session-stats": self.session_stats,
            "session-close": self.session_close,
            "free-space": self.free_space,
            "port-test": self.port_test,
            "blocklist-update": self.blocklist_update,
            "queue-move-top": self._queue_mover("top"),
            "queue-move-up": self._queue_mover("up"),
            "queue-move-down": self._queue_mover("down"),
            "queue-move-bottom": self._queue_mover("bottom"),
        }
        self._method_names = jsonrpc.Names.of(self._methods)

    async def handle(self, body: bytes) -> dict[str, Any] | list[dict[str, Any]] | None:
        """The answer to one request body (JSON); never raises for anything the caller sent.

        A classic request gets a classic answer; a JSON-RPC 2.0 one (``bitswarm.daemon.jsonrpc``)
        an answer object, a list for a batch, or None when nothing is owed (notifications).
        """
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            if b'"jsonrpc"' in body:
                return jsonrpc.failure(jsonrpc.PARSE_ERROR, "the request is not JSON", None)
            return {"result": "the request is not JSON", "arguments": {}}
        if jsonrpc.looks_like_jsonrpc(request):
            return await self._handle_jsonrpc(request)
        if not isinstance(request, dict):
            return {"result": "the request is not a JSON object", "arguments": {}}
        answer = await self.call(request.get("method"), request.get("arguments", {}))
        tag = request.get("tag")
        if isinstance(tag, int) and not isinstance(tag, bool):
            answer["tag"] = tag
        return answer

    async def call(self, method: Any, arguments: Any) -> dict[str, Any]:
        """The classic dialect's answer (``result``, ``arguments``) to one method call."""
        answer: dict[str, Any] = {"result": "success", "arguments": {}}
        handler = self._methods.get(method) if isinstance(method, str) else None
        if handler is None:
            answer["result"] = "method name not recognized"
            return answer
        if not isinstance(arguments, dict):
            answer["result"] = "arguments must be an object"
            return answer
        try:
            answer["arguments"] = await handler(arguments)
        except BitswarmError as error:
            answer["result"] = str(error)
        except OSError as error:
            answer["result"] = str(error.strerror or error)
        return answer

    async def _handle_jsonrpc(self, request: Any) -> dict[str, Any] | list[dict[str, Any]] | None:
        if not isinstance(request, list):
            return await self._jsonrpc_one(request)
        if not request:
            return jsonrpc.failure(jsonrpc.INVALID_REQUEST, "an empty batch", None)
        if len(request) > jsonrpc.MAX_BATCH_REQUESTS:
            return jsonrpc.failure(
                jsonrpc.INVALID_REQUEST, f"a batch holds at most {jsonrpc.MAX_BATCH_REQUESTS} requests", None
            )
        answers = [await self._jsonrpc_one(item) for item in request]
        owed = [answer for answer in answers if answer is not None]
        return owed or None

    async def _jsonrpc_one(self, request: Any) -> dict[str, Any] | None:
        try:
            call = jsonrpc.parse_request(request, _ARGUMENT_NAMES, self._method_names, _FIELD_NAMES)
        except jsonrpc.Failure as error:
            return jsonrpc.failure(error.code, error.detail, jsonrpc.request_id(request))
        handler = self._methods.get(call.method)
        try:
            if handler is None:
                raise jsonrpc.Failure(jsonrpc.METHOD_NOT_FOUND, f"{str(request.get('method'))[:60]!r}")
            arguments = call.arguments
            if call.method == "session-get":
                # Filter after the translation, by the names the caller used.
                arguments = {name: value for name, value in arguments.items() if name != "fields"}
            result = await handler(arguments)
            if call.method == "session-get":
                result["rpc-version"] = jsonrpc.RPC_VERSION
                result["rpc-version-semver"] = jsonrpc.RPC_VERSION_SEMVER
                result["version"] = VERSION_JSONRPC
                result = jsonrpc.translate_result(result)
                fields = request.get("params", {}).get("fields")
                if isinstance(fields, list):
                    wanted = {jsonrpc.snake(name) for name in fields if isinstance(name, str)}
                    result = {name: value for name, value in result.items() if name in wanted}
                answer = jsonrpc.success(call, {})
                answer["result"] = result
            else:
                answer = jsonrpc.success(call, result)
        except jsonrpc.Failure as error:
            answer = jsonrpc.failure(error.code, error.detail, call.id)
        except BitswarmError as error:
            answer = jsonrpc.failure(_error_code(error), str(error), call.id)
        except OSError as error:
            answer = jsonrpc.failure(jsonrpc.SYSTEM_ERROR, str(error.strerror or error), call.id)
        return answer if call.has_id else None

    # -- ids ------------------------------------------------------------------------

    def _entries(self, arguments: dict[str, Any]) -> list[Entry]:
        """The torrents ``ids`` names (every one when absent)."""
        if "ids" not in arguments:
            return self.daemon.select(None)
        ids = arguments["ids"]
        if ids == "recently-active":
            now = time.monotonic()
            return [entry for entry in self.daemon.select(None) if now - entry.last_active <= RECENTLY_ACTIVE_S]
        items = ids if isinstance(ids, list) else [ids]
        if len(items) > MAX_IDS:
            raise RpcRequestError(f"ids: at most {MAX_IDS}")
        numbers: list[int] = []
        for item in items:
            if isinstance(item, int) and not isinstance(item, bool):
                numbers.append(item)
            elif isinstance(item, str) and len(item) == INFO_HASH_HEX_CHARS:
                found = self.daemon.id_of_hash(item)
                if found is not None:
                    numbers.append(found)
            elif isinstance(item, str) and item.isascii() and item.isdigit():
                numbers.append(int(item))
            else:
                raise RpcRequestError(f"ids: {str(item)[:60]!r} is neither a torrent id nor an info-hash")
        return self.daemon.select(numbers)

    # -- torrents -------------------------------------------------------------------

    async def torrent_add(self, arguments: dict[str, Any]) -> dict[str, Any]:
        metainfo: bytes | None = None
        link: str | None = None
        if "metainfo" in arguments:
            text = _str(arguments["metainfo"], "metainfo")
            if len(text) > MAX_TORRENT_BYTES * 4 // 3 + 4:
                raise RpcRequestError(f"metainfo: larger than {MAX_TORRENT_BYTES} bytes")
            try:
                metainfo = base64.b64decode("".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                raise RpcRequestError("metainfo: not base64") from None
        elif "filename" in arguments:
            filename = _str(arguments["filename"], "filename").strip()
            if filename.lower().startswith("magnet:"):
                link = filename
            elif filename.lower().startswith(("http://", "https://")):
                if self.fetch_url is None:
                    raise RpcRequestError("filename: fetching URLs is off")
                metainfo = await self.fetch_url(filename)
                if metainfo.lower().startswith(b"magnet:"):
                    link, metainfo = metainfo.decode("ascii", "replace").strip(), None
            else:
                metainfo = await _read_local_torrent(filename)
        else:
            raise RpcRequestError("no filename or metainfo given")
        labels = _str_list(arguments.get("labels", []), "labels")
        request = AddRequest(
            metainfo=metainfo,
            link=link,
            download_dir=_str(arguments["download-dir"], "download-dir") if "download-dir" in arguments else None,
            paused=_bool(arguments.get("paused", False), "paused"),
            labels=tuple(labels),
            unwanted=tuple(_int_list(arguments.get("files-unwanted", []), "files-unwanted")),
            wanted=tuple(_int_list(arguments.get("files-wanted", []), "files-wanted")),
            priority_high=tuple(_int_list(arguments.get("priority-high", []), "priority-high")),
            priority_low=tuple(_int_list(arguments.get("priority-low", []), "priority-low")),
            bandwidth_priority=_int(arguments.get("bandwidthPriority", 0), "bandwidthPriority"),
        )
        entry, duplicate = await self.daemon.add(request)
        summary = {"id": entry.id, "hashString": entry.record.info_hash, "name": entry.record.name}
        return {"torrent-duplicate" if duplicate else "torrent-added": summary}

    async def torrent_get(self, arguments: dict[str, Any]) -> dict[str, Any]:
        fields = _str_list(arguments.get("fields"), "fields") if "fields" in arguments else None
        if fields is None:
            raise RpcRequestError("fields: a list of field names is required")
        table = arguments.get("format", "objects")
        if table not in ("objects", "table"):
            raise RpcRequestError("format must be 'objects' or 'table'")
        entries = self._entries(arguments)
        known = [name for name in dict.fromkeys(fields) if name in TORRENT_FIELDS]
        now = time.monotonic()
        rows = [[TORRENT_FIELDS[name](self.daemon, entry, now) for name in known] for entry in entries]
        result: dict[str, Any]
        if table == "table":
            result = {"torrents": [known, *rows]}
        else:
            result = {"torrents": [dict(zip(known, row, strict=True)) for row in rows]}
        if arguments.get("ids") == "recently-active":
            result["removed"] = [
                number for number, when in self.daemon.removed.items() if now - when <= RECENTLY_ACTIVE_S
            ]
        return result

    async def torrent_set(self, arguments: dict[str, Any]) -> dict[str, Any]:
        entries = self._entries(arguments)
        changes = _torrent_changes(arguments)  # every argument checked before anything changes
        for entry in entries:
            record = entry.record
            for name, value in changes.items():
                if name in _RECORD_SETTERS:
                    setattr(record, _RECORD_SETTERS[name], value)
            if "labels" in changes:
                record.labels = check_labels(changes["labels"])
            if "files-wanted" in changes or "files-unwanted" in changes:
                count = len(self.daemon.file_progress(entry))
                for index in (*changes.get("files-wanted", []), *changes.get("files-unwanted", [])):
                    if not 0 <= index < count:
                        raise RpcRequestError(f"file {index}: torrent {entry.id} has files 0 to {count - 1}")
                self.daemon.set_wanted(entry, changes.get("files-wanted", []), changes.get("files-unwanted", []))
            for name, attribute in (("priority-high", "priority_high"), ("priority-low", "priority_low")):
                if name in changes:
                    others = {"priority-high": "priority_low", "priority-low": "priority_high"}[name]
                    setattr(record, attribute, sorted(set(getattr(record, attribute)) | set(changes[name])))
                    setattr(record, others, sorted(set(getattr(record, others)) - set(changes[name])))
            if "priority-normal" in changes:
                record.priority_high = sorted(set(record.priority_high) - set(changes["priority-normal"]))
                record.priority_low = sorted(set(record.priority_low) - set(changes["priority-normal"]))
            if {"priority-high", "priority-low", "priority-normal"} & changes.keys():
                self.daemon.apply_files(entry)  # the picker follows (high files first, low last)
            if "queuePosition" in changes:
                self.daemon.set_queue_position(entry, changes["queuePosition"])
            self.daemon.apply_limits(entry)
        if "location" in changes:
            await self.daemon.set_location(entries, changes["location"], move=False)
        self.daemon.schedule()
        self.daemon.mark_dirty()
        return {}

    async def torrent_start(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.daemon.start(self._entries(arguments))
        return {}

    async def torrent_start_now(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.daemon.start(self._entries(arguments), now=True)
        return {}

    async def torrent_stop(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.daemon.stop(self._entries(arguments))
        return {}

    async def torrent_verify(self, arguments: dict[str, Any]) -> dict[str, Any]:
        await self.daemon.verify(self._entries(arguments))
        return {}

    async def torrent_reannounce(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.daemon.reannounce(self._entries(arguments))
        return {}

    async def torrent_remove(self, arguments: dict[str, Any]) -> dict[str, Any]:
        delete = _bool(arguments.get("delete-local-data", False), "delete-local-data")
        await self.daemon.remove(self._entries(arguments), delete_data=delete)
        return {}

    async def torrent_set_location(self, arguments: dict[str, Any]) -> dict[str, Any]:
        location = _str(arguments.get("location"), "location")
        move = _bool(arguments.get("move", False), "move")
        await self.daemon.set_location(self._entries(arguments), location, move=move)
        return {}

    async def torrent_rename_path(self, arguments: dict[str, Any]) -> dict[str, Any]:
        path = _str(arguments.get("path"), "path")
        name = _str(arguments.get("name"), "name")
        entries = self._entries(arguments)
        if len(entries) != 1:
            raise RpcRequestError("torrent-rename-path: ids must name exactly one torrent")
        await self.daemon.rename_path(entries[0], path, name)
        return {"path": path, "name": name, "id": entries[0].id}

    def _queue_mover(self, how: str) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def move(arguments: dict[str, Any]) -> dict[str, Any]:
            self.daemon.move_queue(self._entries(arguments), how)
            return {}

        return move

    # -- the session ----------------------------------------------------------------

    async def session_get(self, arguments: dict[str, Any]) -> dict[str, Any]:
        daemon = self.daemon
        folder = str(daemon.setting("download-dir"))
        values: dict[str, Any] = {name: daemon.setting(name) for name in SESSION_SETTINGS}
        values.update({
            "version": VERSION,
            "rpc-version": RPC_VERSION,
            "rpc-version-minimum": RPC_VERSION_MINIMUM,
            "rpc-version-semver": RPC_VERSION_SEMVER,
            "session-id": self.session_id,
            "config-dir": str(daemon.store.folder),
            "download-dir-free-space": _free_bytes(folder),
            "peer-port": daemon.session.port,
            "peer-port-random-on-start": False,
            "port-forwarding-enabled": False,
            "dht-enabled": daemon.session.dht_enabled,
            "lpd-enabled": daemon.session.lsd_enabled,
            "pex-enabled": daemon.config.pex,
            "utp-enabled": False,
            "encryption": _ENCRYPTION_NAMES[daemon.config.encryption],
            "peer-limit-per-torrent": 60,
            "peer-limit-global": 60 * max(1, len(daemon.entries)),
            "rename-partial-files": False,
            "start-added-torrents": True,
            "blocklist-enabled": False,
            "blocklist-size": 0,
            "blocklist-url": "",
            "cache-size-mb": 0,
            "queue-stalled-enabled": False,
            "queue-stalled-minutes": 30,
            "default-trackers": "",
            "script-torrent-added-enabled": False,
            "script-torrent-added-filename": "",
            "script-torrent-done-enabled": False,
            "script-torrent-done-filename": "",
            "script-torrent-done-seeding-enabled": False,
            "script-torrent-done-seeding-filename": "",
            "units": {
                "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": KILO,
                "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": KILO,
                "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024,
            },
        })  # fmt: skip
        if "fields" in arguments:
            wanted = set(_str_list(arguments["fields"], "fields"))
            values = {name: value for name, value in values.items() if name in wanted}
        return values

    async def session_set(self, arguments: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, value in arguments.items():
            kind = _SESSION_TYPES.get(name)
            if kind is None:
                continue  # read-only or unknown: ignored, as Transmission does
            checked = kind(value, name)
            if isinstance(checked, int | float) and not isinstance(checked, bool) and checked < 0:
                raise RpcRequestError(f"{name} must not be negative")
            if name in _SESSION_PATHS and not os.path.isabs(str(checked)) and (checked or name == "download-dir"):
                raise RpcRequestError(f"{name} must be an absolute path")
            if name in ("alt-speed-time-begin", "alt-speed-time-end") and checked > MINUTES_PER_DAY:
                raise RpcRequestError(f"{name}: minutes after midnight, at most {MINUTES_PER_DAY}")
            if name == "alt-speed-time-day" and checked > ALL_DAYS:
                raise RpcRequestError(f"{name}: a bit mask of days, at most {ALL_DAYS}")
            changes[name] = checked
        self.daemon.change_settings(changes)
        self.daemon.schedule()
        return {}

    async def session_stats(self, arguments: dict[str, Any]) -> dict[str, Any]:
        daemon = self.daemon
        now = time.monotonic()
        entries = daemon.select(None)
        active = [entry for entry in entries if entry.is_running]
        uploaded = sum(entry.uploaded() for entry in entries)
        downloaded = sum(entry.downloaded() for entry in entries)
        seconds = int(time.time() - daemon.started_at)
        stats = {
            "uploadedBytes": uploaded,
            "downloadedBytes": downloaded,
            "filesAdded": len(entries),
            "sessionCount": daemon.session_count,
            "secondsActive": seconds,
        }
        return {
            "activeTorrentCount": len(active),
            "pausedTorrentCount": len(entries) - len(active),
            "torrentCount": len(entries),
            "downloadSpeed": int(sum(_rates(entry, now)[0] for entry in active)),
            "uploadSpeed": int(sum(_rates(entry, now)[1] for entry in active)),
            "cumulative-stats": stats,
            "current-stats": {**stats, "sessionCount": 1},
        }

    async def session_close(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if self.closing is not None:
            self.closing()
        return {}

    async def free_space(self, arguments: dict[str, Any]) -> dict[str, Any]:
        path = _str(arguments.get("path"), "path")
        if not os.path.isabs(path):
            raise RpcRequestError("path must be absolute")
        try:
            usage = shutil.disk_usage(path)
        except OSError as error:
            raise RpcRequestError(f"{path}: {error.strerror}") from None
        return {"path": path, "size-bytes": usage.free, "total_size": usage.total}

    async def port_test(self, arguments: dict[str, Any]) -> dict[str, Any]:
        # Transmission asks a server of its project on the internet; bitswarm sends nothing
        # anywhere it was not told to, so it cannot tell.
        raise RpcRequestError("port-test is not available: bitswarm does not ask an outside server")

    async def blocklist_update(self, arguments: dict[str, Any]) -> dict[str, Any]:
        raise RpcRequestError("blocklists are not supported")


async def _read_local_torrent(filename: str) -> bytes:
    """A .torrent named by a path on the daemon's machine (as transmission-remote may send)."""
    path = Path(os.path.expanduser(filename))
    try:
        if path.stat().st_size > MAX_TORRENT_BYTES:
            raise RpcRequestError(f"{filename}: larger than {MAX_TORRENT_BYTES} bytes")
        return path.read_bytes()
    except OSError as error:
        raise RpcRequestError(f"{filename}: {error.strerror}") from None


# Our policies under Transmission's names for the nearest of its own.
_ENCRYPTION_NAMES = {"prefer": "preferred", "require": "required", "disable": "tolerated"}


def _free_bytes(folder: str) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return -1


# torrent-set arguments: the checker, and the record attribute they set directly.
_TORRENT_SET_TYPES: dict[str, Callable[[Any, str], Any]] = {
    "bandwidthPriority": _int,
    "downloadLimit": _int,
    "downloadLimited": _bool,
    "uploadLimit": _int,
    "uploadLimited": _bool,
    "honorsSessionLimits": _bool,
    "seedRatioLimit": _number,
    "seedRatioMode": _int,
    "seedIdleLimit": _int,
    "seedIdleMode": _int,
    "labels": _str_list,
    "files-wanted": _int_list,
    "files-unwanted": _int_list,
    "priority-high": _int_list,
    "priority-low": _int_list,
    "priority-normal": _int_list,
    "queuePosition": _int,
    "location": _str,
    "peer-limit": _int,
    "sequentialDownload": _bool,
}
_RECORD_SETTERS = {
    "bandwidthPriority": "bandwidth_priority",
    "downloadLimit": "download_limit",
    "downloadLimited": "download_limited",
    "uploadLimit": "upload_limit",
    "uploadLimited": "upload_limited",
    "honorsSessionLimits": "honors_session_limits",
    "seedRatioLimit": "seed_ratio_limit",
    "seedRatioMode": "seed_ratio_mode",
    "seedIdleLimit": "seed_idle_limit",
    "seedIdleMode": "seed_idle_mode",
}


def _torrent_changes(arguments: dict[str, Any]) -> dict[str, Any]:
    changes = {}
    for name, value in arguments.items():
        check = _TORRENT_SET_TYPES.get(name)
        if check is not None:
            changes[name] = check(value, name)
    for name in ("seedRatioMode", "seedIdleMode"):
        if name in changes and changes[name] not in (0, 1, 2):
            raise RpcRequestError(f"{name} must be 0, 1 or 2")
    for name in ("downloadLimit", "uploadLimit", "seedIdleLimit", "queuePosition"):
        if name in changes and changes[name] < 0:
            raise RpcRequestError(f"{name} must not be negative")
    if "seedRatioLimit" in changes and changes["seedRatioLimit"] < 0:
        raise RpcRequestError("seedRatioLimit must not be negative")
    if "labels" in changes:
        try:
            changes["labels"] = check_labels(changes["labels"])
        except UsageError as error:
            raise RpcRequestError(str(error)) from None
    return changes


_SESSION_TYPES: dict[str, Callable[[Any, str], Any]] = {
    "download-dir": _str,
    "speed-limit-down": _int,
    "speed-limit-down-enabled": _bool,
    "speed-limit-up": _int,
    "speed-limit-up-enabled": _bool,
    "alt-speed-enabled": _bool,
    "alt-speed-down": _int,
    "alt-speed-up": _int,
    "alt-speed-time-enabled": _bool,
    "alt-speed-time-begin": _int,
    "alt-speed-time-end": _int,
    "alt-speed-time-day": _int,
    "watch-dir": _str,
    "watch-dir-enabled": _bool,
    "trash-original-torrent-files": _bool,
    "incomplete-dir": _str,
    "incomplete-dir-enabled": _bool,
    "download-queue-enabled": _bool,
    "download-queue-size": _int,
    "seed-queue-enabled": _bool,
    "seed-queue-size": _int,
    "seedRatioLimited": _bool,
    "seedRatioLimit": _number,
    "idle-seeding-limit-enabled": _bool,
    "idle-seeding-limit": _int,
}
assert set(_SESSION_TYPES) == SESSION_SETTINGS
_SESSION_PATHS = ("download-dir", "watch-dir", "incomplete-dir")


# -- torrent-get's fields ---------------------------------------------------------------

Field = Callable[[Daemon, Entry, float], Any]


def _rates(entry: Entry, now: float) -> tuple[float, float]:
    runtime = entry.runtime
    if runtime is None or runtime.swarm is None or runtime.paused:
        return 0.0, 0.0
    swarm = runtime.swarm
    peers = swarm.peers.values()
    return sum(peer.download.rate(now) for peer in peers), sum(peer.upload.rate(now) for peer in peers)


def _eta(daemon: Daemon, entry: Entry, now: float) -> int:
    """Seconds left, -1 when not downloading, -2 when unknown (Transmission's values)."""
    if daemon.status(entry) != TorrentState.DOWNLOAD:
        return -1
    rate = _rates(entry, now)[0]
    return int(daemon.left_until_done(entry) / rate) if rate > 0 else -2


def _percent_done(daemon: Daemon, entry: Entry) -> float:
    size = daemon.size_when_done(entry)
    if entry.torrent is None:
        return 0.0
    return 1.0 if size == 0 else (size - daemon.left_until_done(entry)) / size


def _percent_complete(daemon: Daemon, entry: Entry) -> float:
    total = entry.torrent.total_size if entry.torrent is not None else 0
    return daemon.have_valid(entry) / total if total else 0.0


def _files(daemon: Daemon, entry: Entry) -> list[dict[str, Any]]:
    if entry.torrent is None:
        return []
    progress = daemon.file_progress(entry)
    piece_length = entry.torrent.piece_length
    return [
        {"name": "/".join(item.path), "length": item.length, "bytesCompleted": done,
         "beginPiece": item.offset // piece_length, "endPiece": max(item.piece_range(piece_length).stop, 1)}
        for item, done in zip(entry.torrent.data_files(), progress, strict=True)
    ]  # fmt: skip


def _priority(entry: Entry, index: int) -> int:
    if index in entry.record.priority_high:
        return 1
    return -1 if index in entry.record.priority_low else 0


def _file_stats(daemon: Daemon, entry: Entry) -> list[dict[str, Any]]:
    unwanted = set(entry.record.unwanted)
    return [
        {"bytesCompleted": done, "wanted": index not in unwanted, "priority": _priority(entry, index)}
        for index, done in enumerate(daemon.file_progress(entry))
    ]


def _trackers(entry: Entry) -> list[dict[str, Any]]:
    tiers = entry.torrent.trackers if entry.torrent is not None else ()
    return [
        {"id": number, "announce": url, "scrape": url.replace("/announce", "/scrape"), "tier": tier,
         "sitename": _host(url)}
        for number, (tier, url) in enumerate((tier, url) for tier, urls in enumerate(tiers) for url in urls)
    ]  # fmt: skip


def _host(url: str) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415

    return urlsplit(url).hostname or ""


def _tracker_stats(entry: Entry) -> list[dict[str, Any]]:
    answers = entry.runtime.tracker_answers if entry.runtime is not None else {}
    return [
        {**tracker, "host": tracker["sitename"], "hasAnnounced": tracker["announce"] in answers, "hasScraped": False,
         "isBackup": False, "announceState": 0, "scrapeState": 0, **_last_answer(answers.get(tracker["announce"])),
         "lastAnnouncePeerCount": 0, "lastAnnounceTimedOut": False,
         "lastScrapeResult": "", "lastScrapeSucceeded": False, "lastScrapeTime": 0, "lastScrapeTimedOut": False,
         "leecherCount": -1, "seederCount": -1, "downloadCount": -1, "nextAnnounceTime": 0, "nextScrapeTime": 0}
        for tracker in _trackers(entry)
    ]  # fmt: skip


def _last_answer(answer: TrackerAnswer | None) -> dict[str, Any]:
    if answer is None:
        return {"lastAnnounceResult": "", "lastAnnounceSucceeded": False, "lastAnnounceTime": 0}
    return {"lastAnnounceResult": answer.text if not answer.succeeded else "Success",
            "lastAnnounceSucceeded": answer.succeeded, "lastAnnounceTime": int(answer.at)}  # fmt: skip


def _peers(entry: Entry, now: float) -> list[dict[str, Any]]:
    runtime = entry.runtime
    if runtime is None or runtime.swarm is None or runtime.paused:
        return []
    num_pieces = max(1, runtime.torrent.num_pieces)
    result = []
    for connection in runtime.peers:
        state = runtime.swarm.peers.get(connection)
        core = connection.core
        if state is None or core is None:
            continue
        have = getattr(core, "peer_have_count", None)
        host, port = connection.address or ("", 0)
        result.append({
            "address": host, "port": port,
            "clientName": client_name(core.remote_peer_id), "isEncrypted": False,
            "isIncoming": not connection.outgoing, "isUTP": False,
            "rateToClient": int(state.download.rate(now)), "rateToPeer": int(state.upload.rate(now)),
            "progress": 1.0 if core.peer_is_seed else (have / num_pieces if isinstance(have, int) else 0.0),
            "clientIsChoked": core.peer_choking, "clientIsInterested": core.am_interested,
            "peerIsChoked": core.am_choking, "peerIsInterested": core.peer_interested,
            "isDownloadingFrom": state.download.rate(now) > 0, "isUploadingTo": state.upload.rate(now) > 0,
            "flagStr": "",
        })  # fmt: skip
    return result


def _pieces(entry: Entry) -> str:
    runtime = entry.runtime
    if runtime is None or runtime.swarm is None or entry.torrent is None:
        return ""
    from bitswarm.storage.resume import bitfield  # noqa: PLC0415

    return base64.b64encode(bitfield(runtime.swarm.picker.have, entry.torrent.num_pieces)).decode()


def _peer_count(entry: Entry) -> int:
    runtime = entry.runtime
    return len(runtime.peers) if runtime is not None and not runtime.paused else 0


def _seconds_seeding(entry: Entry, now: float) -> int:
    extra = int(now - entry.seeding_since) if entry.seeding_since is not None else 0
    return entry.record.seconds_seeding + extra


def _limit(value: float) -> float:
    return value


TORRENT_FIELDS: dict[str, Field] = {
    "id": lambda d, e, n: e.id,
    "hashString": lambda d, e, n: e.record.info_hash,
    "name": lambda d, e, n: e.record.name,
    "status": lambda d, e, n: d.status(e),
    "error": lambda d, e, n: 3 if e.record.error_string else 0,
    "errorString": lambda d, e, n: e.record.error_string,
    "totalSize": lambda d, e, n: e.torrent.total_size if e.torrent is not None else 0,
    "sizeWhenDone": lambda d, e, n: d.size_when_done(e),
    "leftUntilDone": lambda d, e, n: d.left_until_done(e),
    "haveValid": lambda d, e, n: d.have_valid(e),
    "haveUnchecked": lambda d, e, n: 0,
    "desiredAvailable": lambda d, e, n: d.left_until_done(e),
    "percentDone": lambda d, e, n: _percent_done(d, e),
    "percentComplete": lambda d, e, n: _percent_complete(d, e),
    "metadataPercentComplete": lambda d, e, n: 1.0 if e.torrent is not None else 0.0,
    "recheckProgress": lambda d, e, n: 0.0,
    "rateDownload": lambda d, e, n: int(_rates(e, n)[0]),
    "rateUpload": lambda d, e, n: int(_rates(e, n)[1]),
    "eta": _eta,
    "etaIdle": lambda d, e, n: -1,
    "uploadRatio": lambda d, e, n: round(d.ratio(e), 4),
    "uploadedEver": lambda d, e, n: e.uploaded(),
    "downloadedEver": lambda d, e, n: e.downloaded(),
    "corruptEver": lambda d, e, n: 0,
    "downloadDir": lambda d, e, n: e.record.download_dir,
    "labels": lambda d, e, n: list(e.record.labels),
    "group": lambda d, e, n: "",
    "isFinished": lambda d, e, n: e.is_finished and e.record.paused and bool(e.record.done_date),
    "isPrivate": lambda d, e, n: bool(e.torrent is not None and e.torrent.private),
    "isStalled": lambda d, e, n: False,
    "secondsSeeding": lambda d, e, n: _seconds_seeding(e, n),
    "secondsDownloading": lambda d, e, n: e.record.seconds_downloading,
    "seedRatioLimit": lambda d, e, n: e.record.seed_ratio_limit,
    "seedRatioMode": lambda d, e, n: e.record.seed_ratio_mode,
    "seedIdleLimit": lambda d, e, n: e.record.seed_idle_limit,
    "seedIdleMode": lambda d, e, n: e.record.seed_idle_mode,
    "downloadLimit": lambda d, e, n: e.record.download_limit,
    "downloadLimited": lambda d, e, n: e.record.download_limited,
    "uploadLimit": lambda d, e, n: e.record.upload_limit,
    "uploadLimited": lambda d, e, n: e.record.upload_limited,
    "honorsSessionLimits": lambda d, e, n: e.record.honors_session_limits,
    "bandwidthPriority": lambda d, e, n: e.record.bandwidth_priority,
    "queuePosition": lambda d, e, n: e.record.queue_position,
    "fileCount": lambda d, e, n: d.file_count(e),
    "file-count": lambda d, e, n: d.file_count(e),
    "files": lambda d, e, n: _files(d, e),
    "fileStats": lambda d, e, n: _file_stats(d, e),
    "wanted": lambda d, e, n: [int(index not in e.record.unwanted) for index in range(len(d.file_progress(e)))],
    "priorities": lambda d, e, n: [_priority(e, index) for index in range(len(d.file_progress(e)))],
    "peers": lambda d, e, n: _peers(e, n),
    "peersConnected": lambda d, e, n: _peer_count(e),
    "peersGettingFromUs": lambda d, e, n: sum(1 for peer in _peers(e, n) if peer["isUploadingTo"]),
    "peersSendingToUs": lambda d, e, n: sum(1 for peer in _peers(e, n) if peer["isDownloadingFrom"]),
    "peersFrom": lambda d, e, n: {
        "fromTracker": _peer_count(e),
        "fromDht": 0,
        "fromIncoming": 0,
        "fromLpd": 0,
        "fromLtep": 0,
        "fromPex": 0,
        "fromCache": 0,
    },
    "webseedsSendingToUs": lambda d, e, n: 0,
    "trackers": lambda d, e, n: _trackers(e),
    "trackerList": lambda d, e, n: "\n\n".join("\n".join(tier) for tier in (e.torrent.trackers if e.torrent else ())),
    "trackerStats": lambda d, e, n: _tracker_stats(e),
    "webseeds": lambda d, e, n: list(e.torrent.web_seeds) if e.torrent is not None else [],
    "pieceCount": lambda d, e, n: e.torrent.num_pieces if e.torrent is not None else 0,
    "pieceSize": lambda d, e, n: e.torrent.piece_length if e.torrent is not None else 0,
    "pieces": lambda d, e, n: _pieces(e),
    "addedDate": lambda d, e, n: e.record.added_date,
    "doneDate": lambda d, e, n: e.record.done_date,
    "startDate": lambda d, e, n: int(d.started_at),
    "activityDate": lambda d, e, n: int(time.time() - max(0.0, n - e.last_active)) if e.last_active else 0,
    "editDate": lambda d, e, n: 0,
    "dateCreated": lambda d, e, n: (e.torrent.creation_date or 0) if e.torrent is not None else 0,
    "comment": lambda d, e, n: (e.torrent.comment or "") if e.torrent is not None else "",
    "creator": lambda d, e, n: (e.torrent.created_by or "") if e.torrent is not None else "",
    "magnetLink": lambda d, e, n: e.torrent.magnet().format() if e.torrent is not None else (e.record.magnet or ""),
    "torrentFile": lambda d, e, n: str(d.store.torrent_path(e.record.info_hash)),
    "isSeeding": lambda d, e, n: d.status(e) == TorrentState.SEED,
    "manualAnnounceTime": lambda d, e, n: 0,
    "maxConnectedPeers": lambda d, e, n: 60,
    "peer-limit": lambda d, e, n: 60,
    "primary-mime-type": lambda d, e, n: "application/octet-stream",
    "sequentialDownload": lambda d, e, n: False,
    "availability": lambda d, e, n: [],
}


def _error_code(error: BitswarmError) -> int:
    """The JSON-RPC code of one of our errors (libtransmission's where it has one)."""
    if isinstance(error, MetainfoError | DecodeError):
        return jsonrpc.CORRUPT_TORRENT
    text = str(error)
    if "not an absolute path" in text or "must be absolute" in text or "must be an absolute path" in text:
        return jsonrpc.PATH_NOT_ABSOLUTE
    if text.startswith("file ") and " has files " in text:
        return jsonrpc.FILE_INDEX_OUT_OF_RANGE
    if "HTTP status" in text:
        return jsonrpc.HTTP_ERROR
    if isinstance(error, UsageError):
        return jsonrpc.INVALID_PARAMS
    return jsonrpc.INTERNAL_ERROR


# The classic names of torrent-get's fields and of every argument, for the snake_case way back.
_FIELD_NAMES = jsonrpc.Names.of(TORRENT_FIELDS)
_ARGUMENT_NAMES = jsonrpc.Names.of([
    *_TORRENT_SET_TYPES, *_SESSION_TYPES,
    "ids", "fields", "format", "filename", "metainfo", "download-dir", "paused", "cookies",
    "delete-local-data", "location", "move", "path", "name", "peer-limit",
])  # fmt: skip
