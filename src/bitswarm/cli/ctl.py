"""``bitswarm ctl``: a remote for a daemon over the Transmission RPC (bitswarm's own
daemon or transmission-daemon): list, add, pause, resume, remove, verify, info, stats and
speed limits, as a table for people or one JSON document (``--json``) for scripts.

Exit statuses: 0 done, 1 the daemon refused, failed or could not be reached (one line
``bitswarm ctl: ...``), 2 bad usage or input (a bad id, a file that is not a torrent).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from bitswarm import magnet
from bitswarm.cli import EXIT_BAD_INPUT, EXIT_PROBLEMS, Failure, cli, human_size, parse_size
from bitswarm.errors import BitswarmError, RemoteAuthError, RemoteError, RemoteUnreachable, UsageError
from bitswarm.magnet import printable
from bitswarm.metainfo import MAX_TORRENT_BYTES, read_torrent_file
from bitswarm.remote import (
    DEFAULT_RPC_URL,
    DEFAULT_TIMEOUT_S,
    INFO_FIELDS,
    LIMIT_OFF,
    LIST_FIELDS,
    AddSource,
    Endpoint,
    RemoteDaemon,
    TorrentId,
    parse_torrent_id,
)

PROGRAM = "bitswarm ctl"
F = TypeVar("F", bound=Callable[..., Any])

# Transmission's status numbers (tr_torrent_activity), as scripts read them and as people do.
STATUS_NAMES = {
    0: ("stopped", "Stopped"),
    1: ("verify-queued", "Will verify"),
    2: ("verifying", "Verifying"),
    3: ("download-queued", "Queued"),
    4: ("downloading", "Downloading"),
    5: ("seed-queued", "Queued"),
    6: ("seeding", "Seeding"),
}
PRIORITY_NAMES = {-1: "low", 0: "normal", 1: "high"}
# Transmission's uploadRatio for "nothing downloaded yet" and "uploaded with nothing downloaded".
RATIO_NONE, RATIO_INFINITE = -1, -2
# The table's width when stdout is not a terminal: wide enough that names are not cut.
PIPE_WIDTH = 200


@dataclass(frozen=True, slots=True)
class CtlOptions:
    endpoint: Endpoint
    as_json: bool


def _torrent_ids(context: click.Context, param: click.Parameter, values: Any) -> Any:
    """A click callback: ids as `list` shows them, or 40-digit hex info-hashes; a bad one is
    a usage error (exit 2) before anything is asked of the daemon."""
    texts = values if isinstance(values, tuple) else (values,)
    try:
        ids = tuple(parse_torrent_id(str(text)) for text in texts)
    except UsageError as error:
        raise click.BadParameter(str(error), context, param) from error
    return ids if isinstance(values, tuple) else ids[0]


def _credentials(auth: str | None, user: str | None, password_stdin: bool) -> tuple[str | None, str | None]:
    if auth is not None and user is not None:
        raise click.UsageError("--auth and --user: give one of them")
    if auth is not None:
        name, colon, password = auth.partition(":")
        if not colon or not name:
            raise click.UsageError("--auth takes USER:PASS")
        return name, password
    if password_stdin and user is None:
        raise click.UsageError("--password-stdin needs --user")
    if user is None:
        return None, None
    if password_stdin:
        # One line, as `docker login --password-stdin` reads it: a trailing newline is not part of it.
        return user, sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        return user, click.prompt(f"password for {user}", hide_input=True, err=True)
    raise click.UsageError("--user needs --password-stdin (or a terminal to ask on)")


def json_option(function: F) -> F:
    """`--json` after the subcommand too (`bitswarm ctl list --json`), as people type it."""
    return click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")(function)


@cli.group("ctl")
@click.option(
    "--rpc",
    envvar="BITSWARM_RPC",
    default=DEFAULT_RPC_URL,
    show_default=True,
    metavar="URL",
    help="The daemon's RPC address [env BITSWARM_RPC].",
)
@click.option(
    "--auth", envvar="BITSWARM_RPC_AUTH", metavar="USER:PASS", help="HTTP Basic credentials [env BITSWARM_RPC_AUTH]."
)
@click.option("--user", help="User name; the password is read from stdin (--password-stdin) or asked for.")
@click.option("--password-stdin", is_flag=True, help="Read the password for --user from stdin's first line.")
@json_option
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1, max=3600),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for each answer.",
)
@click.pass_context
def ctl_group(
    context: click.Context,
    rpc: str,
    auth: str | None,
    user: str | None,
    password_stdin: bool,
    as_json: bool,
    timeout_s: float,
) -> None:
    """Drive a running daemon over the Transmission RPC: `bitswarm daemon` or
    transmission-daemon (torrent IDs are the numbers `list` shows, or info-hashes)."""
    name, password = _credentials(auth, user, password_stdin)
    context.obj = CtlOptions(Endpoint(rpc, name, password, timeout_s), as_json)


@contextlib.contextmanager
def _daemon(context: click.Context) -> Iterator[RemoteDaemon]:
    """A connection to the daemon; our errors end the command with one line and a status."""
    options = _options(context)
    try:
        yield RemoteDaemon(options.endpoint)
    except RemoteError as error:
        raise Failure(str(error), EXIT_PROBLEMS, program=PROGRAM) from error
    except UsageError as error:
        raise Failure(str(error), EXIT_BAD_INPUT, program=PROGRAM) from error


def _options(context: click.Context) -> CtlOptions:
    options = context.find_object(CtlOptions)
    assert options is not None, "ctl's subcommands run under its group"
    return options


def _as_json(context: click.Context, as_json: bool) -> bool:
    return as_json or _options(context).as_json


def _emit_json(document: dict[str, Any]) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True))


def _console() -> Any:
    # Imported here: rich's tables take a while to import and most commands print a line.
    from rich.console import Console  # noqa: PLC0415

    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, highlight=False, markup=False, soft_wrap=False)


# -- what the daemon says, in our words -------------------------------------------------


def _ratio(value: Any) -> float | None:
    number = float(value) if isinstance(value, int | float) else RATIO_NONE
    return None if number < 0 else number


def _eta(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and value >= 0 else None


def _status(fields: dict[str, Any]) -> tuple[str, str]:
    """(machine name, human words) of a torrent's state; an error outranks the activity."""
    machine, human = STATUS_NAMES.get(int(fields.get("status", 0)), ("unknown", "Unknown"))
    if machine == "downloading" and float(fields.get("metadataPercentComplete", 1)) < 1:
        human = "Metadata"
    if fields.get("error"):
        human = "Error"
    return machine, human


def _summary(fields: dict[str, Any]) -> dict[str, Any]:
    """The `list` fields of one torrent, with units in the names (STYLE)."""
    machine, _human = _status(fields)
    labels = fields.get("labels")
    return {
        "id": fields["id"],
        "info_hash": str(fields.get("hashString", "")).lower(),
        "name": fields.get("name", ""),
        "status": machine,
        "error": fields.get("errorString") or None if fields.get("error") else None,
        "progress": float(fields.get("percentDone", 0.0)),
        "size_bytes": int(fields.get("sizeWhenDone", 0)),
        "have_bytes": int(fields.get("haveValid", 0)),
        "left_bytes": int(fields.get("leftUntilDone", 0)),
        "eta_s": _eta(fields.get("eta")),
        "rate_down_bytes_s": int(fields.get("rateDownload", 0)),
        "rate_up_bytes_s": int(fields.get("rateUpload", 0)),
        "ratio": _ratio(fields.get("uploadRatio")),
        "uploaded_bytes": int(fields.get("uploadedEver", 0)),
        "downloaded_bytes": int(fields.get("downloadedEver", 0)),
        "download_dir": fields.get("downloadDir", ""),
        "labels": list(labels) if isinstance(labels, list) else [],
        "added_at": int(fields.get("addedDate", 0)) or None,
        "peers_connected": int(fields.get("peersConnected", 0)),
    }


def _details(fields: dict[str, Any]) -> dict[str, Any]:
    """`info`'s fields: the summary, the torrent's own facts, its files, peers and trackers."""
    details = _summary(fields)
    files = fields.get("files") or []
    stats = fields.get("fileStats") or [{} for _ in files]
    details.update(
        comment=fields.get("comment", ""),
        creator=fields.get("creator", ""),
        created_at=int(fields.get("dateCreated", 0)) or None,
        done_at=int(fields.get("doneDate", 0)) or None,
        private=bool(fields.get("isPrivate", False)),
        magnet=fields.get("magnetLink", ""),
        piece_count=int(fields.get("pieceCount", 0)),
        piece_size_bytes=int(fields.get("pieceSize", 0)),
        files=[
            {
                "index": index,
                "name": file.get("name", ""),
                "size_bytes": int(file.get("length", 0)),
                "have_bytes": int(file.get("bytesCompleted", 0)),
                "wanted": bool(stat.get("wanted", True)),
                "priority": PRIORITY_NAMES.get(int(stat.get("priority", 0)), "normal"),
            }
            for index, (file, stat) in enumerate(zip(files, stats, strict=False))
        ],
        peers=[
            {
                "address": peer.get("address", ""),
                "port": int(peer.get("port", 0)),
                "client": peer.get("clientName", ""),
                "progress": float(peer.get("progress", 0.0)),
                "rate_down_bytes_s": int(peer.get("rateToClient", 0)),
                "rate_up_bytes_s": int(peer.get("rateToPeer", 0)),
                "flags": peer.get("flagStr", ""),
                "encrypted": bool(peer.get("isEncrypted", False)),
            }
            for peer in fields.get("peers") or []
        ],
        trackers=[
            {
                "tier": int(tracker.get("tier", 0)),
                "announce": tracker.get("announce", ""),
                "last_announce_succeeded": bool(tracker.get("lastAnnounceSucceeded", False)),
                "last_announce_result": tracker.get("lastAnnounceResult", ""),
                "last_announce_at": int(tracker.get("lastAnnounceTime", 0)) or None,
                "seeders": _count(tracker.get("seederCount")),
                "leechers": _count(tracker.get("leecherCount")),
                "downloads": _count(tracker.get("downloadCount")),
            }
            for tracker in fields.get("trackerStats") or []
        ],
    )
    return details


def _count(value: Any) -> int | None:
    """Transmission says -1 for a count the tracker has not given."""
    return int(value) if isinstance(value, int) and value >= 0 else None


def _brief(torrent: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": torrent["id"],
        "info_hash": str(torrent.get("hashString", "")).lower(),
        "name": torrent.get("name", ""),
    }


# -- formatting for people ----------------------------------------------------------------


def _rate(bytes_s: int) -> str:
    return "-" if bytes_s <= 0 else f"{human_size(bytes_s)}/s"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "Unknown"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def _ratio_text(fields: dict[str, Any]) -> str:
    value = fields.get("uploadRatio")
    if value == RATIO_INFINITE:
        return "Inf"
    ratio = _ratio(value)
    return "None" if ratio is None else f"{ratio:.2f}"


def _when(epoch_s: int | None) -> str:
    if not epoch_s:
        return "-"
    return datetime.datetime.fromtimestamp(epoch_s).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _table(*columns: str, right: Sequence[str] = ()) -> Any:
    from rich import box  # noqa: PLC0415 - see _console
    from rich.table import Table  # noqa: PLC0415

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold")
    return table


def _print_list(torrents: list[dict[str, Any]]) -> None:
    table = _table(
        "ID",
        "Done",
        "Have",
        "ETA",
        "Up",
        "Down",
        "Ratio",
        "Status",
        "Name",
        right=("ID", "Done", "Have", "Up", "Down", "Ratio"),
    )
    for fields in torrents:
        summary = _summary(fields)
        _machine, human = _status(fields)
        done = summary["progress"] >= 1
        table.add_row(
            str(summary["id"]) + ("*" if summary["error"] else ""),
            f"{summary['progress'] * 100:.0f}%" if summary["size_bytes"] else "n/a",
            human_size(summary["have_bytes"]),
            "Done" if done else _duration(summary["eta_s"]),
            _rate(summary["rate_up_bytes_s"]),
            _rate(summary["rate_down_bytes_s"]),
            _ratio_text(fields),
            human,
            printable(str(summary["name"])),
        )
    console = _console()
    if not torrents:
        click.echo("no torrents")
        return
    console.print(table)
    up = sum(int(fields.get("rateUpload", 0)) for fields in torrents)
    down = sum(int(fields.get("rateDownload", 0)) for fields in torrents)
    have = sum(int(fields.get("haveValid", 0)) for fields in torrents)
    click.echo(f"Sum: {len(torrents)} torrents, have {human_size(have)}, up {_rate(up)}, down {_rate(down)}")


def _print_info(fields: dict[str, Any]) -> None:
    details = _details(fields)
    _machine, human = _status(fields)
    lines = [
        ("Name", printable(str(details["name"]))),
        ("Id", str(details["id"])),
        ("Hash", details["info_hash"]),
        ("Status", human + (f": {printable(str(details['error']))}" if details["error"] else "")),
        ("Location", printable(str(details["download_dir"]))),
        (
            "Progress",
            f"{details['progress'] * 100:.1f}% of {human_size(details['size_bytes'])}"
            f" ({human_size(details['have_bytes'])} verified)",
        ),
        ("ETA", "Done" if details["progress"] >= 1 else _duration(details["eta_s"])),
        ("Rates", f"down {_rate(details['rate_down_bytes_s'])}, up {_rate(details['rate_up_bytes_s'])}"),
        (
            "Ratio",
            f"{_ratio_text(fields)} (uploaded {human_size(details['uploaded_bytes'])},"
            f" downloaded {human_size(details['downloaded_bytes'])})",
        ),
        ("Pieces", f"{details['piece_count']} x {human_size(details['piece_size_bytes'])}"),
        ("Private", "yes" if details["private"] else "no"),
        ("Labels", ", ".join(printable(str(label)) for label in details["labels"]) or "-"),
        ("Added", _when(details["added_at"])),
        ("Completed", _when(details["done_at"])),
        ("Comment", printable(str(details["comment"])) or "-"),
        ("Magnet", printable(str(details["magnet"]))),
    ]
    for label, value in lines:
        click.echo(f"{label + ':':<10} {value}")
    console = _console()
    files = _table("#", "Done", "Size", "Priority", "Get", "Name", right=("#", "Done", "Size"))
    for file in details["files"]:
        share = file["have_bytes"] / file["size_bytes"] if file["size_bytes"] else 1.0
        files.add_row(
            str(file["index"]),
            f"{share * 100:.0f}%",
            human_size(file["size_bytes"]),
            file["priority"],
            "yes" if file["wanted"] else "no",
            printable(str(file["name"])),
        )
    click.echo(f"\nFiles ({len(details['files'])}):")
    if details["files"]:
        console.print(files)
    peers = _table("Address", "Flags", "Done", "Down", "Up", "Client", right=("Done", "Down", "Up"))
    for peer in details["peers"]:
        peers.add_row(
            f"{peer['address']}:{peer['port']}",
            printable(str(peer["flags"])),
            f"{peer['progress'] * 100:.0f}%",
            _rate(peer["rate_down_bytes_s"]),
            _rate(peer["rate_up_bytes_s"]),
            printable(str(peer["client"])),
        )
    click.echo(f"\nPeers ({len(details['peers'])}):")
    if details["peers"]:
        console.print(peers)
    trackers = _table("Tier", "Announce", "Seeders", "Leechers", "Last answer", right=("Tier", "Seeders", "Leechers"))
    for tracker in details["trackers"]:
        trackers.add_row(
            str(tracker["tier"]),
            printable(str(tracker["announce"])),
            "-" if tracker["seeders"] is None else str(tracker["seeders"]),
            "-" if tracker["leechers"] is None else str(tracker["leechers"]),
            printable(str(tracker["last_announce_result"])) or "-",
        )
    click.echo(f"\nTrackers ({len(details['trackers'])}):")
    if details["trackers"]:
        console.print(trackers)


# -- the commands ---------------------------------------------------------------------------


@ctl_group.command("list")
@json_option
@click.pass_context
def list_command(context: click.Context, as_json: bool) -> None:
    """Every torrent: id, done, have, ETA, rates, ratio, status, name."""
    with _daemon(context) as daemon:
        torrents = daemon.torrents(LIST_FIELDS)
    if _as_json(context, as_json):
        _emit_json({"torrents": [_summary(fields) for fields in torrents]})
    else:
        _print_list(torrents)


def _add_source(text: str) -> AddSource:
    """What `add` sends for one argument; ``Failure`` (exit 2) for a file or link that is
    not a torrent, checked here so the daemon never gets it."""
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme == "magnet":
        try:
            link = magnet.parse(text)
        except BitswarmError as error:
            raise Failure(f"{text}: {error}", EXIT_BAD_INPUT, program=PROGRAM) from error
        info_hash = link.info_hash_v1.hex() if link.info_hash_v1 is not None else None
        return AddSource(text, filename=text, info_hash=info_hash)
    if scheme in ("http", "https"):
        return AddSource(text, filename=text)
    path = Path(text)
    try:
        if path.stat().st_size > MAX_TORRENT_BYTES:
            raise Failure(f"{text}: larger than {MAX_TORRENT_BYTES} bytes", EXIT_BAD_INPUT, program=PROGRAM)
        data = path.read_bytes()
        torrent = read_torrent_file(data)
    except BitswarmError as error:
        raise Failure(f"{text}: {error}", EXIT_BAD_INPUT, program=PROGRAM) from error
    except OSError as error:
        raise Failure(f"{text}: {error.strerror or error}", EXIT_BAD_INPUT, program=PROGRAM) from error
    info_hash = torrent.info_hash_v1.hex() if torrent.info_hash_v1 is not None else None
    return AddSource(text, metainfo=data, info_hash=info_hash)


@ctl_group.command("add")
@click.argument("sources", nargs=-1, required=True, metavar="TORRENT|MAGNET|URL...")
@click.option("-d", "--download-dir", help="Where the daemon puts the content [its default].")
@click.option("--paused", is_flag=True, help="Add without starting.")
@click.option("--label", "labels", multiple=True, help="A label for the torrent; repeatable.")
@json_option
@click.pass_context
def add_command(
    context: click.Context,
    sources: tuple[str, ...],
    download_dir: str | None,
    paused: bool,
    labels: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add .torrent files (sent to the daemon), magnet links and URLs (the daemon fetches them).

    A torrent the daemon has already is reported, not an error. One that the daemon refuses
    is reported and the others are still added; the status is then 1."""
    to_add = [_add_source(text) for text in sources]
    added: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    machine = _as_json(context, as_json)
    with _daemon(context) as daemon:
        for source in to_add:
            try:
                result = daemon.add(source, download_dir=download_dir, paused=paused, labels=labels)
            except (RemoteUnreachable, RemoteAuthError):
                raise
            except RemoteError as error:
                failed.append({"source": source.label, "error": str(error)})
                if not machine and len(to_add) > 1:
                    click.echo(f"{PROGRAM}: {error}", err=True)
                continue
            added.append(
                {
                    "source": result.source,
                    "id": result.id,
                    "info_hash": result.info_hash,
                    "name": result.name,
                    "duplicate": result.is_duplicate,
                }
            )
            if not machine:
                verb = "already there" if result.is_duplicate else "added"
                click.echo(f"{verb}: {result.id} {printable(result.name)} ({result.info_hash})")
    if machine:
        _emit_json({"added": added, "failed": failed})
    if failed:
        # One source: its own error is the line; several: each had its line, then the count.
        message = failed[0]["error"] if len(to_add) == 1 else f"{len(failed)} of {len(to_add)} not added"
        raise Failure(message, EXIT_PROBLEMS, program=PROGRAM)


def _targets(daemon: RemoteDaemon, ids: Sequence[TorrentId], every: bool) -> list[dict[str, Any]]:
    if every and ids:
        raise click.UsageError("give IDs or --all, not both")
    if not every and not ids:
        raise click.UsageError("give torrent IDs, or --all")
    return daemon.torrents(("id", "hashString", "name")) if every else daemon.resolve(ids)


def _report(context: click.Context, as_json: bool, verb: str, torrents: list[dict[str, Any]], **extra: Any) -> None:
    if _as_json(context, as_json):
        _emit_json({verb: [_brief(torrent) for torrent in torrents], **extra})
        return
    if not torrents:
        click.echo("no torrents")
    for torrent in torrents:
        click.echo(f"{verb}: {torrent['id']} {printable(str(torrent.get('name', '')))}")


def _bulk_command(name: str, verb: str, action: Callable[[RemoteDaemon, list[int]], None], summary: str) -> None:
    """`pause`, `resume` and `verify`: the same shape, a different RPC method."""

    @ctl_group.command(name, help=summary)
    @click.argument("ids", nargs=-1, callback=_torrent_ids)
    @click.option("--all", "every", is_flag=True, help="Every torrent the daemon has.")
    @json_option
    @click.pass_context
    def command(context: click.Context, ids: tuple[TorrentId, ...], every: bool, as_json: bool) -> None:
        with _daemon(context) as daemon:
            torrents = _targets(daemon, ids, every)
            if torrents:
                action(daemon, [int(torrent["id"]) for torrent in torrents])
        _report(context, as_json, verb, torrents)


_bulk_command("pause", "paused", RemoteDaemon.stop, "Stop torrents (ID... or --all); they keep their data.")
_bulk_command("resume", "resumed", RemoteDaemon.start, "Start stopped torrents again (ID... or --all).")
_bulk_command("verify", "verifying", RemoteDaemon.verify, "Check torrents' data against their hashes (ID... or --all).")


@ctl_group.command("remove")
@click.argument("ids", nargs=-1, required=True, callback=_torrent_ids)
@click.option("--delete-data", is_flag=True, help="Also delete the downloaded files.")
@json_option
@click.pass_context
def remove_command(context: click.Context, ids: tuple[TorrentId, ...], delete_data: bool, as_json: bool) -> None:
    """Remove torrents from the daemon; their files stay unless --delete-data."""
    with _daemon(context) as daemon:
        torrents = daemon.resolve(ids)
        daemon.remove([int(torrent["id"]) for torrent in torrents], delete_data=delete_data)
    _report(context, as_json, "removed", torrents, data_deleted=delete_data)


@ctl_group.command("info")
@click.argument("torrent_id", callback=_torrent_ids, metavar="ID")
@json_option
@click.pass_context
def info_command(context: click.Context, torrent_id: TorrentId, as_json: bool) -> None:
    """One torrent in detail: state, files, peers, trackers."""
    with _daemon(context) as daemon:
        (fields,) = daemon.resolve([torrent_id], INFO_FIELDS)
    if _as_json(context, as_json):
        _emit_json({"torrent": _details(fields)})
    else:
        _print_info(fields)


@ctl_group.command("stats")
@json_option
@click.pass_context
def stats_command(context: click.Context, as_json: bool) -> None:
    """The daemon's version, torrent counts, current rates and transfer totals."""
    with _daemon(context) as daemon:
        session = daemon.session()
        stats = daemon.session_stats()

    def totals(key: str) -> dict[str, int]:
        part = stats.get(key) or {}
        return {
            "uploaded_bytes": int(part.get("uploadedBytes", 0)),
            "downloaded_bytes": int(part.get("downloadedBytes", 0)),
            "files_added": int(part.get("filesAdded", 0)),
            "seconds_active": int(part.get("secondsActive", 0)),
            "sessions": int(part.get("sessionCount", 0)),
        }

    document: dict[str, Any] = {
        "version": str(session.get("version", "")),
        "rpc_version": int(session.get("rpc-version", 0)),
        "torrents": int(stats.get("torrentCount", 0)),
        "active": int(stats.get("activeTorrentCount", 0)),
        "paused": int(stats.get("pausedTorrentCount", 0)),
        "rate_down_bytes_s": int(stats.get("downloadSpeed", 0)),
        "rate_up_bytes_s": int(stats.get("uploadSpeed", 0)),
        "this_session": totals("current-stats"),
        "all_time": totals("cumulative-stats"),
    }
    if _as_json(context, as_json):
        _emit_json(document)
        return
    click.echo(f"Daemon:   {printable(document['version'])} (rpc-version {document['rpc_version']})")
    click.echo(f"Torrents: {document['torrents']} ({document['active']} active, {document['paused']} paused)")
    click.echo(f"Rates:    down {_rate(document['rate_down_bytes_s'])}, up {_rate(document['rate_up_bytes_s'])}")
    for label, key in (("Session", "this_session"), ("All time", "all_time")):
        part = document[key]
        click.echo(
            f"{label + ':':<9} up {human_size(part['uploaded_bytes'])}, down {human_size(part['downloaded_bytes'])},"
            f" {_duration(part['seconds_active'])} active"
        )


def _parse_limit(text: str | None) -> int | None:
    """--down/--up: None (unchanged), 'off', or a rate in bytes a second ('500K', '2M')."""
    if text is None:
        return None
    if text.strip().lower() in ("off", "none", "unlimited"):
        return LIMIT_OFF
    return parse_size(text.removesuffix("/s"))


@ctl_group.command("limits")
@click.option("--down", metavar="RATE|off", help="Global download limit, e.g. 2M (per second), or off.")
@click.option("--up", metavar="RATE|off", help="Global upload limit, e.g. 500K (per second), or off.")
@json_option
@click.pass_context
def limits_command(context: click.Context, down: str | None, up: str | None, as_json: bool) -> None:
    """Show the daemon's global speed limits; --down and --up change them."""
    down_bytes_s, up_bytes_s = _parse_limit(down), _parse_limit(up)
    with _daemon(context) as daemon:
        session = daemon.session()
        # Transmission counts limits in its own "kB": speed-bytes of them (1000 on 3.00 and 4.x).
        unit_bytes = int((session.get("units") or {}).get("speed-bytes", 1000))

        def in_units(value: int | None) -> int | None:
            if value is None or value == LIMIT_OFF:
                return value
            return max(1, round(value / unit_bytes)) if value else 0

        if down_bytes_s is not None or up_bytes_s is not None:
            daemon.set_speed_limits(down_kb_s=in_units(down_bytes_s), up_kb_s=in_units(up_bytes_s))
            session = daemon.session()

    def limit(direction: str) -> int | None:
        if not session.get(f"speed-limit-{direction}-enabled"):
            return None
        return int(session.get(f"speed-limit-{direction}", 0)) * unit_bytes

    document = {"down_limit_bytes_s": limit("down"), "up_limit_bytes_s": limit("up")}
    if _as_json(context, as_json):
        _emit_json(document)
        return
    for label, value in (("Down", document["down_limit_bytes_s"]), ("Up", document["up_limit_bytes_s"])):
        click.echo(f"{label + ':':<6} {'unlimited' if value is None else f'{human_size(value)}/s'}")
