"""``kill -9`` in the middle of a download loses no verified piece and trusts nothing unverified."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from pathlib import Path

from bitswarm.metainfo import Torrent
from bitswarm.storage.verify import verify

from .conftest import BITSWARM, seeders, wait_for


def test_a_download_killed_with_sigkill_resumes_without_losing_verified_pieces(tmp_path: Path, tracker: str) -> None:
    source = tmp_path / "seed" / "payload.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(3).randbytes(4_000_000))
    torrent_path = tmp_path / "payload.torrent"
    arguments = ["-o", str(torrent_path), "--v1", "-t", f"{tracker}/announce", "--piece-length", "32K"]
    assert (
        subprocess.run([*BITSWARM, "create", str(source), *arguments], capture_output=True, check=False).returncode == 0
    )
    torrent = Torrent.decode(torrent_path.read_bytes())
    # A slow seed: the download takes seconds, so it can be killed halfway.
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(source.parent), "--port", "0", "--max-up", "1M", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert seed.stdout is not None
        assert json.loads(seed.stdout.readline())["event"] == "started"
        wait_for(lambda: seeders(tracker, torrent.info_hash_v1 or b"") == 1, "the seed's announce")
        target = tmp_path / "get"
        getter = subprocess.Popen(
            [*BITSWARM, "get", str(torrent_path), "-o", str(target), "--port", "0", "--no-seed", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert getter.stdout is not None
        progress = 0.0
        for line in getter.stdout:
            event = json.loads(line)
            if event["event"] == "status":
                progress = event["progress"]
                if progress >= 0.4:
                    break
        assert progress >= 0.4
        os.kill(getter.pid, signal.SIGKILL)
        getter.wait(timeout=30)
        verified_before = int(progress * torrent.num_pieces)
        # Whatever the resume file says, only data that hashes right may count.
        on_disk = verify(torrent, target)
        assert on_disk.good_pieces >= verified_before
        restarted = subprocess.Popen(
            [*BITSWARM, "get", str(torrent_path), "-o", str(target), "--port", "0", "--no-seed", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        out, err = restarted.communicate(timeout=120)
        assert restarted.returncode == 0, err
        started = json.loads(out.splitlines()[0])
        assert started["event"] == "started"
        assert started["pieces"] >= verified_before
        assert started["pieces"] == on_disk.good_pieces
        assert (target / "payload.bin").read_bytes() == source.read_bytes()
    finally:
        seed.terminate()
        seed.wait(timeout=30)
