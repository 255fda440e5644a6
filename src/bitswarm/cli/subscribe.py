"""``bitswarm subscribe``: feeds polled for new torrents (``bitswarm.feeds``).

``add``, ``list`` and ``remove`` edit the subscriptions of a state folder; ``run --once``
polls every feed once (from cron), ``run`` polls each feed when it is due until Ctrl-C or
SIGTERM. What the rules pick goes to a watch folder (``--watch-dir``) or a
Transmission-compatible daemon (``--rpc``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bitswarm.cli import Failure, about, cli, human_size, parse_size, run_event_loop

if TYPE_CHECKING:
    from bitswarm.feeds.sinks import TorrentSink

# The loop's longest sleep: a SIGTERM or a subscription added meanwhile is seen this soon.
MAX_SLEEP_S = 60.0


def parse_duration(text: str) -> float:
    """'90', '30m', '6h', '2d' -> seconds."""
    from bitswarm.errors import UsageError  # noqa: PLC0415
    from bitswarm.units import parse_duration as parse  # noqa: PLC0415

    try:
        return parse(text)
    except UsageError as error:
        raise click.BadParameter(str(error)) from None


def _state(context: click.Context) -> Path:
    from bitswarm.feeds.store import default_state_folder  # noqa: PLC0415

    state = (context.obj or {}).get("subscribe_state")
    return state if isinstance(state, Path) else default_state_folder()


@cli.group("subscribe")
@click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of the subscriptions and the seen-database [$XDG_DATA_HOME/bitswarm/subscriptions].",
)
@click.pass_context
def subscribe_group(context: click.Context, state: Path | None) -> None:
    """Subscriptions: RSS and Atom feeds whose new torrents are added on their own."""
    context.ensure_object(dict)
    context.obj["subscribe_state"] = state


@subscribe_group.command("add")
@click.argument("url")
@click.option("--match", help="Take only items whose title matches this regular expression.")
@click.option("--exclude", help="Leave out items whose title matches this regular expression.")
@click.option("--min-size", help="Leave out content smaller than this (700M, 1G).")
@click.option("--max-size", help="Leave out content larger than this.")
@click.option("--series", multiple=True, metavar="NAME", help="A show to follow by episode; repeatable.")
@click.option("--quality", metavar="Q", help="Wanted quality of a series: 1080p, 720p+, '1080p web', '720p+ bluray+'.")
@click.option("--wait", metavar="DURATION", help="Wait this long (6h, 2d) for --quality before taking the best.")
@click.option("--proper-window", metavar="DURATION", help="A proper or repack replaces a download this long [7d].")
@click.option("--packs", is_flag=True, help="Take season packs of the series too.")
@click.option("--download-dir", help="Where the client puts this subscription's downloads.")
@click.option("--label", "labels", multiple=True, help="A label for the client; repeatable.")
@click.option("--cookie", "cookies", multiple=True, metavar="NAME=VALUE", help="Sent to the feed's host; repeatable.")
@click.option("--interval", metavar="DURATION", help="Poll no more often than this [15m]; a feed's ttl may ask less.")
@click.pass_context
def add_command(
    context: click.Context,
    url: str,
    match: str | None,
    exclude: str | None,
    min_size: str | None,
    max_size: str | None,
    series: tuple[str, ...],
    quality: str | None,
    wait: str | None,
    proper_window: str | None,
    packs: bool,
    download_dir: str | None,
    labels: tuple[str, ...],
    cookies: tuple[str, ...],
    interval: str | None,
) -> None:
    """Subscribe to the feed at URL; prints the new subscription's id."""
    from bitswarm.feeds.rules import Subscription  # noqa: PLC0415
    from bitswarm.feeds.store import SubscriptionFile  # noqa: PLC0415

    store = SubscriptionFile(_state(context))
    options: dict[str, object] = {
        "match": match,
        "exclude": exclude,
        "min_size": parse_size(min_size) if min_size is not None else None,
        "max_size": parse_size(max_size) if max_size is not None else None,
        "series": series,
        "quality": quality,
        "wait_s": parse_duration(wait) if wait is not None else None,
        "packs": packs,
        "download_dir": download_dir,
        "labels": labels,
        "cookies": cookies,
    }
    if proper_window is not None:
        options["proper_window_s"] = parse_duration(proper_window)
    if interval is not None:
        options["min_interval_s"] = parse_duration(interval)
    with about("subscribe add"):
        subscriptions = store.load()
        subscription = Subscription(id=store.next_id(), url=url, **options)  # type: ignore[arg-type]
        store.save([*subscriptions, subscription])
    click.echo(f"{subscription.id}\t{url}")


@subscribe_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every subscription.")
@click.pass_context
def list_command(context: click.Context, as_json: bool) -> None:
    """List the subscriptions: id, feed, rules."""
    from bitswarm.feeds.fetch import display_url  # noqa: PLC0415
    from bitswarm.feeds.rules import describe_rules  # noqa: PLC0415
    from bitswarm.feeds.store import SubscriptionFile  # noqa: PLC0415

    with about("subscribe list"):
        subscriptions = SubscriptionFile(_state(context)).load()
    if as_json:
        click.echo(json.dumps([s.to_json() for s in subscriptions], indent=2))
        return
    for s in subscriptions:
        rules = describe_rules(s, human_size)
        # The address without its query: a passkey stays off the screen.
        click.echo(f"{s.id}\t{display_url(s.url)}\t{'; '.join(rules) or 'every item'}")


@subscribe_group.command("remove")
@click.argument("which", metavar="ID|URL...", nargs=-1, required=True)
@click.pass_context
def remove_command(context: click.Context, which: tuple[str, ...]) -> None:
    """Remove subscriptions by id or feed address (what they downloaded stays seen)."""
    from bitswarm.feeds.store import SeenDatabase, SubscriptionFile  # noqa: PLC0415

    state = _state(context)
    store = SubscriptionFile(state)
    with about("subscribe remove"):
        subscriptions = store.load()
        gone = [s for s in subscriptions if str(s.id) in which or s.url in which]
        unknown = [w for w in which if not any(str(s.id) == w or s.url == w for s in gone)]
        if unknown:
            raise Failure(f"subscribe remove: no subscription {', '.join(unknown)}")
        store.save([s for s in subscriptions if s not in gone])
        with SeenDatabase(state) as seen:
            for subscription in gone:
                seen.forget_subscription(subscription.id)
    for subscription in gone:
        click.echo(f"removed {subscription.id}")


@subscribe_group.command("run")
@click.option("--once", is_flag=True, help="Poll the feeds that are due once and exit (for cron).")
@click.option("--force", is_flag=True, help="Poll every feed now, whatever its interval.")
@click.option(
    "--watch-dir", type=click.Path(path_type=Path, file_okay=False), help="Write .torrent/.magnet files here."
)
@click.option("--rpc", metavar="URL", help="Add to this Transmission RPC (http://127.0.0.1:9091/transmission/rpc).")
@click.option("--rpc-user", help="The RPC's user name (its password from $BITSWARM_RPC_PASSWORD).")
@click.pass_context
def run_command(
    context: click.Context, once: bool, force: bool, watch_dir: Path | None, rpc: str | None, rpc_user: str | None
) -> None:
    """Poll the subscribed feeds and add what their rules pick.

    Exits 0 when every feed was read (or had not changed) and every item was added, 1 when
    a feed or an item failed (one line each on stderr; the others were still handled)."""
    from bitswarm.feeds.sinks import TransmissionSink, WatchFolderSink  # noqa: PLC0415
    from bitswarm.feeds.store import SubscriptionFile  # noqa: PLC0415

    if (watch_dir is None) == (rpc is None):
        raise Failure("subscribe run: give one of --watch-dir DIR and --rpc URL")
    sink: TorrentSink
    if rpc is not None:
        with about("subscribe run"):
            sink = TransmissionSink(rpc, username=rpc_user, password=os.environ.get("BITSWARM_RPC_PASSWORD"))
    else:
        assert watch_dir is not None
        sink = WatchFolderSink(watch_dir)
    state = _state(context)
    with about("subscribe run"):
        if not SubscriptionFile(state).load():
            raise Failure(f"subscribe run: no subscriptions in {state} (subscribe add URL)")
    logging.basicConfig(level=logging.INFO, format="bitswarm: %(message)s", stream=sys.stderr)
    # transmission-rpc's own logger would repeat our one line about each failure.
    logging.getLogger("transmission-rpc").setLevel(logging.CRITICAL)
    failures = run_event_loop(_run(state, sink, once=once, force=force))
    if failures:
        raise Failure(f"subscribe run: {failures} feeds or items failed (above)", 1)


async def _run(state: Path, sink: TorrentSink, *, once: bool, force: bool) -> int:
    """Poll once, or until a signal; the number of feeds and items that failed."""
    import asyncio  # noqa: PLC0415

    import aiohttp  # noqa: PLC0415

    from bitswarm.feeds.runner import SubscriptionRunner  # noqa: PLC0415
    from bitswarm.feeds.store import SeenDatabase, SubscriptionFile  # noqa: PLC0415
    from bitswarm.net.client import stop_on_signals  # noqa: PLC0415

    failures = 0
    with about(state), SeenDatabase(state) as seen:
        async with aiohttp.ClientSession() as http:
            with stop_on_signals() as stop:
                while True:
                    subscriptions = SubscriptionFile(state).load()
                    runner = SubscriptionRunner(subscriptions, seen, sink, http)
                    report = await runner.poll_once(time.time(), force=force)
                    failures += len(report.feeds_failed) + len(report.items_failed)
                    if once or stop.is_set():
                        return failures
                    force = False
                    delay = min(MAX_SLEEP_S, max(1.0, runner.next_poll_at() - time.time()))
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=delay)
                    except TimeoutError:
                        continue
                    return failures
    raise AssertionError("unreachable")
