#!/usr/bin/python3
"""libtorrent 2.0's side of bench/polite_bench.py: a seed, or a downloader that dials one peer.

Runs under Debian's /usr/bin/python3 (the only Python here that imports libtorrent),
inside a network namespace the bench made:

    /usr/bin/python3 bench/lt_polite_peer.py seed TORRENT FOLDER --interface ADDRESS
        --transport tcp|utp [--port PORT]
    /usr/bin/python3 bench/lt_polite_peer.py download TORRENT FOLDER --interface ADDRESS
        --transport tcp|utp --peer HOST:PORT

The session listens on ADDRESS only, with no DHT, LSD, PEX, UPnP or NAT-PMP, and speaks
one transport both ways: `tcp` switches uTP off (enable_outgoing_utp/enable_incoming_utp
False), `utp` switches TCP off, so a transfer that runs went over that transport. Every
other setting is libtorrent's default: its uTP is LEDBAT with a 100 ms target
(utp_target_delay), as it ships.

One JSON object per line on stdout ({"event": ..., "t": time.monotonic()}; CLOCK_MONOTONIC is
shared by every process and namespace, so the parent can compare its own readings):
"ready" (with "port") once a seed is seeding or a downloader has added its torrent;
a downloader then prints "progress" every PROGRESS_PERIOD_S with "bytes" (payload received
so far), "peers" and "utp" (whether a peer connection is uTP: bit 17 of peer_info's
flags, utp_socket, which the 2.0 bindings do not name), and "finished" once it has everything.
It stops on a line "stop" or when stdin closes, and after LIFETIME_S in any case.
"""

import argparse
import importlib
import json
import os
import select
import sys
import time
from typing import Any

ALERT_POLL_MS = 50
PROGRESS_PERIOD_S = 0.5
REDIAL_AFTER_S = 2.0
SEED_READY_TIMEOUT_S = 120.0
LIFETIME_S = 600.0
UTP_SOCKET_FLAG = 1 << 17


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def stop_asked() -> bool:
    """True once stdin holds "stop" or is closed; never blocks."""
    ready, _, _ = select.select([sys.stdin], [], [], 0.0)
    if not ready:
        return False
    line = sys.stdin.readline()
    return not line or line.strip() == "stop"


def new_session(lt: Any, interface: str, port: int, transport: str) -> Any:
    utp = transport == "utp"
    return lt.session(
        {
            "listen_interfaces": f"{interface}:{port}",
            "outgoing_interfaces": interface,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "enable_outgoing_utp": utp,
            "enable_incoming_utp": utp,
            "enable_outgoing_tcp": not utp,
            "enable_incoming_tcp": not utp,
            "min_reconnect_time": 1,
            "alert_mask": int(lt.alert_category.status | lt.alert_category.error | lt.alert_category.storage),
        }
    )


def add_params(lt: Any, torrent: str, folder: str, *, seed: bool) -> Any:
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = os.path.abspath(folder)
    flags = lt.torrent_flags
    params.flags = flags.disable_dht | flags.disable_lsd | flags.disable_pex
    if seed:
        params.flags |= flags.seed_mode  # no check at start; each piece is hashed when first asked for
    return params


def raise_on_errors(lt: Any, alerts: list[Any]) -> None:
    for alert in alerts:
        if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
            raise RuntimeError(alert.message())


def run(lt: Any, args: argparse.Namespace) -> None:
    session = new_session(lt, args.interface, args.port, args.transport)
    try:
        seed = args.command == "seed"
        handle = session.add_torrent(add_params(lt, args.torrent, args.folder, seed=seed))
        deadline = time.monotonic() + SEED_READY_TIMEOUT_S
        while seed and not handle.status().is_seeding:
            if time.monotonic() > deadline:
                raise RuntimeError("not seeding in time")
            session.wait_for_alert(ALERT_POLL_MS)
            raise_on_errors(lt, session.pop_alerts())
        emit("ready", port=session.listen_port())
        peer: tuple[str, int] | None = None
        if not seed:
            host, _, port = args.peer.rpartition(":")
            peer = (host, int(port))
            handle.connect_peer(peer)
        dialled = time.monotonic()
        next_progress = time.monotonic()
        finished = False
        end = time.monotonic() + LIFETIME_S
        while time.monotonic() < end and not stop_asked():
            session.wait_for_alert(ALERT_POLL_MS)
            alerts = session.pop_alerts()
            raise_on_errors(lt, alerts)
            if seed or peer is None:
                continue
            peers = handle.get_peer_info()
            # A dial that failed is not retried by libtorrent for a while: ask again.
            if not peers and time.monotonic() - dialled > REDIAL_AFTER_S:
                handle.connect_peer(peer)
                dialled = time.monotonic()
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_PERIOD_S
                status = handle.status()
                utp = any(info.flags & UTP_SOCKET_FLAG for info in peers)
                emit("progress", bytes=status.total_payload_download, peers=len(peers), utp=utp)
            if not finished and any(isinstance(alert, lt.torrent_finished_alert) for alert in alerts):
                finished = True
                emit("finished")
    finally:
        del session


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lt_polite_peer.py")
    parser.add_argument("command", choices=("seed", "download"))
    parser.add_argument("torrent")
    parser.add_argument("folder")
    parser.add_argument("--interface", required=True, help="the address to listen on and dial from")
    parser.add_argument("--transport", choices=("tcp", "utp"), required=True)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    parser.add_argument("--peer", help="download: HOST:PORT of the seed to dial")
    args = parser.parse_args(argv)
    if args.command == "download" and not args.peer:
        parser.error("download needs --peer")
    try:
        run(importlib.import_module("libtorrent"), args)
    except (RuntimeError, OSError, ImportError) as error:
        emit("error", message=str(error))
        print(f"lt_polite_peer: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
