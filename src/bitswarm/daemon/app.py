"""The daemon's HTTP side: ``/transmission/rpc`` with Transmission's HTTP rules, exactly.

In order, as a request meets them:

1. an address outside ``rpc_whitelist`` gets 403;
2. a ``Host`` that is neither a loopback name or address, the bound address, nor one the
   operator allowed gets 421 (DNS rebinding, CVE-2018-5702);
3. with authentication configured, missing or wrong Basic credentials get 401; an address
   that failed ``rpc_max_auth_failures`` times is refused (403) for ``AUTH_BAN_S``;
4. a request without the current ``X-Transmission-Session-Id`` (a body-less POST too, as
   Sonarr probes) gets 409 carrying the id: a page on another site can send a POST but
   cannot read the id, so it cannot change anything (CSRF);
5. a body over ``rpc_max_body_bytes`` gets 413.

Every answer carries the shared security headers (``bitswarm.web.security``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import secrets
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from aiohttp import web

from bitswarm.daemon.config import DaemonConfig
from bitswarm.daemon.jsonrpc import RPC_VERSION_SEMVER as JSONRPC_VERSION_SEMVER
from bitswarm.daemon.rpc import TransmissionRpc
from bitswarm.web.security import SECURITY_HEADERS, HostAllowList

if TYPE_CHECKING:
    from bitswarm.daemon.subscriptions import SubscriptionPoller

RPC_PATH = "/transmission/rpc"
SESSION_ID_HEADER = "X-Transmission-Session-Id"
# Transmission 4 refuses an address after repeated failures until restart; a timed ban
# keeps a mistyped password from locking its owner out for good.
AUTH_BAN_S = 15 * 60.0
# Addresses whose failures are remembered; past it the oldest is forgotten (bounded memory).
MAX_TRACKED_ADDRESSES = 10_000


class AuthFailures:
    """Failed logins per address within ``AUTH_BAN_S``, bounded in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def is_banned(self, address: str, now: float) -> bool:
        count, since = self._failures.get(address, (0, now))
        if now - since > AUTH_BAN_S:
            self._failures.pop(address, None)
            return False
        return self.limit > 0 and count >= self.limit

    def failed(self, address: str, now: float) -> None:
        count, since = self._failures.pop(address, (0, now))
        self._failures[address] = (count + 1, since)
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


class RpcEndpoint:
    """The aiohttp handler: the HTTP checks, then the body to ``TransmissionRpc``."""

    def __init__(self, rpc: TransmissionRpc, config: DaemonConfig, bound_host: str) -> None:
        self.rpc = rpc
        self.session_id = rpc.session_id
        self.bound_host = bound_host
        self.configure(config)

    def configure(self, config: DaemonConfig) -> None:
        """The config's rules from now on (SIGHUP)."""
        self.config = config
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in config.rpc_whitelist]
        extra = list(config.rpc_host_whitelist)
        if self.bound_host not in ("", "0.0.0.0", "::"):  # noqa: S104 - a name to compare, not a bind
            extra.append(self.bound_host)
        self.hosts = HostAllowList(extra)
        self.failures = AuthFailures(config.rpc_max_auth_failures)

    def _address_allowed(self, remote: str | None) -> bool:
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address((remote or "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def _credentials_ok(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        user, _, password = decoded.partition(":")
        good_user = hmac.compare_digest(user.encode(), self.config.rpc_username.encode())
        good_password = hmac.compare_digest(password.encode(), self.config.rpc_password.encode())
        return good_user and good_password

    def refusal(self, request: web.Request) -> web.Response | None:
        """The answer to an address, Host or credentials refused (None: go on); the web UI
        asks the same, so one login covers both."""
        remote = request.remote or ""
        if not self._address_allowed(remote):
            return _text(403, "403: Unauthorized IP Address. Add it to rpc_whitelist in the config.")
        if not self.hosts.allows(request.headers.get("Host")):
            return _text(421, "421: Misdirected Request: this server does not answer that host name.")
        if self.config.rpc_username:
            now = time.monotonic()
            if self.failures.is_banned(remote, now):
                return _text(403, "403: Too many failed logins from this address; try again later.")
            if not self._credentials_ok(request.headers.get("Authorization")):
                self.failures.failed(remote, now)
                response = _text(401, "401: Unauthorized User")
                response.headers["WWW-Authenticate"] = 'Basic realm="Transmission"'
                return response
            self.failures.succeeded(remote)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        refused = self.refusal(request)
        if refused is not None:
            return refused
        given = request.headers.get(SESSION_ID_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.session_id.encode()):
            response = _text(409, "409: Conflict. Send the X-Transmission-Session-Id header this answer carries.")
            response.headers[SESSION_ID_HEADER] = self.session_id
            # Transmission 4.1: the semver tells a client that JSON-RPC 2.0 is understood here.
            response.headers["X-Transmission-Rpc-Version"] = JSONRPC_VERSION_SEMVER
            return response
        if request.method != "POST":
            return _text(405, "405: the RPC takes POST")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _text(413, f"413: request bodies are at most {self.config.rpc_max_body_bytes} bytes")
        answer = await self.rpc.handle(body)
        if answer is None:  # JSON-RPC notifications only: nothing to say (Transmission 4.1: 204)
            return web.Response(status=204, headers={**SECURITY_HEADERS, SESSION_ID_HEADER: self.session_id})
        return web.Response(
            body=json.dumps(answer).encode(),
            content_type="application/json",
            charset="utf-8",
            headers={**SECURITY_HEADERS, SESSION_ID_HEADER: self.session_id},
        )


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=SECURITY_HEADERS)


def new_session_id() -> str:
    return secrets.token_urlsafe(36)


def create_daemon_app(endpoint: RpcEndpoint, subscriptions: SubscriptionPoller | None = None) -> web.Application:
    """The daemon's aiohttp app: the RPC, its path's GET as the 409 probe, and the web UI
    (its Subscriptions page edits ``subscriptions``; without them it says so)."""
    app = web.Application(client_max_size=endpoint.config.rpc_max_body_bytes)
    app.router.add_route("*", RPC_PATH, endpoint.handle)
    app.router.add_route("*", RPC_PATH + "/", endpoint.handle)
    from bitswarm.daemon.ui import WebUi  # noqa: PLC0415 - the UI module imports this one

    WebUi(endpoint, subscriptions).install(app)
    return app
