"""Real clients, unchanged, driving `bitswarm daemon`: Debian's transmission-remote, the
transmission-rpc package, `bitswarm ctl`, and a script doing what Sonarr does."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import transmission_rpc

from ctl.conftest import ctl_process
from interop.tools import require
from interop.trackers import wait_for

from .conftest import Daemon, make_torrent

REMOTE_TIMEOUT_S = 30.0
# Transmission's status numbers.
STOPPED, DOWNLOAD_WAIT, DOWNLOAD, SEED = 0, 3, 4, 6
# What Sonarr's Transmission client asks torrent-get for (TransmissionProxy.GetTorrents).
SONARR_FIELDS = [
    "id", "hashString", "name", "downloadDir", "totalSize", "leftUntilDone", "isFinished", "eta", "status",
    "secondsDownloading", "secondsSeeding", "errorString", "uploadedEver", "downloadedEver", "seedRatioLimit",
    "seedRatioMode", "seedIdleLimit", "seedIdleMode", "fileCount", "file-count", "labels",
]  # fmt: skip


def remote(daemon: Daemon, *args: str) -> str:
    done = subprocess.run(
        [require("transmission-remote"), str(daemon.port), *args],
        capture_output=True, text=True, timeout=REMOTE_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_transmission_remote_adds_lists_stops_starts_limits_and_removes(tmp_path: Path, daemon: Daemon) -> None:
    kept = make_torrent(tmp_path, "kept", {"a.bin": 70_000, "sub/b.bin": 5})
    doomed = make_torrent(tmp_path, "doomed", {"c.bin": 50_000})
    assert "success" in remote(daemon, "-a", str(kept.path))
    assert "success" in remote(daemon, "-a", str(doomed.path))
    listing = remote(daemon, "-l")
    assert " kept" in listing
    assert " doomed" in listing
    rows = {row["name"]: row for row in daemon.torrents("name", "status", "totalSize")}
    assert rows["kept"]["totalSize"] == 70_005
    kept_id, doomed_id = rows["kept"]["id"], rows["doomed"]["id"]

    remote(daemon, "-t", str(kept_id), "-S")
    assert daemon.torrents("status", ids=kept_id)[0]["status"] == STOPPED
    assert "Stopped" in remote(daemon, "-l")
    remote(daemon, "-t", str(kept_id), "-s")
    assert daemon.torrents("status", ids=kept_id)[0]["status"] in (DOWNLOAD_WAIT, DOWNLOAD)

    remote(daemon, "-t", kept.info_hash, "-d", "250", "-u", "40")
    [limits] = daemon.torrents("downloadLimit", "downloadLimited", "uploadLimit", "uploadLimited", ids=kept_id)
    assert limits == {"id": kept_id, "downloadLimit": 250, "downloadLimited": True, "uploadLimit": 40,
                      "uploadLimited": True}  # fmt: skip
    remote(daemon, "-d", "900", "-u", "300")
    session = daemon.call("session-get")
    assert (session["speed-limit-down"], session["speed-limit-down-enabled"]) == (900, True)
    assert (session["speed-limit-up"], session["speed-limit-up-enabled"]) == (300, True)

    info = remote(daemon, "-t", kept.info_hash, "-i")
    assert f"Hash: {kept.info_hash}" in info
    assert "Name: kept" in info
    assert "Daemon version: 4.0.6 (bitswarm" in remote(daemon, "-si")
    assert "Started 1 times" in remote(daemon, "-st")

    (daemon.downloads / "doomed").mkdir(parents=True, exist_ok=True)
    (daemon.downloads / "doomed" / "c.bin").write_bytes(doomed.content.joinpath("c.bin").read_bytes())
    remote(daemon, "-t", str(doomed_id), "--remove-and-delete")
    assert not (daemon.downloads / "doomed").exists()
    remote(daemon, "-t", str(kept_id), "-r")
    assert daemon.torrents() == []


def test_the_transmission_rpc_package_drives_the_daemon(tmp_path: Path, daemon: Daemon) -> None:
    made = make_torrent(tmp_path, "pkg", {"x.bin": 100_000})
    client = transmission_rpc.Client(host="127.0.0.1", port=daemon.port, timeout=30)
    added = client.add_torrent(made.path.read_bytes(), paused=True, labels=["tv"], download_dir=str(tmp_path / "dl"))
    torrent = client.get_torrent(added.hash_string)
    assert torrent.name == "pkg"
    assert torrent.labels == ["tv"]
    assert torrent.download_dir == str(tmp_path / "dl")
    assert torrent.status == "stopped"
    client.start_torrent(torrent.id)
    assert client.get_torrent(torrent.id).status in ("downloading", "download pending")
    client.change_torrent(torrent.id, labels=["movies", "hd"])
    assert client.get_torrent(torrent.id).labels == ["movies", "hd"]
    assert client.get_session().rpc_version == 17
    assert client.session_stats().torrent_count == 1
    client.remove_torrent(torrent.id, delete_data=True)
    assert client.get_torrents() == []


def test_bitswarm_ctl_drives_the_daemon(tmp_path: Path, daemon: Daemon) -> None:
    made = make_torrent(tmp_path, "viactl", {"y.bin": 30_000})
    assert ctl_process(daemon.url, "add", str(made.path)).exit_code == 0
    listed = ctl_process(daemon.url, "--json", "list")
    assert listed.exit_code == 0, listed.stderr
    [row] = listed.json()["torrents"]
    assert row["name"] == "viactl"
    assert ctl_process(daemon.url, "pause", str(row["id"])).exit_code == 0
    assert daemon.torrents("status")[0]["status"] == STOPPED
    assert ctl_process(daemon.url, "resume", made.info_hash).exit_code == 0
    assert daemon.torrents("status")[0]["status"] != STOPPED
    assert ctl_process(daemon.url, "remove", str(row["id"])).exit_code == 0
    assert daemon.torrents() == []


def test_a_sonarr_like_script_adds_with_label_and_folder_polls_and_removes(tmp_path: Path, daemon: Daemon) -> None:
    """Sonarr: session-get for the version and folder, torrent-add (metainfo, download-dir,
    paused false), then labels by torrent-set, polls torrent-get with its fields, removes."""
    made = make_torrent(tmp_path, "Show.S01E02.1080p", {"Show.S01E02.1080p.mkv": 60_000})
    session = daemon.call("session-get", fields=["version", "download-dir", "rpc-version"])
    assert int(session["version"].split(".")[0]) >= 2
    folder = tmp_path / "tv-sonarr"
    # The content is already there: the torrent checks it, finds every piece, and seeds.
    (folder / made.name).mkdir(parents=True)
    (folder / made.name / "Show.S01E02.1080p.mkv").write_bytes((made.content / "Show.S01E02.1080p.mkv").read_bytes())
    added = daemon.call(
        "torrent-add", metainfo=base64.b64encode(made.path.read_bytes()).decode(), paused=False,
        **{"download-dir": str(folder)},
    )["torrent-added"]  # fmt: skip
    daemon.call("torrent-set", ids=[added["hashString"]], labels=["tv-sonarr"])

    def finished() -> dict[str, object] | None:
        [row] = daemon.torrents(*SONARR_FIELDS, ids=[added["hashString"]])
        return row if row["leftUntilDone"] == 0 else None

    row = wait_for(finished, "the torrent complete", timeout_s=20.0)
    assert row["labels"] == ["tv-sonarr"]
    assert row["downloadDir"] == str(folder)
    assert row["totalSize"] == 60_000
    assert row["fileCount"] == row["file-count"] == 1
    assert row["status"] == SEED
    assert row["errorString"] == ""
    daemon.call("torrent-remove", ids=[added["hashString"]], **{"delete-local-data": False})
    assert daemon.torrents() == []
    assert (folder / made.name / "Show.S01E02.1080p.mkv").exists()
