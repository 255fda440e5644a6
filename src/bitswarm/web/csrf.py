"""CSRF protection for forms: a token bound to a random per-browser cookie.

Another site can make a visitor's browser send a form here, with the visitor's cookies,
but it can read neither our cookie nor our pages, so it cannot know the token. The token
is an HMAC of the cookie under the server's secret: nothing is stored per visitor, and
several processes sharing the secret accept each other's tokens. A request that changes
anything (any method but GET, HEAD and OPTIONS) without a valid token gets 403; so does
one whose ``Origin`` names another site.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

COOKIE_NAME = "bitswarm_csrf"
FORM_FIELD = "csrf_token"
HEADER_NAME = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_NEW_COOKIE_KEY = web.RequestKey("csrf_new_cookie", str)


class CsrfProtection:
    """Issues tokens for pages and checks them on requests that change something."""

    def __init__(self, secret: bytes, *, secure_cookie: bool = False, api_header: str | None = None) -> None:
        self._secret = secret
        self._secure_cookie = secure_cookie
        # Programs (not browsers) send this header with their own credentials: another
        # site's page cannot add a custom header without a CORS preflight, which these
        # servers never grant, so such a request is not a forged form.
        self._api_header = api_header

    def token(self, request: web.Request) -> str:
        """The token a form on this page carries (the cookie is set with the response)."""
        cookie = request.cookies.get(COOKIE_NAME) or request.get(_NEW_COOKIE_KEY)
        if not cookie or not _well_formed(cookie):
            cookie = secrets.token_urlsafe(32)
            request[_NEW_COOKIE_KEY] = cookie
        return self._sign(cookie)

    def valid(self, request: web.Request, token: str | None) -> bool:
        cookie = request.cookies.get(COOKIE_NAME)
        if not cookie or not token or not _well_formed(cookie):
            return False
        return hmac.compare_digest(self._sign(cookie), token)

    def _sign(self, cookie: str) -> str:
        return hmac.new(self._secret, cookie.encode(), hashlib.sha256).hexdigest()

    def middleware(self) -> Middleware:
        @web.middleware
        async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method not in SAFE_METHODS:
                origin = request.headers.get("Origin")
                if origin is not None and not _same_site(origin, request.host):
                    raise web.HTTPForbidden(text="403: a form from another site\n")
                token = request.headers.get(HEADER_NAME)
                is_program = self._api_header is not None and self._api_header in request.headers
                if token is None and request.content_type in FORM_TYPES and not is_program:
                    field = (await request.post()).get(FORM_FIELD)
                    token = field if isinstance(field, str) else None
                if not is_program and not self.valid(request, token):
                    raise web.HTTPForbidden(text="403: the form expired or came from another site; reload the page\n")
            response = await handler(request)
            new_cookie = request.get(_NEW_COOKIE_KEY)
            if new_cookie is not None and not response.prepared:
                response.set_cookie(
                    COOKIE_NAME, new_cookie, httponly=True, samesite="Strict", secure=self._secure_cookie, path="/"
                )
            return response

        return check


def _well_formed(cookie: str) -> bool:
    return 20 <= len(cookie) <= 100 and cookie.isascii()


def _same_site(origin: str, host: str) -> bool:
    """``Origin`` (scheme://host[:port]) names the host this request was sent to."""
    _scheme, separator, authority = origin.partition("://")
    return bool(separator) and authority.lower() == host.lower()
