"""bitswarm and libtorrent 2.0 over uTP (BEP 29) only, both ways, content verified.

libtorrent runs with TCP switched off both ways (``--utp-only``), so a transfer that
completes went over uTP; bitswarm's side is an in-process Session with uTP on, whose
peer connection must be carried by a ``UTPTransport``. The transfers here are 16 MiB
to keep the suite's time; bench/utp_bench.py runs the 256 MiB of issue 15 the same way.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.net.session import Session

from .tools import lt_argv

pytestmark = pytest.mark.interop

SIZE = 16 * 1024 * 1024 + 12_345
PIECE = 256 * 1024
TRANSFER_TIMEOUT_S = 120.0


def make_torrent(tmp_path: Path) -> tuple[Path, Torrent, Path]:
    source = tmp_path / "seed" / "payload.bin"
    source.parent.mkdir()
    rng = random.Random(2029)
    with source.open("wb") as out:
        for _ in range(SIZE // (1 << 20)):
            out.write(rng.randbytes(1 << 20))
        out.write(rng.randbytes(SIZE % (1 << 20)))
    metainfo = create(source, CreateOptions(version=TorrentVersion.V1, piece_length=PIECE))
    path = tmp_path / "payload.torrent"
    path.write_bytes(metainfo)
    return path, Torrent.decode(metainfo), source


async def read_json_line(process: asyncio.subprocess.Process, timeout_s: float) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout_s)
    if not line:
        assert process.stderr is not None
        raise AssertionError(f"lt_driver ended: {(await process.stderr.read()).decode()[-2000:]}")
    result = json.loads(line)
    assert isinstance(result, dict)
    assert "error" not in result, result
    return result


def test_bitswarm_downloads_from_libtorrent_over_utp_only(tmp_path: Path) -> None:
    torrent_path, torrent, source = make_torrent(tmp_path)

    async def scenario() -> None:
        process = await asyncio.create_subprocess_exec(
            *lt_argv("seed-here", torrent_path, source.parent, "--utp-only", "--timeout", str(TRANSFER_TIMEOUT_S)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        session = Session(port=0, host="127.0.0.1", utp=True, strict=True, loopback_tcp_first=False)
        try:
            seeding = await read_json_line(process, 60.0)
            await session.start()
            download = await session.add(torrent, tmp_path / "get")
            await download.connect(("127.0.0.1", seeding["listen_port"]))
            await asyncio.wait_for(download.finished.wait(), TRANSFER_TIMEOUT_S)
            assert (tmp_path / "get" / "payload.bin").read_bytes() == source.read_bytes()
            # libtorrent has no TCP, and our one dial went out over uTP without falling back.
            assert session.utp is not None
            assert session.utp.opened == {"outgoing": 1}
            assert process.stdin is not None
            process.stdin.write(b"\n")
            await read_json_line(process, 30.0)
            assert await asyncio.wait_for(process.wait(), 30.0) == 0
        finally:
            await session.close()
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert not session.failures
        assert not session.tcp_only_peers

    asyncio.run(scenario())


def test_libtorrent_downloads_from_bitswarm_over_utp_only(tmp_path: Path) -> None:
    torrent_path, torrent, source = make_torrent(tmp_path)
    (tmp_path / "get").mkdir()

    async def scenario() -> None:
        session = Session(port=0, host="127.0.0.1", utp=True, strict=True, loopback_tcp_first=False)
        await session.start()
        try:
            await session.add(torrent, source.parent)
            process = await asyncio.create_subprocess_exec(
                *lt_argv(
                    "download-from",
                    torrent_path,
                    tmp_path / "get",
                    "--peer",
                    f"127.0.0.1:{session.port}",
                    "--utp-only",
                    "--timeout",
                    str(TRANSFER_TIMEOUT_S),
                ),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                result = await read_json_line(process, TRANSFER_TIMEOUT_S + 30)
                assert await asyncio.wait_for(process.wait(), 30.0) == 0
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert result["is_seeding"]
            assert result["peers"], result
            assert all(peer["utp"] for peer in result["peers"]), result["peers"]
            assert (tmp_path / "get" / "payload.bin").read_bytes() == source.read_bytes()
            assert session.utp is not None
            assert session.utp.opened["incoming"] >= 1
        finally:
            await session.close()
        assert not session.failures

    asyncio.run(scenario())
