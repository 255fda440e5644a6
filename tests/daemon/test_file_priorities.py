"""File priorities from the RPC to the picker: torrent-add's and torrent-set's
priority-high/-normal/-low become the engine's piece priorities (high files' pieces
picked first, low last), kept across a restart of the torrent's runtime."""

from __future__ import annotations

import base64
from pathlib import Path

from bitswarm.daemon.app import new_session_id
from bitswarm.daemon.rpc import TransmissionRpc
from bitswarm.daemon.service import Daemon

from .conftest import make_torrent
from .test_subscriptions import open_daemon
from .test_web_ui import run

# One file per piece (16 KiB pieces): its pieces' priorities are its own.
FILES = {"a.bin": 16384, "b.bin": 16384, "c.bin": 16384}


async def _fetch(_url: str) -> bytes:
    raise AssertionError("no URL is fetched here")


def piece_priorities(daemon: Daemon, number: int) -> list[int]:
    runtime = daemon.entries[number].runtime
    assert runtime is not None
    assert runtime.swarm is not None
    return list(runtime.swarm.picker.priority)


def test_priorities_reach_the_picker_and_follow_torrent_set(tmp_path: Path) -> None:
    made = make_torrent(tmp_path, "prio", FILES)

    async def scenario() -> None:
        async with open_daemon(tmp_path / "d") as daemon:
            rpc = TransmissionRpc(daemon, session_id=new_session_id(), fetch_url=_fetch)
            metainfo = base64.b64encode(made.path.read_bytes()).decode()
            answer = await rpc.call("torrent-add", {"metainfo": metainfo, "paused": True, "priority-high": [2],
                                                    "priority-low": [0]})  # fmt: skip
            assert answer["result"] == "success", answer
            number = answer["arguments"]["torrent-added"]["id"]
            # Files are in name order: a.bin low, b.bin normal, c.bin high.
            assert piece_priorities(daemon, number) == [1, 2, 3]
            answer = await rpc.call("torrent-set", {"ids": [number], "priority-high": [0], "priority-normal": [2],
                                                    "files-unwanted": [1]})  # fmt: skip
            assert answer["result"] == "success", answer
            assert piece_priorities(daemon, number) == [3, 0, 2]
            got = await rpc.call("torrent-get", {"ids": [number], "fields": ["priorities", "wanted"]})
            assert got["arguments"]["torrents"] == [{"priorities": [1, 0, 0], "wanted": [1, 0, 1]}]
            # A verify re-launches the runtime: the priorities come back from the record.
            await daemon.verify(daemon.select([number]))
            assert piece_priorities(daemon, number) == [3, 0, 2]
            answer = await rpc.call("torrent-set", {"ids": [number], "priority-normal": [0, 1, 2],
                                                    "files-wanted": [1]})  # fmt: skip
            # Every file normal again: one class, exactly what `bitswarm get` picks with.
            assert piece_priorities(daemon, number) == [1, 1, 1]

    run(scenario)
