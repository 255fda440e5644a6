"""The ``bitswarm`` command.

Users see one line and an exit status, never a traceback (``--debug`` shows it): 0 for
success, 1 for a check that found problems (``verify``), 2 for bad input or usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import click

from bitswarm import __version__, magnet, units
from bitswarm.client_config import CONFIG_FILE_NAME, ClientConfig
from bitswarm.client_config import load_client_config as parse_client_config
from bitswarm.create import CreateOptions, create
from bitswarm.errors import BitswarmError, MetainfoError, UsageError
from bitswarm.metainfo import MAX_TORRENT_BYTES, Torrent, TorrentVersion, read_torrent_file
from bitswarm.storage.atomic import replace_durably
from bitswarm.storage.verify import FileStatus, VerifyReport, verify

EXIT_PROBLEMS = 1
EXIT_BAD_INPUT = 2


class Failure(Exception):
    """Ends a command with one line on stderr and an exit status; ``program`` starts the line."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT, *, program: str = "bitswarm") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.program = program


@contextlib.contextmanager
def about(subject: str | Path) -> Iterator[None]:
    """Turn our errors and the system's into a ``Failure`` naming what they are about."""
    try:
        yield
    except BitswarmError as error:
        raise Failure(f"{subject}: {error}") from error
    except OSError as error:
        raise Failure(f"{subject}: {error.strerror or error}") from error


def parse_size(text: str) -> int:
    """'262144', '256K', '4M', '1GiB' -> bytes, for click's options."""
    try:
        return units.parse_size(text)
    except UsageError as error:
        raise click.BadParameter(str(error)) from None


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_magnet(text: str) -> magnet.Magnet:
    """A magnet link from the command line; what was left out of it is said on stderr."""
    with about("magnet"):
        link = magnet.parse(text)
    for warning in link.warnings:
        click.echo(f"bitswarm: magnet: warning: {warning}", err=True)
    return link


def nonempty(context: click.Context, parameter: click.Parameter, value: str) -> str:
    """An empty TORRENT is a usage error, not the current folder ("Is a directory")."""
    if not value.strip():
        raise click.BadParameter("empty: give a .torrent file or a magnet link", context, parameter)
    return value


def nonempty_path(context: click.Context, parameter: click.Parameter, value: str) -> Path:
    return Path(nonempty(context, parameter, value))


def load_torrent(path: Path) -> Torrent:
    with about(path):
        if path.stat().st_size > MAX_TORRENT_BYTES:
            raise MetainfoError(f"larger than {MAX_TORRENT_BYTES} bytes", "torrent")
        torrent = read_torrent_file(path.read_bytes())
    for warning in torrent.warnings:
        click.echo(f"bitswarm: {path}: warning: {warning}", err=True)
    return torrent


@contextlib.contextmanager
def progress_bar(label: str, unit: str = "pieces") -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(on_start(total), on_advance(count)) driving a bar on a terminal, nothing otherwise;
    ``unit`` names what is counted."""
    if not sys.stderr.isatty():
        yield (lambda total: None), (lambda count: None)
        return
    # Imported here: rich.progress takes ~20 ms to import, a twentieth of hashing 1 GiB,
    # and scripts (no terminal) never draw the bar.
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield (lambda total: bar.update(task, total=total)), (lambda count: bar.advance(task, count))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bitswarm")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """bitswarm: a BitTorrent toolkit."""


@cli.command("create")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where to write the .torrent [NAME.torrent].")
@click.option("-t", "--tracker", "trackers", multiple=True, help="Announce URL; repeat for backup tiers.")
@click.option("-w", "--web-seed", "web_seeds", multiple=True, help="Web seed URL (BEP 19); repeatable.")
@click.option("--private", is_flag=True, help="Set the private flag (BEP 27): no DHT, PEX or LSD.")
@click.option("--piece-length", type=str, help="Piece size in bytes, e.g. 262144 or 256K [automatic].")
@click.option("--v1", "version", flag_value="v1", help="v1 only (BEP 3).")
@click.option("--v2", "version", flag_value="v2", help="v2 only (BEP 52).")
@click.option("--hybrid", "version", flag_value="hybrid", default=True, help="v1 and v2 in one [default].")
@click.option("--comment", help="Free text stored in the torrent.")
@click.option("--source", help="Source tag stored in the info dictionary (changes the info-hash).")
@click.option("--no-date", is_flag=True, help="Leave out the creation date (reproducible output).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def create_command(
    path: Path,
    output: Path | None,
    trackers: tuple[str, ...],
    web_seeds: tuple[str, ...],
    private: bool,
    piece_length: str | None,
    version: str,
    comment: str | None,
    source: str | None,
    no_date: bool,
    force: bool,
) -> None:
    """Make a torrent of PATH (a file or a folder)."""
    output = output or Path(f"{Path(os.path.abspath(path)).name}.torrent")
    if output.exists() and not force:
        raise Failure(f"{output}: already exists (use --force to overwrite)")
    options = CreateOptions(
        version=TorrentVersion(version),
        piece_length=parse_size(piece_length) if piece_length else None,
        trackers=trackers,
        web_seeds=web_seeds,
        private=private,
        comment=comment,
        source=source,
        created_by=f"bitswarm/{__version__}",
        creation_date=None if no_date else int(time.time()),
    )
    with about(path), progress_bar("hashing") as (on_start, on_progress):
        data = create(path, options, on_start=on_start, on_progress=on_progress)
    with about(output):
        replace_durably(output, data)
    torrent = Torrent.decode(data)
    size, pieces = human_size(torrent.total_size), f"{torrent.num_pieces} pieces of {human_size(torrent.piece_length)}"
    click.echo(f"{output}: {torrent.version.value}, {len(list(torrent.data_files()))} files, {size} in {pieces}")
    click.echo(torrent.magnet().format())


@cli.command("info")
@click.argument("source", callback=nonempty)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_command(source: str, as_json: bool) -> None:
    """Show what a .torrent file or a magnet link holds."""
    if source.lower().startswith("magnet:"):
        facts = magnet_facts(parse_magnet(source))
    else:
        facts = torrent_facts(load_torrent(Path(source)))
    if as_json:
        click.echo(json.dumps(facts, indent=2, ensure_ascii=False))
    else:
        click.echo(format_facts(facts))


def magnet_facts(link: magnet.Magnet) -> dict[str, Any]:
    return {
        "kind": "magnet",
        "name": link.display_name,
        "info_hash_v1": link.info_hash_v1.hex() if link.info_hash_v1 else None,
        "info_hash_v2": link.info_hash_v2.hex() if link.info_hash_v2 else None,
        "trackers": list(link.trackers),
        "web_seeds": list(link.web_seeds),
        "peers": [f"{host}:{port}" for host, port in link.peers],
        "select_only": list(link.select_only),
        "magnet": link.format(),
    }


def torrent_facts(torrent: Torrent) -> dict[str, Any]:
    return {
        "kind": "torrent",
        "name": torrent.name,
        "version": torrent.version.value,
        "info_hash_v1": torrent.info_hash_v1.hex() if torrent.info_hash_v1 else None,
        "info_hash_v2": torrent.info_hash_v2.hex() if torrent.info_hash_v2 else None,
        "total_size": torrent.total_size,
        "piece_length": torrent.piece_length,
        "num_pieces": torrent.num_pieces,
        "files": [{"path": "/".join(entry.path), "length": entry.length} for entry in torrent.data_files()],
        "trackers": [list(tier) for tier in torrent.trackers],
        "web_seeds": list(torrent.web_seeds),
        "private": torrent.private,
        "source": torrent.source,
        "comment": torrent.comment,
        "created_by": torrent.created_by,
        "creation_date": torrent.creation_date,
        "magnet": torrent.magnet().format(),
    }


def _escaped(value: Any) -> Any:
    """``value`` with every string in it, however nested, through ``magnet.printable``."""
    if isinstance(value, str):
        return magnet.printable(value)
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    return value


def format_facts(facts: dict[str, Any]) -> str:
    """The facts as lines for a terminal: text from the torrent or link (names, comments,
    URLs) with its control characters escaped."""
    facts = _escaped(facts)
    name = facts["name"] if facts["name"] is not None else "(not given: the metadata will name it)"
    lines = [f"name:          {name}"]
    if facts["kind"] == "torrent":
        lines.append(f"version:       {facts['version']}")
    for key in ("info_hash_v1", "info_hash_v2"):
        if facts[key]:
            lines.append(f"{'info-hash ' + key[-2:] + ':':15}{facts[key]}")
    if facts["kind"] == "torrent":
        lines.append(f"size:          {human_size(facts['total_size'])} ({facts['total_size']} bytes)")
        lines.append(f"pieces:        {facts['num_pieces']} of {human_size(facts['piece_length'])}")
        flags = [flag for flag in ("private",) if facts[flag]]
        lines.append(f"flags:         {', '.join(flags) or 'none'}")
        for key in ("source", "comment", "created_by"):
            if facts[key]:
                lines.append(f"{key.replace('_', ' ') + ':':15}{facts[key]}")
        if facts["creation_date"] is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(facts["creation_date"]))
            lines.append(f"created:       {stamp}")
        lines.append(f"files ({len(facts['files'])}):")
        lines += [f"  {human_size(entry['length']):>10}  {entry['path']}" for entry in facts["files"]]
        tiers = facts["trackers"]
    else:
        tiers = [[url] for url in facts["trackers"]]
        if facts["peers"]:
            lines.append(f"peers:         {', '.join(facts['peers'])}")
        if facts["select_only"]:
            lines.append(f"select only:   {', '.join(map(str, facts['select_only']))}")
    lines.append(f"trackers ({sum(len(tier) for tier in tiers)}):")
    lines += [f"  tier {number}: {url}" for number, tier in enumerate(tiers) for url in tier]
    if facts["web_seeds"]:
        lines.append("web seeds:")
        lines += [f"  {url}" for url in facts["web_seeds"]]
    lines.append(f"magnet:        {facts['magnet']}")
    return "\n".join(lines)


@cli.command("verify")
@click.argument("torrent_path", metavar="TORRENT", callback=nonempty_path)
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify_command(torrent_path: Path, folder: Path, as_json: bool) -> None:
    """Check the content under DIR (the folder holding the torrent's name) piece by piece.

    Exits 0 when every file is present and every piece correct, 1 otherwise.
    """
    torrent = load_torrent(torrent_path)
    if not folder.is_dir():
        raise Failure(f"{folder}: not a folder")
    with about(folder), progress_bar("verifying") as (on_start, on_progress):
        on_start(torrent.num_pieces)
        report = verify(torrent, folder, on_progress=on_progress)
    click.echo(json.dumps(report_facts(report)) if as_json else format_report(report))
    if not report.is_complete:
        raise Failure(
            f"{torrent_path}: {report.bad_pieces} of {len(report.pieces)} pieces bad or missing",
            EXIT_PROBLEMS,
        )


def report_facts(report: VerifyReport) -> dict[str, Any]:
    return {
        "complete": report.is_complete,
        "good_pieces": report.good_pieces,
        "bad_pieces": report.bad_pieces,
        "pieces": "".join("1" if good else "0" for good in report.pieces),
        "files": [
            {
                "path": "/".join(file.path),
                "status": file.status.value,
                "length": file.length,
                "size_on_disk": file.size_on_disk,
                "bad_pieces": file.bad_pieces,
            }
            for file in report.files
        ],
    }


def format_report(report: VerifyReport) -> str:
    lines = []
    for file in report.files:
        detail = ""
        if file.status in (FileStatus.TRUNCATED, FileStatus.TOO_LONG):
            detail = f" ({file.size_on_disk} of {file.length} bytes)"
        elif file.status is FileStatus.BAD_PIECES:
            detail = f" ({file.bad_pieces} bad)"
        lines.append(f"{file.status.value:>10}  {'/'.join(file.path)}{detail}")
    lines.append(f"{report.good_pieces} good, {report.bad_pieces} bad of {len(report.pieces)} pieces")
    return "\n".join(lines)


def run_event_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop where it is installed, else on asyncio's loop."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _run_transfer(plan: object) -> int:
    # The event loop and the peer engine are imported only by the commands that use them.
    from bitswarm.net import client  # noqa: PLC0415

    assert isinstance(plan, client.TransferPlan)
    # What the imports made lives as long as the process: out of the collector's view, a
    # download's full collections (a few a second, from its per-block objects) skip it.
    gc.freeze()
    return run_event_loop(client.run_transfer(plan))


def wanted_files(torrent: Torrent, spec: str | None) -> set[int] | None:
    """--files SPEC: indices and ranges of ``bitswarm info``'s file list ('0,3-5')."""
    if spec is None:
        return None
    data_files = list(torrent.data_files())
    with about("--files"):
        chosen = magnet.parse_ranges(spec)
    if not chosen or max(chosen) >= len(data_files):
        raise Failure(f"--files: the torrent has files 0 to {len(data_files) - 1}")
    positions = {id(entry): position for position, entry in enumerate(torrent.files)}
    return {positions[id(data_files[index])] for index in chosen}


def read_source(
    source: str, files_spec: str | None
) -> tuple[magnet.Magnet | None, Torrent | None, tuple[int, ...] | None, set[int] | None]:
    """TORRENT|MAGNET and --files: (the link, the torrent, the link's files by --files, the
    torrent's wanted files); one of the first two is None. Raises ``Failure``."""
    if source.lower().startswith("magnet:"):
        link = parse_magnet(source)
        with about("--files"):
            select = tuple(magnet.parse_ranges(files_spec)) if files_spec is not None else None
        return link, None, select, None
    torrent = load_torrent(Path(source))
    return None, torrent, None, wanted_files(torrent, files_spec)


def replace_trackers(torrent: Torrent, urls: tuple[str, ...]) -> Torrent:
    """``torrent`` announcing to ``urls`` (one tier each) instead of its own trackers; the
    info-hash is the same (announce lists are outside the info dictionary). Raises Failure
    for a URL bitswarm cannot announce to."""
    from bitswarm.errors import TrackerError  # noqa: PLC0415
    from bitswarm.tracker.announce import tracker_kind  # noqa: PLC0415

    for url in urls:
        try:
            tracker_kind(url)
        except TrackerError as error:  # the URL itself may hold a passkey: it stays off screen
            raise Failure(f"--tracker: {error}") from None
    return dataclasses.replace(torrent, trackers=tuple((url,) for url in urls))


def resume_dir(state_dir: Path | None) -> Path | None:
    """Where --state-dir puts resume data; None: beside the content (.bitswarm-resume/)."""
    return state_dir / "resume" if state_dir is not None else None


def default_state_folder() -> Path:
    """Where per-user state lives: $XDG_STATE_HOME/bitswarm or ~/.local/state/bitswarm."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "bitswarm"


def check_endpoints(option: str, endpoints: tuple[str, ...]) -> None:
    """HOST:PORT, [V6]:PORT or HOST for each; a ``Failure`` (exit 2) naming the first that is not."""
    from bitswarm.net.dht import parse_endpoint  # noqa: PLC0415 - the event loop only when needed

    for text in endpoints:
        with about(option):
            parse_endpoint(text)


def load_client_config(path: Path | None) -> ClientConfig:
    """``--config FILE``, else $XDG_CONFIG_HOME/bitswarm/client.toml if it exists, else defaults."""
    if path is None:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        path = Path(base) / "bitswarm" / CONFIG_FILE_NAME
        if not path.is_file():
            return ClientConfig()
    with about(path):
        config = parse_client_config(path.read_text(), source=str(path))
    check_endpoints(f"{path}: dht_bootstrap", config.dht_bootstrap)
    return config


def discovery_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --no-dht, --dht-bootstrap, --no-dht-bootstrap, --dht-state, --no-lsd,
    --lsd-interface and --no-port-mapping for get, seed and stream."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path),
            help="TOML file of settings (dht, dht_bootstrap, dht_state, lsd, lsd_interface, pex, port_mapping, utp)"
            " [$XDG_CONFIG_HOME/bitswarm/client.toml].",
        ),
        click.option("--no-dht", is_flag=True, help="Do not use the DHT (BEP 5) to find peers."),
        click.option(
            "--dht-bootstrap",
            "dht_bootstrap",
            multiple=True,
            metavar="HOST:PORT",
            help="A DHT node to join through while the saved routing table gives none; repeatable"
            " [router.bittorrent.com:6881 and the other well-known routers].",
        ),
        click.option(
            "--no-dht-bootstrap",
            is_flag=True,
            help="Join the DHT through no bootstrap node, only the saved table (closed networks, tests).",
        ),
        click.option(
            "--dht-state",
            type=click.Path(path_type=Path),
            help="Where the DHT routing table is kept [$XDG_STATE_HOME/bitswarm/dht.dat].",
        ),
        click.option("--no-lsd", is_flag=True, help="Do not use local service discovery (BEP 14)."),
        click.option("--lsd-interface", metavar="NAME", help="Network interface for local discovery [by route]."),
        click.option(
            "--no-port-mapping",
            is_flag=True,
            help="Do not ask the home router to open the listening port (UPnP IGD, NAT-PMP, PCP).",
        ),
        click.option("--no-utp", is_flag=True, help="Peers over TCP only: no uTP (BEP 29), in or out."),
        click.option(
            "--state-dir",
            type=click.Path(path_type=Path),
            help="Keep all state here: the DHT routing table (DIR/dht.dat) and resume data (DIR/resume/)"
            " [$XDG_STATE_HOME/bitswarm/dht.dat and .bitswarm-resume/ in the download folder].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def discovery_settings(
    config: ClientConfig,
    no_dht: bool,
    dht_bootstrap: tuple[str, ...],
    no_dht_bootstrap: bool,
    dht_state: Path | None,
    no_lsd: bool,
    lsd_interface: str | None,
    *,
    no_port_mapping: bool = False,
    no_utp: bool = False,
    state_dir: Path | None = None,
) -> dict[str, Any]:
    """TransferPlan's discovery fields from the options, then the config (private
    torrents use none of them)."""
    check_endpoints("--dht-bootstrap", dht_bootstrap)
    if no_dht_bootstrap and dht_bootstrap:
        raise Failure("--no-dht-bootstrap and --dht-bootstrap: choose one")
    if dht_state is None and state_dir is not None:
        dht_state = state_dir / "dht.dat"
    if dht_state is None:
        dht_state = Path(config.dht_state).expanduser() if config.dht_state else default_state_folder() / "dht.dat"
    return {
        "dht": config.dht and not no_dht,
        "dht_bootstrap": () if no_dht_bootstrap else dht_bootstrap or config.dht_bootstrap,
        "dht_state_path": dht_state,
        "lsd": config.lsd and not no_lsd,
        "lsd_interface": lsd_interface or config.lsd_interface,
        "port_mapping": config.port_mapping and not no_port_mapping,
        "utp": config.utp and not no_utp,
    }


# The policies' names, as in bitswarm.wire.mse.EncryptionPolicy (not imported: it pulls in cryptography).
ENCRYPTION_POLICIES = ("prefer", "require", "disable")
encryption_option = click.option(
    "--encryption",
    type=click.Choice(ENCRYPTION_POLICIES),
    default="prefer",
    show_default=True,
    help="Protocol encryption (MSE): prefer it, require RC4 both ways, or speak plain BitTorrent only.",
)


pex_option = click.option("--no-pex", is_flag=True, help="No peer exchange (BEP 11); private torrents never use it.")


upload_slots_option = click.option(
    "--upload-slots",
    type=int,
    default=None,
    metavar="N",
    help="Peers to upload to at once, the optimistic unchoke included [8].",
)


def check_upload_slots(upload_slots: int | None) -> None:
    """A ``Failure`` (exit 2) when ``--upload-slots`` is below 1."""
    if upload_slots is not None and upload_slots < 1:
        raise Failure(f"--upload-slots: {upload_slots}; at least 1")


@cli.command("get")
@click.argument("source", metavar="TORRENT|MAGNET", callback=nonempty)
@click.option(
    "-o", "--output", "folder", type=click.Path(path_type=Path), default=Path("."), help="Save into this folder [.]."
)
@click.option("--port", type=int, default=6881, show_default=True, help="Port to accept peers on (0: any free port).")
@click.option("--files", "files_spec", help="Only these files, by index in 'bitswarm info': 0,2,5-7.")
@click.option("--sequential", is_flag=True, help="Download pieces in order (for streaming).")
@click.option("--seed-ratio", type=float, default=1.0, show_default=True, help="Seed until uploaded/size reaches R.")
@click.option("--no-seed", is_flag=True, help="Exit 0 as soon as every piece is verified.")
@click.option("--max-down", help="Download limit in bytes per second (2M, 500K).")
@click.option("--max-up", help="Upload limit in bytes per second (2M, 500K).")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line on stdout.")
@upload_slots_option
@encryption_option
@discovery_options
@pex_option
def get_command(
    source: str,
    folder: Path,
    port: int,
    files_spec: str | None,
    sequential: bool,
    seed_ratio: float,
    no_seed: bool,
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
    """Download TORRENT (a .torrent file or a magnet link) into DIR, then share it.

    For a magnet link the info dictionary comes from peers (from its tr trackers, x.pe
    peers, the DHT and local discovery) and is saved as DIR/NAME.torrent; 'so' selects
    files unless --files does."""
    from bitswarm.net.client import TransferPlan  # noqa: PLC0415
    from bitswarm.net.session import TorrentOptions  # noqa: PLC0415

    check_upload_slots(upload_slots)
    link, torrent, select, wanted = read_source(source, files_spec)
    config = load_client_config(config_path)
    folder.mkdir(parents=True, exist_ok=True)
    options = TorrentOptions(
        sequential=sequential, wanted_files=wanted, pex=config.pex and not no_pex, resume_dir=resume_dir(state_dir)
    )
    if upload_slots is not None:
        options.upload_slots = upload_slots
    plan = TransferPlan(
        torrent=torrent, magnet=link, select=select, folder=folder, port=port, options=options, seed_ratio=seed_ratio,
        keep_seeding=not no_seed, as_json=as_json,
        max_up=parse_size(max_up) if max_up else 0.0, max_down=parse_size(max_down) if max_down else 0.0,
        encryption=encryption,
        **discovery_settings(config, no_dht, dht_bootstrap, no_dht_bootstrap, dht_state, no_lsd, lsd_interface,
                             no_port_mapping=no_port_mapping, no_utp=no_utp, state_dir=state_dir),
    )  # fmt: skip
    with about("magnet" if link is not None else source):
        status = _run_transfer(plan)
    sys.exit(status)


@cli.command("seed")
@click.argument("torrent_path", metavar="TORRENT", callback=nonempty_path)
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--port", type=int, default=6881, show_default=True, help="Port to accept peers on (0: any free port).")
@click.option("--max-up", help="Upload limit in bytes per second (2M, 500K).")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line on stdout.")
@click.option(
    "-t",
    "--tracker",
    "trackers",
    multiple=True,
    metavar="URL",
    help="Announce here instead of to the torrent's trackers (a private tracker's passkey URL); repeatable.",
)
@click.option(
    "--super-seed/--no-super-seed",
    default=None,
    help="Reveal pieces one at a time (BEP 16) [on with --max-up]. Off for video that viewers stream: "
    "a player needs the pieces in order.",
)
@upload_slots_option
@encryption_option
@discovery_options
@pex_option
def seed_command(
    torrent_path: Path,
    folder: Path,
    port: int,
    max_up: str | None,
    as_json: bool,
    trackers: tuple[str, ...],
    super_seed: bool | None,
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
    """Share TORRENT's content from DIR (the folder holding the torrent's name) until stopped."""
    from bitswarm.net.client import TransferPlan  # noqa: PLC0415
    from bitswarm.net.session import TorrentOptions  # noqa: PLC0415

    check_upload_slots(upload_slots)
    torrent = load_torrent(torrent_path)
    if trackers:
        torrent = replace_trackers(torrent, trackers)
    if not folder.is_dir():
        raise Failure(f"{folder}: not a folder")
    config = load_client_config(config_path)
    options = TorrentOptions(pex=config.pex and not no_pex, resume_dir=resume_dir(state_dir), super_seed=super_seed)
    if upload_slots is not None:
        options.upload_slots = upload_slots
    plan = TransferPlan(
        torrent=torrent, folder=folder, port=port, options=options,
        seed_ratio=None, keep_seeding=True, as_json=as_json, max_up=parse_size(max_up) if max_up else 0.0,
        encryption=encryption,
        **discovery_settings(config, no_dht, dht_bootstrap, no_dht_bootstrap, dht_state, no_lsd, lsd_interface,
                             no_port_mapping=no_port_mapping, no_utp=no_utp, state_dir=state_dir),
    )  # fmt: skip
    with about(torrent_path):
        status = _run_transfer(plan)
    sys.exit(0 if status in (0, 130) else status)


@cli.command("tracker")
@click.option("--http", "http", multiple=True, help="HOST:PORT for HTTP, repeatable; 'off' disables [[::]:6969].")
@click.option("--udp", "udp", multiple=True, help="HOST:PORT for UDP, repeatable; 'off' disables [[::]:6969].")
@click.option("--store", help="'memory' [default] or redis://HOST:PORT/DB shared by several trackers.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML file with the same settings.")
@click.option("--whitelist", "whitelist_file", help="Track only the info-hashes in this file (reloaded on change).")
@click.option("--passkeys", "passkeys_file", help="Private mode: passkeys allowed in /announce/<passkey>.")
@click.option("--full-scrape/--no-full-scrape", default=None, help="Answer a scrape that names no swarm.")
@click.option("--log-peer-addresses", is_flag=True, default=None, help="Log peers' addresses (off by default).")
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    help="Reverse proxy (address or network) whose X-Forwarded-For names the client; repeatable.",
)
def tracker_command(
    http: tuple[str, ...],
    udp: tuple[str, ...],
    store: str | None,
    config_path: Path | None,
    whitelist_file: str | None,
    passkeys_file: str | None,
    full_scrape: bool | None,
    log_peer_addresses: bool | None,
    trusted_proxies: tuple[str, ...],
) -> None:
    """Run a BitTorrent tracker over HTTP and UDP until Ctrl-C or SIGTERM."""
    from bitswarm.net import tracker  # noqa: PLC0415 - the event loop and servers only for this command
    from bitswarm.tracker.config import TrackerConfig, apply, load_config  # noqa: PLC0415

    config = TrackerConfig()
    if config_path is not None:
        with about(config_path):
            config = apply(load_config(config_path.read_text(), source=str(config_path)), {}, source="")
    overrides: dict[str, object] = {
        "http": [address for address in http if address != "off"] if http else None,
        "udp": [address for address in udp if address != "off"] if udp else None,
        "store": store,
        "whitelist_file": whitelist_file,
        "passkeys_file": passkeys_file,
        "full_scrape": full_scrape,
        "log_peer_addresses": log_peer_addresses,
        "trusted_proxies": list(trusted_proxies) if trusted_proxies else None,
    }
    with about("tracker"):
        config = apply(config, {key: value for key, value in overrides.items() if value is not None}, source="options")
        config = config.validate()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    def ready(server: tracker.TrackerServer) -> None:
        http_text = ", ".join(f"{host}:{port}" for host, port in server.http_addresses) or "off"
        udp_text = ", ".join(f"{host}:{port}" for host, port in server.udp_addresses) or "off"
        click.echo(f"bitswarm tracker: http {http_text}; udp {udp_text}; store {config.store.split('@')[-1]}")
        sys.stdout.flush()

    with about("tracker"):
        tracker.run(config, ready=ready)


@cli.command("dht")
@click.option(
    "--bind",
    "binds",
    multiple=True,
    metavar="HOST:PORT",
    help="Address to listen on, at most one per address family; repeatable [0.0.0.0:6881].",
)
@click.option(
    "--dht-bootstrap", "bootstrap", multiple=True, metavar="HOST:PORT", help="A node to join through; repeatable."
)
@click.option("--state", "state_path", type=click.Path(path_type=Path), help="Load and save the routing table here.")
@click.option("--read-only", is_flag=True, help="Ask, never answer (BEP 43): stay out of others' routing tables.")
def dht_command(binds: tuple[str, ...], bootstrap: tuple[str, ...], state_path: Path | None, read_only: bool) -> None:
    """Run a standalone DHT node (BEP 5) until Ctrl-C or SIGTERM."""
    import ipaddress  # noqa: PLC0415

    from bitswarm.net.dht import parse_endpoint  # noqa: PLC0415

    binds = binds or ("0.0.0.0:6881",)
    check_endpoints("--dht-bootstrap", bootstrap)
    families = []
    for text in binds:
        with about("--bind"):
            host, _ = parse_endpoint(text)
        try:
            families.append(ipaddress.ip_address(host).version)
        except ValueError:
            raise Failure(f"--bind: {text}: not an IP address") from None
    if len(set(families)) != len(families):
        raise Failure("--bind: at most one address per address family")
    with about("dht"):
        asyncio.run(_run_dht_node(list(binds), list(bootstrap), state_path, read_only))


async def _run_dht_node(binds: list[str], bootstrap: list[str], state_path: Path | None, read_only: bool) -> None:
    """Run the node until SIGINT or SIGTERM; the routing table is saved on the way out."""
    import signal  # noqa: PLC0415

    from bitswarm.net.dht import DHTService, run_dht_node  # noqa: PLC0415

    def ready(service: DHTService) -> None:
        shown = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in service.addresses)
        addresses = ", ".join(shown)
        nodes = sum(len(table) for table in service.node.tables.values())
        click.echo(f"bitswarm dht: listening on {addresses}; node id {service.node.node_id.hex()}; {nodes} nodes")
        sys.stdout.flush()

    if state_path is not None and state_path.parent != Path():
        state_path.parent.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    node = loop.create_task(run_dht_node(binds, bootstrap, state_path, read_only, on_ready=ready))
    stopping = loop.create_task(stop.wait())
    try:
        await asyncio.wait({node, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        node.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await node  # raises what ended the node early (a port in use, a bad address)


@cli.command("demo")
@click.option("--keep", type=click.Path(path_type=Path), help="Work in this folder and keep it.")
def demo_command(keep: Path | None) -> None:
    """Create, inspect and verify a generated sample torrent."""
    # demo.py reuses this module's formatting, so it is imported here, not at the top.
    from bitswarm.demo import run_demo  # noqa: PLC0415

    with about("demo"):
        run_demo(keep)


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(prog_name="bitswarm", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_BAD_INPUT)
    except (click.Abort, KeyboardInterrupt):
        click.echo("bitswarm: interrupted", err=True)
        sys.exit(130)
    except Failure as failure:
        if debug:
            raise
        click.echo(f"{failure.program}: {failure}", err=True)
        sys.exit(failure.exit_code)
    sys.exit(0)


# Registers `stream`, `index`, `subscribe`, `ctl` and `daemon` on the group (their modules need the helpers above).
from bitswarm.cli import bundle as _bundle  # noqa: E402, F401
from bitswarm.cli import ctl as _ctl  # noqa: E402, F401
from bitswarm.cli import daemon as _daemon  # noqa: E402, F401
from bitswarm.cli import index as _index  # noqa: E402, F401
from bitswarm.cli import stream as _stream  # noqa: E402, F401
from bitswarm.cli import subscribe as _subscribe  # noqa: E402, F401
