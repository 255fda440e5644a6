#!/usr/bin/python3
"""libtorrent 2.0's side of bench/magnet_dht_bench.py: a DHT-only seed, or a DHT-only magnet download.

Runs under Debian's /usr/bin/python3 (the only Python here that imports libtorrent):

    /usr/bin/python3 bench/lt_dht_peer.py seed TORRENT FOLDER --bootstrap HOST:PORT
    /usr/bin/python3 bench/lt_dht_peer.py magnet MAGNET FOLDER --bootstrap HOST:PORT
    /usr/bin/python3 bench/lt_dht_peer.py magnet MAGNET FOLDER --home

``--home`` (bench/bootstrap_bench.py): the magnet download as a first run at home does it,
libtorrent's stock settings (its default bootstrap node, dht.libtorrent.org:25401, found
through DNS; every address; uTP and TCP) but for the two DHT restrictions that would keep a
test network of one /24 out of its routing table, and a search every second as above (its
stock first search, made before its DHT has joined, finds nothing, and the next comes 15
minutes later).

One JSON object per line on stdout, {"event": ..., "t": time.monotonic(), ...}
(CLOCK_MONOTONIC is shared by every process, so the parent can subtract readings):

- seed: "ready" (with "port") once it is seeding (seed_mode: no check) and its forced DHT
  announce has ended; then it seeds until a line (or the end) on stdin.
- magnet: "t0" just before the session is made, then "metadata", "first_piece" and
  "finished"; it exits after "finished". It searches the DHT every second (see cmd_magnet).

The session listens on 127.0.0.1, TCP only; no tracker, LSD, PEX, UPnP or NAT-PMP: peers
come from the DHT alone. The DHT settings let it work on loopback (libtorrent's defaults
refuse loopback nodes, IDs that ignore BEP 42 and searches among nodes on one IP).
Every wait is bounded.
"""

import argparse
import importlib
import json
import select
import sys
import time
from typing import Any

ALERT_POLL_MS = 50
TIMEOUT_S = 300.0
DHT_ANNOUNCE_INTERVAL_S = 1


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def new_session(lt: Any, bootstrap: str) -> Any:
    return lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "outgoing_interfaces": "127.0.0.1",
            "enable_dht": True,
            "dht_bootstrap_nodes": bootstrap,
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_enforce_node_id": False,
            "dht_prefer_verified_node_ids": False,
            "dht_ignore_dark_internet": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "allow_multiple_connections_per_ip": True,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "alert_mask": int(
                lt.alert_category.status
                | lt.alert_category.error
                | lt.alert_category.storage
                | lt.alert_category.dht
                | lt.alert_category.piece_progress
            ),
        }
    )


def pump(lt: Any, session: Any, deadline: float, what: str) -> list[Any]:
    if time.monotonic() > deadline:
        raise RuntimeError(f"{what}: not within {TIMEOUT_S} s")
    session.wait_for_alert(ALERT_POLL_MS)
    alerts = session.pop_alerts()
    for alert in alerts:
        if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert, lt.metadata_failed_alert)):
            raise RuntimeError(alert.message())
    return list(alerts)


def cmd_seed(lt: Any, args: argparse.Namespace) -> None:
    session = new_session(lt, args.bootstrap)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.source)
    params.save_path = args.folder
    params.trackers = []
    flags = lt.torrent_flags
    params.flags = flags.seed_mode | flags.override_trackers | flags.disable_lsd | flags.disable_pex
    handle = session.add_torrent(params)
    deadline = time.monotonic() + TIMEOUT_S
    while not handle.status().is_seeding:
        pump(lt, session, deadline, "seeding")
    handle.force_dht_announce()
    while not any(isinstance(alert, lt.dht_reply_alert) for alert in pump(lt, session, deadline, "DHT announce")):
        pass
    emit("ready", port=session.listen_port())
    end = time.monotonic() + TIMEOUT_S
    while time.monotonic() < end:
        ready, _, _ = select.select([sys.stdin], [], [], 0.0)
        if ready:
            break
        session.wait_for_alert(ALERT_POLL_MS)
        session.pop_alerts()
    del session


def home_session(lt: Any) -> Any:
    return lt.session(
        {
            "enable_dht": True,
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "alert_mask": int(
                lt.alert_category.status
                | lt.alert_category.error
                | lt.alert_category.storage
                | lt.alert_category.piece_progress
            ),
        }
    )


def cmd_magnet(lt: Any, args: argparse.Namespace) -> None:
    emit("t0")
    session = home_session(lt) if args.home else new_session(lt, args.bootstrap)
    # libtorrent searches the DHT for a torrent when it starts and then every
    # dht_announce_interval (15 minutes); a first search before its DHT has joined finds
    # nothing, so it searches every second here (only ever to its advantage).
    session.apply_settings({"dht_announce_interval": DHT_ANNOUNCE_INTERVAL_S})
    params = lt.parse_magnet_uri(args.source)
    params.save_path = args.folder
    flags = lt.torrent_flags
    params.flags = flags.disable_lsd | flags.disable_pex
    handle = session.add_torrent(params)
    deadline = time.monotonic() + TIMEOUT_S
    seen: set[str] = set()
    while "finished" not in seen:
        for alert in pump(lt, session, deadline, "the download"):
            if isinstance(alert, lt.metadata_received_alert) and "metadata" not in seen:
                seen.add("metadata")
                emit("metadata")
            elif isinstance(alert, lt.piece_finished_alert) and "first_piece" not in seen:
                seen.add("first_piece")
                emit("first_piece")
            elif isinstance(alert, lt.torrent_finished_alert):
                seen.add("finished")
                emit("finished", done=handle.status().total_wanted_done)
    del session


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lt_dht_peer.py")
    parser.add_argument("command", choices=("seed", "magnet"))
    parser.add_argument("source", help="the .torrent (seed) or the magnet link (magnet)")
    parser.add_argument("folder")
    parser.add_argument("--bootstrap", help="HOST:PORT of a DHT node")
    parser.add_argument("--home", action="store_true", help="magnet: stock settings, see the docstring")
    args = parser.parse_args(argv)
    if not args.home and not args.bootstrap:
        parser.error("--bootstrap HOST:PORT or --home")
    try:
        lt = importlib.import_module("libtorrent")
        {"seed": cmd_seed, "magnet": cmd_magnet}[args.command](lt, args)
    except (RuntimeError, OSError, ImportError) as error:
        emit("error", message=str(error))
        print(f"lt_dht_peer: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
