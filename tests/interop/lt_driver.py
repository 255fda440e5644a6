#!/usr/bin/python3
"""Drive libtorrent (Debian's python3-libtorrent 2.0) for the interop tests.

Our own code runs on a Python that cannot import libtorrent, so `tests/interop/tools.py`
runs this script as a subprocess of `/usr/bin/python3`:

    /usr/bin/python3 tests/interop/lt_driver.py version
    /usr/bin/python3 tests/interop/lt_driver.py info TORRENT
    /usr/bin/python3 tests/interop/lt_driver.py create PATH OUT --format v1|v2|hybrid
        [--piece-length BYTES] [--tracker URL]...
    /usr/bin/python3 tests/interop/lt_driver.py check TORRENT SAVE_PATH [--timeout S]
    /usr/bin/python3 tests/interop/lt_driver.py download TORRENT SAVE_PATH [--timeout S] [--hold]
        [--interface ADDRESS] [--encryption enabled|required]
    /usr/bin/python3 tests/interop/lt_driver.py seed TORRENT SAVE_PATH [--timeout S]
        [--encryption enabled|required]
    /usr/bin/python3 tests/interop/lt_driver.py dht [--bootstrap HOST:PORT]... [--torrent T --save-path P]
        [--timeout S]
    /usr/bin/python3 tests/interop/lt_driver.py dht-download TORRENT|MAGNET SAVE_PATH --bootstrap HOST:PORT...
        [--keep-trackers] [--max-down BYTES_PER_S] [--timeout S]
    /usr/bin/python3 tests/interop/lt_driver.py lsd TORRENT SAVE_PATH --interface ADDRESS [--pex] [--timeout S]
    /usr/bin/python3 tests/interop/lt_driver.py lsd-magnet INFO_HASH SAVE_PATH --interface ADDRESS [--timeout S]
    /usr/bin/python3 tests/interop/lt_driver.py seed-here TORRENT SAVE_PATH [--max-up BYTES_PER_S] [--timeout S]
        [--utp-only]
    /usr/bin/python3 tests/interop/lt_driver.py download-from TORRENT SAVE_PATH --peer HOST:PORT [--utp-only]
        [--timeout S]

Each command prints one JSON object on stdout and exits 0. On failure it prints
`{"error": "..."}` on stdout, one line `lt_driver: ...` on stderr, and exits 1.
`download --hold`, `seed`, `seed-here`, `dht` and `lsd` are the exceptions: they print one JSON line
per stage and wait for a line on stdin after each (see `cmd_download`, `cmd_seed`, `cmd_seed_here`,
`cmd_dht` and `cmd_lsd`).

What libtorrent 2.0.8 does during `check`, and how this script keeps it honest:

- The torrent is added without resume data and without `seed_mode`/`no_verify_files`, so
  every piece is hashed from disk. If none of the files exist, libtorrent skips hashing
  and reports every piece missing, which is the correct answer.
- A missing or truncated file is not an error: the pieces that touch it fail, the rest
  pass. A file longer than the torrent says is read only up to its length (libtorrent
  posts `oversized_file_alert`) and is not truncated.
- When its storage starts, libtorrent creates every missing zero-byte file of the torrent
  (and the directories above them) in the save path. Giving those files priority 0 stops
  that; they hold no bytes, so no piece reads them (or a part file in their place).
- Trackers and web seeds are overridden with empty lists, DHT, LSD, PEX, UPnP and NAT-PMP
  are off, the session listens on 127.0.0.1 only, and `stop_when_ready` pauses the torrent
  as soon as checking ends, so nothing is announced or downloaded.
- The save path is listed (path, kind, size, mtime) before and after; any difference
  makes the command fail, so a test never trusts a check that changed its own input.
"""

import argparse
import faulthandler
import hashlib
import importlib
import json
import os
import re
import select
import stat
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, NoReturn

DEFAULT_TIMEOUT_S = 60.0
# Upper bound for one wait_for_alert call, so the deadline is re-checked regularly.
ALERT_POLL_MS = 200

FORMATS = ("v1", "v2", "hybrid")
LOOPBACK = "127.0.0.1"
ENCRYPTION_MODES = ("enabled", "required")
ENCRYPTION_HELP = "MSE: libtorrent's default (enabled), or required (RC4 only, both ways)"
# peer_info::utp_socket, which the 2.0 bindings do not export: bit 17 of the flags, between
# i2p_socket and ssl_socket (rc4_encrypted, which they do export, is bit 19).
UTP_SOCKET_FLAG = 1 << 17
ENCRYPTION_RANK = {"none": 0, "plaintext": 1, "rc4": 2}


class DriverError(Exception):
    """A failure this script reports as one line and exit status 1."""


class _Parser(argparse.ArgumentParser):
    # argparse exits with status 2 on usage errors; the driver's contract is status 1.
    def error(self, message: str) -> NoReturn:
        raise DriverError(f"usage: {message}")


def _import_libtorrent() -> ModuleType:
    try:
        return importlib.import_module("libtorrent")
    except ImportError as exc:
        raise DriverError(f"{sys.executable} cannot import libtorrent ({exc}); install python3-libtorrent") from exc


def _hex_or_none(digest: Any, present: bool) -> str | None:
    return str(digest) if present else None


def _hashes(ti: Any) -> dict[str, str | None]:
    hashes = ti.info_hashes()
    return {
        "info_hash_v1": _hex_or_none(hashes.v1, hashes.has_v1()),
        "info_hash_v2": _hex_or_none(hashes.v2, hashes.has_v2()),
    }


def _load(lt: ModuleType, path: str) -> Any:
    # torrent_info(path) keeps the trackers inside the torrent_info; load_torrent_file()
    # would move them into add_torrent_params, where override_trackers cannot drop them.
    try:
        return lt.torrent_info(path)
    except RuntimeError as exc:
        raise DriverError(f"{path}: libtorrent rejected the torrent: {exc}") from exc


def cmd_version(lt: ModuleType, _args: argparse.Namespace) -> dict[str, Any]:
    return {"libtorrent_version": lt.__version__, "python": sys.version.split()[0]}


def cmd_info(lt: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    ti = _load(lt, args.torrent)
    storage = ti.files()
    pad_flag = lt.file_storage.flag_pad_file
    files = [
        {
            "path": storage.file_path(index),
            "size": storage.file_size(index),
            "pad": bool(storage.file_flags(index) & pad_flag),
        }
        for index in range(storage.num_files())
    ]
    tiers: dict[int, list[str]] = {}
    for entry in ti.trackers():
        tiers.setdefault(entry.tier, []).append(entry.url)
    return {
        **_hashes(ti),
        "name": ti.name(),
        "num_pieces": ti.num_pieces(),
        "piece_length": ti.piece_length(),
        # libtorrent's total includes pad files (v2 and hybrid align every file to a piece).
        "total_size": ti.total_size(),
        "content_size": sum(f["size"] for f in files if not f["pad"]),
        "files": files,
        # libtorrent shuffles the URLs inside each tier as it loads them (BEP 12), so the
        # order inside a tier is not the file's; sort it to keep the output deterministic.
        "trackers": [sorted(tiers[tier]) for tier in sorted(tiers)],
        "web_seeds": [seed["url"] for seed in ti.web_seeds()],
        "private": bool(ti.priv()),
    }


def _walk_files(root: str) -> list[tuple[str, int]]:
    """Return (path relative to root's parent, size) for every regular file under root.

    The order is by path components, byte-wise: the order of a v2 file tree, so a v1
    torrent of the same directory lists its files in the same order.
    """
    base = os.path.basename(os.path.normpath(root))
    if os.path.isfile(root):
        return [(base, os.path.getsize(root))]
    found: list[tuple[tuple[bytes, ...], str, int]] = []
    for directory, _dirs, names in os.walk(root, onerror=_raise):
        for name in names:
            full = os.path.join(directory, name)
            if os.path.islink(full) or not os.path.isfile(full):
                raise DriverError(f"{full}: not a regular file")
            rel = os.path.relpath(full, os.path.dirname(os.path.normpath(root)))
            parts = tuple(p.encode("utf-8", "surrogateescape") for p in rel.split(os.sep))
            found.append((parts, "/".join(rel.split(os.sep)), os.path.getsize(full)))
    if not found:
        raise DriverError(f"{root}: no files to put in a torrent")
    return [(rel, size) for _parts, rel, size in sorted(found)]


def _raise(exc: OSError) -> NoReturn:
    raise exc


def cmd_create(lt: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    source = os.path.abspath(args.path)
    if not os.path.exists(source):
        raise DriverError(f"{source}: no such file or directory")
    storage = lt.file_storage()
    for rel, size in _walk_files(source):
        storage.add_file(rel, size)
    flags = {
        "v1": lt.create_torrent.v1_only,
        "v2": lt.create_torrent.v2_only,
        "hybrid": 0,  # libtorrent 2.0 makes hybrid torrents unless told otherwise
    }[args.format]
    try:
        creator = lt.create_torrent(storage, args.piece_length, flags=flags)
    except RuntimeError as exc:
        raise DriverError(f"create_torrent: {exc}") from exc
    for tier, url in enumerate(args.tracker):
        creator.add_tracker(url, tier)
    lt.set_piece_hashes(creator, os.path.dirname(os.path.normpath(source)))
    entry = creator.generate()
    # The creation date is outside the info dict; dropping it makes OUT byte-for-byte
    # reproducible.
    entry.pop(b"creation date", None)
    with open(args.out, "wb") as out:
        out.write(lt.bencode(entry))
    ti = _load(lt, args.out)
    return {**_hashes(ti), "num_pieces": ti.num_pieces(), "piece_length": ti.piece_length()}


def _snapshot(root: str) -> dict[str, tuple[str, int, int]]:
    """Map root and every path under it to (kind, size, mtime_ns)."""

    def entry(full: str) -> tuple[str, int, int]:
        st = os.lstat(full)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        return (kind, st.st_size, st.st_mtime_ns)

    listing = {".": entry(root)}
    for directory, dirs, names in os.walk(root, onerror=_raise):
        for name in [*dirs, *names]:
            full = os.path.join(directory, name)
            listing[os.path.relpath(full, root)] = entry(full)
    return listing


def _session_settings(lt: ModuleType, interface: str = LOOPBACK) -> dict[str, Any]:
    return {
        "listen_interfaces": f"{interface}:0",
        "outgoing_interfaces": interface,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "alert_mask": int(lt.alert_category.status | lt.alert_category.error | lt.alert_category.storage),
    }


def cmd_check(lt: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    save_path = os.path.abspath(args.save_path)
    if not os.path.isdir(save_path):
        raise DriverError(f"{save_path}: save path is not a directory")
    ti = _load(lt, args.torrent)
    storage = ti.files()
    pad_flag = lt.file_storage.flag_pad_file

    params = lt.add_torrent_params()
    params.ti = ti
    params.save_path = save_path
    params.storage_mode = lt.storage_mode_t.storage_mode_sparse
    params.trackers = []
    params.url_seeds = []
    params.http_seeds = []
    flags = lt.torrent_flags
    # No paused/auto_managed: the torrent checks at once, then stop_when_ready pauses it.
    params.flags = (
        flags.stop_when_ready
        | flags.override_trackers
        | flags.override_web_seeds
        | flags.disable_dht
        | flags.disable_lsd
        | flags.disable_pex
    )
    # Priority 0 keeps libtorrent from creating missing zero-byte files (see the docstring).
    params.file_priorities = [
        0 if storage.file_size(i) == 0 and not storage.file_flags(i) & pad_flag else 4
        for i in range(storage.num_files())
    ]

    before = _snapshot(save_path)
    deadline = time.monotonic() + args.timeout
    session = lt.session(_session_settings(lt))
    try:
        handle = session.add_torrent(params)
        _wait_until_checked(lt, session, handle, deadline, args.timeout)
        status = handle.status()
        pieces = [bool(have) for have in status.pieces]
        session.remove_torrent(handle)
    finally:
        # The session's destructor waits for libtorrent's disk threads to stop, so the
        # snapshot below sees everything libtorrent did to the save path.
        del session
    if len(pieces) != ti.num_pieces():
        raise DriverError(f"libtorrent reported {len(pieces)} pieces, torrent has {ti.num_pieces()}")
    after = _snapshot(save_path)
    if before != after:
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        raise DriverError(f"libtorrent changed the save path {save_path}: {changed}")
    return {"pieces": pieces, "num_pieces": len(pieces)}


def _wait_until_checked(lt: ModuleType, session: Any, handle: Any, deadline: float, timeout_s: float) -> None:
    """Return once libtorrent posts torrent_checked_alert for handle.

    Raises DriverError on a torrent or file error, or when the deadline passes.
    """
    failures = (lt.torrent_error_alert, lt.file_error_alert, lt.fastresume_rejected_alert)
    while True:
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            state = handle.status().state
            raise DriverError(f"checking did not finish within {timeout_s} s (state {state})")
        session.wait_for_alert(min(ALERT_POLL_MS, max(1, int(remaining_s * 1000))))
        for alert in session.pop_alerts():
            if isinstance(alert, failures):
                raise DriverError(f"libtorrent: {alert.message()}")
            if isinstance(alert, lt.torrent_checked_alert) and alert.handle == handle:
                error = handle.status().errc
                if error.value() != 0:
                    raise DriverError(f"libtorrent: {error.message()}")
                return


class _Download:
    """What one `download` has seen so far: tracker replies and the peers it talked to."""

    def __init__(self, lt: ModuleType, session: Any, handle: Any, deadline: float, timeout_s: float) -> None:
        self.lt = lt
        self.session = session
        self.handle = handle
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.finished = False
        # num_peers of every tracker_reply_alert, and whether it came after the finish.
        self.replies: list[tuple[int, bool]] = []
        self.tracker_errors: list[str] = []
        self.peers: dict[tuple[str, int], dict[str, Any]] = {}
        # The latest session_stats_alert's counters (after session.post_session_stats()).
        self.session_stats: dict[str, int] | None = None

    def pump(self, stage: str) -> None:
        """Wait for alerts once (at most ALERT_POLL_MS) and record what they say.

        Raises DriverError on a torrent or file error, or when the deadline has passed.
        """
        remaining_s = self.deadline - time.monotonic()
        if remaining_s <= 0:
            raise DriverError(
                f"{stage}: not reached within {self.timeout_s} s (state {self.handle.status().state},"
                f" tracker replies {self.replies}, tracker errors {self.tracker_errors[-3:]})"
            )
        lt = self.lt
        self.session.wait_for_alert(min(ALERT_POLL_MS, max(1, int(remaining_s * 1000))))
        for alert in self.session.pop_alerts():
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                raise DriverError(f"libtorrent: {alert.message()}")
            if isinstance(alert, lt.tracker_reply_alert):
                self.replies.append((alert.num_peers, self.finished))
            elif isinstance(alert, (lt.tracker_error_alert, lt.scrape_failed_alert)):
                self.tracker_errors.append(alert.message())
            elif isinstance(alert, lt.torrent_finished_alert):
                self.finished = True
            elif isinstance(alert, lt.session_stats_alert):
                self.session_stats = dict(alert.values)
        for peer in self.handle.get_peer_info():
            ip, port = peer.ip
            seen = self.peers.setdefault((ip, port), {"ip": ip, "port": port, "client": "", "sources": []})
            client = peer.client.decode("utf-8", "replace") if isinstance(peer.client, bytes) else peer.client
            seen["client"] = client or seen["client"]
            # Where libtorrent learned the address, over every look at the connection.
            for name in ("tracker", "dht", "pex", "lsd", "resume_data"):
                flag = getattr(lt.peer_info, name, None)
                if flag is not None and peer.source & flag and name not in seen["sources"]:
                    seen["sources"].append(name)
            seen["outgoing"] = seen.get("outgoing", False) or bool(peer.flags & lt.peer_info.outgoing_connection)
            seen["utp"] = seen.get("utp", False) or bool(peer.flags & UTP_SOCKET_FLAG)
            # How the connection is carried: "rc4", "plaintext" (after an MSE handshake) or "none";
            # the strongest seen, since a look taken while it connects shows none yet.
            encryption = _peer_encryption(lt, peer.flags)
            if ENCRYPTION_RANK[encryption] > ENCRYPTION_RANK[seen.get("encryption", "none")]:
                seen["encryption"] = encryption
            seen.setdefault("encryption", encryption)

    def report(self, stage: str) -> dict[str, Any]:
        status = self.handle.status()
        return {
            "stage": stage,
            "state": str(status.state).rsplit(".", 1)[-1],
            "is_seeding": bool(status.is_seeding),
            "total_wanted_done": status.total_wanted_done,
            # The tracker's counts as libtorrent last heard them (announce or scrape reply).
            "num_complete": status.num_complete,
            "num_incomplete": status.num_incomplete,
            "tracker_replies": [{"num_peers": n, "after_finish": after} for n, after in self.replies],
            "tracker_errors": self.tracker_errors,
            "peers": sorted(self.peers.values(), key=lambda peer: (peer["ip"], peer["port"])),
        }


def _emit_and_wait(result: dict[str, Any]) -> None:
    """Print one stage's JSON line and wait until the caller writes a line (or closes stdin)."""
    print(json.dumps(result), flush=True)
    sys.stdin.readline()


def cmd_download(lt: ModuleType, args: argparse.Namespace) -> dict[str, Any] | None:
    """Download TORRENT into SAVE_PATH from peers its trackers name, until seeding.

    Peers come only from the torrent's trackers: DHT, LSD, PEX, UPnP and NAT-PMP are off and
    no peer is added by hand. The session listens on 127.0.0.1 (TCP only, no uTP) and
    allows several connections per IP, since every peer on loopback shares 127.0.0.1.
    --interface ADDRESS listens and dials from ADDRESS instead (a test network's address).

    Without --hold it prints one JSON object once the torrent is seeding and a tracker has
    answered the announce sent after completion. With --hold there are two stages, each
    printed as a JSON line followed by a wait for one line on stdin:

    - "announced": the torrent is in upload mode (announced as a leecher, downloads
      nothing) and a tracker has answered with at least one peer;
    - "seeding": as without --hold; after the caller's line the session closes.

    So the caller can look at the tracker while libtorrent is a leecher and again once it
    is a seeder, before it announces "stopped".
    """
    params = _peers_only_params(lt, args)
    if args.hold:
        params.flags |= lt.torrent_flags.upload_mode
    deadline = time.monotonic() + args.timeout
    session = lt.session({**_loopback_settings(lt, args.interface), **_encryption_settings(lt, args.encryption)})
    try:
        handle = session.add_torrent(params)
        download = _Download(lt, session, handle, deadline, args.timeout)
        if args.hold:
            while not any(num_peers > 0 for num_peers, _ in download.replies):
                download.pump("a tracker reply naming a peer")
            _emit_and_wait(download.report("announced"))
            handle.unset_flags(lt.torrent_flags.upload_mode)
        # libtorrent announces "completed" as soon as it finishes; wait for the answer.
        while not (download.finished and any(after for _, after in download.replies)):
            download.pump("seeding, and the tracker's reply to the completed announce")
        result = download.report("seeding")
        if args.hold:
            _emit_and_wait(result)
            return None
        return result
    finally:
        del session


def _encryption_settings(lt: ModuleType, encryption: str) -> dict[str, Any]:
    """`--encryption required`: MSE with RC4 only, both ways; plaintext peers are refused.

    The values come from the bindings' enums: in libtorrent's settings pe_forced is 0 and
    pe_rc4 is 2 (pe_enabled is 1 and pe_plaintext 1, which would allow the opposite).
    "enabled" (the default) leaves libtorrent's own settings alone. With "required" a seed
    keeps its connections to other seeds, so a report taken after the download still shows
    how its peer was connected (a look taken while the peer connects shows no encryption yet).
    """
    if encryption == "enabled":
        return {}
    return {
        "out_enc_policy": int(lt.enc_policy.forced),
        "in_enc_policy": int(lt.enc_policy.forced),
        "allowed_enc_level": int(lt.enc_level.rc4),
        "close_redundant_connections": False,
    }


def _peer_encryption(lt: ModuleType, flags: int) -> str:
    if flags & lt.peer_info.rc4_encrypted:
        return "rc4"
    return "plaintext" if flags & lt.peer_info.plaintext_encrypted else "none"


def _loopback_settings(lt: ModuleType, interface: str = LOOPBACK) -> dict[str, Any]:
    """Session settings for peers on loopback (or on `interface`), shared by `download` and `seed`."""
    settings = _session_settings(lt, interface)
    settings.update(
        {
            "allow_multiple_connections_per_ip": True,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            # A peer dropped while in upload mode may be tried again at once, not after 60 s.
            "min_reconnect_time": 1,
            "alert_mask": settings["alert_mask"] | int(lt.alert_category.tracker),
        }
    )
    return settings


def cmd_seed(lt: ModuleType, args: argparse.Namespace) -> None:
    """Seed TORRENT from SAVE_PATH (which must hold all of it) to peers found via its trackers.

    The session is set up as in `download` (loopback, TCP only, several connections per IP,
    no DHT, LSD or PEX). Every piece is hashed from disk first; if one is missing, the command
    times out waiting to seed.
    Once the torrent is seeding and a tracker has answered its announce, it prints one JSON
    line (stage "seeding", with the port it listens on) and waits for a line on stdin, or
    for --timeout seconds from the start, whichever comes first; then it prints a last line
    (stage "stopped", with "uploaded": the payload bytes it sent) and closes the session.
    """
    params = _peers_only_params(lt, args)
    deadline = time.monotonic() + args.timeout
    session = lt.session({**_loopback_settings(lt), **_encryption_settings(lt, args.encryption)})
    try:
        handle = session.add_torrent(params)
        seed = _Download(lt, session, handle, deadline, args.timeout)
        while not (handle.status().is_seeding and seed.replies):
            seed.pump("seeding, and a tracker's reply")
        report = seed.report("seeding")
        report["listen_port"] = session.listen_port()
        print(json.dumps(report), flush=True)
        # select(), not epoll: stdin may be a file or /dev/null, which epoll refuses.
        select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
        # The torrent's upload total is updated once a second; the session's counters at once.
        seed.deadline = time.monotonic() + 10.0
        session.post_session_stats()
        while seed.session_stats is None:
            seed.pump("the session's counters")
        uploaded = seed.session_stats["net.sent_payload_bytes"]
        print(json.dumps({**seed.report("stopped"), "uploaded": uploaded}), flush=True)
        return None
    finally:
        del session


def _dht_settings(lt: ModuleType, bootstrap: list[str]) -> dict[str, Any]:
    """A session whose DHT works on loopback: libtorrent's defaults refuse loopback nodes,
    IDs that ignore BEP 42 and searches among nodes sharing one IP, all of which a DHT on
    127.0.0.1 is made of."""
    settings = _loopback_settings(lt)
    settings.update(
        {
            "enable_dht": True,
            "dht_bootstrap_nodes": ",".join(bootstrap),
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_enforce_node_id": False,
            "dht_prefer_verified_node_ids": False,
            "dht_ignore_dark_internet": False,
            "max_retry_port_bind": 0,
            "alert_mask": settings["alert_mask"] | int(lt.alert_category.dht | lt.alert_category.dht_operation),
        }
    )
    return settings


class _DhtSession:
    """A DHT session answering one command line at a time (see `cmd_dht`)."""

    def __init__(self, lt: ModuleType, session: Any, deadline: float, timeout_s: float) -> None:
        self.lt = lt
        self.session = session
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.handle: Any = None

    def wait_for(self, what: str, accept: Any) -> Any:
        """Pump alerts until `accept(alert)` returns something other than None; return it."""
        while True:
            remaining_s = self.deadline - time.monotonic()
            if remaining_s <= 0:
                raise DriverError(f"dht: {what} not seen within {self.timeout_s} s")
            self.session.wait_for_alert(min(ALERT_POLL_MS, max(1, int(remaining_s * 1000))))
            for alert in self.session.pop_alerts():
                if isinstance(alert, (self.lt.torrent_error_alert, self.lt.file_error_alert)):
                    raise DriverError(f"libtorrent: {alert.message()}")
                found = accept(alert)
                if found is not None:
                    return found

    def node_ids(self) -> list[bytes]:
        # Each entry is the node ID followed by the address of the socket it belongs to.
        return [bytes(entry)[:20] for entry in self.session.dht_state().get(b"node-id", [])]

    def nodes(self) -> dict[str, Any]:
        found = []
        for node_id in self.node_ids():
            self.session.dht_live_nodes(self.lt.sha1_hash(node_id))
            alert = self.wait_for(
                "dht_live_nodes_alert", lambda a: a if isinstance(a, self.lt.dht_live_nodes_alert) else None
            )
            for node in alert.nodes:
                ip, port = node["endpoint"]
                found.append({"ip": ip, "port": port, "node_id": str(node["nid"])})
        return {"node_ids": [n.hex() for n in self.node_ids()], "nodes": found}

    def get_peers(self, info_hash_hex: str) -> dict[str, Any]:
        target = self.lt.sha1_hash(bytes.fromhex(info_hash_hex))
        self.session.dht_get_peers(target)

        def reply(alert: Any) -> Any:
            if isinstance(alert, self.lt.dht_get_peers_reply_alert) and alert.info_hash == target:
                return alert
            return None

        alert = self.wait_for("dht_get_peers_reply_alert", reply)
        return {"peers": sorted([ip, port] for ip, port in alert.peers())}

    def announce(self) -> dict[str, Any]:
        if self.handle is None:
            raise DriverError("dht: announce needs --torrent")
        self.handle.force_dht_announce()
        alert = self.wait_for("dht_reply_alert", lambda a: a if isinstance(a, self.lt.dht_reply_alert) else None)
        return {"num_peers": alert.num_peers}


def cmd_dht(lt: ModuleType, args: argparse.Namespace) -> None:
    """A libtorrent DHT node on 127.0.0.1 that joins through --bootstrap HOST:PORT nodes.

    With --torrent and --save-path it seeds that torrent (which must be complete there)
    with DHT announces on. It prints {"stage": "started", "port": P, "node_ids": [hex]}
    once listening (DHT and peers share port P; with a torrent, once seeding), then reads
    commands from stdin, one per line, and prints one JSON line for each:

    - `nodes`: {"node_ids": [hex], "nodes": [{"ip", "port", "node_id"}]}, its routing table;
    - `get_peers HEX`: {"peers": [[ip, port], ...]} from a DHT search for the info-hash;
    - `announce`: {"num_peers": N} once the torrent's forced DHT announce has ended;
    - `quit` (or end of input, or --timeout from the start): the session closes.
    """
    settings = _dht_settings(lt, args.bootstrap)
    deadline = time.monotonic() + args.timeout
    session = lt.session(settings)
    try:
        dht = _DhtSession(lt, session, deadline, args.timeout)
        if args.torrent:
            params = lt.add_torrent_params()
            params.ti = _load(lt, args.torrent)
            params.save_path = os.path.abspath(args.save_path)
            params.flags = lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
            dht.handle = session.add_torrent(params)
            dht.wait_for(
                "seeding",
                lambda a: True if isinstance(a, lt.torrent_finished_alert) or dht.handle.status().is_seeding else None,
            )
        started = {"stage": "started", "port": session.listen_port(), "node_ids": [n.hex() for n in dht.node_ids()]}
        print(json.dumps(started), flush=True)
        commands: dict[str, Callable[..., dict[str, Any]]] = {
            "nodes": dht.nodes,
            "get_peers": dht.get_peers,
            "announce": dht.announce,
        }
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
            line = sys.stdin.readline() if ready else ""
            words = line.split()
            if not words or words[0] == "quit":
                return None
            if words[0] not in commands:
                raise DriverError(f"dht: unknown command {words[0]!r}")
            print(json.dumps(commands[words[0]](*words[1:])), flush=True)
    finally:
        del session


# libtorrent searches the DHT for a torrent's peers when it starts and then every
# dht_announce_interval (15 minutes by default); a test's seeder may announce a moment later.
DHT_DOWNLOAD_ANNOUNCE_INTERVAL_S = 2


def cmd_dht_download(lt: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Download TORRENT (a .torrent file or a magnet link) into SAVE_PATH from peers found
    through the DHT alone (for a magnet link, the metadata too).

    The DHT joins through --bootstrap nodes (loopback allowed, see `_dht_settings`); the
    torrent's trackers are overridden and LSD and PEX are off, so every peer comes from a
    DHT search (libtorrent searches every DHT_DOWNLOAD_ANNOUNCE_INTERVAL_S). With
    --keep-trackers the torrent's trackers are used as well; --max-down limits the
    download rate. Prints one JSON object once the torrent is seeding: the `download`
    report (its "peers" carry "sources", which say where libtorrent learned each address).
    """
    save_path = os.path.abspath(args.save_path)
    if not os.path.isdir(save_path):
        raise DriverError(f"{save_path}: save path is not a directory")
    if args.torrent.startswith("magnet:"):
        params = lt.parse_magnet_uri(args.torrent)
    else:
        params = lt.add_torrent_params()
        params.ti = _load(lt, args.torrent)
    params.save_path = save_path
    flags = lt.torrent_flags
    params.flags = flags.disable_lsd | flags.disable_pex
    if not args.keep_trackers:
        params.trackers = []
        params.flags |= flags.override_trackers
    settings = _dht_settings(lt, args.bootstrap)
    settings["dht_announce_interval"] = DHT_DOWNLOAD_ANNOUNCE_INTERVAL_S
    if args.max_down:
        settings["download_rate_limit"] = args.max_down
    deadline = time.monotonic() + args.timeout
    session = lt.session(settings)
    try:
        handle = session.add_torrent(params)
        download = _Download(lt, session, handle, deadline, args.timeout)
        while not handle.status().is_seeding:
            download.pump("seeding, from peers found through the DHT")
        return download.report("seeding")
    finally:
        del session


def cmd_lsd(lt: ModuleType, args: argparse.Namespace) -> None:
    """Seed TORRENT from SAVE_PATH on ADDRESS with local service discovery (BEP 14) on.

    No trackers (the torrent's are overridden), DHT, PEX, UPnP or NAT-PMP: peers come only
    from LSD (and, with --pex, from peers' ut_pex messages). Two stages, each a JSON line
    followed by a wait for a line on stdin:

    - "seeding": every piece checked, with "listen_port" (the port libtorrent announces);
    - "lsd_peer": libtorrent has heard an LSD announce for the torrent, with "peers": the
      [ip, port] pairs it took from announces so far.
    """
    params = _saved_params(lt, args)
    params.trackers = []
    flags = lt.torrent_flags
    params.flags = flags.override_trackers | flags.disable_dht | (0 if args.pex else flags.disable_pex)
    settings = _loopback_settings(lt, args.interface)
    # lsd_peer_alert is in the peer category; the bindings have no class for it, so it is
    # known by what() and its endpoint read from its message.
    settings.update({"enable_lsd": True, "alert_mask": settings["alert_mask"] | int(lt.alert_category.peer)})
    deadline = time.monotonic() + args.timeout
    session = lt.session(settings)
    try:
        handle = session.add_torrent(params)
        seed = _Download(lt, session, handle, deadline, args.timeout)
        while not handle.status().is_seeding:
            seed.pump("seeding")
        _emit_and_wait({**seed.report("seeding"), "listen_port": session.listen_port()})
        peers: list[list[Any]] = []
        while not peers:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise DriverError(f"lsd: no LSD announce heard within {args.timeout} s")
            session.wait_for_alert(min(ALERT_POLL_MS, max(1, int(remaining_s * 1000))))
            for alert in session.pop_alerts():
                found = re.search(r"peer \[ (\S+):(\d+) ", alert.message()) if alert.what() == "lsd_peer" else None
                if found is not None:
                    peers.append([found.group(1), int(found.group(2))])
        _emit_and_wait({"stage": "lsd_peer", "peers": peers})
        return None
    finally:
        del session


def cmd_lsd_magnet(lt: ModuleType, args: argparse.Namespace) -> None:
    """Start from INFO_HASH (v1, hex) alone, find peers by LSD on ADDRESS and fetch the metadata.

    No trackers, DHT or PEX. Once libtorrent has the info dictionary it prints one JSON line
    (stage "metadata": the info dictionary's SHA-1 and SHA-256, its size, the torrent's name
    and piece count) and waits for a line on stdin; the session closes after it.
    """
    save_path = os.path.abspath(args.save_path)
    if not os.path.isdir(save_path):
        raise DriverError(f"{save_path}: save path is not a directory")
    params = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{args.info_hash}")
    params.save_path = save_path
    flags = lt.torrent_flags
    params.flags = flags.disable_dht | flags.disable_pex
    settings = _loopback_settings(lt, args.interface)
    settings["enable_lsd"] = True
    deadline = time.monotonic() + args.timeout
    session = lt.session(settings)
    try:
        handle = session.add_torrent(params)
        while True:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise DriverError(f"lsd-magnet: no metadata within {args.timeout} s")
            session.wait_for_alert(min(ALERT_POLL_MS, max(1, int(remaining_s * 1000))))
            alerts = session.pop_alerts()
            for alert in alerts:
                if isinstance(alert, (lt.torrent_error_alert, lt.metadata_failed_alert)):
                    raise DriverError(f"libtorrent: {alert.message()}")
            if any(isinstance(alert, lt.metadata_received_alert) for alert in alerts):
                break
        ti = handle.torrent_file()
        info = bytes(ti.metadata())
        _emit_and_wait(
            {
                "stage": "metadata",
                "sha1": hashlib.sha1(info).hexdigest(),
                "sha256": hashlib.sha256(info).hexdigest(),
                "metadata_size": len(info),
                "name": ti.name(),
                "num_pieces": ti.num_pieces(),
            }
        )
        return None
    finally:
        del session


def _info_facts(ti: Any) -> dict[str, Any]:
    info = bytes(ti.metadata())
    return {
        "sha1": hashlib.sha1(info).hexdigest(),
        "sha256": hashlib.sha256(info).hexdigest(),
        "metadata_size": len(info),
        "name": ti.name(),
        "num_pieces": ti.num_pieces(),
    }


def cmd_magnet(lt: ModuleType, args: argparse.Namespace) -> None:
    """Download MAGNET into SAVE_PATH from the peers its x.pe names (and its tr trackers).

    DHT, LSD and PEX are off (--pex: peers named in ut_pex messages are taken too, and the
    report's "sources" say "pex" for them); the session listens on 127.0.0.1 (TCP only). Once libtorrent
    has the info dictionary it prints one JSON line (stage "metadata": its SHA-1, SHA-256,
    size, the torrent's name and piece count); once every piece is in, one more (stage
    "finished", with the peers it talked to) and waits for a line on stdin.
    """
    save_path = os.path.abspath(args.save_path)
    if not os.path.isdir(save_path):
        raise DriverError(f"{save_path}: save path is not a directory")
    params = lt.parse_magnet_uri(args.magnet)
    params.save_path = save_path
    flags = lt.torrent_flags
    params.flags = flags.disable_dht | flags.disable_lsd | (0 if args.pex else flags.disable_pex)
    deadline = time.monotonic() + args.timeout
    session = lt.session(_loopback_settings(lt))
    try:
        handle = session.add_torrent(params)
        download = _Download(lt, session, handle, deadline, args.timeout)
        while not handle.status().has_metadata:
            download.pump("the metadata")
        print(json.dumps({"stage": "metadata", **_info_facts(handle.torrent_file())}), flush=True)
        while not handle.status().is_seeding:
            download.pump("every piece")
        _emit_and_wait(download.report("finished"))
        return None
    finally:
        del session


def cmd_seed_here(lt: ModuleType, args: argparse.Namespace) -> None:
    """Seed TORRENT from SAVE_PATH with no tracker, DHT, LSD or PEX: peers must dial it.

    Once every piece is checked it prints one JSON line (stage "seeding", with the port it
    listens on) and waits for a line on stdin (or --timeout); then it prints its report
    (stage "stopped", with the peers it talked to) and closes.

    --max-up BYTES_PER_S caps its upload. libtorrent puts loopback peers in its local peer
    class, which no rate limit touches, so every address goes into the global class instead
    (as bench/lt_peer.py does): the cap then holds for peers on 127.0.0.1 too.
    """
    params = _peers_only_params(lt, args)
    deadline = time.monotonic() + args.timeout
    settings = _loopback_settings(lt)
    if args.utp_only:
        settings.update(_utp_only_settings())
    if args.max_up > 0:
        settings["upload_rate_limit"] = args.max_up
    session = lt.session(settings)
    if args.max_up > 0:
        every_address = lt.ip_filter()
        every_class = 1 << lt.session.global_peer_class_id
        every_address.add_rule("0.0.0.0", "255.255.255.255", every_class)  # noqa: S104 - an address range, not a bind
        session.set_peer_class_filter(every_address)
    try:
        handle = session.add_torrent(params)
        seed = _Download(lt, session, handle, deadline, args.timeout)
        while not handle.status().is_seeding:
            seed.pump("seeding")
        print(json.dumps({**seed.report("seeding"), "listen_port": session.listen_port()}), flush=True)
        select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
        seed.deadline = time.monotonic() + 5.0
        seed.pump("a last look at the peers")
        print(json.dumps(seed.report("stopped")), flush=True)
        return None
    finally:
        del session


def _saved_params(lt: ModuleType, args: argparse.Namespace) -> Any:
    """add_torrent_params for args.torrent saved in args.save_path. Not paused and not
    auto-managed: the torrent starts at once. Raises DriverError when the save path is
    not a folder."""
    save_path = os.path.abspath(args.save_path)
    if not os.path.isdir(save_path):
        raise DriverError(f"{save_path}: save path is not a directory")
    params = lt.add_torrent_params()
    params.ti = _load(lt, args.torrent)
    params.save_path = save_path
    return params


def _peers_only_params(lt: ModuleType, args: argparse.Namespace) -> Any:
    """``_saved_params`` with no DHT, LSD or PEX: the peers are the ones the test names."""
    params = _saved_params(lt, args)
    flags = lt.torrent_flags
    params.flags = flags.disable_dht | flags.disable_lsd | flags.disable_pex
    return params


def _utp_only_settings() -> dict[str, Any]:
    """uTP (BEP 29) both ways and no TCP at all, so a transfer that works was over uTP."""
    return {
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
        "enable_outgoing_utp": True,
        "enable_incoming_utp": True,
    }


def cmd_download_from(lt: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Download TORRENT into SAVE_PATH from the one peer at --peer (no tracker, DHT, LSD or
    PEX); prints one JSON object once seeding, whose peers say whether they were uTP."""
    host, _, port = args.peer.rpartition(":")
    params = _peers_only_params(lt, args)
    deadline = time.monotonic() + args.timeout
    settings = _loopback_settings(lt)
    if args.utp_only:
        settings.update(_utp_only_settings())
    session = lt.session(settings)
    try:
        handle = session.add_torrent(params)
        download = _Download(lt, session, handle, deadline, args.timeout)
        handle.connect_peer((host, int(port)))
        started = time.monotonic()
        while not handle.status().is_seeding:
            download.pump("seeding")
            # A dial that failed is not retried by libtorrent for a while: ask again.
            if not handle.get_peer_info() and time.monotonic() - started > 2.0:
                handle.connect_peer((host, int(port)))
                started = time.monotonic()
        elapsed_s = time.monotonic() - (deadline - args.timeout)
        return {**download.report("seeding"), "elapsed_s": elapsed_s}
    finally:
        del session


COMMANDS = {
    "version": cmd_version,
    "info": cmd_info,
    "create": cmd_create,
    "check": cmd_check,
    "download": cmd_download,
    "seed": cmd_seed,
    "dht": cmd_dht,
    "dht-download": cmd_dht_download,
    "lsd": cmd_lsd,
    "lsd-magnet": cmd_lsd_magnet,
    "magnet": cmd_magnet,
    "seed-here": cmd_seed_here,
    "download-from": cmd_download_from,
}


def _parser() -> _Parser:
    parser = _Parser(prog="lt_driver.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("version")
    info = sub.add_parser("info")
    info.add_argument("torrent")
    create = sub.add_parser("create")
    create.add_argument("path")
    create.add_argument("out")
    create.add_argument("--format", choices=FORMATS, required=True)
    create.add_argument("--piece-length", type=int, default=0, help="bytes; 0 lets libtorrent choose")
    create.add_argument("--tracker", action="append", default=[], help="announce URL; each one is its own tier")
    check = sub.add_parser("check")
    check.add_argument("torrent")
    check.add_argument("save_path")
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    download = sub.add_parser("download")
    download.add_argument("torrent")
    download.add_argument("save_path")
    download.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    download.add_argument("--hold", action="store_true", help="pause after announcing and after seeding")
    download.add_argument("--interface", default=LOOPBACK, help="IPv4 address to listen and dial from")
    download.add_argument("--encryption", choices=ENCRYPTION_MODES, default="enabled", help=ENCRYPTION_HELP)
    seed = sub.add_parser("seed")
    seed.add_argument("torrent")
    seed.add_argument("save_path")
    seed.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    seed.add_argument("--encryption", choices=ENCRYPTION_MODES, default="enabled", help=ENCRYPTION_HELP)
    dht = sub.add_parser("dht")
    dht.add_argument("--bootstrap", action="append", default=[], help="HOST:PORT of a DHT node to join through")
    dht.add_argument("--torrent", help="seed this torrent with DHT on")
    dht.add_argument("--save-path", default=".", help="where the torrent's content is")
    dht.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    dht_download = sub.add_parser("dht-download")
    dht_download.add_argument("torrent")
    dht_download.add_argument("save_path")
    dht_download.add_argument("--bootstrap", action="append", required=True, help="HOST:PORT of a DHT node")
    dht_download.add_argument("--keep-trackers", action="store_true", help="announce to the torrent's trackers too")
    dht_download.add_argument("--max-down", type=int, default=0, help="download limit, bytes per second (0: none)")
    dht_download.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    lsd = sub.add_parser("lsd")
    lsd.add_argument("torrent")
    lsd.add_argument("save_path")
    lsd.add_argument("--interface", required=True, help="IPv4 address to listen, dial and announce on")
    lsd.add_argument("--pex", action="store_true", help="take peers from ut_pex messages too")
    lsd.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    magnet = sub.add_parser("magnet")
    magnet.add_argument("magnet", help="a magnet link (x.pe names the peers to dial)")
    magnet.add_argument("save_path")
    magnet.add_argument("--pex", action="store_true", help="take peers from ut_pex messages too")
    magnet.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    seed_here = sub.add_parser("seed-here")
    seed_here.add_argument("torrent")
    seed_here.add_argument("save_path")
    seed_here.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    seed_here.add_argument("--max-up", type=int, default=0, help="upload limit, bytes per second (0: none)")
    seed_here.add_argument("--utp-only", action="store_true", help="uTP both ways, no TCP")
    download_from = sub.add_parser("download-from")
    download_from.add_argument("torrent")
    download_from.add_argument("save_path")
    download_from.add_argument("--peer", required=True, help="HOST:PORT to dial")
    download_from.add_argument("--utp-only", action="store_true", help="uTP both ways, no TCP")
    download_from.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    lsd_magnet = sub.add_parser("lsd-magnet")
    lsd_magnet.add_argument("info_hash", help="v1 info-hash, 40 hex digits")
    lsd_magnet.add_argument("save_path")
    lsd_magnet.add_argument("--interface", required=True, help="IPv4 address to listen, dial and announce on")
    lsd_magnet.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    return parser


def main(argv: list[str]) -> int:
    # A crash inside libtorrent then names the Python line that called into it, on stderr.
    faulthandler.enable()
    try:
        args = _parser().parse_args(argv)
        lt = _import_libtorrent()
        result = COMMANDS[args.command](lt, args)
    except (DriverError, OSError) as exc:
        message = str(exc)
        print(json.dumps({"error": message}))
        print(f"lt_driver: {message}", file=sys.stderr)
        return 1
    if result is not None:  # None: the command printed its own lines
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
