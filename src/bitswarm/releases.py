"""What a release name says: the show or film's title, season, episode, air date, quality.

Release names are parsed by PTT (the ``parsett`` package), a parser made for torrent
release names, rather than by a hand-written one. Two guards sit in front of it: names are
cut to ``MAX_RELEASE_NAME_CHARS`` (its regular expressions take seconds on a hostile name
of a few kilobytes, and no real release name is that long), and results are cached, since
a feed or a Torznab page asks about the same titles again and again.

The index's Torznab searches (``bitswarm.index.releases``) and the subscriptions' episode
matching (``bitswarm.feeds``) both read names through ``parse_release``. Sans-IO.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

# Real release names stay well under 255 characters (a file name's limit); the cut keeps
# the parser's time bounded (about 10 ms at this length even for hostile names).
MAX_RELEASE_NAME_CHARS = 256
# Distinct titles remembered; a page of Torznab candidates or a feed is a few hundred.
PARSE_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Release:
    """What a release name says. ``seasons`` and ``episodes`` hold several numbers for packs
    and multi-episode releases and none when the name gives none; an episode without a
    season is an absolute number (anime). ``resolution`` is PTT's ("1080p"), ``source`` its
    quality ("WEB-DL", "BluRay", "HDTV"); ``is_proper`` and ``is_repack`` mark re-releases
    that fix an earlier one; ``is_complete`` a whole-series or whole-season pack."""

    title: str = ""
    seasons: tuple[int, ...] = ()
    episodes: tuple[int, ...] = ()
    air_date: date | None = None
    year: int | None = None
    resolution: str | None = None
    source: str | None = None
    group: str | None = None
    country: str | None = None
    is_proper: bool = False
    is_repack: bool = False
    is_complete: bool = False


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_release(name: str) -> Release:
    """Everything ``name`` says that bitswarm uses (empty fields where it says nothing)."""
    # Imported on first use: loading PTT's tables takes ~150 ms, which every `bitswarm`
    # command importing this module would otherwise pay.
    from PTT import parse_title  # type: ignore[import-untyped]  # noqa: PLC0415

    parsed = parse_title(name[:MAX_RELEASE_NAME_CHARS])
    air_date = None
    if isinstance(parsed.get("date"), str):
        try:
            air_date = date.fromisoformat(parsed["date"])
        except ValueError:
            air_date = None  # the parser's date was not a calendar date: say nothing
    year = parsed.get("year")
    return Release(
        title=_text(parsed.get("title")) or "",
        seasons=tuple(n for n in parsed.get("seasons", ()) if isinstance(n, int)),
        episodes=tuple(n for n in parsed.get("episodes", ()) if isinstance(n, int)),
        air_date=air_date,
        year=year if isinstance(year, int) else None,
        resolution=_text(parsed.get("resolution")),
        source=_text(parsed.get("quality")),
        group=_text(parsed.get("group")),
        country=_text(parsed.get("country")),
        is_proper=parsed.get("proper") is True,
        is_repack=parsed.get("repack") is True,
        is_complete=parsed.get("complete") is True,
    )
