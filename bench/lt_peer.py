#!/usr/bin/python3
"""libtorrent 2.0's side of bench/peer_bench.py: one peer, or one session seeding many torrents.

Runs under Debian's /usr/bin/python3 (the only Python here that imports libtorrent):

    /usr/bin/python3 bench/lt_peer.py peer TORRENT FOLDER --role seed|download
        [--connect PORT] [--max-up BYTES] [--max-down BYTES] [--tick-ms MS]
    /usr/bin/python3 bench/lt_peer.py memory TORRENT_DIR FOLDER

It speaks the same line protocol as peer_bench.py's bitswarm children: one JSON object
per line on stdout ({"event": "ready" | "finished" | "progress" | "uploaded" | "loaded" |
"error", "t": time.monotonic(), ...}; CLOCK_MONOTONIC is shared by every process, so the
parent can subtract its own readings), and commands on stdin, one per line: "start" (a
downloader adds its torrent, and connects to --connect if given; `memory` adds every
torrent), "connect PORT" (`memory`: every torrent connects to 127.0.0.1:PORT) and "stop".
A seed adds its torrent at once (seed_mode: no check; with --check it checks first) and
is ready once seeding; once it has every piece a peer reports its payload bytes sent
("uploaded") every PROGRESS_PERIOD_S.

The session listens on 127.0.0.1 only, TCP only (with --stock TCP and uTP, as libtorrent
comes), no DHT, LSD, PEX, UPnP or NAT-PMP, and allows several connections per IP, since
every peer on loopback is 127.0.0.1. libtorrent puts loopback peers in its local peer
class, which no rate limit touches; with --max-up every address is put in the global
class instead (`set_peer_class_filter`), so the
session-wide upload limit applies to them. Every wait is bounded.
"""

import argparse
import importlib
import json
import os
import select
import sys
import time
from typing import Any

ALERT_POLL_MS = 100
UTP_SOCKET = 1 << 17  # peer_info::utp_socket, which the Python bindings do not name
PROGRESS_PERIOD_S = 2.0
# Bounds on the waits of this process; the parent has its own, shorter ones.
SEED_READY_TIMEOUT_S = 600.0
LIFETIME_S = 3600.0


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def read_command(timeout_s: float) -> str | None:
    """One line from stdin if one arrives within timeout_s; "stop" once stdin is closed."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    if not ready:
        return None
    line = sys.stdin.readline()
    return line.strip() if line else "stop"


def new_session(
    lt: Any, max_up: int, max_down: int = 0, tick_ms: int = 0, *, stock: bool = False, encryption: str = ""
) -> Any:
    settings: dict[str, Any] = {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": int(
            lt.alert_category.status | lt.alert_category.error | lt.alert_category.storage | lt.alert_category.tracker
        ),
    }
    if not stock:
        settings["enable_outgoing_utp"] = False
        settings["enable_incoming_utp"] = False
    if encryption:
        policy = {"require": lt.enc_policy.forced, "disable": lt.enc_policy.disabled}[encryption]
        settings.update(out_enc_policy=policy, in_enc_policy=policy, allowed_enc_level=lt.enc_level.rc4)
    if max_up > 0:
        settings["upload_rate_limit"] = max_up
    if max_down > 0:
        settings["download_rate_limit"] = max_down
    if tick_ms > 0:
        # A rate-limited seed hands out its bandwidth once a tick (500 ms by default): a
        # time measured against it moves in steps of a tick.
        settings["tick_interval"] = tick_ms
    session = lt.session(settings)
    if max_up > 0 or max_down > 0:
        # Every address in the global class (bit 0), none in the unthrottled local class.
        every_address = lt.ip_filter()
        every_class = 1 << lt.session.global_peer_class_id
        every_address.add_rule("0.0.0.0", "255.255.255.255", every_class)  # noqa: S104 - an address range, not a bind
        session.set_peer_class_filter(every_address)
    return session


def add_params(lt: Any, torrent: str, folder: str, *, seed: bool, check: bool = False) -> Any:
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = os.path.abspath(folder)
    flags = lt.torrent_flags
    # Not paused and not auto-managed: the torrent starts at once and is never queued.
    params.flags = flags.disable_dht | flags.disable_lsd | flags.disable_pex
    # seed_mode skips the check at start, but then hashes each piece when first asked for
    # it; with check, everything is hashed before "ready".
    if seed and not check:
        params.flags |= flags.seed_mode
    return params


def raise_on_errors(lt: Any, alerts: list[Any]) -> None:
    for alert in alerts:
        if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
            raise RuntimeError(alert.message())


def cmd_peer(lt: Any, args: argparse.Namespace) -> None:
    session = new_session(lt, args.max_up, args.max_down, args.tick_ms, stock=args.stock, encryption=args.encryption)
    handle = None
    if args.role == "seed":
        handle = session.add_torrent(add_params(lt, args.torrent, args.folder, seed=True, check=args.check))
        deadline = time.monotonic() + SEED_READY_TIMEOUT_S
        while not handle.status().is_seeding:
            if time.monotonic() > deadline:
                raise RuntimeError("not seeding in time")
            session.wait_for_alert(ALERT_POLL_MS)
            raise_on_errors(lt, session.pop_alerts())
    emit("ready", port=session.listen_port())
    finished = handle is not None
    next_progress = time.monotonic()
    end = time.monotonic() + LIFETIME_S
    while time.monotonic() < end:
        command = read_command(0.0)
        if command == "stop":
            break
        if (command == "start" or args.start) and handle is None:
            handle = session.add_torrent(add_params(lt, args.torrent, args.folder, seed=False))
            if args.connect:
                handle.connect_peer(("127.0.0.1", args.connect))
        session.wait_for_alert(ALERT_POLL_MS)
        alerts = session.pop_alerts()
        raise_on_errors(lt, alerts)
        if not finished and any(isinstance(alert, lt.torrent_finished_alert) for alert in alerts):
            finished = True
            # How the bytes came: over uTP or TCP (libtorrent dials uTP first when it may).
            transports = sorted(
                {
                    ("utp" if peer.flags & UTP_SOCKET else "tcp")
                    + ("/rc4" if peer.flags & lt.peer_info.rc4_encrypted else "")
                    for peer in (handle.get_peer_info() if handle is not None else [])
                }
            )
            emit("finished", transports=transports)
        if handle is not None and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + PROGRESS_PERIOD_S
            status = handle.status()
            if finished:
                emit("uploaded", bytes=status.total_payload_upload)
            else:
                emit("progress", done=status.total_wanted_done)
    del session


def cmd_memory(lt: Any, args: argparse.Namespace) -> None:
    session = new_session(lt, 0)
    # A peer asked for with "connect" may refuse while its torrent is still queued or being
    # checked; libtorrent then waits min_reconnect_time (60 s by default) times the failures
    # before it tries again. One second keeps a bench from waiting minutes for that.
    session.apply_settings({"min_reconnect_time": 1})
    emit("ready", port=session.listen_port())
    end = time.monotonic() + LIFETIME_S
    handles: list[Any] = []
    while time.monotonic() < end:
        command = read_command(0.2)
        if command == "stop":
            break
        if command is not None and command.startswith("connect ") and handles:
            # Every torrent connects to a peer on 127.0.0.1: Transmission 3.00 ignores the
            # 127.x peers a tracker gives it, so a seed there must come to it.
            port = int(command.split()[1])
            for handle in handles:
                handle.connect_peer(("127.0.0.1", port))
        if command == "start" and not handles:
            names = sorted(name for name in os.listdir(args.torrent_dir) if name.endswith(".torrent"))
            for name in names:
                path = os.path.join(args.torrent_dir, name)
                handles.append(session.add_torrent(add_params(lt, path, args.folder, seed=False)))
            # Every piece is checked from disk, as bitswarm does at start.
            deadline = time.monotonic() + SEED_READY_TIMEOUT_S
            while not all(handle.status().is_seeding for handle in handles):
                if time.monotonic() > deadline:
                    raise RuntimeError("the torrents were not all seeding in time")
                session.wait_for_alert(ALERT_POLL_MS)
                raise_on_errors(lt, session.pop_alerts())
            emit("loaded", torrents=len(handles))
        session.pop_alerts()
    del session


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lt_peer.py")
    sub = parser.add_subparsers(dest="command", required=True)
    peer = sub.add_parser("peer")
    peer.add_argument("torrent")
    peer.add_argument("folder")
    peer.add_argument("--role", choices=("seed", "download"), required=True)
    peer.add_argument("--connect", type=int, default=0, help="port of a peer on 127.0.0.1 to connect to")
    peer.add_argument("--max-up", type=int, default=0, help="upload limit, bytes per second (0: none)")
    peer.add_argument("--max-down", type=int, default=0, help="download limit, bytes per second (0: none)")
    peer.add_argument("--check", action="store_true", help="a seed checks its data before it is ready")
    peer.add_argument("--tick-ms", type=int, default=0, help="libtorrent's tick_interval (0: its 500 ms)")
    peer.add_argument("--stock", action="store_true", help="libtorrent's own settings (uTP on) but for loopback's")
    peer.add_argument("--start", action="store_true", help="a downloader starts at once, without a 'start' command")
    peer.add_argument("--encryption", choices=("require", "disable"), help="MSE: RC4 both ways, or none")
    memory = sub.add_parser("memory")
    memory.add_argument("torrent_dir")
    memory.add_argument("folder")
    args = parser.parse_args(argv)
    try:
        lt = importlib.import_module("libtorrent")
        {"peer": cmd_peer, "memory": cmd_memory}[args.command](lt, args)
    except (RuntimeError, OSError, ImportError) as error:
        emit("error", message=str(error))
        print(f"lt_peer: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
