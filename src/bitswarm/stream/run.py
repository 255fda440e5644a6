"""``bitswarm stream``: download a torrent, serve its files over HTTP while it downloads,
optionally start a player on the main file, and share with the swarm all along.

The torrent runs in a session like ``get``'s (a magnet link's metadata first); the HTTP
server (``StreamServer``) runs in the same event loop, with aiohttp's handler
cancellation on, so a player that closes its connection cancels its handler and its
reader's deadlines go at once. ``bitswarm stream: http://HOST:PORT/`` is printed on one
line as soon as it serves (``--json``: a ``serving`` event with the URL and each file's).
It ends on Ctrl-C or SIGTERM; with ``--player``, when the player exits and ``--no-seed``
is given (otherwise it keeps seeding until Ctrl-C). A temporary download folder is
removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitswarm.errors import BitswarmError, UsageError
from bitswarm.net.client import Display, TransferPlan, add_to_session, session_for, stop_on_signals
from bitswarm.net.session import TorrentRuntime
from bitswarm.web.hosts import is_loopback_host

if TYPE_CHECKING:
    from aiohttp import web

    from bitswarm.stream.server import ServedFile, StreamServer

from bitswarm.stream import SERVER_MODULE

EXIT_OK, EXIT_PLAYER_FAILED = 0, 1
STATUS_PERIOD_S = 1.0


@dataclass(frozen=True, slots=True)
class StreamPlan:
    transfer: TransferPlan  # the torrent or magnet link, the folder and the peer options
    bind_host: str
    bind_port: int
    file: str | None = None  # the file to play: an index or a path below the torrent's name
    player: str | None = None  # mpv, vlc, or a command line the URL is appended to
    allowed_hosts: tuple[str, ...] = ()
    temporary_folder: bool = False  # remove the folder at the end
    keep_seeding: bool = True  # after the player exits, until Ctrl-C
    content_key: bytes | None = None  # an encrypted bundle's: its plaintext is served


def player_command(player: str, url: str, subtitles: list[str]) -> list[str]:
    """The player's command line for ``url``: mpv and vlc by name, with the subtitles
    (mpv's ``--sub-file``), or any command line with the URL appended."""
    if player == "mpv":
        return ["mpv", *(f"--sub-file={subtitle}" for subtitle in subtitles), "--", url]
    if player == "vlc":
        return ["vlc", "--play-and-exit", url]
    words = shlex.split(player)
    if not words:
        raise UsageError("--player: an empty command")
    return [*words, url]


async def run_stream(plan: StreamPlan) -> int:
    transfer = plan.transfer
    display = Display(sys.stdout if transfer.as_json else sys.stderr, as_json=transfer.as_json)
    session = session_for(transfer)
    runner: web.AppRunner | None = None
    server: StreamServer | None = None
    status = EXIT_OK
    with stop_on_signals() as stop:
        try:
            await session.start()
            stop_waiter = asyncio.get_running_loop().create_task(stop.wait())
            try:
                runtime, _ = await add_to_session(transfer, session, display, stop_waiter)
                if runtime is not None:
                    # Imported here: the command warms it up in a thread (bitswarm.stream).
                    server = importlib.import_module(SERVER_MODULE).StreamServer(runtime, content_key=plan.content_key)
                    main = _chosen_file(server, plan.file)
                    server.prefetch(main)
                    runner, url = await _serve(plan, server)
                    _announce(display, transfer.as_json, url, server, runtime, session.port)
                    status = await _run_until_done(plan, runtime, server, main, url, display, stop)
            finally:
                stop_waiter.cancel()
        finally:
            if runner is not None:
                await runner.cleanup()
            if server is not None:
                server.close()
            await session.close()
            if plan.temporary_folder:
                shutil.rmtree(transfer.folder, ignore_errors=True)
    display.event("stopped", message="stopped cleanly")
    return status


def _chosen_file(server: StreamServer, file: str | None) -> ServedFile:
    """``--file`` as an index, a path or a name, else the main media file; raises UsageError."""
    if file is None:
        return server.main_file()
    index = server.runtime.torrent.data_file_index(file)
    if index is None:
        raise UsageError(f"--file: no file {file!r} in the torrent (files 0 to {len(server.files) - 1})")
    return server.files[index]


async def _serve(plan: StreamPlan, server: StreamServer) -> tuple[web.AppRunner, str]:
    allowed = (*plan.allowed_hosts, plan.bind_host) if not is_loopback_host(plan.bind_host) else plan.allowed_hosts
    return await server.start(plan.bind_host, plan.bind_port, allowed_hosts=allowed)


def _announce(
    display: Display, as_json: bool, url: str, server: StreamServer, runtime: TorrentRuntime, peer_port: int
) -> None:
    base = url.rstrip("/")
    if as_json:
        files = [{"index": f.index, "path": f.path, "url": base + f.url_path} for f in server.files]
        display.event("serving", url=url, files=files, port=peer_port, num_pieces=runtime.torrent.num_pieces)
    else:
        print(f"bitswarm stream: {url}", flush=True)


async def _run_until_done(
    plan: StreamPlan,
    runtime: TorrentRuntime,
    server: StreamServer,
    main: ServedFile,
    url: str,
    display: Display,
    stop: asyncio.Event,
) -> int:
    base = url.rstrip("/")
    player: asyncio.subprocess.Process | None = None
    status = EXIT_OK
    if plan.player is not None:
        subtitles = [base + f"/subtitles/{subtitle.index}.vtt" for subtitle in server.subtitles_for(main)]
        command = player_command(plan.player, base + main.url_path, subtitles)
        try:
            # With --json, stdout carries one event per line: the player's chatter goes to stderr.
            player = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=sys.stderr if plan.transfer.as_json else None
            )
        except OSError as error:
            raise BitswarmError(f"--player: {command[0]}: {error.strerror or error}") from None
        display.event("player", message=f"{command[0]} playing {main.path}", pid=player.pid)
    announced_finish = runtime.finished.is_set()
    stopping = asyncio.get_running_loop().create_task(stop.wait())
    exited = asyncio.get_running_loop().create_task(player.wait()) if player is not None else None
    try:
        while not stop.is_set():
            display.status(runtime, time.monotonic())
            if runtime.finished.is_set() and not announced_finish:
                announced_finish = True
                display.event("finished", message=f"{runtime.torrent.name}: every piece verified")
            if exited is not None and exited.done():
                code = exited.result()
                display.event("player-exited", message=f"player exited with status {code}", code=code)
                status = EXIT_OK if code == 0 else EXIT_PLAYER_FAILED
                exited = None
                if not plan.keep_seeding:
                    break
                display.event("seeding", message="still sharing with the swarm until Ctrl-C")
            waiters: set[asyncio.Task[Any]] = {stopping} | ({exited} if exited is not None else set())
            await asyncio.wait(waiters, timeout=STATUS_PERIOD_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if player is not None and player.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                player.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(player.wait(), 5.0)
    return status


def temporary_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="bitswarm-stream-"))
