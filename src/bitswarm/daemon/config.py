"""The daemon's settings: defaults, the TOML file of ``--config`` and the command line.

Unknown keys and wrong types are one clear error at start (``bitswarm.settings``). The RPC
listens on loopback by default, with Transmission's port, so remotes work unchanged; it
never ships a password (THREATS 4): authentication is on only when both ``rpc_username``
and ``rpc_password`` are set.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from bitswarm.dht.bootstrap import DEFAULT_BOOTSTRAP
from bitswarm.errors import UsageError
from bitswarm.settings import load_settings
from bitswarm.tracker.config import split_host_port

DEFAULT_RPC = "127.0.0.1:9091"
# Transmission's default peer port.
DEFAULT_PEER_PORT = 51413
MINUTES_PER_DAY = 24 * 60
# tr_sched_day: every day of the week.
ALL_DAYS = 127


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    rpc: str = DEFAULT_RPC
    download_dir: str = "~/Downloads"
    peer_port: int = DEFAULT_PEER_PORT
    # Addresses (or networks) that may use the RPC; empty: any that reaches the socket.
    rpc_whitelist: tuple[str, ...] = ("127.0.0.0/8", "::1")
    # Host names answered besides loopback names and addresses (DNS-rebinding guard).
    rpc_host_whitelist: tuple[str, ...] = ()
    rpc_username: str = ""
    rpc_password: str = ""
    # Failed logins per address before it is refused outright (for AUTH_BAN_S).
    rpc_max_auth_failures: int = 20
    # Request bodies: a torrent-add with a 10 MiB .torrent in base64 fits.
    rpc_max_body_bytes: int = 16 << 20
    dht: bool = True
    # Asked while the saved routing table gives no node; [] none.
    dht_bootstrap: tuple[str, ...] = DEFAULT_BOOTSTRAP
    lsd: bool = True
    pex: bool = True
    # Open the peer port on the home router (UPnP IGD, NAT-PMP, PCP).
    port_mapping: bool = True
    # uTP (BEP 29) on the DHT's UDP port, tried first when dialling a peer.
    utp: bool = True
    encryption: str = "prefer"
    # Bytes per second; 0: unlimited (session-set changes them at run time, kept in the state).
    max_down: int = 0
    max_up: int = 0
    download_queue_enabled: bool = True
    download_queue_size: int = 5
    seed_queue_enabled: bool = False
    seed_queue_size: int = 10
    seed_ratio_limited: bool = False
    seed_ratio_limit: float = 2.0
    idle_seeding_limit_enabled: bool = False
    idle_seeding_limit_min: int = 30
    # The alternative limits (kB/s) and their schedule (Transmission's alt-speed-time-*:
    # minutes after local midnight, and the days as tr_sched_day bits, Sunday = 1).
    alt_speed_down: int = 50
    alt_speed_up: int = 50
    alt_speed_time_enabled: bool = False
    alt_speed_time_begin: int = 540
    alt_speed_time_end: int = 1020
    alt_speed_time_day: int = 127
    # A folder whose .torrent and .magnet files are added (then renamed .added, or removed
    # with trash_original_torrent_files).
    watch_dir: str = ""
    watch_dir_enabled: bool = False
    trash_original_torrent_files: bool = False
    # Transmission's incomplete-dir: downloads live here until complete, then move to
    # their download folder.
    incomplete_dir: str = ""
    incomplete_dir_enabled: bool = False
    # Subscriptions polled by the daemon itself (``bitswarm.daemon.subscriptions``): the
    # folder of subscriptions.json and seen.sqlite3, "" for the state folder's
    # "subscriptions" (give ``bitswarm subscribe --state`` the same folder to share them).
    subscriptions_enabled: bool = True
    subscriptions_dir: str = ""

    def validate(self) -> DaemonConfig:
        try:
            split_host_port(self.rpc)
        except UsageError:
            raise UsageError(f"rpc: {self.rpc}: not HOST:PORT") from None
        if not 0 <= self.peer_port <= 65535:
            raise UsageError(f"peer_port: {self.peer_port}: not a port")
        for entry in self.rpc_whitelist:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise UsageError(f"rpc_whitelist: {entry!r} is not an address or network") from None
        if bool(self.rpc_username) != bool(self.rpc_password):
            raise UsageError("rpc_username and rpc_password go together")
        if self.encryption not in ("prefer", "require", "disable"):
            raise UsageError("encryption: one of prefer, require, disable")
        if min(self.download_queue_size, self.seed_queue_size, self.rpc_max_auth_failures) < 0:
            raise UsageError("queue sizes and limits must not be negative")
        if self.rpc_max_body_bytes < 1024:
            raise UsageError("rpc_max_body_bytes: at least 1024")
        if min(self.max_down, self.max_up) < 0:
            raise UsageError("max_down and max_up must not be negative")
        if not (0 <= self.alt_speed_time_begin <= MINUTES_PER_DAY and 0 <= self.alt_speed_time_end <= MINUTES_PER_DAY):
            raise UsageError(f"alt_speed_time_begin and alt_speed_time_end: minutes 0 to {MINUTES_PER_DAY}")
        if not 0 <= self.alt_speed_time_day <= ALL_DAYS:
            raise UsageError(f"alt_speed_time_day: a bit mask 0 to {ALL_DAYS} (Sunday = 1, Saturday = 64)")
        if min(self.alt_speed_down, self.alt_speed_up) < 0:
            raise UsageError("alt_speed_down and alt_speed_up must not be negative")
        if self.watch_dir_enabled and not self.watch_dir:
            raise UsageError("watch_dir_enabled needs watch_dir")
        if self.incomplete_dir_enabled and not self.incomplete_dir:
            raise UsageError("incomplete_dir_enabled needs incomplete_dir")
        return self


def load_daemon_config(path: Path | None, overrides: dict[str, object]) -> DaemonConfig:
    """Defaults, then the file at ``path``, then ``overrides`` (None values ignored), checked;
    raises UsageError naming the file and the key."""
    return load_settings(DaemonConfig(), path, overrides).validate()
