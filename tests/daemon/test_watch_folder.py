"""The watch folder: files written into the folder of a running daemon, and the scan rules."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bitswarm.daemon.service import AddRequest
from bitswarm.daemon.watch import WatchFolder, is_candidate
from interop.trackers import wait_for

from .conftest import Daemon, make_torrent

MAGNET_HASH = "c" * 40


def test_files_dropped_into_the_watch_folder_are_added_once_and_renamed(daemon: Daemon, tmp_path: Path) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    # Turned on at run time, as a remote does (session-set).
    daemon.call("session-set", **{"watch-dir": str(watch), "watch-dir-enabled": True})
    assert daemon.call("session-get", fields=["watch-dir", "watch-dir-enabled"]) == {
        "watch-dir": str(watch),
        "watch-dir-enabled": True,
    }
    good = make_torrent(tmp_path / "made", "good", {"a.bin": 20000})
    outside = make_torrent(tmp_path / "made", "outside", {"b.bin": 20000})
    # Still being written under a temporary name: never read.
    (watch / "good.torrent.part").write_bytes(good.path.read_bytes()[:100])
    (watch / "good.torrent").write_bytes(good.path.read_bytes())
    (watch / "show.magnet").write_text(f"magnet:?xt=urn:btih:{MAGNET_HASH}&dn=show\n")
    (watch / "notes.torrent").write_bytes(b"<html>not a torrent</html>")
    (watch / "escape.torrent").symlink_to(outside.path)

    wait_for((watch / "good.torrent.added").exists, "the .torrent renamed .added")
    wait_for((watch / "show.magnet.added").exists, "the .magnet renamed .added")
    wait_for((watch / "notes.torrent.invalid").exists, "the junk renamed .invalid")
    wait_for((watch / "escape.torrent.invalid").is_symlink, "the symlink out refused")
    hashes = {torrent["hashString"] for torrent in daemon.torrents("hashString")}
    assert hashes == {good.info_hash, MAGNET_HASH}
    assert outside.path.exists()  # the link's target is untouched
    assert (watch / "good.torrent.part").exists()
    log = daemon.log.read_text()
    assert log.count("notes.torrent: not a torrent") == 1
    assert log.count("escape.torrent: a symlink out of the watch folder") == 1

    # With trash-original-torrent-files the file goes away instead; the same torrent again is
    # not a second torrent.
    daemon.call("session-set", **{"trash-original-torrent-files": True})
    (watch / "again.torrent").write_bytes(good.path.read_bytes())
    wait_for(lambda: not (watch / "again.torrent").exists(), "the file removed")
    assert not (watch / "again.torrent.added").exists()
    assert len(daemon.torrents()) == 2


def test_a_file_is_read_only_once_its_size_stopped_changing(tmp_path: Path) -> None:
    added: list[AddRequest] = []

    async def add(request: AddRequest) -> None:
        added.append(request)

    async def scenario() -> None:
        watcher = WatchFolder(add)
        link = f"magnet:?xt=urn:btih:{MAGNET_HASH}".encode()
        path = tmp_path / "slow.magnet"
        path.write_bytes(link[:20])
        await watcher.scan(tmp_path, trash=False)  # first sight
        with path.open("ab") as file:
            file.write(link[20:])
        os.utime(path, ns=(1, 1))
        await watcher.scan(tmp_path, trash=False)  # it grew: not yet
        assert added == []
        await watcher.scan(tmp_path, trash=False)  # unchanged since the last scan: taken
        assert [request.link for request in added] == [link.decode()]
        assert (tmp_path / "slow.magnet.added").exists()

    asyncio.run(scenario())


def test_only_finished_torrent_and_magnet_names_are_candidates() -> None:
    assert is_candidate("Show.S01E01.torrent")
    assert is_candidate("x.MAGNET")
    for name in (".hidden.torrent", "x.torrent.part", "x.torrent.added", "x.torrent.invalid", "x.txt", "x.torrent~"):
        assert not is_candidate(name), name


def test_an_oversized_magnet_file_is_not_read_and_gets_invalid(tmp_path: Path) -> None:
    added: list[AddRequest] = []

    async def add(request: AddRequest) -> None:
        added.append(request)

    async def scenario() -> None:
        watcher = WatchFolder(add)
        (tmp_path / "huge.magnet").write_bytes(f"magnet:?xt=urn:btih:{MAGNET_HASH}&tr=".encode() + b"x" * (1 << 17))
        for _ in range(2):
            await watcher.scan(tmp_path, trash=False)

    asyncio.run(scenario())
    assert added == []
    assert (tmp_path / "huge.magnet.invalid").exists()
