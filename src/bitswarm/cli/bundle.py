"""``bitswarm bundle``: encrypted bundles (create, info, open, publish).

The bundle modules (and the crypto library under them) are imported by the commands that
use them: every other command starts without them."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bitswarm import __version__
from bitswarm.cli import (
    EXIT_PROBLEMS,
    Failure,
    about,
    cli,
    human_size,
    load_torrent,
    nonempty,
    nonempty_path,
    parse_size,
    progress_bar,
)
from bitswarm.cli.stream import bundle_key, stream_command
from bitswarm.create import CreateOptions
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.storage.atomic import replace_durably

if TYPE_CHECKING:
    from bitswarm.bundle.gates import Gate


def parse_gate(text: str) -> Gate:
    from bitswarm.bundle import gates  # noqa: PLC0415

    with about("--gate"):
        return gates.parse(text)


@cli.group("bundle")
def bundle_group() -> None:
    """Encrypted bundles: content sealed before it is shared, opened with its key."""


@bundle_group.command("create")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The .torrent to write.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Where the sealed files go [the folder beside OUTPUT named after it].")  # fmt: skip
@click.option("--title", help="The bundle's title, sealed in its manifest [PATH's name].")
@click.option("--cover", type=click.Path(path_type=Path),
              help="A public cover image (JPEG, PNG or WebP, at most 512 KiB) shown without the key.")  # fmt: skip
@click.option("-t", "--tracker", "trackers", multiple=True, help="Announce URL; repeat for backup tiers.")
@click.option("-w", "--web-seed", "web_seeds", multiple=True, help="Web seed URL (BEP 19); repeatable.")
@click.option("--gate", "gate_text", default="free", show_default=True,
              help="free (the key in the link), email, price=9.95 or crowdfund=250000x9.95,YYYY-MM-DD.")  # fmt: skip
@click.option("--piece-length", help="Piece size, a multiple of 64K [automatic].")
@click.option("--v2", "version", flag_value="v2", help="v2 only (BEP 52).")
@click.option("--hybrid", "version", flag_value="hybrid", default=True, help="v1 and v2 in one [default].")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT (and its key file) if they exist.")
def create_command(
    path: Path,
    output: Path,
    data_dir: Path | None,
    title: str | None,
    cover: Path | None,
    trackers: tuple[str, ...],
    web_seeds: tuple[str, ...],
    gate_text: str,
    piece_length: str | None,
    version: str,
    force: bool,
) -> None:
    """Seal PATH (a file or folder) into a bundle: ciphertext under --data and OUTPUT.

    With the free gate the share link (a magnet link with the key after '#') is printed;
    with any other gate the key is written to OUTPUT's name with '.key' for the gate to
    hold, and the link printed has no key."""
    from bitswarm.bundle import files, links  # noqa: PLC0415
    from bitswarm.bundle import format as fmt  # noqa: PLC0415

    gate = parse_gate(gate_text)
    key_file = output.with_suffix(".key")
    for existing in (output, key_file) if gate.kind != "free" else (output,):
        if existing.exists() and not force:
            raise Failure(f"{existing}: already exists (use --force to overwrite)")
    data_dir = data_dir if data_dir is not None else output.with_suffix("")
    content_key, bundle_id = secrets.token_bytes(fmt.KEY_BYTES), secrets.token_bytes(fmt.ID_BYTES)
    options = CreateOptions(
        version=TorrentVersion(version),
        piece_length=parse_size(piece_length) if piece_length else None,
        trackers=trackers,
        web_seeds=web_seeds,
        created_by=f"bitswarm/{__version__}",
        creation_date=int(time.time()),
    )
    cover_bytes = None
    if cover is not None:
        with about(cover):
            cover_bytes = cover.read_bytes()[: fmt.MAX_COVER_BYTES + 1]
            fmt.cover_type(cover_bytes)
    with about(path), progress_bar("sealing") as (on_start, on_progress):
        sealed = files.seal_folder(
            path, data_dir, content_key=content_key, bundle_id=bundle_id, title=title, cover=cover_bytes,
            options=options, on_start=on_start, on_progress=on_progress,
        )  # fmt: skip
    with about(output):
        replace_durably(output, sealed.torrent)
    torrent = Torrent.decode(sealed.torrent)
    click.echo(
        f"{output}: {len(sealed.manifest.files)} files, {human_size(torrent.total_size)} sealed under {sealed.folder}",
        err=True,
    )
    magnet_link = torrent.magnet().format()
    if gate.kind == "free":
        click.echo(links.share_link(magnet_link, content_key))
        return
    with about(key_file):
        replace_durably(key_file, (links.key_text(content_key) + "\n").encode())
        os.chmod(key_file, 0o600)
    click.echo(
        f"{key_file}: the key, for the {gate.kind} gate to hold (lose it and the bundle is unreadable)", err=True
    )
    click.echo(magnet_link)


@bundle_group.command("info")
@click.argument("torrent_path", metavar="TORRENT", callback=nonempty_path)
@click.option("--key", help="The key (43 characters) or a share link holding it.")
@click.option("--key-file", type=click.Path(path_type=Path), help="A file holding the key.")
def info_command(torrent_path: Path, key: str | None, key_file: Path | None) -> None:
    """What a bundle holds: with the key its title and files, without it only sizes."""
    from bitswarm.bundle import files  # noqa: PLC0415

    torrent = load_torrent(torrent_path)
    content_key = bundle_key("", key, key_file)
    with about(torrent_path):
        files.header_of(torrent)
        if content_key is None:
            click.echo(f"bundle {torrent.name}: {len(list(torrent.data_files()))} sealed files, "
                       f"{human_size(torrent.total_size)}; the key shows their names")  # fmt: skip
            return
        manifest = files.manifest_of(torrent, content_key)
    header = files.header_of(torrent)
    click.echo(f"title: {manifest.title}")
    if header.cover is not None:
        click.echo(f"cover: {header.cover_type}, {len(header.cover)} bytes")
    click.echo(f"files ({len(manifest.files)}):")
    for item in manifest.files:
        click.echo(f"  {human_size(item.size):>10}  {'/'.join(item.path)}  ({item.media_type})")


@bundle_group.command("open")
@click.argument("source", metavar="LINK|TORRENT", callback=nonempty)
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), help="Where the plaintext goes.")
@click.option("--key", help="The key (43 characters) or a share link holding it.")
@click.option("--key-file", type=click.Path(path_type=Path), help="A file holding the key.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="The folder holding the sealed files, fetched from the swarm when they are not all"
                   " there, and kept [a temporary folder beside OUTPUT].")  # fmt: skip
@click.option("--port", type=int, default=0, show_default=True, help="Port to accept peers on (0: any free port).")
@click.option("--no-dht", is_flag=True, help="Do not use the DHT (BEP 5) to find peers.")
@click.option("--no-lsd", is_flag=True, help="Do not use local service discovery (BEP 14).")
@click.option("--stream", is_flag=True,
              help="Serve the plaintext over HTTP while it downloads, as bitswarm stream does.")  # fmt: skip
@click.option(
    "--bind", default="127.0.0.1:0", show_default=True, metavar="HOST:PORT", help="With --stream: where to listen."
)
@click.option("--player", metavar="mpv|vlc|CMD", help="With --stream: start this player on the main file's URL.")
@click.pass_context
def open_command(
    ctx: click.Context,
    source: str,
    out: Path | None,
    key: str | None,
    key_file: Path | None,
    data_dir: Path | None,
    port: int,
    no_dht: bool,
    no_lsd: bool,
    stream: bool,
    bind: str,
    player: str | None,
) -> None:
    """Download a bundle through the swarm (unless its sealed files are already under
    --data) and decrypt it into OUTPUT. A wrong key or tampered data: one line, exit 2,
    and no plaintext file left as if it were good."""
    from bitswarm.bundle import files, links  # noqa: PLC0415
    from bitswarm.bundle import format as fmt  # noqa: PLC0415

    content_key = bundle_key(source, key, key_file)
    if content_key is None:
        raise Failure("no key: give a share link with '#k=', --key or --key-file")
    if stream:
        ctx.invoke(stream_command, source=source, folder=data_dir, bind=bind, player=player,
                   key=links.key_text(content_key), no_dht=no_dht, no_lsd=no_lsd, port=port)  # fmt: skip
        return
    if out is None:
        raise Failure("-o/--output: where the plaintext goes (or --stream to serve it)")
    torrent = None if source.lower().startswith("magnet:") else load_torrent(Path(source))
    if torrent is not None:
        with about(source):
            files.manifest_of(torrent, content_key)  # a wrong key fails before any download
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            out.parent.mkdir(parents=True, exist_ok=True)
            # Beside OUTPUT (one file system), gone once the plaintext is out.
            data_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix=".bitswarm-sealed-", dir=out.parent))
            )
        written = None
        if torrent is not None and _all_there(torrent, data_dir):
            # Every segment authenticates itself, so a local copy needs no hashing pass
            # first; one that does not open is checked and mended from the swarm.
            with contextlib.suppress(fmt.BundleError):
                written = files.open_bundle(torrent, data_dir, content_key, out)
        if written is None:
            torrent = _download(source, torrent, data_dir, port, no_dht=no_dht, no_lsd=no_lsd)
            with about(source):
                written = files.open_bundle(torrent, data_dir, content_key, out)
    click.echo(f"{out}: {len(written)} files opened", err=True)


def _all_there(torrent: Torrent, data_dir: Path) -> bool:
    """Every sealed file is under ``data_dir`` at its full size."""
    for entry in torrent.data_files():
        location = data_dir.joinpath(*entry.path)
        if not location.is_file() or location.stat().st_size != entry.length:
            return False
    return True


def _download(
    source: str, torrent: Torrent | None, data_dir: Path, port: int, *, no_dht: bool, no_lsd: bool
) -> Torrent:
    from bitswarm.cli import _run_transfer, load_client_config, parse_magnet  # noqa: PLC0415
    from bitswarm.net.client import TransferPlan  # noqa: PLC0415
    from bitswarm.net.session import TorrentOptions  # noqa: PLC0415

    link = None
    if torrent is None:
        link = parse_magnet(source)
    data_dir.mkdir(parents=True, exist_ok=True)
    plan = TransferPlan(
        torrent=torrent, magnet=link, folder=data_dir, port=port, options=TorrentOptions(), seed_ratio=None,
        keep_seeding=False, as_json=False, dht=not no_dht, lsd=not no_lsd,
        dht_bootstrap=load_client_config(None).dht_bootstrap,
    )  # fmt: skip
    with about(source):
        status = _run_transfer(plan)
    if status != 0:
        sys.exit(status)
    if torrent is not None:
        return torrent
    assert link is not None
    for saved in data_dir.glob("*.torrent"):
        candidate = load_torrent(saved)
        if link.info_hash_v1 in (None, candidate.info_hash_v1) and link.info_hash_v2 in (None, candidate.info_hash_v2):
            return candidate
    raise Failure(f"{source}: the metadata was not saved under {data_dir}")


@bundle_group.command("publish")
@click.argument("torrent_path", metavar="TORRENT", callback=nonempty_path)
@click.option("--index", "index_url", required=True, metavar="URL", help="The site (http://HOST:PORT/).")
@click.option("--key", help="The key (43 characters) or a share link holding it [TORRENT's .key file].")
@click.option("--key-file", type=click.Path(path_type=Path), help="A file holding the key.")
@click.option("--gate", "gate_text", default="free", show_default=True,
              help="free, email, price=9.95 or crowdfund=250000x9.95,YYYY-MM-DD.")  # fmt: skip
@click.option("--title", help="The public title [the manifest's].")
@click.option("--description", default="", help="The public description.")
@click.option("--category", help="The site's category for it.")
@click.option("--user", required=True, help="Your account on the site.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (else a prompt).")
def publish_command(
    torrent_path: Path,
    index_url: str,
    key: str | None,
    key_file: Path | None,
    gate_text: str,
    title: str | None,
    description: str,
    category: str | None,
    user: str,
    password_stdin: bool,
) -> None:
    """Upload a bundle and its key to an index site, behind a gate (the site keeps the key
    wrapped, and releases it as the gate says). Prints the bundle's page."""
    from bitswarm.bundle import files, links  # noqa: PLC0415

    gate = parse_gate(gate_text)
    if key is None and key_file is None and torrent_path.with_suffix(".key").is_file():
        key_file = torrent_path.with_suffix(".key")
    content_key = bundle_key("", key, key_file)
    if content_key is None:
        raise Failure("no key: --key, --key-file, or TORRENT's .key file beside it")
    torrent = load_torrent(torrent_path)
    with about(torrent_path):
        files.manifest_of(torrent, content_key)  # the key must open it before it is sent
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else click.prompt("password", hide_input=True)
    fields = {"key": links.key_text(content_key), "gate": gate.text(), "title": title or "",
              "description": description, "category": category or ""}  # fmt: skip

    async def send() -> tuple[int, bytes]:
        import aiohttp  # noqa: PLC0415

        from bitswarm.index.bundles import API_HEADER  # noqa: PLC0415

        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        form.add_field("torrent", torrent_path.read_bytes(), filename=torrent_path.name,
                       content_type="application/x-bittorrent")  # fmt: skip
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout, auth=aiohttp.BasicAuth(user, password)) as session:
            url = index_url.rstrip("/") + "/api/bundles"
            async with session.post(url, data=form, headers={API_HEADER: "1"}, allow_redirects=False) as response:
                return response.status, await response.read()

    import asyncio  # noqa: PLC0415

    import aiohttp  # noqa: PLC0415

    try:
        status, body = asyncio.run(send())
    except (OSError, aiohttp.ClientError, TimeoutError) as error:
        raise Failure(f"{index_url}: {getattr(error, 'strerror', None) or error}", EXIT_PROBLEMS) from None
    from bitswarm.index.gates import api_error  # noqa: PLC0415

    if status != 201:
        raise Failure(f"{index_url}: {status}: {api_error(body)}", EXIT_PROBLEMS)
    import json  # noqa: PLC0415

    answer = json.loads(body)
    if "announce" in answer:
        click.echo(
            f"bitswarm: its swarm is private on the site's tracker; seed it with: bitswarm seed TORRENT DIR "
            f"--tracker {answer['announce']}",
            err=True,
        )
    click.echo(answer["page"])
