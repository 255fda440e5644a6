"""``bitswarm daemon`` on the event loop: the engine session, the state and the RPC server.

Start: the state is loaded and every torrent re-added from its resume data (no re-hash),
the peer port opened, then the RPC; ``ready(url)`` is called once the RPC answers. Stop
(SIGTERM, SIGINT, or RPC ``session-close``): the RPC closes first so nothing changes
during the stop, then every torrent announces ``stopped`` and writes its resume data,
then the state is saved. ``reload`` (SIGHUP) re-reads the config.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from bitswarm.daemon.app import RpcEndpoint, create_daemon_app, new_session_id
from bitswarm.daemon.config import DaemonConfig
from bitswarm.daemon.rpc import TransmissionRpc
from bitswarm.daemon.service import Daemon
from bitswarm.daemon.state import StateStore
from bitswarm.daemon.subscriptions import SubscriptionPoller, subscriptions_folder
from bitswarm.daemon.watch import run_watch_folder
from bitswarm.errors import TrackerError, UsageError
from bitswarm.metainfo import MAX_TORRENT_BYTES
from bitswarm.net.http_client import http_get
from bitswarm.net.session import Session
from bitswarm.tracker.config import split_host_port
from bitswarm.web.hosts import listening_socket, url_host

log = logging.getLogger("bitswarm.daemon")
# torrent-add with a URL: the .torrent must come within this time.
FETCH_TIMEOUT_S = 30.0


async def fetch_torrent_url(url: str) -> bytes:
    """A .torrent (or magnet link) from an http(s) URL torrent-add named; bounded in size
    and time. Raises UsageError naming the URL."""
    try:
        status, body = await http_get(url, timeout_s=FETCH_TIMEOUT_S, max_bytes=MAX_TORRENT_BYTES)
    except TrackerError as error:
        raise UsageError(f"{url[:200]}: {error}") from None
    if status != 200:
        raise UsageError(f"{url[:200]}: HTTP status {status}")
    return body


async def serve_daemon(
    config: DaemonConfig,
    state_folder: Path,
    *,
    ready: Callable[[str], None],
    stop: asyncio.Event,
    reload: Callable[[], DaemonConfig | None] | None = None,
    reload_requested: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set. Raises UsageError when the state or an address is unusable."""
    host, port = split_host_port(config.rpc)
    try:
        sock = listening_socket(host, port)
    except OSError as error:
        raise UsageError(f"rpc: cannot listen on {config.rpc}: {error.strerror}") from None
    session = Session(
        port=config.peer_port,
        encryption=config.encryption,
        dht=config.dht,
        dht_bootstrap=config.dht_bootstrap,
        dht_state_path=state_folder / "dht.dat",
        lsd=config.lsd,
        port_mapping=config.port_mapping,
        utp=config.utp,
    )
    daemon = Daemon(config, StateStore(state_folder), session)
    runner: web.AppRunner | None = None
    opened = False
    try:
        try:
            await session.start()
        except OSError as error:
            raise UsageError(f"peer port {config.peer_port}: {error.strerror}") from None
        await daemon.open()
        opened = True
        daemon.run_beside(run_watch_folder(daemon))
        subscriptions = SubscriptionPoller(daemon, subscriptions_folder(config, state_folder))
        daemon.run_beside(subscriptions.run())
        rpc = TransmissionRpc(daemon, session_id=new_session_id(), fetch_url=fetch_torrent_url)
        rpc.closing = stop.set
        endpoint = RpcEndpoint(rpc, config, host)
        runner = web.AppRunner(create_daemon_app(endpoint, subscriptions), access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        ready(f"http://{url_host(host) or 'localhost'}:{sock.getsockname()[1]}/")
        while not stop.is_set():
            waits = [asyncio.ensure_future(stop.wait())]
            if reload_requested is not None:
                waits.append(asyncio.ensure_future(reload_requested.wait()))
            _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if reload_requested is not None and reload_requested.is_set():
                reload_requested.clear()
                new = reload() if reload is not None else None
                if new is not None:
                    daemon.reload(new)
                    endpoint.configure(new)
                    log.warning("config reloaded")
    finally:
        if runner is not None:
            await runner.cleanup()
        if opened:
            await daemon.close()
        else:
            await session.close()
        sock.close()
