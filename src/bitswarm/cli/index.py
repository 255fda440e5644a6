"""``bitswarm index``: serve the website (with its tracker), and fill its database from
the command line (``add``, ``import``, ``account``), also while the site runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from bitswarm.cli import EXIT_BAD_INPUT, Failure, about, cli, progress_bar, run_event_loop
from bitswarm.cli.stream import parse_bind
from bitswarm.errors import BitswarmError, DuplicateEntry, EntryLimitExceeded
from bitswarm.metainfo import MAX_TORRENT_BYTES
from bitswarm.web.hosts import bind_warning

DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_DB = "sqlite:///bitswarm-index.db"
# Files added per transaction by `import` (at most the store's MAX_BATCH_ITEMS): a
# transaction each would make a million files an hour's work.
IMPORT_BATCH_FILES = 500
# ... and fewer when they are large (a .torrent may be 64 MiB): what one batch holds in memory.
IMPORT_BATCH_BYTES = 64 << 20


def _db_url(context: click.Context, db: str | None) -> str:
    """A subcommand's --db, else the group's, else the default file in the working folder."""
    if db is not None:
        return db
    group_db = (context.obj or {}).get("db")
    return group_db if isinstance(group_db, str) else DEFAULT_DB


def read_torrent_bytes(path: Path) -> bytes:
    """A .torrent file's bytes, refused before reading when larger than the index accepts."""
    if path.stat().st_size > MAX_TORRENT_BYTES:
        raise EntryLimitExceeded(f"larger than {MAX_TORRENT_BYTES} bytes", "torrent", MAX_TORRENT_BYTES)
    return path.read_bytes()


@contextlib.contextmanager
def _reported(failures: list[str], subject: str | Path) -> Iterator[None]:
    """Print our errors about one source as one line and count them; the command goes on."""
    try:
        yield
    except BitswarmError as error:
        failures.append(str(subject))
        click.echo(f"bitswarm: {subject}: {error}", err=True)
    except OSError as error:
        failures.append(str(subject))
        click.echo(f"bitswarm: {subject}: {error.strerror or error}", err=True)


@cli.group("index", invoke_without_command=True)
@click.option("--bind", default=None, metavar="HOST:PORT", help=f"Where the site listens [{DEFAULT_BIND}].")
@click.option("--db", default=None, metavar="URL", help=f"sqlite:///PATH or postgresql://... [{DEFAULT_DB}].")
@click.option("--tracker/--no-tracker", default=None, help="Run the site's own tracker in the same process [on].")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML file with the site's settings.")
@click.pass_context
def index_group(
    context: click.Context, bind: str | None, db: str | None, tracker: bool | None, config_path: Path | None
) -> None:
    """The torrent website: serve it (no subcommand), or add entries to its database.

    Serving prints 'bitswarm index: http://HOST:PORT/' once the site answers, with the
    tracker (unless --no-tracker) at /announce, /scrape and UDP on the same port."""
    from bitswarm.index.config import load_index_config  # noqa: PLC0415

    context.ensure_object(dict)
    with about(config_path or "index"):
        config = load_index_config(config_path, {"bind": bind, "db": db, "tracker": tracker})
    context.obj["db"] = config.db
    context.obj["bundle_keys_dir"] = config.bundle_keys_dir
    if context.invoked_subcommand is not None:
        return
    host, _port = parse_bind(config.bind)
    warning = bind_warning(host, "use the site")
    if warning is not None:
        click.echo(f"bitswarm: {warning}", err=True)

    async def main() -> int:
        import logging  # noqa: PLC0415

        from bitswarm.index.run import serve_index  # noqa: PLC0415 - the server only for this command
        from bitswarm.net.client import stop_on_signals  # noqa: PLC0415

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")

        def ready(url: str) -> None:
            click.echo(f"bitswarm index: {url}")
            sys.stdout.flush()

        with stop_on_signals() as stop, about("index"):
            await serve_index(config, ready=ready, stop=stop)
        return 0

    run_event_loop(main())


@index_group.command("add")
@click.argument("sources", metavar="TORRENT|MAGNET...", nargs=-1, required=True)
@click.option("--db", default=None, metavar="URL", help=f"sqlite:///PATH or postgresql://... [{DEFAULT_DB}].")
@click.option("--category", help="The entries' category (a slug like 'movies' or 'tv/hd').")
@click.option("--title", help="The entry's title (one source only) [the torrent's name].")
@click.pass_context
def add_command(
    context: click.Context, sources: tuple[str, ...], db: str | None, category: str | None, title: str | None
) -> None:
    """Add .torrent files or magnet links to the index; prints each new entry's id.

    A magnet link's entry waits for its metadata. Exits 2 if any source was refused
    (a duplicate, an invalid torrent), after adding the others."""
    if title is not None and len(sources) > 1:
        raise Failure("--title: give one TORRENT|MAGNET with it")
    url = _db_url(context, db)
    failures: list[str] = []

    async def main() -> int:
        from bitswarm.index.db import open_database  # noqa: PLC0415 - the database drivers only for this group

        with about(url):
            database = await open_database(url)
        async with database:
            for source in sources:
                is_magnet = source.lower().startswith("magnet:")
                with _reported(failures, "magnet" if is_magnet else source):
                    if is_magnet:
                        entry = await database.entries.add_magnet(source, title=title, category=category)
                    else:
                        data = read_torrent_bytes(Path(source))
                        entry = await database.entries.add_torrent(data, title=title, category=category)
                    state = "" if entry.is_ready else " (waiting for metadata)"
                    click.echo(f"{entry.id}\t{entry.title}{state}")
        return 0

    run_event_loop(main())
    if failures:
        raise Failure(f"index add: {len(failures)} of {len(sources)} not added", EXIT_BAD_INPUT)


@index_group.command("import")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--db", default=None, metavar="URL", help=f"sqlite:///PATH or postgresql://... [{DEFAULT_DB}].")
@click.option("--category", help="The entries' category (a slug like 'movies' or 'tv/hd').")
@click.pass_context
def import_command(context: click.Context, folder: Path, db: str | None, category: str | None) -> None:
    """Add every .torrent file under DIR. Duplicates and invalid files are reported, one
    line each, and skipped; the summary line counts them."""
    if not folder.is_dir():
        raise Failure(f"{folder}: not a folder")
    with about(folder):
        paths = sorted(path for path in folder.rglob("*.torrent") if path.is_file())
    url = _db_url(context, db)

    counts = {"added": 0, "duplicates": 0, "invalid": 0}

    def report(path: Path, outcome: int | BitswarmError | OSError) -> None:
        if isinstance(outcome, int):
            counts["added"] += 1
        elif isinstance(outcome, DuplicateEntry):
            counts["duplicates"] += 1
            click.echo(f"bitswarm: {path}: {outcome}", err=True)
        else:
            counts["invalid"] += 1
            reason = outcome.strerror or outcome if isinstance(outcome, OSError) else outcome
            click.echo(f"bitswarm: {path}: {reason}", err=True)

    async def main() -> int:
        from bitswarm.index.db import open_database  # noqa: PLC0415 - the database drivers only for this group
        from bitswarm.index.entries import TorrentUpload  # noqa: PLC0415

        with about(url):
            database = await open_database(url)
        async with database:
            with progress_bar("importing", "files") as (on_start, on_advance):

                async def flush(pending: list[tuple[Path, TorrentUpload | BitswarmError | OSError]]) -> None:
                    uploads = [item for _path, item in pending if isinstance(item, TorrentUpload)]
                    results = iter(await database.entries.add_torrents(uploads))
                    for path, item in pending:  # reported in the folder's order
                        report(path, next(results) if isinstance(item, TorrentUpload) else item)
                    on_advance(len(pending))

                on_start(len(paths))
                pending: list[tuple[Path, TorrentUpload | BitswarmError | OSError]] = []
                pending_bytes = 0
                for path in paths:
                    try:
                        upload = TorrentUpload(read_torrent_bytes(path), category=category)
                        pending.append((path, upload))
                        pending_bytes += len(upload.data)
                    except (BitswarmError, OSError) as error:
                        pending.append((path, error))
                    if len(pending) >= IMPORT_BATCH_FILES or pending_bytes >= IMPORT_BATCH_BYTES:
                        await flush(pending)
                        pending, pending_bytes = [], 0
                if pending:
                    await flush(pending)
        return 0

    run_event_loop(main())
    summary = f"{counts['added']} added, {counts['duplicates']} duplicates, {counts['invalid']} invalid"
    click.echo(f"{folder}: {summary} of {len(paths)} .torrent files")


@index_group.group("account")
def account_group() -> None:
    """Accounts of the site (operators moderate; uploaders may upload when uploads are
    not open to everyone). Browsing, searching and downloading need none."""


@account_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["operator", "uploader"]), default="uploader", show_default=True)
@click.option("--db", default=None, metavar="URL", help=f"sqlite:///PATH or postgresql://... [{DEFAULT_DB}].")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (else a prompt).")
@click.pass_context
def account_add_command(context: click.Context, name: str, role: str, db: str | None, password_stdin: bool) -> None:
    """Create an account; its password is asked for (never an argument: it would show in ps)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    url = _db_url(context.parent or context, db)

    async def main() -> int:
        from bitswarm.index.db import open_database  # noqa: PLC0415

        with about(url):
            database = await open_database(url)
        async with database:
            with about("account"):
                account = await database.accounts.create(name, password, role)
        click.echo(f"{account.id}\t{account.name}\t{account.role}")
        return 0

    run_event_loop(main())


@index_group.command("voucher")
@click.argument("entry_id", type=int)
@click.option("--db", default=None, metavar="URL", help=f"sqlite:///PATH or postgresql://... [{DEFAULT_DB}].")
@click.option("--amount", help="The amount paid [the bundle's price].")
@click.pass_context
def voucher_command(context: click.Context, entry_id: int, db: str | None, amount: str | None) -> None:
    """Sign a voucher for a payment recorded offline: it buys ENTRY_ID's key once, on its page."""
    from bitswarm.index.config import IndexConfig  # noqa: PLC0415

    url = _db_url(context.parent or context, db)
    keys_dir = ((context.parent or context).obj or {}).get("bundle_keys_dir") or ""
    folder = IndexConfig(db=url, bundle_keys_dir=keys_dir).bundle_keys_folder()
    if folder is None:
        raise Failure("no bundle_keys_dir: set it in the site's config (--config)")

    async def main() -> int:
        from bitswarm.bundle.ledger import money  # noqa: PLC0415
        from bitswarm.index.bundles import SiteKeys  # noqa: PLC0415
        from bitswarm.index.db import open_database  # noqa: PLC0415
        from bitswarm.index.gates import issue_voucher  # noqa: PLC0415

        with about(url):
            database = await open_database(url)
        async with database:
            bundle = await database.bundles.get(entry_id)
        if bundle is None:
            raise Failure(f"entry {entry_id} is not a bundle")
        with about(folder):
            keys = SiteKeys.load_or_create(folder)
            click.echo(issue_voucher(keys, bundle, money(amount) if amount is not None else None))
        return 0

    run_event_loop(main())
