"""Tracker settings: defaults, the TOML file and the command line, checked in one place.

The file uses the command's long option names (``http``, ``udp``, ``store``) plus the
settings only an operator running for years needs. Unknown keys are errors, so a typo
never silently leaves a default in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bitswarm.errors import UsageError
from bitswarm.forwarded import TrustedProxies
from bitswarm.settings import apply_settings, read_toml

DEFAULT_PORT = 6969


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    # Empty tuple: that protocol is off. "[::]:6969" takes IPv4 too on a dual-stack host.
    http: tuple[str, ...] = (f"[::]:{DEFAULT_PORT}",)
    udp: tuple[str, ...] = (f"[::]:{DEFAULT_PORT}",)
    store: str = "memory"
    interval_s: int = 1800
    min_interval_s: int = 900
    # Two missed announces and a margin, as opentracker does.
    peer_timeout_s: int = 3900
    default_numwant: int = 50
    max_numwant: int = 200
    full_scrape: bool = True
    whitelist_file: str | None = None
    passkeys_file: str | None = None
    # No default: without a token the admin API is off (no default credentials).
    admin_token: str | None = None
    trust_ip_parameter: bool = False
    log_peer_addresses: bool = False
    # Per source address (the client's own behind trusted proxies). The burst lets a client
    # re-announce a thousand torrents at start-up at once; the rate, 50 a second, carries
    # 90,000 torrents announcing every 30 min behind one carrier-grade NAT address.
    rate_limit_per_s: float = 50.0
    rate_limit_burst: float = 1200.0
    # Several processes behind one address must share it so their UDP connection IDs agree.
    udp_secret: str | None = None
    # Reverse proxies (addresses or networks) whose X-Forwarded-For / X-Real-IP name the
    # client on HTTP; from any other address those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()

    def validate(self) -> TrackerConfig:
        if not self.http and not self.udp:
            raise UsageError("tracker: neither HTTP nor UDP is enabled")
        for address in (*self.http, *self.udp):
            split_host_port(address)
        if not self.store == "memory" and not self.store.startswith(("redis://", "rediss://", "unix://")):
            raise UsageError(f"tracker: store {self.store!r} is neither 'memory' nor a redis:// URL")
        if not 0 < self.min_interval_s <= self.interval_s or self.peer_timeout_s < self.interval_s:
            raise UsageError("tracker: need 0 < min_interval_s <= interval_s <= peer_timeout_s")
        if not 0 < self.default_numwant <= self.max_numwant <= 2000:
            raise UsageError("tracker: need 0 < default_numwant <= max_numwant <= 2000")
        if self.rate_limit_per_s <= 0 or self.rate_limit_burst < 1:
            raise UsageError("tracker: rate limits must be positive")
        TrustedProxies(self.trusted_proxies)  # raises on a bad address
        if self.udp_secret is not None and len(self.udp_secret) < 16:
            raise UsageError("tracker: udp_secret must be at least 16 characters")
        return self


def split_host_port(address: str) -> tuple[str, int]:
    """'HOST:PORT', '[V6]:PORT' or ':PORT' -> (host, port); an empty host means every address."""
    host, colon, port_text = address.rpartition(":")
    if not colon or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise UsageError(f"tracker: {address!r} is not HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port_text)


def load_config(text: str, *, source: str = "config") -> TrackerConfig:
    """A config from TOML text; raises UsageError naming the bad key."""
    return apply(TrackerConfig(), read_toml(text, source=source), source=source)


def apply(config: TrackerConfig, settings: dict[str, Any], *, source: str) -> TrackerConfig:
    """``config`` with ``settings`` applied; lists for addresses, types checked."""
    return apply_settings(config, settings, source=source)
