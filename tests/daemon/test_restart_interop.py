"""A real download from a libtorrent seed, `kill -9` in the middle, and a restart.

Issue 13: a crash loses no torrent and no verified piece, without a verify. The daemon
downloads under a download limit, so it is caught mid-way; once its resume data names some
pieces (and not all) it is killed with SIGKILL. The restarted daemon, on the same state
folder, must list the torrent under the same id with at least those pieces already valid
(counted at once from the resume data, not fetched again), then finish, byte for byte.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bitswarm.storage import resume
from interop.test_peer_interop import libtorrent_seed
from interop.trackers import run_bitswarm_tracker, wait_for

from .conftest import kill_hard, make_torrent, start_daemon, stop_daemon

pytestmark = pytest.mark.interop

PIECE_BYTES = 16 * 1024
PAYLOAD_BYTES = 4 << 20
# kB/s (1000 bytes): about 20 s for the payload, so the 10 s resume save comes mid-way.
SLOW_KB_S = 200


def recorded_pieces(path: Path, info_hash: bytes, num_pieces: int) -> set[int]:
    record = resume.load(path, info_hash=info_hash, num_pieces=num_pieces)
    return {index for index in range(num_pieces) if record is not None and record.has(index)}


def test_kill_9_mid_download_then_restart_keeps_the_torrent_and_its_verified_pieces(tmp_path: Path) -> None:
    with run_bitswarm_tracker(tmp_path / "tracker.log") as tracker:
        made = make_torrent(tmp_path / "seed", "payload", {"data.bin": PAYLOAD_BYTES}, tracker=tracker.announce)
        num_pieces = PAYLOAD_BYTES // PIECE_BYTES
        info_hash = bytes.fromhex(made.info_hash)
        with libtorrent_seed(made.path, made.content.parent, ["--timeout", "150"]):
            first = start_daemon(tmp_path / "d")
            resume_path = first.downloads / resume.RESUME_FOLDER / f"{made.info_hash}.resume"
            try:
                first.call("session-set", **{"speed-limit-down": SLOW_KB_S, "speed-limit-down-enabled": True})
                metainfo = base64.b64encode(made.path.read_bytes()).decode()
                torrent_id = first.call("torrent-add", metainfo=metainfo)["torrent-added"]["id"]

                def part_recorded() -> set[int] | None:
                    pieces = recorded_pieces(resume_path, info_hash, num_pieces)
                    return pieces if 0 < len(pieces) < num_pieces else None

                before = wait_for(part_recorded, "resume data naming some pieces", timeout_s=40.0)
            finally:
                kill_hard(first)
            second = start_daemon(tmp_path / "d")
            try:
                [row] = second.torrents("hashString", "haveValid", "pieces", "pieceCount", "downloadDir")
                assert row["id"] == torrent_id
                assert row["hashString"] == made.info_hash
                have = base64.b64decode(row["pieces"])
                restored = {index for index in range(num_pieces) if have[index >> 3] & (0x80 >> (index & 7))}
                assert before <= restored, "verified pieces were lost"
                assert row["haveValid"] >= len(before) * PIECE_BYTES
                second.call("session-set", **{"speed-limit-down-enabled": False})

                def complete() -> bool:
                    return bool(second.torrents("percentDone")[0]["percentDone"] == 1.0)

                wait_for(complete, "the download complete after the restart", timeout_s=60.0)
                [after] = second.torrents("downloadedEver")
            finally:
                stop_daemon(second)
    got = (second.downloads / "payload" / "data.bin").read_bytes()
    assert got == (made.content / "data.bin").read_bytes()
    # The pieces the resume data named were not fetched again (each fetched piece counts).
    assert after["downloadedEver"] <= (num_pieces - len(before)) * PIECE_BYTES * 1.25 + os.path.getsize(made.path)
