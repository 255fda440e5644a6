"""``bitswarm stream``: watch a torrent's video while it downloads (``bitswarm.stream.run``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bitswarm.cli import (
    Failure,
    about,
    check_upload_slots,
    cli,
    discovery_options,
    discovery_settings,
    encryption_option,
    load_client_config,
    nonempty,
    parse_size,
    pex_option,
    read_source,
    resume_dir,
    run_event_loop,
    upload_slots_option,
    wanted_files,
)


def bundle_key(source: str, key: str | None, key_file: Path | None) -> bytes | None:
    """An encrypted bundle's key: --key, --key-file, or the '#k=' of a share link."""
    if key is None and key_file is None and not (source.lower().startswith("magnet:") and "#" in source):
        return None  # no bundle: the crypto library stays unloaded
    from bitswarm.bundle import links  # noqa: PLC0415

    if key is not None and key_file is not None:
        raise Failure("--key and --key-file: one or the other")
    with about("--key-file" if key_file is not None else "--key" if key is not None else "link"):
        if key_file is not None:
            return links.parse_key(key_file.read_text(errors="replace")[:4096])
        if key is not None:
            return links.parse_key(key)
        if source.lower().startswith("magnet:") and "#" in source:
            return links.split_link(source)[1]
    return None


def parse_bind(text: str) -> tuple[str, int]:
    """HOST:PORT or [V6]:PORT -> (host, port); a ``Failure`` (exit 2) otherwise."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise Failure(f"--bind: {text}: not HOST:PORT")
    return host, int(port)


@cli.command("stream")
@click.argument("source", metavar="TORRENT|MAGNET", callback=nonempty)
@click.option(
    "-o",
    "--output",
    "folder",
    type=click.Path(path_type=Path),
    help="Save into this folder and keep it [a temporary one].",
)
@click.option("--bind", default="127.0.0.1:0", show_default=True, metavar="HOST:PORT",
              help="Where the HTTP server listens (port 0: any free port).")  # fmt: skip
@click.option("--file", "file", metavar="INDEX|NAME", help="The file to play, and the only one fetched ahead of reads.")
@click.option("--player", metavar="mpv|vlc|CMD", help="Start this player on the file's URL once serving.")
@click.option("--allow-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also answer requests for this host name (with a --bind beyond loopback); repeatable.")  # fmt: skip
@click.option("--no-seed", is_flag=True, help="Stop sharing when the player exits (or at Ctrl-C).")
@click.option("--key", help="An encrypted bundle's key (or a share link holding it): its plaintext is served.")
@click.option("--key-file", type=click.Path(path_type=Path), help="A file holding an encrypted bundle's key.")
@click.option("--port", type=int, default=6881, show_default=True, help="Port to accept peers on (0: any free port).")
@click.option("--max-down", help="Download limit in bytes per second (2M, 500K).")
@click.option("--max-up", help="Upload limit in bytes per second (2M, 500K).")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line on stdout.")
@upload_slots_option
@encryption_option
@discovery_options
@pex_option
def stream_command(
    source: str,
    folder: Path | None,
    bind: str,
    file: str | None,
    player: str | None,
    allowed_hosts: tuple[str, ...],
    no_seed: bool,
    key: str | None,
    key_file: Path | None,
    port: int,
    max_down: str | None,
    max_up: str | None,
    as_json: bool,
    upload_slots: int | None,
    encryption: str,
    no_dht: bool,
    dht_bootstrap: tuple[str, ...],
    no_dht_bootstrap: bool,
    dht_state: Path | None,
    no_lsd: bool,
    lsd_interface: str | None,
    no_port_mapping: bool,
    no_utp: bool,
    state_dir: Path | None,
    config_path: Path | None,
    no_pex: bool,
) -> None:
    """Play TORRENT (a .torrent file or a magnet link) while it downloads.

    Every file is served over HTTP from verified pieces only (ranges, an index page, a
    player page, /playlist.m3u, /stats.json); the pieces a player reads come first. It
    shares with the swarm all along, until Ctrl-C; with --player and --no-seed it ends
    when the player exits."""
    from bitswarm.stream import warm_up_server_imports  # noqa: PLC0415 - the engine only for this command

    warm_up_server_imports()
    from bitswarm.net.client import TransferPlan  # noqa: PLC0415
    from bitswarm.net.session import TorrentOptions  # noqa: PLC0415
    from bitswarm.stream.run import StreamPlan, run_stream, temporary_folder  # noqa: PLC0415
    from bitswarm.web.hosts import bind_warning  # noqa: PLC0415

    check_upload_slots(upload_slots)
    bind_host, bind_port = parse_bind(bind)
    content_key = bundle_key(source, key, key_file)
    link, torrent, select, wanted = read_source(source, file if file is not None and file.isdigit() else None)
    if torrent is not None and file is not None and not file.isdigit():
        # By name: that file alone is fetched ahead of reads, as by its index.
        index = torrent.data_file_index(file)
        if index is None:
            raise Failure(f"--file: no file {file!r} in the torrent")
        wanted = wanted_files(torrent, str(index))
    config = load_client_config(config_path)
    warning = bind_warning(bind_host)
    if warning is not None:
        click.echo(f"bitswarm: {warning}", err=True)
    temporary = folder is None
    folder = temporary_folder() if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    options = TorrentOptions(wanted_files=wanted, pex=config.pex and not no_pex, resume_dir=resume_dir(state_dir))
    if upload_slots is not None:
        options.upload_slots = upload_slots
    transfer = TransferPlan(
        torrent=torrent, magnet=link, select=select, folder=folder, port=port, options=options, seed_ratio=None,
        keep_seeding=True, as_json=as_json,
        max_up=parse_size(max_up) if max_up else 0.0, max_down=parse_size(max_down) if max_down else 0.0,
        encryption=encryption,
        **discovery_settings(config, no_dht, dht_bootstrap, no_dht_bootstrap, dht_state, no_lsd, lsd_interface,
                             no_port_mapping=no_port_mapping, no_utp=no_utp, state_dir=state_dir),
    )  # fmt: skip
    plan = StreamPlan(
        transfer=transfer, bind_host=bind_host, bind_port=bind_port, file=file, player=player,
        allowed_hosts=allowed_hosts, temporary_folder=temporary, keep_seeding=not no_seed, content_key=content_key,
    )  # fmt: skip
    with about("magnet" if link is not None else source):
        status = run_event_loop(run_stream(plan))
    sys.exit(status)
