"""What a release name says about a TV episode: season, episode, air date.

Torznab's ``t=tvsearch&season=1&ep=2`` asks for one episode, but the site stores titles,
not episode numbers. The search backend finds candidates by the show's words (``q``);
``episode_matches`` then keeps the titles that name the wanted episode, whatever the
release's spelling (``S01E02``, ``1x02``, ``S01E01-E03``, ``S01-S03`` packs,
``2023.10.23`` for daily shows).

Release names are parsed by PTT (the ``parsett`` package), a parser made for torrent
release names, rather than by a second hand-written one. Two guards sit in front of it:
names are cut to ``MAX_RELEASE_NAME_CHARS`` (its regular expressions take seconds on a
hostile name of a few kilobytes, and no real release name is that long), and results are
cached, since one feed asks about the same titles again and again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

# Real release names stay well under 255 characters (a file name's limit); the cut keeps
# the parser's time bounded (about 10 ms at this length even for hostile names).
MAX_RELEASE_NAME_CHARS = 256
# Distinct titles remembered; a page of Torznab candidates is a few hundred.
PARSE_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ReleaseName:
    """What a release name says: seasons and episodes (several for packs and multi-episode
    releases, none when it names none) and the air date of a daily show's episode."""

    seasons: tuple[int, ...] = ()
    episodes: tuple[int, ...] = ()
    air_date: date | None = None


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_release_name(name: str) -> ReleaseName:
    """The season, episode and date information in ``name`` (empty when there is none)."""
    # Imported on first use: loading PTT's tables takes ~150 ms, which every `bitswarm`
    # command importing the index would otherwise pay.
    from PTT import parse_title  # type: ignore[import-untyped]  # noqa: PLC0415

    parsed = parse_title(name[:MAX_RELEASE_NAME_CHARS])
    air_date = None
    if isinstance(parsed.get("date"), str):
        try:
            air_date = date.fromisoformat(parsed["date"])
        except ValueError:
            air_date = None  # the parser's date was not a calendar date: say nothing
    return ReleaseName(
        seasons=tuple(n for n in parsed.get("seasons", ()) if isinstance(n, int)),
        episodes=tuple(n for n in parsed.get("episodes", ()) if isinstance(n, int)),
        air_date=air_date,
    )


def episode_matches(title: str, season: int | None, episode: int | None = None, air_date: date | None = None) -> bool:
    """Whether a release called ``title`` is what a TV search for ``season``/``episode``
    (or a daily show's ``air_date``) asks for.

    A season alone matches every release of that season: packs and single episodes, as
    Sonarr's season search expects (it chooses among them). A season and an episode match
    releases that name both; a pack of the whole season does not match an episode search.
    Nothing asked matches everything."""
    if season is None and episode is None and air_date is None:
        return True
    release = parse_release_name(title)
    if air_date is not None:
        return release.air_date == air_date
    if season is not None and season not in release.seasons:
        return False
    return episode is None or episode in release.episodes
