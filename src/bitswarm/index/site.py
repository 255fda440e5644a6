"""The website's pages and endpoints: browse, search, entry pages, publish, feeds, Torznab,
the operators' tools, and the site's own tracker at ``/announce`` and ``/scrape``.

Every page is rendered on the server (Jinja2, autoescaped) with one small script file for
the copy button; every form carries a CSRF token (``bitswarm.web.csrf``). Nothing about a
visitor is stored: rate limits are kept per address in memory only, and no handler logs an
address.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from markupsafe import Markup

from bitswarm import magnet as magnet_links
from bitswarm.errors import BitswarmError, DuplicateEntry, UsageError
from bitswarm.forwarded import TrustedProxies
from bitswarm.index import feeds, torznab
from bitswarm.index.bundles import API_HEADER, WEBHOOK_SIGNATURE, SiteKeys
from bitswarm.index.config import IndexConfig
from bitswarm.index.db import IndexDatabase
from bitswarm.index.description import render_description
from bitswarm.index.entry_pages import EntryParts, EntryPartsCache
from bitswarm.index.model import Entry, EntryFile
from bitswarm.index.newznab_categories import CategoryMap
from bitswarm.index.scrape_plan import ScrapeTarget, scrape_hashes, scrape_target
from bitswarm.index.search import MAX_PAGE_SIZE, SearchFilters, SearchPage, SearchSort
from bitswarm.ratelimit import RateLimiter
from bitswarm.tracker.swarm import SwarmCounts
from bitswarm.web.app import TEMPLATES_KEY, create_app
from bitswarm.web.csrf import CsrfProtection
from bitswarm.web.sessions import SessionCookies, SignedIn

log = logging.getLogger(__name__)
TEMPLATES_FOLDER = Path(__file__).parent / "templates"
PAGE_SIZE = 50
MAX_PAGE = 200  # deeper pages: narrow the search instead (offsets stay cheap)
MAX_QUERY_CHARS = 256
FILES_SHOWN = 1000
SITE_KEY: web.AppKey[Site] = web.AppKey("index_site")
SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
COUNTS_CACHED_S = 60.0
MAX_CACHED_COUNTS = 50_000


@dataclass(frozen=True, slots=True)
class Health:
    """An entry's live counts for a page: None where nobody answered (never a false 0)."""

    seeders: int | None
    leechers: int | None
    completed: int | None
    # When another tracker gave these counts (Unix seconds); None: live from our tracker.
    checked_at: float | None = None

    @property
    def mark(self) -> str:
        if self.seeders is None:
            return "unknown"
        if self.seeders == 0:
            return "dead"
        return "good" if self.seeders >= 5 else "weak"


UNKNOWN = Health(None, None, None)


@dataclass
class Site:
    """Everything the handlers share."""

    config: IndexConfig
    db: IndexDatabase
    counts_of: Callable[[Iterable[bytes]], Awaitable[dict[bytes, SwarmCounts]]] | None  # the own tracker's scrape
    secret: bytes
    clock: Callable[[], float] = time.time
    proxies: TrustedProxies = field(init=False)
    csrf: CsrfProtection = field(init=False)
    sessions: SessionCookies = field(init=False)
    uploads: RateLimiter = field(init=False)
    searches: RateLimiter = field(init=False)
    torznab_settings: torznab.TorznabSettings = field(init=False)
    waiting_metadata: Callable[[int, magnet_links.Magnet], None] | None = None
    # The key-encryption and voucher keys of bundles (``bitswarm.index.bundles``); None:
    # the site takes no bundles.
    bundle_keys: SiteKeys | None = None
    # Tells the site's own tracker the private swarms of gated bundles and their passkeys
    # again (after a grant or a publish here; other processes' every ``PRIVATE_SWARMS_S``).
    private_swarms_changed: Callable[[], Awaitable[None]] | None = None
    # The site's own tracker as entries name it (``run.own_trackers``): not "another tracker".
    own_trackers: frozenset[ScrapeTarget] = frozenset()
    # Scraped counts per entry (None: nobody answered yet) for a minute, or until this
    # process records new ones (``CountsStore.version``; another process's show after the
    # minute): a popular page costs no database read for them (on SQLite a read was
    # 1.5 ms of a 2.5 ms page).
    _scraped: dict[int, tuple[float, int, Health | None]] = field(default_factory=dict, init=False)
    # The rendered parts of entry pages, kept while the entry's row stays the same.
    entry_parts: EntryPartsCache = field(init=False)

    def __post_init__(self) -> None:
        config = self.config
        self.proxies = TrustedProxies(config.trusted_proxies)
        self.entry_parts = EntryPartsCache(fresh_s=config.entry_page_fresh_s)
        self.csrf = CsrfProtection(
            self.secret, secure_cookie=config.secure_cookies, program_headers=(API_HEADER, WEBHOOK_SIGNATURE)
        )
        self.sessions = SessionCookies(self.secret, secure_cookie=config.secure_cookies)
        self.uploads = RateLimiter(config.uploads_per_hour / 3600, config.uploads_per_hour)
        self.searches = RateLimiter(config.searches_per_minute / 60, config.searches_per_minute)
        self.torznab_settings = torznab.TorznabSettings(
            categories=CategoryMap(config.categories), api_key=config.api_key or None, title=config.site_name
        )

    def client_host(self, request: web.Request) -> str:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        host = peer[0] if peer else ""
        if not self.proxies:
            return str(host)
        return self.proxies.client_host(
            str(host), request.headers.get("X-Forwarded-For"), request.headers.get("X-Real-IP")
        )

    def base_url(self, request: web.Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    async def health(self, entries: Iterable[Entry]) -> dict[int, Health]:
        """Live counts per entry id. From the site's own tracker where it has seen peers (a
        hybrid counts under whichever of its two info-hashes more peers announced: clients
        use either). Otherwise, for an entry that names other trackers, the best answer
        their scrapes gave (``bitswarm.index.counts``), with its time; none: unknown (no
        entry). An entry naming no tracker but ours: our tracker's zeros, which are true."""

        def names_others(entry: Entry) -> bool:
            return _names_other_trackers(entry.trackers, self.own_trackers)

        entries = list(entries)
        if not entries:
            return {}
        keys = {entry.id: scrape_hashes(entry.info_hash_v1, entry.info_hash_v2) for entry in entries}
        health: dict[int, Health] = {}
        if self.counts_of is not None:
            counts: dict[bytes, SwarmCounts] = await self.counts_of([key for group in keys.values() for key in group])
            for entry in entries:
                known = [counts[key] for key in keys[entry.id] if key in counts]
                best = max(known, key=lambda item: (item.seeders, item.leechers)) if known else SwarmCounts()
                if best.seeders or best.leechers or not names_others(entry):
                    health[entry.id] = Health(best.seeders, best.leechers, best.completed)
        others = {entry.id: keys[entry.id] for entry in entries if entry.id not in health and names_others(entry)}
        now, version = self.clock(), self.db.counts.version
        wanted = {}
        for entry_id, hashes in others.items():
            cached = self._scraped.get(entry_id)
            if cached is not None and cached[0] > now and cached[1] == version:
                if cached[2] is not None:
                    health[entry_id] = cached[2]
            else:
                wanted[entry_id] = hashes
        if wanted:
            if len(self._scraped) + len(wanted) > MAX_CACHED_COUNTS:
                self._scraped.clear()
            found = await self.db.counts.best(wanted)
            for entry_id in wanted:
                scraped = found.get(entry_id)
                answer = None
                if scraped is not None:
                    answer = Health(scraped.seeders, scraped.leechers, scraped.completed, scraped.checked_at)
                    health[entry_id] = answer
                self._scraped[entry_id] = (now + COUNTS_CACHED_S, version, answer)
        return health


# Parsing every tracker URL of an entry on each visit was 4 % of an entry page's CPU; most
# entries name the same few trackers.
@functools.lru_cache(maxsize=4096)
def _names_other_trackers(trackers: tuple[tuple[str, ...], ...], own_trackers: frozenset[ScrapeTarget]) -> bool:
    return any(scrape_target(url) not in own_trackers for tier in trackers for url in tier)


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in SIZE_UNITS:
        if value < 1024 or unit == SIZE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def age(seconds_ago: float) -> str:
    for limit, unit in ((60, "s"), (3600, "min"), (86400, "h"), (86400 * 365, "d")):
        if seconds_ago < limit:
            divisor = {"s": 1, "min": 60, "h": 3600, "d": 86400}[unit]
            return f"{int(seconds_ago // divisor)} {unit}"
    return f"{int(seconds_ago // (86400 * 365))} y"


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    if not text.isdigit() or len(text) > 12:
        raise web.HTTPBadRequest(text=f"400: {name} must be a whole number\n")
    return max(low, min(high, int(text)))


def _size_param(request: web.Request, name: str) -> int | None:
    text = request.query.get(name, "").strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,6}(?:\.\d{1,3})?)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
    if match is None:
        raise web.HTTPBadRequest(text=f"400: {name} is a size such as 700M or 4.5G\n")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


SORTS = {
    "relevance": SearchSort.RELEVANCE,
    "newest": SearchSort.NEWEST,
    "oldest": SearchSort.OLDEST,
    "largest": SearchSort.LARGEST,
    "smallest": SearchSort.SMALLEST,
    "seeders": SearchSort.SEEDERS,
}
AGES = {"day": 86400, "week": 7 * 86400, "month": 31 * 86400, "year": 366 * 86400}


def create_index_app(site: Site) -> web.Application:
    allowed = list(site.config.allowed_hosts)
    if site.config.public_url:
        host = site.config.public_url.split("://", 1)[1].split("/", 1)[0]
        allowed.append(host.rsplit(":", 1)[0] if not host.endswith("]") else host)
    # A form carries the .torrent and a description (at most 20,000 characters) besides.
    max_body = site.config.max_upload_bytes + 256 * 1024
    app = create_app(allowed_hosts=allowed, template_folders=[TEMPLATES_FOLDER], max_body_bytes=max_body)
    app.middlewares.insert(0, _errors_without_addresses)
    app.middlewares.append(site.csrf.middleware())
    app[SITE_KEY] = site
    environment: jinja2.Environment = app[TEMPLATES_KEY]
    environment.filters["size"] = human_size
    environment.globals["site_name"] = site.config.site_name
    environment.globals["categories"] = site.config.categories
    routes = [
        web.get("/", front_page),
        web.get("/search", search_page),
        web.get(r"/browse/{category:[a-z0-9][a-z0-9._/-]{0,63}}", category_page),
        web.get(r"/t/{entry_id:\d{1,12}}", entry_page),
        web.get(r"/t/{entry_id:\d{1,12}}/download.torrent", download_torrent),
        web.post(r"/t/{entry_id:\d{1,12}}/report", report_entry),
        web.post(r"/t/{entry_id:\d{1,12}}/moderate", moderate_entry),
        web.get(r"/t/{entry_id:\d{1,12}}/edit", edit_form),
        web.post(r"/t/{entry_id:\d{1,12}}/edit", edit_entry),
        web.get("/upload", upload_form),
        web.post("/upload", upload),
        web.get("/rss", rss_feed),
        web.get("/api", torznab_api),
        web.get("/privacy", privacy_page),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/reports", reports_page),
    ]
    app.add_routes(routes)
    from bitswarm.index import gates  # noqa: PLC0415 - it builds on this module's helpers

    gates.add_routes(app)
    return app


@web.middleware
async def _errors_without_addresses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bug costs that one request a 500; its log line names the path, not the visitor
    (aiohttp's own would name the address)."""
    try:
        return await handler(request)
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("internal error answering %s %s", request.method, request.path)
        raise web.HTTPInternalServerError(text="500: something went wrong on our side\n") from None


def _site(request: web.Request) -> Site:
    site: Site = request.app[SITE_KEY]
    return site


def page(request: web.Request, template: str, *, status: int = 200, **context: object) -> web.Response:
    site = _site(request)
    who = site.sessions.read(request)
    html = (
        request.app[TEMPLATES_KEY]
        .get_template(template)
        .render(csrf_token=site.csrf.token(request), who=who, query_text=request.query.get("q", ""), **context)
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


async def _is_operator(request: web.Request) -> bool:
    """Signed in as an operator now: the cookie names the account, the database its role
    (an account demoted or deleted since the cookie was signed is no operator)."""
    site = _site(request)
    who = site.sessions.read(request)
    return who is not None and await site.db.accounts.role_of(who.account_id) == "operator"


async def _operator(request: web.Request) -> None:
    if not await _is_operator(request):
        raise web.HTTPForbidden(text="403: for operators only\n")


def _rows(site: Site, entries: Sequence[Entry], health: dict[int, Health]) -> list[dict[str, object]]:
    now = site.clock()
    return [
        {"entry": entry, "health": health.get(entry.id, UNKNOWN), "age": age(max(0.0, now - entry.created_at))}
        for entry in entries
    ]


async def front_page(request: web.Request) -> web.Response:
    site = _site(request)
    number = _int_param(request, "page", 1, 1, MAX_PAGE)
    entries = await site.db.entries.list_newest(limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE)
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    health = await site.health(entries)
    return page(
        request, "index_list.html", heading="Newest", rows=_rows(site, entries, health), page_number=number,
        next_url=f"/?page={number + 1}" if more else None, previous_url=f"/?page={number - 1}" if number > 1 else None,
        feed_url="/rss",
    )  # fmt: skip


async def category_page(request: web.Request) -> web.Response:
    category = request.match_info["category"]
    if category not in _site(request).config.categories:
        raise web.HTTPNotFound(text="404: no such category\n")
    raise web.HTTPFound(f"/search?{urlencode({'cat': category, 'sort': 'newest'})}")


async def search_page(request: web.Request) -> web.Response:
    site = _site(request)
    if not site.searches.allow(site.client_host(request), site.clock()):
        return page(request, "index_message.html", status=429, heading="Slow down",
                    message="Too many searches from your address; try again in a minute.")  # fmt: skip
    text = request.query.get("q", "")[:MAX_QUERY_CHARS]
    category = request.query.get("cat", "")
    if category and category not in site.config.categories:
        raise web.HTTPBadRequest(text="400: no such category\n")
    sort_name = request.query.get("sort", "relevance" if text.strip() else "newest")
    if sort_name not in SORTS:
        raise web.HTTPBadRequest(text="400: unknown sort\n")
    age_name = request.query.get("age", "")
    if age_name and age_name not in AGES:
        raise web.HTTPBadRequest(text="400: unknown age\n")
    filters = SearchFilters(
        categories=(category,) if category else (),
        min_size=_size_param(request, "min_size"),
        max_size=_size_param(request, "max_size"),
        max_age_s=AGES.get(age_name),
        min_seeders=_int_param(request, "seeders", 0, 0, 10**9) or None,
    )
    number = _int_param(request, "page", 1, 1, MAX_PAGE)
    result: SearchPage = await site.db.search(
        text, filters=filters, sort=SORTS[sort_name], limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE
    )
    health = await site.health(result.entries)
    shown_params = {key: value for key, value in request.query.items() if key != "page" and value}
    more = result.offset + len(result.entries) < result.total
    pages = math.ceil(result.total / PAGE_SIZE) if result.total_is_exact else None
    return page(
        request, "index_list.html",
        heading=f"Results for “{text}”" if text.strip() else "All entries",
        rows=_rows(site, result.entries, health), page_number=number, pages=pages,
        total=result.total, total_is_exact=result.total_is_exact, filters=shown_params, sorts=list(SORTS),
        ages=list(AGES), search_form=True,
        next_url=f"/search?{urlencode({**shown_params, 'page': number + 1})}" if more and number < MAX_PAGE else None,
        previous_url=f"/search?{urlencode({**shown_params, 'page': number - 1})}" if number > 1 else None,
        feed_url="/rss?" + urlencode([(key, shown_params[key]) for key in ("q", "cat") if key in shown_params]),
    )  # fmt: skip


async def _visible_entry(request: web.Request) -> Entry:
    site = _site(request)
    try:
        entry = await site.db.entries.get(int(request.match_info["entry_id"]))
    except BitswarmError:
        raise web.HTTPNotFound(text="404: no such entry\n") from None
    await _check_visible(request, entry)
    return entry


async def _check_visible(request: web.Request, entry: Entry) -> None:
    if entry.is_hidden and not await _is_operator(request):
        raise web.HTTPNotFound(text="404: no such entry\n")


def file_tree(files: Sequence[EntryFile]) -> list[dict[str, object]]:
    """Rows of a folder tree: each folder once, before its files, indented by depth."""
    rows: list[dict[str, object]] = []
    seen_folders: set[tuple[str, ...]] = set()
    for item in files:
        for depth in range(1, len(item.path)):
            folder = item.path[:depth]
            if folder not in seen_folders:
                seen_folders.add(folder)
                rows.append({"name": folder[-1], "depth": depth - 1, "is_folder": True, "size": None})
        rows.append({"name": item.path[-1], "depth": len(item.path) - 1, "is_folder": False, "size": item.size})
    return rows


async def entry_page(request: web.Request) -> web.Response:
    site = _site(request)
    entry_id = int(request.match_info["entry_id"])
    now = site.clock()
    parts = site.entry_parts.fresh(entry_id, now)
    if parts is None:
        generation = site.entry_parts.generation
        try:
            entry = await site.db.entries.get(entry_id)
        except BitswarmError:
            raise web.HTTPNotFound(text="404: no such entry\n") from None
        parts = site.entry_parts.get(entry, now)
        if parts is None:
            parts = await _render_entry_parts(request, entry)
            site.entry_parts.put(parts, now, generation)
    entry = parts.entry
    await _check_visible(request, entry)
    health = (await site.health([entry])).get(entry.id, UNKNOWN)
    as_of = age(max(0.0, site.clock() - health.checked_at)) if health.checked_at is not None else None
    return page(request, "index_entry.html", entry=entry, health=health, as_of=as_of, parts=parts)


async def _render_entry_parts(request: web.Request, entry: Entry) -> EntryParts:
    """What the entry's page shows of the entry itself (``bitswarm.index.entry_pages``)."""
    site = _site(request)
    try:
        entry, files = await site.db.entries.get_with_files(entry.id, limit=FILES_SHOWN)
    except BitswarmError:
        raise web.HTTPNotFound(text="404: no such entry\n") from None
    # Macros of an autoescaped environment return Markup: the parts are escaped HTML.
    macros: Any = request.app[TEMPLATES_KEY].get_template("index_entry_parts.html").module
    published = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    description = Markup(render_description(entry.description))  # noqa: S704 - sanitised
    files_cut = entry.file_count is not None and entry.file_count > len(files)
    return EntryParts(
        entry=entry,
        head=macros.head(entry),
        facts=macros.facts(entry, published, [url for tier in entry.trackers for url in tier]),
        body=macros.body(entry, description, file_tree(files), files_cut),
    )


def _download_name(title: str) -> str:
    """A file name for the .torrent: the title's letters, digits and a few marks."""
    name = re.sub(r"[^\w.\- ]+", "_", title, flags=re.ASCII).strip(" ._")[:120]
    return f"{name or 'download'}.torrent"


async def download_torrent(request: web.Request) -> web.Response:
    site = _site(request)
    entry = await _visible_entry(request)
    data = await site.db.entries.torrent_bytes(entry.id)
    if data is None:
        raise web.HTTPNotFound(text="404: the metadata has not arrived yet; use the magnet link\n")
    name = _download_name(entry.title)
    return web.Response(
        body=data,
        content_type="application/x-bittorrent",
        headers={"Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"},
    )


async def upload_form(request: web.Request) -> web.Response:
    _may_upload(request)
    return page(request, "index_upload.html", form={}, error=None)


def _may_upload(request: web.Request) -> None:
    site = _site(request)
    if not site.config.open_uploads and site.sessions.read(request) is None:
        raise web.HTTPFound("/login?next=/upload")


async def upload(request: web.Request) -> web.Response:
    site = _site(request)
    _may_upload(request)
    form = await request.post()
    values = {name: form.get(name) for name in ("title", "description", "category", "tags", "magnet")}
    text = {name: value if isinstance(value, str) else "" for name, value in values.items()}

    def refuse(message: str, status: int = 400) -> web.Response:
        return page(request, "index_upload.html", status=status, form=text, error=message)

    if not site.uploads.allow(site.client_host(request), site.clock()):
        return refuse("Too many uploads from your address; try again later.", 429)
    category = text["category"] or None
    if category is not None and category not in site.config.categories:
        return refuse("Choose one of the categories.")
    tags = text["tags"].replace(",", " ").split()
    upload_field = form.get("torrent")
    try:
        if isinstance(upload_field, web.FileField):
            data = upload_field.file.read(site.config.max_upload_bytes + 1)
            if len(data) > site.config.max_upload_bytes:
                return refuse(f"The .torrent is larger than {human_size(site.config.max_upload_bytes)}.", 413)
            entry = await site.db.entries.add_torrent(
                data, title=text["title"] or None, description=text["description"], category=category, tags=tags,
                first_tracker=_announce_url(site, request) if site.config.add_site_tracker and site.counts_of else None,
                max_files=site.config.max_files,
            )  # fmt: skip
        elif text["magnet"].strip():
            link = magnet_links.parse(text["magnet"].strip())
            entry = await site.db.entries.add_magnet(
                link, title=text["title"] or None, description=text["description"], category=category, tags=tags
            )
            if site.waiting_metadata is not None:
                site.waiting_metadata(entry.id, link)
        else:
            return refuse("Choose a .torrent file or paste a magnet link.")
    except DuplicateEntry as error:
        return refuse(f"This torrent is listed already: /t/{error.entry_id}", 409)
    except BitswarmError as error:
        return refuse(f"Not accepted: {error}")
    raise web.HTTPSeeOther(f"/t/{entry.id}")


def _announce_url(site: Site, request: web.Request) -> str:
    return f"{site.base_url(request)}/announce"


async def report_entry(request: web.Request) -> web.Response:
    site = _site(request)
    entry = await _visible_entry(request)
    form = await request.post()
    reason = form.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise web.HTTPBadRequest(text="400: say what is wrong\n")
    if not site.uploads.allow(site.client_host(request), site.clock()):
        raise web.HTTPTooManyRequests(text="429: too many reports from your address\n")
    await site.db.reports.add(entry.id, reason)
    return page(request, "index_message.html", heading="Thank you",
                message="The operators will look at this entry.")  # fmt: skip


async def moderate_entry(request: web.Request) -> web.Response:
    await _operator(request)
    site = _site(request)
    entry = await _visible_entry(request)
    action = (await request.post()).get("action")
    if action == "hide":
        await site.db.entries.set_hidden(entry.id, True)
    elif action == "unhide":
        await site.db.entries.set_hidden(entry.id, False)
    elif action == "delete":
        await site.db.entries.delete(entry.id)
    else:
        raise web.HTTPBadRequest(text="400: unknown action\n")
    # Its page shows the change at once here (other processes: within entry_page_fresh_s).
    site.entry_parts.forget(entry.id)
    raise web.HTTPSeeOther("/" if action == "delete" else f"/t/{entry.id}")


async def edit_form(request: web.Request) -> web.Response:
    await _operator(request)
    entry = await _visible_entry(request)
    return page(request, "index_edit.html", entry=entry, error=None)


async def edit_entry(request: web.Request) -> web.Response:
    await _operator(request)
    site = _site(request)
    entry = await _visible_entry(request)
    form = await request.post()
    text = {name: str(form.get(name) or "") for name in ("title", "description", "category", "tags")}
    if text["category"] and text["category"] not in site.config.categories:
        raise web.HTTPBadRequest(text="400: no such category\n")
    try:
        await site.db.entries.edit(
            entry.id, title=text["title"], description=text["description"], category=text["category"] or None,
            tags=text["tags"].replace(",", " ").split(),
        )  # fmt: skip
    except UsageError as error:
        return page(request, "index_edit.html", status=400, entry=entry, error=str(error))
    site.entry_parts.forget(entry.id)
    raise web.HTTPSeeOther(f"/t/{entry.id}")


async def reports_page(request: web.Request) -> web.Response:
    await _operator(request)
    reports = await _site(request).db.reports.open_reports(limit=200)
    return page(request, "index_reports.html", reports=reports)


async def login_form(request: web.Request) -> web.Response:
    return page(request, "index_login.html", error=None)


async def login(request: web.Request) -> web.Response:
    site = _site(request)
    form = await request.post()
    name, password = form.get("name"), form.get("password")
    if not site.uploads.allow(("login", site.client_host(request)), site.clock()):
        return page(request, "index_login.html", status=429, error="Too many attempts; try again later.")
    account = None
    if isinstance(name, str) and isinstance(password, str):
        account = await site.db.accounts.verify(name, password)
    if account is None:
        return page(request, "index_login.html", status=403, error="Wrong name or password.")
    response = web.HTTPSeeOther("/")
    site.sessions.sign_in(response, SignedIn(account.id, account.name, account.role))
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/")
    _site(request).sessions.sign_out(response)
    raise response


async def privacy_page(request: web.Request) -> web.Response:
    site = _site(request)
    return page(request, "index_privacy.html", config=site.config, trusts_proxies=bool(site.proxies))


# -- feeds -------------------------------------------------------------------------------


def _feed_item(site: Site, base: str, entry: Entry, health: Health, torrent_length: int | None) -> feeds.FeedItem:
    return feeds.FeedItem(
        title=entry.title, page_url=f"{base}/t/{entry.id}", magnet_uri=entry.magnet,
        published=datetime.fromtimestamp(entry.created_at, UTC),
        torrent_url=f"{base}/t/{entry.id}/download.torrent" if torrent_length is not None else None,
        torrent_bytes_length=torrent_length, info_hash_v1_hex=entry.info_hash_v1, info_hash_v2_hex=entry.info_hash_v2,
        size=entry.total_size, file_count=entry.file_count, category=entry.category,
        description=entry.description[:2000], seeders=health.seeders, leechers=health.leechers,
        completed=health.completed,
    )  # fmt: skip


async def _feed_items(site: Site, request: web.Request, entries: Sequence[Entry]) -> list[feeds.FeedItem]:
    base = site.base_url(request)
    health = await site.health(entries)
    lengths = await site.db.entries.torrent_lengths([entry.id for entry in entries])
    return [_feed_item(site, base, entry, health.get(entry.id, UNKNOWN), lengths.get(entry.id)) for entry in entries]


async def rss_feed(request: web.Request) -> web.Response:
    site = _site(request)
    text = request.query.get("q", "")[:MAX_QUERY_CHARS]
    category = request.query.get("cat", "")
    if category and category not in site.config.categories:
        raise web.HTTPBadRequest(text="400: no such category\n")
    if text.strip() or category:
        result = await site.db.search(
            text, filters=SearchFilters(categories=(category,) if category else ()), sort=SearchSort.NEWEST,
            limit=PAGE_SIZE,
        )  # fmt: skip
        entries: Sequence[Entry] = result.entries
    else:
        entries = await site.db.entries.list_newest(limit=PAGE_SIZE)
    base = site.base_url(request)
    title = " · ".join(part for part in (site.config.site_name, category, text.strip()) if part)
    channel = feeds.FeedChannel(
        title=title, link=f"{base}/", self_url=f"{base}{request.path_qs}", description=f"Newest entries: {title}"
    )
    body = feeds.render_rss(channel, await _feed_items(site, request, entries))
    return web.Response(body=body, content_type="application/rss+xml", charset="utf-8")


async def torznab_api(request: web.Request) -> web.Response:
    site = _site(request)
    settings = site.torznab_settings
    try:
        parsed = torznab.parse_request(request.query, settings, header_api_key=request.headers.get("X-Api-Key"))
        if parsed.function is torznab.TorznabFunction.CAPS:
            body = torznab.render_caps(settings)
        else:
            body = await _torznab_results(site, request, parsed)
    except torznab.TorznabError as error:
        body = error.to_xml()
    return web.Response(body=body, content_type="application/xml", charset="utf-8")


async def _torznab_results(site: Site, request: web.Request, parsed: torznab.TorznabRequest) -> bytes:
    query = parsed.query
    assert query is not None  # every function but caps has one
    filters = SearchFilters(categories=tuple(query.categories or ()))
    if query.selects_nothing:
        entries: Sequence[Entry] = ()
        total = 0
    elif query.needs_post_filter:
        candidates: list[Entry] = []
        while len(candidates) < query.candidate_limit:
            result = await site.db.search(
                query.text, filters=filters, sort=SearchSort.NEWEST, limit=MAX_PAGE_SIZE, offset=len(candidates)
            )
            candidates += result.entries
            if len(result.entries) < MAX_PAGE_SIZE:
                break
        page_entries, total = query.filter_and_page(candidates, lambda entry: entry.title)
        entries = list(page_entries)
    else:
        result = await site.db.search(
            query.text, filters=filters, sort=SearchSort.NEWEST if not query.text.strip() else SearchSort.RELEVANCE,
            limit=query.limit, offset=query.offset,
        )  # fmt: skip
        entries, total = result.entries, result.total
    base = site.base_url(request)
    channel = feeds.FeedChannel(title=site.config.site_name, link=f"{base}/", self_url=f"{base}/api",
                                description=site.config.site_name)  # fmt: skip
    return torznab.render_results(
        channel, await _feed_items(site, request, entries), parsed, site.torznab_settings, total=total
    )


# -- the site's tracker -------------------------------------------------------------------


def add_tracker_routes(app: web.Application, service: Any) -> None:
    """``/announce`` and ``/scrape`` answered by ``service`` (a ``TrackerService``) on the
    site's own address, its client address taken as the site's (trusted proxies included)."""

    async def tracker_endpoint(request: web.Request) -> web.Response:
        site = _site(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = (site.client_host(request), peer[1] if peer else 0)
        answer = service.http_request(request.method.encode(), request.raw_path.encode("latin-1"), client,
                                      request.headers.get("Authorization", "").encode("latin-1") or None)  # fmt: skip
        if asyncio.iscoroutine(answer):
            answer = await answer
        return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)

    for path in ("/announce", "/scrape", "/announce/{passkey}", "/scrape/{passkey}"):
        app.router.add_get(path, tracker_endpoint)


def random_secret() -> bytes:
    return secrets.token_bytes(32)
