"""The daemon's state file and config: strict parsing, one clear line for what is wrong."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bitswarm.daemon.config import DaemonConfig, load_daemon_config
from bitswarm.daemon.service import Daemon
from bitswarm.daemon.state import DaemonState, StateSnapshot, StateStore, TorrentRecord
from bitswarm.errors import UsageError
from bitswarm.net.session import Session

from .conftest import SRC, write_config


def record(number: int) -> TorrentRecord:
    return TorrentRecord(id=number, info_hash="ab" * 20, download_dir="/tmp/x", added_date=1, queue_position=0)


def test_the_state_survives_a_save_and_load_with_its_ids(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    state = DaemonState(next_id=8, torrents=[record(3), record(7)], settings={"speed-limit-down": 5})
    state.torrents[1].labels = ["tv"]
    state.torrents[1].info_hash = "cd" * 20
    store.save(state)
    loaded = store.load()
    assert [item.id for item in loaded.torrents] == [3, 7]
    assert loaded.torrents[1].labels == ["tv"]
    assert loaded.next_id == 8
    assert loaded.settings == {"speed-limit-down": 5}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "state.json"),
        ('{"format": 2}', "not a bitswarm daemon state"),
        ('{"format": 1, "next_id": 2, "settings": {}, "torrents": [{"id": "1"}]}', "unknown field|id: expected int"),
        ('{"format": 1, "next_id": 2, "settings": {}, "torrents": [{"id": 1}]}', "missing"),
    ],
)
def test_a_damaged_state_file_is_one_clear_error(tmp_path: Path, document: str, message: str) -> None:
    (tmp_path / "state.json").write_text(document)
    with pytest.raises(UsageError, match=message):
        StateStore(tmp_path).load()


def test_repeated_ids_are_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(DaemonState(next_id=5, torrents=[record(2), record(2)]))
    with pytest.raises(UsageError, match="repeat"):
        store.load()


def test_config_unknown_keys_and_wrong_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text("download_queue_sise = 3\n")
    with pytest.raises(UsageError, match="unknown setting 'download_queue_sise'"):
        load_daemon_config(path, {})
    path.write_text('download_queue_size = "3"\n')
    with pytest.raises(UsageError, match="must be a number"):
        load_daemon_config(path, {})
    path.write_text('rpc_username = "only-a-name"\n')
    with pytest.raises(UsageError, match="go together"):
        load_daemon_config(path, {})


def test_the_command_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'rpc_whitelist = ["not an address"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "bitswarm", "daemon", "--config", str(config), "--state", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=30, check=False, env={"PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"bitswarm: {config}: rpc_whitelist: 'not an address' is not an address or network"
    ]
    state = tmp_path / "s2"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"format": 1}))
    done = subprocess.run(
        [sys.executable, "-m", "bitswarm", "daemon", "--config", str(write_config(tmp_path)), "--state", str(state),
         "--rpc", "127.0.0.1:0", "--port", "0"],
        capture_output=True, text=True, timeout=30, check=False, env={"PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("bitswarm: daemon: ")
    assert "state.json" in line


def test_a_save_with_nothing_changed_writes_nothing_and_any_change_is_written(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    state = DaemonState(next_id=8, torrents=[record(3), record(7)])
    assert store.write(store.snapshot(state))
    assert not store.write(store.snapshot(state))
    state.torrents[0].labels.append("tv")  # changed in place, as the daemon does
    assert store.write(store.snapshot(state))
    state.settings["speed-limit-down"] = 5
    assert store.write(store.snapshot(state))
    del state.torrents[1]
    assert store.write(store.snapshot(state))
    loaded = store.load()
    assert loaded == state
    assert loaded.torrents[0].labels == ["tv"]


def test_a_failed_write_is_written_again_at_the_next_save(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    store = StateStore(folder)
    state = DaemonState(next_id=2, torrents=[record(1)])
    assert store.write(store.snapshot(state))
    shutil.rmtree(folder)
    state.torrents[0].paused = True
    with pytest.raises(FileNotFoundError):
        store.write(store.snapshot(state))
    folder.mkdir()
    assert store.write(store.snapshot(state))
    assert store.load() == state


class HeldStore(StateStore):
    """Counts writes; the first waits until ``release`` is set."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.writes = 0
        self.writing = threading.Event()
        self.release = threading.Event()

    def write(self, snapshot: StateSnapshot) -> bool:
        self.writes += 1
        self.writing.set()
        self.release.wait(10.0)
        return super().write(snapshot)


def test_saves_asked_for_during_a_write_are_folded_into_the_next_one(tmp_path: Path) -> None:
    async def run() -> None:
        store = HeldStore(tmp_path)
        daemon = Daemon(DaemonConfig(), store, Session(port=0))
        first = asyncio.ensure_future(daemon.save())
        await asyncio.to_thread(store.writing.wait, 10.0)
        daemon.state.next_id = 9  # after the first write's snapshot
        later = [asyncio.ensure_future(daemon.save()) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in (first, *later))
        store.release.set()
        await asyncio.gather(first, *later)
        assert store.writes == 2
        assert store.load().next_id == 9

    asyncio.run(run())
