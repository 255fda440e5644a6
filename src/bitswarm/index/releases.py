"""What a release name says about a TV episode: season, episode, air date.

Torznab's ``t=tvsearch&season=1&ep=2`` asks for one episode, but the site stores titles,
not episode numbers. The search backend finds candidates by the show's words (``q``);
``episode_matches`` then keeps the titles that name the wanted episode, whatever the
release's spelling (``S01E02``, ``1x02``, ``S01E01-E03``, ``S01-S03`` packs,
``2023.10.23`` for daily shows).

Release names are parsed by ``bitswarm.releases`` (PTT, with its length cut and cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from bitswarm.releases import MAX_RELEASE_NAME_CHARS, parse_release

__all__ = ["MAX_RELEASE_NAME_CHARS", "ReleaseName", "episode_matches", "parse_release_name"]


@dataclass(frozen=True, slots=True)
class ReleaseName:
    """What a release name says: seasons and episodes (several for packs and multi-episode
    releases, none when it names none) and the air date of a daily show's episode."""

    seasons: tuple[int, ...] = ()
    episodes: tuple[int, ...] = ()
    air_date: date | None = None


def parse_release_name(name: str) -> ReleaseName:
    """The season, episode and date information in ``name`` (empty when there is none)."""
    release = parse_release(name)
    return ReleaseName(seasons=release.seasons, episodes=release.episodes, air_date=release.air_date)


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
