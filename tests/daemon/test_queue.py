"""Queueing, verify, moving and limits through the RPC of a running daemon."""

from __future__ import annotations

import base64
from pathlib import Path

from interop.trackers import wait_for

from .conftest import Daemon, make_torrent, running_daemon

DOWNLOAD_WAIT, DOWNLOAD, SEED = 3, 4, 6


def add(daemon: Daemon, path: Path, **arguments: object) -> int:
    metainfo = base64.b64encode(path.read_bytes()).decode()
    number: int = daemon.call("torrent-add", metainfo=metainfo, **arguments)["torrent-added"]["id"]
    return number


def test_the_download_queue_runs_the_first_n_in_order_and_follows_queue_moves(tmp_path: Path) -> None:
    with running_daemon(tmp_path / "d", config_extra="download_queue_size = 2\n") as daemon:
        ids = [add(daemon, make_torrent(tmp_path, f"q{n}", {"a.bin": 20_000 + n}).path) for n in range(3)]

        def statuses() -> list[int]:
            return [row["status"] for row in daemon.torrents("status")]

        wait_for(lambda: statuses() == [DOWNLOAD, DOWNLOAD, DOWNLOAD_WAIT], "two running, one queued", 10.0)
        daemon.call("queue-move-top", ids=[ids[2]])
        assert [row["queuePosition"] for row in daemon.torrents("queuePosition")] == [1, 2, 0]
        wait_for(lambda: statuses() == [DOWNLOAD, DOWNLOAD_WAIT, DOWNLOAD], "the moved one running", 10.0)
        daemon.call("torrent-start-now", ids=[ids[1]])
        wait_for(lambda: statuses() == [DOWNLOAD, DOWNLOAD, DOWNLOAD], "start-now past the queue", 10.0)


def test_verify_and_set_location_with_move_keep_the_data(tmp_path: Path, daemon: Daemon) -> None:
    made = make_torrent(tmp_path, "moving", {"m.bin": 90_000, "n/o.bin": 10})
    (daemon.downloads / "moving").mkdir(parents=True)
    for name in ("m.bin", "n/o.bin"):
        (daemon.downloads / "moving" / name).parent.mkdir(parents=True, exist_ok=True)
        (daemon.downloads / "moving" / name).write_bytes((made.content / name).read_bytes())
    number = add(daemon, made.path)
    wait_for(lambda: daemon.torrents("status", ids=number)[0]["status"] == SEED, "seeding what was there", 10.0)
    daemon.call("torrent-verify", ids=[number])
    wait_for(lambda: daemon.torrents("percentDone")[0]["percentDone"] == 1.0, "verified complete", 10.0)
    target = tmp_path / "elsewhere"
    daemon.call("torrent-set-location", ids=[number], location=str(target), move=True)
    [row] = daemon.torrents("downloadDir", "percentDone")
    assert row["downloadDir"] == str(target)
    assert row["percentDone"] == 1.0
    assert (target / "moving" / "m.bin").read_bytes() == (made.content / "m.bin").read_bytes()
    assert not (daemon.downloads / "moving").exists()


def test_session_settings_survive_a_restart(tmp_path: Path) -> None:
    with running_daemon(tmp_path / "d") as daemon:
        daemon.call("session-set", **{"speed-limit-up": 123, "speed-limit-up-enabled": True, "seed-queue-size": 4})
        number = add(daemon, make_torrent(tmp_path, "kept", {"k.bin": 1000}).path, labels=["x"])
        daemon.call("torrent-set", ids=number, uploadLimit=77, uploadLimited=True)
    with running_daemon(tmp_path / "d") as daemon:
        session = daemon.call("session-get", fields=["speed-limit-up", "speed-limit-up-enabled", "seed-queue-size"])
        assert session == {"speed-limit-up": 123, "speed-limit-up-enabled": True, "seed-queue-size": 4}
        [row] = daemon.torrents("labels", "uploadLimit", "uploadLimited")
        assert row == {"id": number, "labels": ["x"], "uploadLimit": 77, "uploadLimited": True}
