#!/usr/bin/python3
"""libtorrent 2.0 downloads a torrent from its BEP 19 web seeds alone (no peers).

Runs under Debian's /usr/bin/python3 (the only Python here that imports libtorrent):

    /usr/bin/python3 tests/lt_webseed.py TORRENT SAVE_PATH [--timeout S]

The torrent's url-list is all libtorrent has: no trackers, DHT, LSD, PEX, UPnP or
NAT-PMP, and the session listens on 127.0.0.1 only. Prints one JSON object once every
piece is verified: {"elapsed_s": seconds from adding the torrent, "completed_monotonic":
time.monotonic() then (the system's clock: a caller times from its own start), "web_seeds":
[url], "downloaded": payload bytes} and exits 0; on failure {"error": "..."} and exit 1.
Used by tests/interop/test_webseed_interop.py and bench/webseed_bench.py.
"""

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any

ALERT_POLL_MS = 100


def download(torrent: str, save_path: str, timeout_s: float) -> dict[str, Any]:
    lt = importlib.import_module("libtorrent")
    session = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "outgoing_interfaces": "127.0.0.1",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "alert_mask": int(lt.alert_category.status | lt.alert_category.error),
        }
    )
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = os.path.abspath(save_path)
    params.trackers = []
    params.flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    started = time.monotonic()
    handle = session.add_torrent(params)
    errors: list[str] = []
    while time.monotonic() - started < timeout_s:
        status = handle.status()
        if status.is_seeding:
            return {
                "elapsed_s": time.monotonic() - started,
                "completed_monotonic": time.monotonic(),
                "web_seeds": sorted(handle.url_seeds()),
                "downloaded": status.total_payload_download,
            }
        session.wait_for_alert(ALERT_POLL_MS)
        for alert in session.pop_alerts():
            if isinstance(alert, (lt.url_seed_alert, lt.torrent_error_alert, lt.file_error_alert)):
                errors.append(alert.message())
    raise TimeoutError(f"not complete within {timeout_s} s; last errors: {errors[-3:]}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="lt_webseed.py")
    parser.add_argument("torrent")
    parser.add_argument("save_path")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    try:
        result = download(args.torrent, args.save_path, args.timeout)
    except (ImportError, RuntimeError, TimeoutError) as error:
        print(json.dumps({"error": str(error)}))
        print(f"lt_webseed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
