"""Signed session cookies: who is signed in, kept by the browser, not by the server.

The cookie holds an account id and role, signed with the server's secret (itsdangerous,
HMAC-SHA256) and timestamped, so it cannot be forged or kept alive past ``max_age_s``;
``HttpOnly`` keeps it from scripts and ``SameSite=Lax`` from other sites' forms. Nothing
about the visitor is stored server-side.
"""

from __future__ import annotations

from dataclasses import dataclass

import itsdangerous
from aiohttp import web

COOKIE_NAME = "bitswarm_session"
DEFAULT_MAX_AGE_S = 14 * 24 * 3600
MAX_COOKIE_CHARS = 512


@dataclass(frozen=True, slots=True)
class SignedIn:
    account_id: int
    name: str
    role: str


class SessionCookies:
    def __init__(self, secret: bytes, *, max_age_s: int = DEFAULT_MAX_AGE_S, secure_cookie: bool = False) -> None:
        self._serializer = itsdangerous.URLSafeTimedSerializer(secret, salt="bitswarm-session")
        self._max_age_s = max_age_s
        self._secure_cookie = secure_cookie

    def read(self, request: web.Request) -> SignedIn | None:
        """The signed-in account, or None (no cookie, a forged or expired one)."""
        cookie = request.cookies.get(COOKIE_NAME)
        if not cookie or len(cookie) > MAX_COOKIE_CHARS:
            return None
        try:
            account_id, name, role = self._serializer.loads(cookie, max_age=self._max_age_s)
        except (itsdangerous.BadData, TypeError, ValueError):
            return None
        if not (isinstance(account_id, int) and isinstance(name, str) and isinstance(role, str)):
            return None
        return SignedIn(account_id, name, role)

    def sign_in(self, response: web.StreamResponse, who: SignedIn) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self._serializer.dumps([who.account_id, who.name, who.role]),
            max_age=self._max_age_s,
            httponly=True,
            samesite="Lax",
            secure=self._secure_cookie,
            path="/",
        )

    def sign_out(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE_NAME, path="/")
