"""The site's settings: defaults, the TOML file of ``--config`` and the command line.

The defaults keep nothing about visitors: no addresses in logs or the database, rate
limits per address in memory only (``bitswarm.index.limits``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bitswarm.errors import UsageError
from bitswarm.forwarded import TrustedProxies
from bitswarm.metainfo import MAX_TORRENT_BYTES
from bitswarm.settings import load_settings
from bitswarm.tracker.config import split_host_port

# As entries store them (bitswarm.index.entries): they appear in URLs and feed parameters.
_CATEGORY = re.compile(r"[a-z0-9][a-z0-9._/-]{0,63}")
DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_DB = "sqlite:///bitswarm-index.db"
# Longer would leave an entry hidden by another process visible here too long.
MAX_ENTRY_PAGE_FRESH_S = 60.0


@dataclass(frozen=True, slots=True)
class IndexConfig:
    bind: str = DEFAULT_BIND
    db: str = DEFAULT_DB
    # The site's own tracker at /announce, /scrape and UDP on the bind port.
    tracker: bool = True
    site_name: str = "bitswarm index"
    # The site's address as visitors reach it (https://example.org), for feeds and the
    # tracker URL added to uploads; empty: taken from each request.
    public_url: str = ""
    # Host names answered besides loopback and the bound address (DNS-rebinding guard).
    allowed_hosts: tuple[str, ...] = ()
    # Signs sessions and CSRF tokens; several processes of one site must share it.
    # Empty: a random one per start (everyone is signed out by a restart).
    secret_key: str = ""
    # Torznab: an API key the operator sets; empty: the API is open, as the site is.
    api_key: str = ""
    # The site's tracker goes into uploaded torrents' announce lists (outside the info
    # dictionary: the info-hash does not change).
    add_site_tracker: bool = True
    categories: tuple[str, ...] = ("movies", "tv", "music", "books", "software", "games", "other")
    # Anyone may upload (no account needed); false: only signed-in accounts.
    open_uploads: bool = True
    # A .torrent of 10 MiB lists about 100,000 files; the strict reader takes up to 64 MiB.
    max_upload_bytes: int = 10 << 20
    max_files: int = 100_000
    uploads_per_hour: int = 30
    # Per address, in memory; generous, as many visitors may share one address (a NAT).
    searches_per_minute: int = 300
    # Proxies whose X-Forwarded-For names the visitor (``bitswarm.forwarded``).
    trusted_proxies: tuple[str, ...] = ()
    # Scrapes of the other trackers named in entries, for their live counts.
    scrape_other_trackers: bool = True
    # An entry page read its entry from the database less than this long ago is served
    # without reading it again. An edit, hide or delete made through this process shows at
    # once; one made through another process sharing the database, or by `bitswarm index`
    # commands, shows after at most this long. 0: read on every visit.
    entry_page_fresh_s: float = 5.0
    # Cookies only over HTTPS (behind a TLS-terminating proxy).
    secure_cookies: bool = False
    # Where the keys of encrypted bundles live (the key-encryption key that wraps every
    # bundle's key, the voucher signing key), made on first start; every process of the
    # site reads the same folder. Empty: beside a SQLite database (PATH.keys/); with
    # PostgreSQL, no bundles until it is set.
    bundle_keys_dir: str = ""
    # The mail server the e-mail gate sends its confirmation links through; empty: that
    # gate cannot open on this site.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = ""
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    # A payment provider for priced bundles (besides the site's own vouchers): its checkout
    # page, which the site sends buyers to with ?order=&amount=&return=, and the secret its
    # signed calls to /payments/webhook carry. Empty: vouchers only.
    payment_checkout_url: str = ""
    payment_webhook_secret: str = ""

    def bundle_keys_folder(self) -> Path | None:
        if self.bundle_keys_dir:
            return Path(self.bundle_keys_dir).expanduser()
        if self.db.startswith("sqlite:///"):
            return Path(self.db.removeprefix("sqlite:///") + ".keys")
        return None

    def validate(self) -> IndexConfig:
        try:
            split_host_port(self.bind)
        except UsageError:
            raise UsageError(f"--bind: {self.bind}: not HOST:PORT") from None
        TrustedProxies(self.trusted_proxies)
        if self.secret_key and len(self.secret_key) < 32:
            raise UsageError("index: secret_key must be at least 32 characters")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise UsageError("index: public_url must start with http:// or https://")
        if not self.categories or any(_CATEGORY.fullmatch(name) is None for name in self.categories):
            raise UsageError("index: categories are lower-case slugs such as 'movies' or 'tv/hd'")
        if not 0 < self.max_upload_bytes <= MAX_TORRENT_BYTES:
            raise UsageError(f"index: max_upload_bytes is at most {MAX_TORRENT_BYTES}")
        if min(self.max_files, self.uploads_per_hour, self.searches_per_minute) <= 0:
            raise UsageError("index: limits must be positive")
        if not 0 <= self.entry_page_fresh_s <= MAX_ENTRY_PAGE_FRESH_S:
            raise UsageError(f"index: entry_page_fresh_s is between 0 and {MAX_ENTRY_PAGE_FRESH_S:.0f}")
        return self


def load_index_config(path: Path | None, overrides: dict[str, object]) -> IndexConfig:
    """Defaults, then the file at ``path``, then ``overrides`` (None values ignored), checked."""
    return load_settings(IndexConfig(), path, overrides).validate()
