#!/usr/bin/python3
"""libtorrent 2.0's viewer for bench/stream_bench.py: a player reading a torrent as it downloads.

Runs under Debian's /usr/bin/python3 (the only Python here that imports libtorrent):

    /usr/bin/python3 bench/lt_stream.py viewer TORRENT FOLDER --rate BYTES_PER_S
        [--max-up BYTES] [--startup-bytes N] [--rebuffer-bytes N] [--window-bytes N]
        [--connect PORT] [--check FILE] [--lifetime-s S]

The torrent starts at once (its trackers give the peers, and --connect one more). The player is the model of
bench/playback.py: the playhead starts once --startup-bytes are here and then consumes
--rate bytes per second. It reads as a libtorrent streaming client does: every piece
from the playhead to --window-bytes past it gets a deadline (`set_piece_deadline`, due
when the playhead will reach it, with `alert_when_available`, so libtorrent reads the
piece back, `read_piece`, once it has it); the bytes the player has are the pieces read
back, from the start without a gap. libtorrent fetches the rest of the file with its
usual picker. With --check, each piece read back is compared with that file's bytes.

It prints JSON lines as bench/lt_peer.py does ("t" is CLOCK_MONOTONIC): "ready" (the
torrent is added), "progress" (the playhead's summary, bytes done and uploaded, peers, every
PROGRESS_PERIOD_S), "finished" (the playhead reached the end), "summary" (on the way
out) and "error". It keeps sharing after that until
"stop" on stdin (or stdin closes), or --lifetime-s. Sessions are those of lt_peer.py:
127.0.0.1 only, TCP only, no DHT, LSD, UPnP or NAT-PMP; with --max-up, loopback peers are
moved into the rate-limited global peer class. PEX stays on, as in the other clients.
"""

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from lt_peer import emit, new_session, raise_on_errors, read_command
from playback import Playhead, PlayState

POLL_MS = 50
PROGRESS_PERIOD_S = 1.0
DEFAULT_LIFETIME_S = 600.0


def viewer_params(lt: Any, torrent: str, folder: str, *, sequential: bool = False) -> Any:
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = os.path.abspath(folder)
    # Not paused and not auto-managed: the torrent starts at once. PEX stays on.
    params.flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
    if sequential:
        params.flags |= lt.torrent_flags.sequential_download
    return params


def transfer(handle: Any) -> dict[str, int]:
    status = handle.status()
    return {"done": status.total_wanted_done, "uploaded": status.total_payload_upload, "peers": status.num_peers}


def cmd_viewer(lt: Any, args: argparse.Namespace) -> None:
    session = new_session(lt, args.max_up)
    handle = session.add_torrent(viewer_params(lt, args.torrent, args.folder, sequential=args.sequential))
    if args.connect:
        handle.connect_peer(("127.0.0.1", args.connect))
    info = handle.torrent_file()
    size, piece_length, num_pieces = info.total_size(), info.piece_length(), info.num_pieces()
    original = Path(args.check).read_bytes() if args.check else None
    if original is not None and len(original) != size:
        raise RuntimeError(f"--check: {args.check} has {len(original)} bytes, the torrent {size}")
    emit("ready", port=session.listen_port(), size=size, piece_length=piece_length)
    playhead = Playhead(size, args.rate, args.startup_bytes, args.rebuffer_bytes)
    read_back: set[int] = set()
    with_deadline: set[int] = set()
    contiguous = 0  # pieces read back from the first one without a gap
    finished = False
    next_progress = time.monotonic()
    end = time.monotonic() + args.lifetime_s
    while time.monotonic() < end:
        if read_command(0.0) == "stop":
            break
        now = time.monotonic()
        position = playhead.position_at(now)
        first = int(position) // piece_length
        last = min(num_pieces - 1, (int(position) + args.window_bytes) // piece_length)
        for index in range(first, last + 1):
            if index not in with_deadline:
                due_ms = max(0, int((index * piece_length - position) / args.rate * 1000))
                handle.set_piece_deadline(index, due_ms, lt.deadline_flags_t.alert_when_available)
                with_deadline.add(index)
        session.wait_for_alert(POLL_MS)
        alerts = session.pop_alerts()
        raise_on_errors(lt, alerts)
        for alert in alerts:
            if not isinstance(alert, lt.read_piece_alert):
                continue
            if alert.error.value() != 0:
                with_deadline.discard(alert.piece)  # asked again on the next turn
                continue
            if original is not None:
                begin = alert.piece * piece_length
                if bytes(alert.buffer) != original[begin : begin + alert.size]:
                    raise RuntimeError(f"piece {alert.piece} read back differs from --check")
            read_back.add(alert.piece)
        while contiguous < num_pieces and contiguous in read_back:
            contiguous += 1
        now = time.monotonic()
        playhead.update(now, min(size, contiguous * piece_length))
        if not finished and playhead.state is PlayState.FINISHED:
            finished = True
            emit("finished", **playhead.summary(now), **transfer(handle))
        if now >= next_progress:
            next_progress = now + PROGRESS_PERIOD_S
            emit("progress", **playhead.summary(now), **transfer(handle))
    emit("summary", **playhead.summary(time.monotonic()), **transfer(handle))
    del session


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lt_stream.py")
    sub = parser.add_subparsers(dest="command", required=True)
    viewer = sub.add_parser("viewer")
    viewer.add_argument("torrent")
    viewer.add_argument("folder")
    viewer.add_argument("--rate", type=float, required=True, help="the player's consumption, bytes per second")
    viewer.add_argument("--max-up", type=int, default=0, help="upload limit, bytes per second (0: none)")
    viewer.add_argument("--startup-bytes", type=int, default=0, help="buffered before playing [2 s at --rate]")
    viewer.add_argument("--rebuffer-bytes", type=int, default=0, help="buffered before resuming [--startup-bytes]")
    viewer.add_argument("--window-bytes", type=int, default=0, help="deadlines this far ahead [10 s at --rate]")
    viewer.add_argument("--connect", type=int, default=0, help="port of a peer on 127.0.0.1 to connect to")
    viewer.add_argument("--sequential", action="store_true", help="the usual picker in order, not rarest first")
    viewer.add_argument("--check", help="compare every piece read back with this file")
    viewer.add_argument("--lifetime-s", type=float, default=DEFAULT_LIFETIME_S)
    args = parser.parse_args(argv)
    args.startup_bytes = args.startup_bytes or int(2 * args.rate)
    args.rebuffer_bytes = args.rebuffer_bytes or args.startup_bytes
    args.window_bytes = args.window_bytes or int(10 * args.rate)
    try:
        lt = importlib.import_module("libtorrent")
        cmd_viewer(lt, args)
    except (RuntimeError, OSError, ImportError) as error:
        emit("error", message=str(error))
        print(f"lt_stream: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
