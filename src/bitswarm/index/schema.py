"""The index's tables as SQLAlchemy Core sees them (the migrations under ``migrations/``
create them; a test checks that the two agree).

``entries`` holds one listed torrent each: its info-hashes as lowercase hex (``NULL`` for
the version it lacks; unique where present), what the uploader wrote, sizes and counts read
from the metainfo (``NULL`` while a magnet-only entry waits for its metadata), and the
.torrent bytes exactly as uploaded. ``entry_files`` keeps at most ``MAX_STORED_FILES`` file
rows per entry; ``entries.file_count`` and ``total_size`` stay exact. The full-text table
(``entry_search``) differs per engine and is reached through ``bitswarm.index.search``.
No table holds an IP address or a user agent.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("info_hash_v1", sa.String(40), unique=True),
    sa.Column("info_hash_v2", sa.String(64), unique=True),
    # BEP 52: v2 swarms announce and scrape with the SHA-256 cut to 20 bytes.
    sa.Column("info_hash_v2_short", sa.String(40), index=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.String(64), index=True),
    # Space-separated (a tag holds no space).
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("total_size", sa.BigInteger, index=True),
    sa.Column("file_count", sa.Integer),
    sa.Column("piece_length", sa.BigInteger),
    sa.Column("magnet", sa.Text, nullable=False),
    # Tiers of announce URLs ([["udp://..."], [...]]) and web seed URLs.
    sa.Column("trackers", sa.JSON, nullable=False),
    sa.Column("web_seeds", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("is_hidden", sa.Boolean, nullable=False),
    # Unix seconds (UTC).
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_entries_created_at_id", "created_at", "id"),
    # Few entries are hidden: a search finds which of its candidates are without reading
    # each one's row.
    sa.Index("ix_entries_hidden", "id", postgresql_where=sa.text("is_hidden"), sqlite_where=sa.text("is_hidden")),
    # Ids are never reused (SQLite would reuse the highest after a delete): links and
    # feed items name entries by id.
    sqlite_autoincrement=True,
)

# The .torrent bytes, apart from their entry: a 12 KB value inside the entry's row put every
# column after it (the hidden flag, the state) behind overflow pages on SQLite, read for
# each search candidate (bench/RESULTS.md, the index at a million entries).
entry_torrents = sa.Table(
    "entry_torrents",
    metadata,
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("torrent", sa.LargeBinary, nullable=False),
)

entry_files = sa.Table(
    "entry_files",
    metadata,
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    # The path's elements joined by '/', the torrent's name first (as ``bitswarm info``).
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)

# An operator or an uploader: a name, a role and an Argon2id hash; nothing else.
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# What a visitor reported about an entry; not who reported it.
reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("is_closed", sa.Boolean, nullable=False),
)

# What other trackers answered to the site's scrapes (``bitswarm.index.counts``): one row
# per swarm (20-byte scrape info-hash, hex) and tracker (SHA-256 hex of its scrape target).
swarm_counts = sa.Table(
    "swarm_counts",
    metadata,
    sa.Column("info_hash", sa.String(40), primary_key=True),
    sa.Column("tracker", sa.String(64), primary_key=True),
    sa.Column("seeders", sa.BigInteger, nullable=False),
    sa.Column("leechers", sa.BigInteger, nullable=False),
    sa.Column("completed", sa.BigInteger, nullable=False),
    # Unix seconds (UTC) of the answer.
    sa.Column("checked_at", sa.BigInteger, nullable=False, index=True),
)

# Encrypted bundles published on the site (``bitswarm.index.bundles``): an entry whose
# torrent is a bundle, its gate's terms, and its content key wrapped under the site's
# key-encryption key (bound to its kind, its entry and its owner).
bundles = sa.Table(
    "bundles",
    metadata,
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False, index=True),
    # free, email, price or crowdfund; prices as decimal text ("9.95"), never floats.
    sa.Column("gate", sa.String(16), nullable=False),
    sa.Column("price", sa.String(16)),
    sa.Column("goal_count", sa.Integer),
    sa.Column("deadline", sa.BigInteger),
    sa.Column("campaign_state", sa.String(16)),
    sa.Column("share_rate", sa.String(16), nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    # The artist's own copy, wrapped under their account's master key (their password
    # opens it; the site alone cannot).
    sa.Column("owner_wrapped_key", sa.LargeBinary),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Each sale once (a voucher's serial or the provider's payment id), split exactly.
bundle_sales = sa.Table(
    "bundle_sales",
    metadata,
    sa.Column("reference", sa.String(80), primary_key=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("gross", sa.String(16), nullable=False),
    sa.Column("platform", sa.String(16), nullable=False),
    sa.Column("artist", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Whoever was given a bundle's key (a buyer, a confirmed address, a backer): a page reached
# by a random token (its hash stored) and a tracker passkey that names the grant, not a
# person, so a leaked torrent leads to the purchase that leaked it.
bundle_grants = sa.Table(
    "bundle_grants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("reference", sa.String(80), nullable=False, unique=True),
    sa.Column("token_digest", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("passkey", sa.String(40), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# The e-mail gate: one row per address asked for a bundle. The address is kept as a keyed
# hash (``bitswarm.bundle.email_gate``); in clear only when its owner agreed that the
# artist may have it, for the artist's export. The token of the confirmation link is
# stored hashed and expires.
bundle_emails = sa.Table(
    "bundle_emails",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("address_digest", sa.LargeBinary(32), nullable=False),
    sa.Column("address", sa.String(254)),
    sa.Column("token_digest", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("confirmed_at", sa.BigInteger),
    sqlite_autoincrement=True,
)

# Crowdfunding pledges (paid with vouchers): the backer's page is reached by a random token
# (its hash stored); released once the goal is met (a grant with a passkey each), or marked
# for refund when the deadline passes first.
bundle_pledges = sa.Table(
    "bundle_pledges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("reference", sa.String(80), nullable=False, unique=True),
    sa.Column("amount", sa.String(16), nullable=False),
    sa.Column("token_digest", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# Checkouts at a payment provider: the buyer's page (a token, its hash stored) waits for the
# provider's signed call naming the order; each provider event is taken once.
bundle_orders = sa.Table(
    "bundle_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("order_ref", sa.String(40), nullable=False, unique=True),
    sa.Column("token_digest", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("payment_reference", sa.String(80)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

payment_events = sa.Table(
    "payment_events",
    metadata,
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# An account's keys (``bitswarm.bundle.keys.AccountKeys``): the master key wrapped under a
# key derived from the password, the salt and the login verifier's hash. A password change
# replaces this row alone.
account_keys = sa.Table(
    "account_keys",
    metadata,
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("sealed_keys", sa.LargeBinary, nullable=False),
)
