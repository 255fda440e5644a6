"""bitswarm's DHT and libtorrent's on loopback: each joins through the other, each finds
what the other announced.

libtorrent runs as `lt_driver.py dht` (a session whose DHT accepts loopback nodes; see
`_dht_settings` there) and answers commands on stdin. Our nodes run on the test's event
loop. libtorrent never puts its bootstrap ("router") nodes in its routing table, so when
it joins through our node A, the bitswarm node it keeps is B, which A told it about.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bitswarm.net.dht import DHTService, open_dht

from .tools import lt, lt_argv

pytestmark = pytest.mark.interop

LOOPBACK = "127.0.0.1"
WAIT_S = 20.0
DRIVER_TIMEOUT_S = 60.0
# Each `nodes` command pumps libtorrent's alerts once; its table fills within seconds.
MAX_TABLE_POLLS = 200


class LtDht:
    """The driver's `dht` command: one JSON line per command line."""

    def __init__(self, process: asyncio.subprocess.Process, started: dict[str, Any]) -> None:
        self.process = process
        self.port: int = started["port"]

    async def command(self, *words: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write((" ".join(words) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), DRIVER_TIMEOUT_S)
        reply: dict[str, Any] = json.loads(line)
        assert "error" not in reply, reply
        return reply

    async def table_ports(self) -> set[int]:
        return {node["port"] for node in (await self.command("nodes"))["nodes"]}


@contextlib.asynccontextmanager
async def open_lt_dht(*options: str) -> AsyncIterator[LtDht]:
    process = await asyncio.create_subprocess_exec(
        *lt_argv("dht", "--timeout", str(DRIVER_TIMEOUT_S), *options),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), DRIVER_TIMEOUT_S)
        if not line:
            assert process.stderr is not None
            pytest.fail(f"lt_driver dht failed: {(await process.stderr.read()).decode()[-2000:]}")
        started = json.loads(line)
        assert started["stage"] == "started", started
        yield LtDht(process, started)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, ConnectionError):
                assert process.stdin is not None
                process.stdin.write(b"quit\n")
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 30.0)
            except TimeoutError:
                process.kill()
                await process.wait()


def table_ports(service: DHTService) -> set[int]:
    return {node.address[1] for node in service.node.tables[4].nodes()}


async def wait_for_lt_table(libtorrent: LtDht, service: DHTService, port: int) -> set[int]:
    """Ask libtorrent for its table until it holds ``port``, between datagrams our node gets."""
    for _ in range(MAX_TABLE_POLLS):
        ports = await libtorrent.table_ports()
        if port in ports:
            return ports
        # libtorrent's table changes only when nodes talk; wait for the next datagram.
        with contextlib.suppress(TimeoutError):
            await service.wait_for(lambda: False, 0.5)
    return await libtorrent.table_ports()


def test_libtorrent_joins_through_bitswarm_and_each_keeps_the_other() -> None:
    async def scenario() -> None:
        async with open_dht([f"{LOOPBACK}:0"]) as a:
            a_port = a.addresses[0][1]
            async with open_dht([f"{LOOPBACK}:0"], [f"{LOOPBACK}:{a_port}"]) as b:
                b_port = b.addresses[0][1]
                async with open_lt_dht("--bootstrap", f"{LOOPBACK}:{a_port}") as libtorrent:
                    # libtorrent queried us, we pinged it back, it answered: it is in both tables.
                    await a.wait_for(lambda: libtorrent.port in table_ports(a), WAIT_S)
                    await b.wait_for(lambda: libtorrent.port in table_ports(b), WAIT_S)
                    assert b_port in await wait_for_lt_table(libtorrent, b, b_port)
                    assert a.failure is None
                    assert b.failure is None

    asyncio.run(scenario())


def test_bitswarm_joins_through_libtorrent_and_each_keeps_the_other() -> None:
    async def scenario() -> None:
        async with open_lt_dht() as libtorrent, open_dht([f"{LOOPBACK}:0"], [f"{LOOPBACK}:{libtorrent.port}"]) as node:
            assert libtorrent.port in table_ports(node)  # the bootstrap search ended
            assert node.addresses[0][1] in await wait_for_lt_table(libtorrent, node, node.addresses[0][1])
            assert node.failure is None

    asyncio.run(scenario())


def test_bitswarm_finds_a_libtorrent_seeder_through_the_dht(tmp_path: Path) -> None:
    content = tmp_path / "content.bin"
    content.write_bytes(bytes(range(256)) * 256)
    torrent = tmp_path / "content.torrent"
    info_hash = bytes.fromhex(lt("create", content, torrent, "--format", "v1")["info_hash_v1"])

    async def scenario() -> None:
        async with open_dht([f"{LOOPBACK}:0"]) as a:
            a_port = a.addresses[0][1]
            async with open_dht([f"{LOOPBACK}:0"], [f"{LOOPBACK}:{a_port}"]) as b:
                options = (
                    "--bootstrap",
                    f"{LOOPBACK}:{a_port}",
                    "--torrent",
                    str(torrent),
                    "--save-path",
                    str(tmp_path),
                )
                async with open_lt_dht(*options) as libtorrent:
                    await a.wait_for(lambda: libtorrent.port in table_ports(a), WAIT_S)
                    await libtorrent.command("announce")

                    def stored() -> bool:
                        return any(
                            (LOOPBACK, libtorrent.port)
                            in node.node.peer_store.get(info_hash, 4, node.now(), node.node.rng)
                            for node in (a, b)
                        )

                    await a.wait_for(stored, WAIT_S)
                    # A third node, which heard nothing of the announce, searches from scratch.
                    async with open_dht([f"{LOOPBACK}:0"], [f"{LOOPBACK}:{a_port}"]) as searcher:
                        peers = await searcher.get_peers(info_hash, timeout_s=WAIT_S)
                    assert (LOOPBACK, libtorrent.port) in peers

    asyncio.run(scenario())


def test_libtorrent_finds_a_peer_that_announced_to_bitswarm() -> None:
    info_hash = bytes.fromhex("ab" * 20)

    async def scenario() -> None:
        async with open_dht([f"{LOOPBACK}:0"]) as a:
            a_port = a.addresses[0][1]
            async with (
                open_dht([f"{LOOPBACK}:0"], [f"{LOOPBACK}:{a_port}"]) as b,
                open_lt_dht("--bootstrap", f"{LOOPBACK}:{a_port}") as libtorrent,
            ):
                await b.wait_for(lambda: libtorrent.port in table_ports(b), WAIT_S)
                await b.announce(info_hash, 4567, timeout_s=WAIT_S)
                assert (LOOPBACK, 4567) in a.node.peer_store.get(info_hash, 4, a.now(), a.node.rng)
                reply = await libtorrent.command("get_peers", info_hash.hex())
                assert [LOOPBACK, 4567] in reply["peers"]

    asyncio.run(scenario())
