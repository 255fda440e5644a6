"""``bitswarm daemon``: the always-on client with a Transmission-compatible RPC."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from bitswarm.cli import about, cli, default_state_folder, run_event_loop
from bitswarm.errors import UsageError
from bitswarm.web.hosts import bind_warning


@cli.command("daemon")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML file of the daemon's settings.")
@click.option(
    "--state", "state_folder", type=click.Path(path_type=Path), help="Where torrents and settings are kept"
    " [$XDG_STATE_HOME/bitswarm/daemon]."
)  # fmt: skip
@click.option("--rpc", metavar="HOST:PORT", help="Where the RPC listens [127.0.0.1:9091].")
@click.option("--download-dir", type=click.Path(path_type=Path), help="Where torrents download [~/Downloads].")
@click.option("--port", type=int, help="Port to accept peers on (0: any free port) [51413].")
@click.option(
    "--no-port-mapping", is_flag=True, help="Do not ask the home router to open the peer port (UPnP IGD, NAT-PMP, PCP)."
)
@click.option("--no-utp", is_flag=True, help="Peers over TCP only: no uTP (BEP 29), in or out.")
def daemon_command(
    config_path: Path | None,
    state_folder: Path | None,
    rpc: str | None,
    download_dir: Path | None,
    port: int | None,
    no_port_mapping: bool,
    no_utp: bool,
) -> None:
    """Run torrents as a service, driven over the Transmission RPC at /transmission/rpc.

    Prints 'bitswarm daemon: http://HOST:PORT/' once the RPC answers. SIGTERM stops it
    cleanly (stopped announces, resume data and state saved); SIGHUP reloads --config."""
    from bitswarm.daemon.config import DaemonConfig, load_daemon_config  # noqa: PLC0415

    overrides: dict[str, object] = {
        "rpc": rpc,
        "download_dir": str(download_dir.resolve()) if download_dir is not None else None,
        "peer_port": port,
        "port_mapping": False if no_port_mapping else None,
        "utp": False if no_utp else None,
    }
    with about(config_path or "daemon"):
        config = load_daemon_config(config_path, overrides)
    folder = (state_folder or default_state_folder() / "daemon").resolve()
    warning = bind_warning(config.rpc.rsplit(":", 1)[0].strip("[]"), "drive this daemon")
    if warning is not None:
        click.echo(f"bitswarm: {warning}", err=True)

    def reload() -> DaemonConfig | None:
        try:
            return load_daemon_config(config_path, overrides)
        except UsageError as error:
            logging.getLogger("bitswarm.daemon").error("config not reloaded: %s", error)
            return None

    async def main() -> int:
        import asyncio  # noqa: PLC0415

        from bitswarm.daemon.run import serve_daemon  # noqa: PLC0415
        from bitswarm.net.client import stop_on_signals  # noqa: PLC0415

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

        def ready(url: str) -> None:
            click.echo(f"bitswarm daemon: {url}")
            sys.stdout.flush()

        reload_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
        try:
            with stop_on_signals() as stop, about("daemon"):
                await serve_daemon(
                    config, folder, ready=ready, stop=stop, reload=reload, reload_requested=reload_requested
                )
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
        return 0

    run_event_loop(main())
