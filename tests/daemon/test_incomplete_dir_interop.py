"""incomplete-dir (Transmission's move on completion): a real download from a libtorrent
seed lives in the incomplete folder until complete, then moves to its download folder with
its resume data, so no verified piece is lost or fetched again, across a restart too."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bitswarm.storage import resume
from interop.test_peer_interop import libtorrent_seed
from interop.trackers import run_bitswarm_tracker, wait_for

from .conftest import make_torrent, start_daemon, stop_daemon

pytestmark = pytest.mark.interop

PAYLOAD_BYTES = 1 << 20
# kB/s: about 5 s for the payload, so it is seen in the incomplete folder first.
SLOW_KB_S = 200


def test_a_download_moves_from_the_incomplete_dir_when_complete_and_keeps_its_pieces(tmp_path: Path) -> None:
    incomplete = tmp_path / "incomplete"
    with run_bitswarm_tracker(tmp_path / "tracker.log") as tracker:
        made = make_torrent(tmp_path / "seed", "payload", {"data.bin": PAYLOAD_BYTES}, tracker=tracker.announce)
        with libtorrent_seed(made.path, made.content.parent, ["--timeout", "90"]):
            daemon = start_daemon(tmp_path / "d")
            try:
                daemon.call("session-set", **{
                    "incomplete-dir": str(incomplete), "incomplete-dir-enabled": True,
                    "speed-limit-down": SLOW_KB_S, "speed-limit-down-enabled": True,
                })  # fmt: skip
                metainfo = base64.b64encode(made.path.read_bytes()).decode()
                daemon.call("torrent-add", metainfo=metainfo)
                wait_for((incomplete / "payload" / "data.bin").exists, "the data in the incomplete folder")
                [row] = daemon.torrents("downloadDir", "percentDone")
                assert row["downloadDir"] == str(daemon.downloads)  # where it goes, as Transmission reports
                assert not (daemon.downloads / "payload").exists()
                daemon.call("session-set", **{"speed-limit-down-enabled": False})
                final = daemon.downloads / "payload" / "data.bin"
                wait_for(lambda: final.exists() and not (incomplete / "payload").exists(), "the move", timeout_s=60)

                def settled() -> dict[str, object] | None:
                    [row] = daemon.torrents("percentDone", "haveValid", "errorString", "downloadedEver", "status")
                    return row if row["percentDone"] == 1.0 and row["status"] == 6 else None

                row = wait_for(settled, "seeding from the download folder")
                assert row["errorString"] == ""
                assert row["haveValid"] == PAYLOAD_BYTES
                assert row["downloadedEver"] <= PAYLOAD_BYTES * 1.25  # nothing fetched twice
                assert (daemon.downloads / resume.RESUME_FOLDER / f"{made.info_hash}.resume").exists()
            finally:
                stop_daemon(daemon)
    assert final.read_bytes() == (made.content / "data.bin").read_bytes()
    again = start_daemon(tmp_path / "d")
    try:
        # Straight from the moved resume data: complete at once, no hashing, nothing to fetch.
        [row] = again.torrents("haveValid", "downloadDir")
        assert row["haveValid"] == PAYLOAD_BYTES
        assert row["downloadDir"] == str(again.downloads)
    finally:
        stop_daemon(again)
