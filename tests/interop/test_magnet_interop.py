"""Magnet links between bitswarm and libtorrent on loopback, peers named by x.pe only.

libtorrent, given only a magnet link naming a `bitswarm seed`, fetches the info dictionary
over ut_metadata and then the content (lt_driver `magnet`); and `bitswarm get MAGNET`
does the same from a libtorrent seed that has no tracker (lt_driver `seed-here`).
libtorrent also dials a peer that only bitswarm's ut_pex named (`magnet --pex`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bitswarm import bencode
from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session, TorrentOptions

from .tools import lt_process
from .trackers import wait_for

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
NO_DISCOVERY = ["--no-dht", "--no-lsd"]
DEADLINE_S = 60


def make_content(tmp_path: Path, version: TorrentVersion) -> tuple[Path, Path, Torrent]:
    folder = tmp_path / "seed" / "set"
    folder.mkdir(parents=True)
    rng = random.Random(41)
    (folder / "big.bin").write_bytes(rng.randbytes(1_500_000))
    (folder / "note.txt").write_bytes(rng.randbytes(4321))
    data = create(folder, CreateOptions(version=version, piece_length=64 * 1024))
    torrent_path = tmp_path / "set-original.torrent"
    torrent_path.write_bytes(data)
    return torrent_path, folder, Torrent.decode(data)


def same_content(folder: Path, source: Path) -> bool:
    names = ("big.bin", "note.txt")
    present = all((folder / name).exists() for name in names)
    return present and all((folder / name).read_bytes() == (source / name).read_bytes() for name in names)


@pytest.mark.parametrize("version", [TorrentVersion.V1, TorrentVersion.HYBRID], ids=["v1", "hybrid"])
def test_libtorrent_fetches_metadata_and_content_from_a_bitswarm_seed(tmp_path: Path, version: TorrentVersion) -> None:
    torrent_path, source, torrent = make_content(tmp_path, version)
    seed = subprocess.Popen(
        [*BITSWARM, "seed", str(torrent_path), str(source.parent), "--port", "0", "--json", *NO_DISCOVERY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert seed.stdout is not None
        started = json.loads(seed.stdout.readline())
        assert started["event"] == "started"
        link = dataclasses.replace(torrent.magnet(), peers=(("127.0.0.1", int(started["port"])),)).format()
        (tmp_path / "lt").mkdir()
        libtorrent = lt_process("magnet", link, tmp_path / "lt", "--timeout", str(DEADLINE_S))
        try:
            assert libtorrent.stdout is not None
            metadata = json.loads(libtorrent.stdout.readline() or "{}")
            assert metadata.get("stage") == "metadata", libtorrent.stderr.read() if libtorrent.stderr else ""
            assert metadata["sha1"] == hashlib.sha1(torrent.info).hexdigest()
            assert metadata["metadata_size"] == len(torrent.info)
            assert metadata["num_pieces"] == torrent.num_pieces
            finished = json.loads(libtorrent.stdout.readline() or "{}")
            assert finished.get("stage") == "finished"
            # libtorrent reports seeding once the pieces hash; its disk threads may still be writing.
            wait_for(lambda: same_content(tmp_path / "lt" / "set", source), "libtorrent's files")
            assert any(peer["port"] == int(started["port"]) for peer in finished["peers"])
        finally:
            assert libtorrent.stdin is not None
            libtorrent.stdin.write("\n")
            libtorrent.stdin.flush()
            assert libtorrent.wait(timeout=30) == 0
    finally:
        seed.terminate()
        assert seed.wait(timeout=30) == 0


def test_bitswarm_fetches_metadata_and_content_from_a_libtorrent_seed(tmp_path: Path) -> None:
    torrent_path, source, torrent = make_content(tmp_path, TorrentVersion.V1)
    assert torrent.info_hash_v1 is not None
    libtorrent = lt_process("seed-here", torrent_path, source.parent, "--timeout", str(DEADLINE_S))
    try:
        assert libtorrent.stdout is not None
        seeding = json.loads(libtorrent.stdout.readline() or "{}")
        assert seeding.get("stage") == "seeding", libtorrent.stderr.read() if libtorrent.stderr else ""
        link = f"magnet:?xt=urn:btih:{torrent.info_hash_v1.hex()}&x.pe=127.0.0.1:{seeding['listen_port']}"
        got = subprocess.run(
            [*BITSWARM, "get", link, "-o", str(tmp_path / "get"), "--port", "0", "--no-seed", "--json", *NO_DISCOVERY],
            capture_output=True, text=True, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        events = [json.loads(line)["event"] for line in got.stdout.splitlines()]
        assert events[:3] == ["fetching", "metadata", "started"]
        assert "finished" in events
        assert same_content(tmp_path / "get" / "set", source)
        saved = (tmp_path / "get" / "set.torrent").read_bytes()
        start, end = bencode.decode_document(saved).spans[b"info"]
        assert saved[start:end] == torrent.info
    finally:
        assert libtorrent.stdin is not None
        libtorrent.stdin.write("\n")
        libtorrent.stdin.flush()
        assert libtorrent.wait(timeout=30) == 0


def test_libtorrent_learns_of_a_second_bitswarm_peer_from_ut_pex(tmp_path: Path) -> None:
    """A seeds; B downloaded from A and stays connected to it; libtorrent is given only B
    (x.pe) and dials A because B's ut_pex names it. A runs without PEX, so it cannot hear
    of libtorrent from B and dial it first."""
    torrent_path, source, torrent = make_content(tmp_path, TorrentVersion.V1)
    del torrent_path

    async def scenario() -> None:
        a = Session(port=0, host="127.0.0.1", strict=True)
        # B's upload is held back (about 10 s for the content) so that libtorrent still wants
        # peers when B's ut_pex arrives.
        b = Session(port=0, host="127.0.0.1", strict=True, max_up=150_000)
        await a.start()
        await b.start()
        try:
            seeding = await a.add(torrent, source.parent, TorrentOptions(pex=False))
            middle = await b.add(torrent, tmp_path / "b")
            await middle.connect(("127.0.0.1", a.port))
            await asyncio.wait_for(middle.finished.wait(), DEADLINE_S)
            link = dataclasses.replace(torrent.magnet(), peers=(("127.0.0.1", b.port),)).format()
            (tmp_path / "lt").mkdir()
            libtorrent = lt_process("magnet", link, tmp_path / "lt", "--pex", "--timeout", str(DEADLINE_S))
            try:
                assert libtorrent.stdout is not None
                metadata = json.loads(await asyncio.to_thread(libtorrent.stdout.readline) or "{}")
                assert metadata.get("stage") == "metadata", libtorrent.stderr.read() if libtorrent.stderr else ""
                finished = json.loads(await asyncio.to_thread(libtorrent.stdout.readline) or "{}")
                assert finished.get("stage") == "finished"
                await asyncio.to_thread(wait_for, lambda: same_content(tmp_path / "lt" / "set", source), "the files")
                # B got every byte from A before libtorrent started; what else A sent went
                # to libtorrent, which dialled A (A dials nobody: no PEX, no tracker).
                assert seeding.status()["uploaded"] > middle.status()["downloaded"] > 0
                # libtorrent may finish and hang up on A between two looks at its peers.
                for peer in finished["peers"]:
                    if peer["port"] == a.port:
                        # libtorrent reported no source at all once (in about twenty runs): the
                        # proof is the upload above; here only that nothing else named A.
                        assert set(peer["sources"]) <= {"pex"}
                        assert peer["outgoing"]
            finally:
                assert libtorrent.stdin is not None
                libtorrent.stdin.write("\n")
                libtorrent.stdin.flush()
                assert await asyncio.to_thread(libtorrent.wait, 30) == 0
        finally:
            await b.close()
            await a.close()
        assert not a.failures
        assert not b.failures

    asyncio.run(scenario())
