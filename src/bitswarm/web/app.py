"""The app factory every bitswarm web app starts from: security, templates, static files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import jinja2
from aiohttp import web

from bitswarm.web.security import HostAllowList, security_middleware

STATIC_FOLDER = Path(__file__).parent / "static"
TEMPLATES_FOLDER = Path(__file__).parent / "templates"
# Request bodies (forms) larger than this are refused with 413: no page needs more (an
# app that takes uploads says how much it takes).
MAX_BODY_BYTES = 1 << 20
TEMPLATES_KEY = web.AppKey("templates", jinja2.Environment)


def create_app(
    *, allowed_hosts: Iterable[str] = (), template_folders: Iterable[Path] = (), max_body_bytes: int = MAX_BODY_BYTES
) -> web.Application:
    """An aiohttp app that answers only allowed hosts (``HostAllowList``), sets the security
    headers on every answer, serves ``/static/``, and renders Jinja2 templates from
    ``template_folders`` then the shared ones, autoescaped."""
    app = web.Application(
        middlewares=[security_middleware(HostAllowList(allowed_hosts))], client_max_size=max_body_bytes
    )
    loader = jinja2.FileSystemLoader([*template_folders, TEMPLATES_FOLDER])
    # auto_reload off: the templates ship with the package, and checking each one's mtime
    # on every render was a stat() per template per request (bench/index_bench.py).
    app[TEMPLATES_KEY] = jinja2.Environment(
        loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False
    )
    app.router.add_static("/static/", STATIC_FOLDER, follow_symlinks=False)
    # Browsers ask for /favicon.ico on pages that name no icon (a feed shown as XML): an
    # answer keeps a 404 out of their consoles.
    app.router.add_get("/favicon.ico", _favicon)
    return app


async def _favicon(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_FOLDER / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


def render(request: web.Request, template: str, **context: object) -> web.Response:
    """A page from ``template`` (autoescaped), as text/html."""
    html = request.app[TEMPLATES_KEY].get_template(template).render(**context)
    return web.Response(text=html, content_type="text/html", charset="utf-8")
