"""The daemon's web UI (issue 13, point 3), served beside the RPC by ``bitswarm daemon``.

Server-rendered pages (Jinja2, autoescaped) and one small script (``daemon.js``, no
inline code: the CSP forbids it):

- ``/``: the torrents (name, progress, state, rates, peers, ratio, ETA, size) with pause,
  resume and a link to each one's page; the global limits and the alternative speeds;
- ``/events``: server-sent events, one stream per open page, carrying the rows that
  changed about once a second (``EVENT_PERIOD_S``); the rows are computed once per period
  for every stream, at most ``MAX_EVENT_STREAMS`` streams are open at once (more get 503);
- ``/add``: a .torrent file, an http(s) URL or a magnet link;
- ``/torrents/ID``: its facts, files (wanted, priority, a "play" link on media files),
  peers (client names, rates), trackers (their last answer) and a map of its pieces;
  ``/torrents/ID/remove`` asks before removing (with or without the data);
- ``/torrents/ID/play/INDEX``: the streaming player (``bitswarm.stream.server``'s page
  and range server, over the torrent's runtime);
- ``/subscriptions``: the feeds the daemon polls (``bitswarm.daemon.subscriptions``) with
  their rules and last poll; a form adds one, a button removes one.

What changes goes through the RPC's own methods (``TransmissionRpc``), so a form and a
remote are checked by the same code. The rules are the RPC's (``bitswarm.daemon.app``):
an address outside ``rpc_whitelist`` gets 403, a Host not allowed 421, missing or wrong
credentials 401 when authentication is on; and on top, every form carries a CSRF token
(``bitswarm.web.csrf``), every answer the shared security headers and CSP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from bitswarm.daemon.app import RPC_PATH, RpcEndpoint
from bitswarm.daemon.rpc import TORRENT_FIELDS, TransmissionRpc
from bitswarm.daemon.service import Daemon, Entry, TorrentState
from bitswarm.errors import UsageError
from bitswarm.feeds.fetch import display_url
from bitswarm.feeds.rules import describe_rules
from bitswarm.stream.server import TEMPLATES as STREAM_TEMPLATES
from bitswarm.stream.server import StreamServer, content_type, media_kind
from bitswarm.units import parse_duration, parse_size
from bitswarm.web.app import STATIC_FOLDER, TEMPLATES_FOLDER, TEMPLATES_KEY, render
from bitswarm.web.csrf import FORM_FIELD, CsrfProtection
from bitswarm.web.security import SECURITY_HEADERS

if TYPE_CHECKING:
    from bitswarm.daemon.subscriptions import SubscriptionPoller

TEMPLATES = Path(__file__).parent / "templates"
# The shared static files the pages use; nothing else is served from the folder.
STATIC_FILES = {
    "bitswarm.css": "text/css",
    "daemon.css": "text/css",
    "daemon.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
# Live updates: one stream per open page, each told what changed this often.
EVENT_PERIOD_S = 1.0
# Streams open at once: enough for a household's tabs and phones, bounded all the same.
MAX_EVENT_STREAMS = 32
# A stream sends a comment this often when nothing changed, so proxies keep it open.
KEEPALIVE_S = 15.0
# The pieces map: at most this many cells, each a run of pieces.
PIECE_MAP_CELLS = 400
# Peers listed on a torrent's page (the rest are counted).
MAX_PEERS_SHOWN = 200
# Magnet links and URLs typed in the add form.
MAX_LINK_CHARS = 8192
STATE_NAMES = {
    TorrentState.STOPPED: "Stopped",
    TorrentState.CHECK_WAIT: "Queued to verify",
    TorrentState.CHECK: "Verifying",
    TorrentState.DOWNLOAD_WAIT: "Queued",
    TorrentState.DOWNLOAD: "Downloading",
    TorrentState.SEED_WAIT: "Queued to seed",
    TorrentState.SEED: "Seeding",
}
# What a cell shows for no rate, no ETA: a dash, as Transmission's own UI.
NOTHING = "\u2013"
PRIORITY_NAMES = {1: "high", 0: "normal", -1: "low"}
# The subscription form's text fields: each at most this long (a feed URL, a pattern).
MAX_FORM_FIELD_CHARS = 4096
# Series or labels given in one subscription form.
MAX_FORM_LIST_ITEMS = 100
# torrent-set's lists for each priority a form names.
PRIORITY_FIELDS = {"high": "priority-high", "normal": "priority-normal", "low": "priority-low"}


def format_bytes(count: float) -> str:
    """Sizes in Transmission's units (1 kB = 1000 bytes): '1.5 MB'."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def format_rate(rate: float) -> str:
    return format_bytes(rate) + "/s" if rate >= 1 else NOTHING


def format_eta(seconds: int) -> str:
    """Transmission's eta: -1 not downloading, -2 unknown."""
    if seconds == -1:
        return NOTHING
    if seconds < 0:
        return "unknown"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


@dataclass
class Snapshot:
    """Every torrent's row as the list shows it, computed once per period for all streams."""

    at: float
    rows: dict[int, dict[str, Any]]
    summary: dict[str, Any]


class WebUi:
    """The pages, the event streams and the player of one daemon (see the module's docstring)."""

    def __init__(self, endpoint: RpcEndpoint, subscriptions: SubscriptionPoller | None = None) -> None:
        self.endpoint = endpoint
        self.subscriptions = subscriptions
        self.rpc: TransmissionRpc = endpoint.rpc
        self.daemon: Daemon = endpoint.rpc.daemon
        # A fresh secret each start: a restart expires the forms of pages still open.
        self.csrf = CsrfProtection(secrets.token_bytes(32))
        self._csrf_check = self.csrf.middleware()
        self.streams = 0
        self.stopping = asyncio.Event()
        self._snapshot: Snapshot | None = None
        self._players: dict[int, StreamServer] = {}

    def install(self, app: web.Application) -> None:
        """Add the UI's routes, its middleware (which leaves the RPC's paths to the RPC) and
        its shutdown (event streams end, players close) to the daemon's ``app``."""
        loader = jinja2.FileSystemLoader([TEMPLATES, STREAM_TEMPLATES, TEMPLATES_FOLDER])
        environment = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False
        )
        environment.filters["bytes"] = format_bytes
        environment.filters["rate"] = format_rate
        app[TEMPLATES_KEY] = environment
        app.middlewares.append(self.middleware)
        app.on_shutdown.append(self._shutdown)
        add = app.router.add_get
        add("/", self.list_page)
        add("/events", self.events)
        add("/static/{name}", self.static)
        add("/favicon.ico", self.favicon)
        add("/add", self.add_page)
        app.router.add_post("/add", self.add_torrent)
        app.router.add_post("/settings", self.change_settings)
        app.router.add_post("/alt-speed", self.alt_speed)
        add("/torrents/{id}", self.torrent_page)
        add("/torrents/{id}/remove", self.remove_page)
        for action in ("start", "stop", "verify", "remove", "files"):
            app.router.add_post(f"/torrents/{{id}}/{action}", self.torrent_action)
        add("/subscriptions", self.subscriptions_page)
        app.router.add_post("/subscriptions", self.add_subscription)
        app.router.add_post("/subscriptions/{id}/remove", self.remove_subscription)
        add("/torrents/{id}/play/{index}", self.player_page)
        add("/torrents/{id}/files/{index}/{name}", self.stream_file, allow_head=True)
        add("/torrents/{id}/subtitles/{index}.vtt", self.stream_subtitles)

    # -- the gate --------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == RPC_PATH or request.path.startswith(RPC_PATH + "/"):
            return await handler(request)  # the RPC's own rules (bitswarm.daemon.app)
        refusal = self.endpoint.refusal(request)
        if refusal is not None:
            return refusal
        try:
            response = await self._csrf_check(request, handler)
        except web.HTTPException as error:
            error.headers.update(SECURITY_HEADERS)
            raise
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    async def _shutdown(self, _app: web.Application) -> None:
        self.stopping.set()
        for player in self._players.values():
            player.close()
        self._players.clear()

    # -- shared parts ----------------------------------------------------------------

    def _page(self, request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
        response = render(
            request,
            template,
            csrf_token=self.csrf.token(request),
            csrf_field=FORM_FIELD,
            alt_speed=bool(self.daemon.setting("alt-speed-enabled")),
            **context,
        )
        response.set_status(status)
        return response

    def _entry(self, request: web.Request) -> Entry:
        text = request.match_info["id"]
        entry = self.daemon.entries.get(int(text)) if text.isdigit() and len(text) <= 9 else None
        if entry is None:
            raise web.HTTPNotFound(text="404: no such torrent (it may have been removed)\n")
        return entry

    def row(self, entry: Entry, now: float) -> dict[str, Any]:
        """One torrent as the list shows it (the RPC's field values, formatted)."""

        def field(name: str) -> Any:
            return TORRENT_FIELDS[name](self.daemon, entry, now)

        status = field("status")
        error = field("errorString")
        if error:
            state = "Error"
        elif entry.torrent is None and status == TorrentState.DOWNLOAD:
            state = "Fetching metadata"
        else:
            state = STATE_NAMES.get(status, "Unknown")
        done = float(field("percentDone"))
        size = field("sizeWhenDone") if entry.torrent is not None else 0
        return {
            "id": entry.id,
            "name": entry.record.name,
            "progress": f"{math.floor(done * 1000) / 10:.1f} %",
            "permille": math.floor(done * 1000),
            "state": state,
            "error": error,
            "stopped": bool(entry.record.paused),
            "down": format_rate(field("rateDownload")),
            "up": format_rate(field("rateUpload")),
            "peers": str(field("peersConnected")),
            "ratio": f"{field('uploadRatio'):.2f}",
            "eta": format_eta(int(field("eta"))),
            "size": format_bytes(size) if entry.torrent is not None else "?",
        }

    def snapshot(self, max_age_s: float = EVENT_PERIOD_S / 2) -> Snapshot:
        """The rows of now, or of less than ``max_age_s`` ago (shared by every stream)."""
        now = time.monotonic()
        if self._snapshot is None or now - self._snapshot.at >= max_age_s:
            rows = {entry.id: self.row(entry, now) for entry in self.daemon.select(None)}
            down = sum(TORRENT_FIELDS["rateDownload"](self.daemon, entry, now) for entry in self.daemon.select(None))
            up = sum(TORRENT_FIELDS["rateUpload"](self.daemon, entry, now) for entry in self.daemon.select(None))
            summary = {
                "text": f"{len(rows)} torrents · ↓ {format_rate(down)} · ↑ {format_rate(up)}",
                "alt": bool(self.daemon.setting("alt-speed-enabled")),
            }
            self._snapshot = Snapshot(now, rows, summary)
        return self._snapshot

    # -- pages -----------------------------------------------------------------------

    async def list_page(self, request: web.Request) -> web.Response:
        snapshot = self.snapshot(max_age_s=0.0)  # after a form, the page shows its effect
        setting = self.daemon.setting
        limits = {
            name: setting(name)
            for name in ("speed-limit-down", "speed-limit-down-enabled", "speed-limit-up", "speed-limit-up-enabled",
                         "alt-speed-down", "alt-speed-up")
        }  # fmt: skip
        # The row the script copies for a torrent added elsewhere ("ID" becomes its id).
        blank = {**dict.fromkeys(("name", "progress", "state", "error", "down", "up", "peers", "ratio", "eta",
                                  "size"), ""), "id": "ID", "permille": 0, "stopped": False}  # fmt: skip
        return self._page(request, "daemon_list.html", rows=list(snapshot.rows.values()),
                          summary=snapshot.summary, limits=limits, blank_row=blank)  # fmt: skip

    async def add_page(self, request: web.Request) -> web.Response:
        return self._page(request, "daemon_add.html", error="", link="",
                          download_dir=str(self.daemon.setting("download-dir")))  # fmt: skip

    async def torrent_page(self, request: web.Request) -> web.Response:
        entry = self._entry(request)
        now = time.monotonic()

        def field(name: str) -> Any:
            return TORRENT_FIELDS[name](self.daemon, entry, now)

        files = [
            {**item, **stats, "index": index, "priority": PRIORITY_NAMES[stats["priority"]],
             "playable": entry.runtime is not None and media_kind(item["name"]) is not None}
            for index, (item, stats) in enumerate(zip(field("files"), field("fileStats"), strict=True))
        ]  # fmt: skip
        peers = sorted(field("peers"), key=lambda peer: -(peer["rateToClient"] + peer["rateToPeer"]))
        answers = entry.runtime.tracker_answers if entry.runtime is not None else {}
        trackers = [
            {"announce": tracker["announce"], "tier": tracker["tier"], "answer": answers.get(tracker["announce"])}
            for tracker in field("trackers")
        ]
        facts = {
            "size": format_bytes(field("totalSize")),
            "downloaded": format_bytes(field("downloadedEver")),
            "uploaded": format_bytes(field("uploadedEver")),
            "folder": entry.record.download_dir,
            "info_hash": entry.record.info_hash,
            "magnet": field("magnetLink"),
            "comment": field("comment"),
            "added": time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.record.added_date)),
            "pieces": f"{field('pieceCount')} pieces of {format_bytes(field('pieceSize'))}",
        }
        return self._page(request, "daemon_torrent.html", row=self.row(entry, now), facts=facts, files=files,
                          peers=peers[:MAX_PEERS_SHOWN], more_peers=max(0, len(peers) - MAX_PEERS_SHOWN),
                          trackers=trackers, piece_map=piece_map(field("pieces"), field("pieceCount")),
                          piece_map_cells=min(int(field("pieceCount")), PIECE_MAP_CELLS),
                          now=time.time())  # fmt: skip

    async def remove_page(self, request: web.Request) -> web.Response:
        entry = self._entry(request)
        return self._page(request, "daemon_remove.html", row=self.row(entry, time.monotonic()))

    async def player_page(self, request: web.Request) -> web.Response:
        entry = self._entry(request)
        server = self._player(entry)
        served = server._file(request)
        if served.kind is None:
            raise web.HTTPNotFound(text="404: not a media file\n")
        return self._page(request, "daemon_player.html", row=self.row(entry, time.monotonic()), file=served,
                          base=f"/torrents/{entry.id}", subtitles=server.subtitles_for(served),
                          type=content_type(served.name))  # fmt: skip

    # -- the player's bytes: the stream server's handlers over this torrent's runtime --

    def _player(self, entry: Entry) -> StreamServer:
        runtime = entry.runtime
        if runtime is None:
            raise web.HTTPNotFound(text="404: the torrent's metadata is not here yet\n")
        server = self._players.get(entry.id)
        if server is None or server.runtime is not runtime:
            if server is not None:
                server.close()
            for gone in [number for number in self._players if number not in self.daemon.entries]:
                self._players.pop(gone).close()
            server = self._players[entry.id] = StreamServer(runtime)
        return server

    async def stream_file(self, request: web.Request) -> web.StreamResponse:
        return await self._player(self._entry(request)).file(request)

    async def stream_subtitles(self, request: web.Request) -> web.StreamResponse:
        return await self._player(self._entry(request)).subtitles(request)

    # -- live updates ----------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``torrents`` with the rows that changed and the ids removed
        since the last one (every row in the first), until the page goes or the daemon stops."""
        if self.streams >= MAX_EVENT_STREAMS:
            raise web.HTTPServiceUnavailable(text="503: too many open pages\n", headers={"Retry-After": "10"})
        only = request.query.get("id", "")
        wanted = int(only) if only.isdigit() and len(only) <= 9 else None
        response = web.StreamResponse(
            headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        self.streams += 1
        try:
            await response.prepare(request)
            sent: dict[int, dict[str, Any]] = {}
            quiet_since = time.monotonic()
            first = True
            while not self.stopping.is_set():
                if request.transport is None or request.transport.is_closing():
                    # The page went: a write would tell only at the next change or
                    # keep-alive, holding the stream's place until then.
                    break
                snapshot = self.snapshot()
                rows = snapshot.rows if wanted is None else {k: v for k, v in snapshot.rows.items() if k == wanted}
                changed = [row for number, row in rows.items() if sent.get(number) != row]
                removed = [number for number in sent if number not in rows]
                if changed or removed or first:
                    message = {"rows": changed, "removed": removed, "summary": snapshot.summary}
                    await response.write(f"event: torrents\ndata: {json.dumps(message)}\n\n".encode())
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                    await response.write(b": still here\n\n")
                    quiet_since = time.monotonic()
                sent, first = dict(rows), False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), EVENT_PERIOD_S)
        except ConnectionError:
            pass  # the page was closed: the normal end of a stream
        finally:
            self.streams -= 1
        return response

    # -- subscriptions ---------------------------------------------------------------

    async def subscriptions_page(
        self, request: web.Request, *, status: int = 200, error: str = "", form: dict[str, str] | None = None
    ) -> web.Response:
        poller = self.subscriptions
        rows: list[dict[str, Any]] = []
        problem = "Subscriptions are not run by this server." if poller is None else ""
        if poller is not None:
            subscriptions = await poller.load()
            problem = poller.problem
            for subscription in subscriptions:
                state = poller.status.get(subscription.id)
                due = poller.next_poll_at(subscription)
                rows.append({
                    "id": subscription.id,
                    "feed": display_url(subscription.url),  # without its query: passkeys stay off screen
                    "rules": describe_rules(subscription, binary_size) or ["every item"],
                    "polled": _local_time(state.polled_at) if state and state.polled_at else "",
                    "result": state.result if state else "not polled since the daemon started",
                    "failed": bool(state and state.is_failure),
                    "added": state.added if state else [],
                    "next": _local_time(due) if due else "",
                })  # fmt: skip
        values = {name: "" for name in SUBSCRIPTION_FORM_FIELDS}
        values.update(form or {})
        return self._page(request, "daemon_subscriptions.html", status=status, rows=rows, problem=problem,
                          enabled=poller is not None and poller.is_enabled, folder=str(poller.folder) if poller else "",
                          error=error, form=values)  # fmt: skip

    async def add_subscription(self, request: web.Request) -> web.Response:
        form = await request.post()
        values = {name: str(form.get(name, ""))[:MAX_FORM_FIELD_CHARS] for name in SUBSCRIPTION_FORM_FIELDS}
        if self.subscriptions is None:
            return self._message(request, "Subscriptions are not run by this server.", status=400)
        try:
            options = subscription_options(values)
            await self.subscriptions.add(options)
        except UsageError as error:
            return await self.subscriptions_page(request, status=400, error=str(error), form=values)
        except OSError as error:
            return self._message(request, f"not saved: {error.strerror or error}", status=500)
        raise web.HTTPSeeOther("/subscriptions")

    async def remove_subscription(self, request: web.Request) -> web.Response:
        text = request.match_info["id"]
        if self.subscriptions is None or not text.isdigit() or len(text) > 9:
            raise web.HTTPNotFound(text="404: no such subscription\n")
        try:
            removed = await self.subscriptions.remove(int(text))
        except (UsageError, OSError) as error:
            return self._message(request, f"not removed: {error}", status=500)
        if not removed:
            raise web.HTTPNotFound(text="404: no such subscription (it may have been removed)\n")
        raise web.HTTPSeeOther("/subscriptions")

    # -- forms -----------------------------------------------------------------------

    async def add_torrent(self, request: web.Request) -> web.Response:
        form = await request.post()
        link = str(form.get("link", "")).strip()
        upload = form.get("torrent")
        arguments: dict[str, Any] = {"paused": form.get("paused") == "1"}
        folder = str(form.get("download_dir", "")).strip()
        if folder:
            arguments["download-dir"] = folder
        error = ""
        if isinstance(upload, web.FileField) and upload.filename:
            arguments["metainfo"] = base64.b64encode(upload.file.read()).decode()
        elif link.lower().startswith(("magnet:", "http://", "https://")) and len(link) <= MAX_LINK_CHARS:
            arguments["filename"] = link  # never a path: the form does not read the daemon's files
        else:
            error = "Choose a .torrent file, or give a magnet link or an http(s) URL."
        if not error:
            answer = await self.rpc.call("torrent-add", arguments)
            if answer["result"] == "success":
                added = answer["arguments"].get("torrent-added") or answer["arguments"]["torrent-duplicate"]
                raise web.HTTPSeeOther(f"/#torrent-{added['id']}")
            error = str(answer["result"])
        return self._page(request, "daemon_add.html", status=400, error=error, link=link[:MAX_LINK_CHARS],
                          download_dir=folder or str(self.daemon.setting("download-dir")))  # fmt: skip

    async def torrent_action(self, request: web.Request) -> web.Response:
        entry = self._entry(request)
        action = request.path.rsplit("/", 1)[1]
        form = await request.post()
        ids: dict[str, Any] = {"ids": [entry.id]}
        arguments: dict[str, Any]
        back = f"/torrents/{entry.id}" if form.get("back") == "torrent" else f"/#torrent-{entry.id}"
        if action == "remove":
            method, arguments = "torrent-remove", {**ids, "delete-local-data": form.get("delete") == "1"}
            back = "/"
        elif action == "files":
            method, arguments = "torrent-set", {**ids, **_file_changes(form)}
            back = f"/torrents/{entry.id}#files"
        else:
            method, arguments = f"torrent-{action}", ids
        refusal = await self._call(request, method, arguments)
        if refusal is not None:
            return refusal
        raise web.HTTPSeeOther(back)

    async def change_settings(self, request: web.Request) -> web.Response:
        form = await request.post()
        changes: dict[str, Any] = {}
        for name in ("speed-limit-down", "speed-limit-up", "alt-speed-down", "alt-speed-up"):
            text = str(form.get(name, "")).strip()
            if not text.isdigit() or len(text) > 9:
                return self._message(request, f"{name}: a whole number of kB/s, 0 or more", status=400)
            changes[name] = int(text)
        for name in ("speed-limit-down-enabled", "speed-limit-up-enabled"):
            changes[name] = form.get(name) == "1"
        refusal = await self._call(request, "session-set", changes)
        if refusal is not None:
            return refusal
        raise web.HTTPSeeOther("/#limits")

    async def alt_speed(self, request: web.Request) -> web.Response:
        form = await request.post()
        refusal = await self._call(request, "session-set", {"alt-speed-enabled": form.get("enabled") == "1"})
        if refusal is not None:
            return refusal
        raise web.HTTPSeeOther("/")

    async def _call(self, request: web.Request, method: str, arguments: dict[str, Any]) -> web.Response | None:
        """One RPC method: None when it succeeded, else a page saying why (400)."""
        answer = await self.rpc.call(method, arguments)
        if answer["result"] != "success":
            return self._message(request, str(answer["result"]), status=400)
        return None

    def _message(self, request: web.Request, text: str, *, status: int) -> web.Response:
        return self._page(request, "daemon_message.html", status=status, message=text)

    # -- files -----------------------------------------------------------------------

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = STATIC_FILES.get(name)
        if kind is None:
            raise web.HTTPNotFound(text="404: no such file\n")
        return web.FileResponse(STATIC_FOLDER / name, headers={"Content-Type": kind, "Cache-Control": "no-cache"})

    async def favicon(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_FOLDER / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


def _file_changes(form: Any) -> dict[str, list[int]]:
    """torrent-set's file lists from the files form: ``file`` (every index on the page),
    ``wanted`` (the checked ones) and ``priority-INDEX`` (high, normal or low)."""
    shown = {int(value) for value in form.getall("file", []) if str(value).isdigit() and len(str(value)) <= 9}
    checked = {int(value) for value in form.getall("wanted", []) if str(value).isdigit() and len(str(value)) <= 9}
    changes: dict[str, list[int]] = {
        "files-wanted": sorted(shown & checked),
        "files-unwanted": sorted(shown - checked),
        "priority-high": [],
        "priority-normal": [],
        "priority-low": [],
    }
    for index in sorted(shown):
        name = str(form.get(f"priority-{index}", "normal"))
        changes[PRIORITY_FIELDS.get(name, "priority-normal")].append(index)
    return changes


SUBSCRIPTION_FORM_FIELDS = (
    "url", "match", "exclude", "min_size", "max_size", "series", "quality", "wait", "packs",
    "download_dir", "labels", "interval",
)  # fmt: skip


def subscription_options(form: dict[str, str]) -> dict[str, Any]:
    """``Subscription`` fields (all but ``id``) from the subscription form: blank fields
    are left out, ``series`` one per line, ``labels`` split at commas, sizes like ``700M``,
    times like ``6h``. Raises ``UsageError`` naming the field; the rules themselves are
    checked by ``Subscription``."""

    def text(name: str) -> str | None:
        return form.get(name, "").strip() or None

    def items(name: str, separators: str) -> tuple[str, ...]:
        raw = form.get(name, "")
        for separator in separators:
            raw = raw.replace(separator, "\n")
        found = tuple(dict.fromkeys(part.strip() for part in raw.splitlines() if part.strip()))
        if len(found) > MAX_FORM_LIST_ITEMS:
            raise UsageError(f"{name}: at most {MAX_FORM_LIST_ITEMS}")
        return found

    url = text("url")
    if url is None:
        raise UsageError("Give the feed's address (http:// or https://).")
    options: dict[str, Any] = {
        "url": url,
        "match": text("match"),
        "exclude": text("exclude"),
        "series": items("series", ""),
        "quality": text("quality"),
        "packs": form.get("packs") == "1",
        "download_dir": text("download_dir"),
        "labels": items("labels", ","),
    }
    for name in ("min_size", "max_size"):
        value = text(name)
        options[name] = parse_size(value) if value is not None else None
    wait, interval = text("wait"), text("interval")
    options["wait_s"] = parse_duration(wait) if wait is not None else None
    if interval is not None:
        options["min_interval_s"] = parse_duration(interval)
    return options


def binary_size(count: int) -> str:
    """Sizes as a subscription's rules are written (1 KiB = 1024 bytes): '700 MiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _local_time(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch_s))


def piece_map(pieces_base64: str, count: int) -> list[tuple[int, int, float]]:
    """The pieces bitfield as at most ``PIECE_MAP_CELLS`` cells, each a run of pieces, as
    (first cell, cells, share verified) for runs of cells with the same share above 0."""
    if not count or not pieces_base64:
        return []
    bits = base64.b64decode(pieces_base64)
    cells = min(count, PIECE_MAP_CELLS)
    runs: list[tuple[int, int, float]] = []
    for cell in range(cells):
        first, end = cell * count // cells, (cell + 1) * count // cells
        have = sum(1 for index in range(first, end) if bits[index >> 3] & (0x80 >> (index & 7)))
        share = round(have / (end - first), 2)
        if share and runs and runs[-1][0] + runs[-1][1] == cell and runs[-1][2] == share:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1, share)
        elif share:
            runs.append((cell, 1, share))
    return runs


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=SECURITY_HEADERS)
