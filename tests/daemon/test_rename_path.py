"""torrent-rename-path against a running daemon, driven by the transmission-rpc package."""

from __future__ import annotations

import shutil
from pathlib import Path

import transmission_rpc

from interop.trackers import wait_for

from .conftest import Daemon, make_torrent, start_daemon, stop_daemon

SEED = 6


def complete(daemon: Daemon, info_hash: str) -> dict[str, object] | None:
    [row] = daemon.torrents("leftUntilDone", "status", "name", "files", ids=[info_hash])
    return row if row["leftUntilDone"] == 0 and row["status"] == SEED else None


def test_a_file_and_the_top_folder_are_renamed_on_disk_and_stay_renamed_after_a_restart(tmp_path: Path) -> None:
    made = make_torrent(tmp_path, "album", {"cd1/a.bin": 40_000, "cd1/b.bin": 20_000, "notes.txt": 1_000})
    daemon = start_daemon(tmp_path / "d")
    try:
        shutil.copytree(made.content, daemon.downloads / "album")
        client = transmission_rpc.Client(host="127.0.0.1", port=daemon.port, timeout=30)
        added = client.add_torrent(made.path.read_bytes(), download_dir=str(daemon.downloads))
        wait_for(lambda: complete(daemon, made.info_hash), "the torrent seeding", timeout_s=20.0)
        original = (made.content / "cd1" / "a.bin").read_bytes()

        assert client.rename_torrent_path(added.id, "album/cd1/a.bin", "first.bin") == ("album/cd1/a.bin", "first.bin")
        assert (daemon.downloads / "album" / "cd1" / "first.bin").read_bytes() == original
        assert not (daemon.downloads / "album" / "cd1" / "a.bin").exists()
        client.rename_torrent_path(added.id, "album", "Album (2026)")
        assert (daemon.downloads / "Album (2026)" / "cd1" / "first.bin").read_bytes() == original
        assert not (daemon.downloads / "album").exists()

        row = wait_for(lambda: complete(daemon, made.info_hash), "the renamed torrent seeding", timeout_s=20.0)
        assert row["name"] == "Album (2026)"
        names = sorted(str(item["name"]) for item in row["files"])  # type: ignore[attr-defined]
        assert names == ["Album (2026)/cd1/b.bin", "Album (2026)/cd1/first.bin", "Album (2026)/notes.txt"]
        assert client.get_torrent(added.id).hash_string == made.info_hash  # the same torrent
    finally:
        stop_daemon(daemon)

    daemon = start_daemon(tmp_path / "d")
    try:
        row = wait_for(lambda: complete(daemon, made.info_hash), "seeding after the restart", timeout_s=20.0)
        assert row["name"] == "Album (2026)"
        assert "Album (2026)/cd1/first.bin" in [item["name"] for item in row["files"]]  # type: ignore[attr-defined]
        assert not (daemon.downloads / "album").exists()
    finally:
        stop_daemon(daemon)


def test_bad_renames_get_a_clear_result_and_change_nothing(tmp_path: Path, daemon: Daemon) -> None:
    one = make_torrent(tmp_path, "one", {"x/a.bin": 30_000, "x/b.bin": 30_000})
    two = make_torrent(tmp_path, "two", {"c.bin": 30_000})
    for made in (one, two):
        shutil.copytree(made.content, daemon.downloads / made.name)
        daemon.call("torrent-add", filename=str(made.path))
    wait_for(lambda: complete(daemon, one.info_hash), "the torrent seeding", timeout_s=20.0)
    [first] = daemon.torrents("id", ids=[one.info_hash])

    def refused(path: object, name: object, ids: object = None) -> str:
        result = daemon.rpc("torrent-rename-path", ids=[first["id"]] if ids is None else ids, path=path, name=name)
        assert result["result"] != "success", (path, name)
        return str(result["result"])

    assert "outside" in refused("one/x/a.bin", "..") or "not allowed" in refused("one/x/a.bin", "..")
    assert "separator" in refused("one/x/a.bin", "y/a.bin")
    assert "not allowed" in refused("one/x/a.bin", "")
    assert "collides" in refused("one/x/a.bin", "b.bin")
    assert "collides" in refused("one/x/a.bin", "B.BIN")
    assert "not in this torrent" in refused("one/x/missing.bin", "z.bin")
    assert "not in this torrent" in refused("one/../two", "z")
    assert "portable" in refused("one/x/a.bin", "CON")
    assert refused("one/x/a.bin", 5) == "name must be a string"
    assert refused("one/x/a.bin", "z.bin", ids=[one.info_hash, two.info_hash]).startswith("torrent-rename-path: ids")
    # Something already on disk where the new name would go.
    (daemon.downloads / "one" / "x" / "z.bin").write_bytes(b"mine")
    assert "in the way" in refused("one/x/a.bin", "z.bin")
    assert (daemon.downloads / "one" / "x" / "z.bin").read_bytes() == b"mine"
    row = wait_for(lambda: complete(daemon, one.info_hash), "the torrent seeding as before", timeout_s=20.0)
    assert sorted(item["name"] for item in row["files"]) == ["one/x/a.bin", "one/x/b.bin"]  # type: ignore[attr-defined]
    assert (daemon.downloads / "one" / "x" / "a.bin").read_bytes() == (one.content / "x" / "a.bin").read_bytes()
