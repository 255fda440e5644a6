"""Security rules every bitswarm web app applies: which Host it answers, and headers.

A local server is reachable from any web page the user opens (THREATS 4, 13): a page on
an attacker's name that resolves to 127.0.0.1 (DNS rebinding) reaches it with a Host
header naming the attacker's domain. So a request is answered only when its Host names a
loopback address, ``localhost``, the address the server is bound to, or a name the
operator allowed; anything else gets 403. Every answer carries a Content-Security-Policy
that forbids inline and foreign scripts, and headers that keep pages out of frames and
referrers out of other sites' logs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from bitswarm.web.hosts import host_name, is_loopback_host

# Scripts and styles from this server only, no inline code, no frames, no plugins; media
# from this server (the player page plays what the server streams).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with that policy a browser sends ``Origin: null`` on the site's own
    # form posts, which the CSRF check refuses as foreign (every form failed in chromium).
    # "same-origin" still keeps referrers out of other sites' logs.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class HostAllowList:
    """Host names a server answers to: loopback always, plus ``extra`` (the bound address
    when it is not loopback, names the operator allowed)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = frozenset(name.lower().strip("[]").rstrip(".") for name in extra)

    def allows(self, host_header: str | None) -> bool:
        name = host_name(host_header or "")
        return name is not None and (is_loopback_host(name) or name in self.extra)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def security_middleware(hosts: HostAllowList) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not hosts.allows(request.headers.get("Host")):
            raise web.HTTPForbidden(text="403: this server does not answer that host\n", headers=SECURITY_HEADERS)
        try:
            response = await handler(request)
        except web.HTTPException as error:
            error.headers.update(SECURITY_HEADERS)
            raise
        # A streamed response has sent its headers already; they were set before it started.
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    return middleware
