"""The JSON-RPC 2.0 dialect of the Transmission RPC (Transmission 4.1, rpc_version 18,
rpc_version_semver 6.0.0), as a translation onto the classic dialect: no second RPC.

Transmission's ``docs/rpc-spec.md`` (section 2): a request is ``{"jsonrpc": "2.0",
"method", "params", "id"}``; params by position are not supported, so ``params`` is an
object; method and argument names are snake_case (``torrent_get``, ``download_dir``,
``hash_string``). A success is ``{"jsonrpc": "2.0", "result": {...}, "id"}``; a failure
``{"jsonrpc": "2.0", "error": {"code", "message", "data": {"error_string"}}, "id"}`` with
the JSON-RPC codes (-32700 parse error, -32600 invalid request, -32601 method not found,
-32602 invalid params) or libtransmission's own (``JsonRpc::Error`` in ``rpcimpl.h``:
3 path not absolute, 5 system error, 6 file index out of range, 8 HTTP error, 9 corrupt
torrent). A request without ``id`` is a notification: it runs, and gets no answer; a list
is a batch, answered by the list of answers to its requests that are not notifications
(nothing at all, HTTP 204, when every one is).

This module is a sans-IO core: ``parse_request`` checks one request's envelope and
translates its names to the classic ones, ``success`` and ``failure`` build the answers,
translating the classic names back. ``bitswarm.daemon.rpc`` runs the method in between.

Names: the classic names are camelCase or kebab-case; the snake_case form is mechanical
(``hashString`` -> ``hash_string``, ``isUTP`` -> ``is_utp``, ``download-dir`` ->
``download_dir``), with the few renames 4.1 made beside it (``cache_size_mib``, the
encryption value ``allowed`` for ``tolerated``, ``wanted`` as booleans). Classic names are
accepted in this dialect too, as Transmission 4.1 still does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bitswarm.errors import RpcRequestError

VERSION = "2.0"
# What this dialect reports: Transmission 4.1.0's RPC.
RPC_VERSION = 18
RPC_VERSION_SEMVER = "6.0.0"
# Requests in one batch; a body is bounded in bytes already, this bounds the work.
MAX_BATCH_REQUESTS = 256
# Ids echoed back: a string id longer than this is refused (no attacker-sized echoes).
MAX_ID_CHARS = 256

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# libtransmission's JsonRpc::Error codes beyond the standard ones.
PATH_NOT_ABSOLUTE = 3
SYSTEM_ERROR = 5
FILE_INDEX_OUT_OF_RANGE = 6
HTTP_ERROR = 8
CORRUPT_TORRENT = 9

MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    PATH_NOT_ABSOLUTE: "path is not absolute",
    SYSTEM_ERROR: "system error",
    FILE_INDEX_OUT_OF_RANGE: "file index out of range",
    HTTP_ERROR: "HTTP error from backend service",
    CORRUPT_TORRENT: "invalid or corrupt torrent file",
}

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z]+)")
# Renames of 4.1 beyond the mechanical form (classic snake form -> 4.1 name).
_RENAMED = {"cache_size_mb": "cache_size_mib"}
_RENAMED_BACK = {new: old for old, new in _RENAMED.items()}


def snake(name: str) -> str:
    """The snake_case form of a classic name: ``hashString`` -> ``hash_string``."""
    plain = _CAMEL_HUMP.sub(lambda match: "_" + match[1].lower(), name).replace("-", "_").lower()
    return _RENAMED.get(plain, plain)


@dataclass(frozen=True, slots=True)
class Names:
    """The classic names this daemon knows, and the way back from snake_case to them."""

    back: dict[str, str]

    @classmethod
    def of(cls, classic: Iterable[str]) -> Names:
        back: dict[str, str] = {}
        for name in classic:
            back.setdefault(snake(name), name)
        return cls(back)

    def classic(self, name: str) -> str:
        """The classic name of a snake_case one; an unknown name is kept as it came."""
        return self.back.get(name, self.back.get(_RENAMED_BACK.get(name, ""), name))


@dataclass(frozen=True, slots=True)
class Call:
    """One checked request: the classic method name and arguments; ``id`` is None for a
    notification (``has_id`` False) and may be None for an explicit ``"id": null``."""

    method: str
    arguments: dict[str, Any]
    id: str | int | float | None
    has_id: bool


class Failure(RpcRequestError):
    """A request that cannot run: its JSON-RPC error code and our sentence."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or MESSAGES.get(code, "error"))
        self.code = code
        self.detail = detail


def looks_like_jsonrpc(request: object) -> bool:
    """Whether a decoded body is in this dialect: a batch (a list), or an object naming ``jsonrpc``."""
    return isinstance(request, list) or (isinstance(request, dict) and "jsonrpc" in request)


def _valid_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return len(value) <= MAX_ID_CHARS
    return value is None or isinstance(value, int | float)


def request_id(request: object) -> str | int | float | None:
    """The id to answer with even when the request is refused (null when unusable)."""
    if isinstance(request, dict) and _valid_id(request.get("id")):
        value: str | int | float | None = request.get("id")
        return value
    return None


def parse_request(request: object, names: Names, methods: Names, fields: Names | None = None) -> Call:
    """One request's envelope checked and its names made classic; raises ``Failure``.

    ``names`` are the arguments', ``fields`` those a ``fields`` list may hold (torrent-get's
    classic fields differ from the arguments of the same meaning: ``downloadDir``, ``download-dir``).
    """
    if not isinstance(request, dict):
        raise Failure(INVALID_REQUEST, "a request is a JSON object")
    if request.get("jsonrpc") != VERSION:
        raise Failure(INVALID_REQUEST, 'jsonrpc must be "2.0"')
    has_id = "id" in request
    if has_id and not _valid_id(request["id"]):
        raise Failure(INVALID_REQUEST, f"id must be a string (at most {MAX_ID_CHARS} characters), a number or null")
    method = request.get("method")
    if not isinstance(method, str):
        raise Failure(INVALID_REQUEST, "method must be a string")
    params = request.get("params", {})
    if not isinstance(params, dict):
        # Transmission takes parameters by name only.
        raise Failure(INVALID_PARAMS, "params must be an object (parameters by position are not supported)")
    field_names = fields or names
    arguments = {names.classic(key): _classic_value(field_names, key, value) for key, value in params.items()}
    return Call(methods.classic(method), arguments, request_id(request), has_id)


def _classic_value(names: Names, key: str, value: Any) -> Any:
    if key == "fields" and isinstance(value, list):
        return [names.classic(item) if isinstance(item, str) else item for item in value]
    if key == "ids" and value == "recently_active":
        return "recently-active"
    if key == "encryption" and value == "allowed":
        return "tolerated"
    return value


def translate_result(value: Any) -> Any:
    """A classic answer's ``arguments`` with every key (and a table's header row) in snake_case."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            name = snake(key)
            new = item
            if name == "torrents" and isinstance(item, list) and item and isinstance(item[0], list):
                # format "table": the first row holds the field names.
                header = [snake(field) for field in item[0]]
                column = header.index("wanted") if "wanted" in header else None
                rows = [
                    [[bool(flag) for flag in cell] if place == column else cell for place, cell in enumerate(row)]
                    for row in item[1:]
                ]
                new = [header, *rows]
            elif name == "wanted" and isinstance(item, list):
                new = [bool(flag) for flag in item]  # 4.1: booleans, no longer 0/1
            elif name == "encryption" and item == "tolerated":
                new = "allowed"
            result[name] = translate_result(new)
        return result
    if isinstance(value, list):
        return [translate_result(item) for item in value]
    return value


def success(call: Call, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "result": translate_result(arguments), "id": call.id}


def failure(code: int, detail: str, answer_id: str | int | float | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": MESSAGES.get(code, "error")}
    if detail:
        error["data"] = {"error_string": detail}
    return {"jsonrpc": VERSION, "error": error, "id": answer_id}
