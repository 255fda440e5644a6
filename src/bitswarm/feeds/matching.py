"""The matching core: a subscription's rules, a poll's items, what was downloaded before
and the time in; decisions out. Sans-IO: the store supplies the history and records the
decisions, the runner fetches and delivers.

An item is first filtered by the plain rules (``match``, ``exclude``, size). Without
``series`` that is all: it is grabbed (the seen-database keeps it from being grabbed twice).
With ``series``, its title is read by the release-name parser and the item names episodes,
each under a key: ``S01E02`` (and ``S01E03`` for a double episode), ``S01`` for a season
pack, ``A1071`` for an anime's absolute number (an episode number without a season),
``D2023-10-23`` for a daily show. A film (no season, episode or date) is no episode. Then:

- an episode already downloaded is skipped, unless this is a proper or repack of it, the
  earlier download was not, and it arrives within ``proper_window_s`` of that download:
  then it is grabbed, naming the download it replaces;
- a season pack is skipped unless ``packs`` is set; its episodes count as downloaded;
- a release in the wanted quality is grabbed at once; one below it is skipped, or, with
  ``wait_s``, held: when the wait (from the first sighting of the episode) ends without a
  release in the wanted quality, the best release held is grabbed.

Within one poll the better releases are considered first, so the best of a batch wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from bitswarm.feeds.document import FeedItem
from bitswarm.feeds.quality import Quality
from bitswarm.feeds.rules import CompiledRules, normalise_series_name
from bitswarm.releases import Release, parse_release


@dataclass(frozen=True, slots=True)
class GrabbedEpisode:
    """An episode (key) of a series that was downloaded, and by which release."""

    info_hash: str | None
    is_proper: bool
    grabbed_at: float


@dataclass(frozen=True, slots=True)
class HeldItem:
    """A release kept while a better one may come; ``first_seen_at`` is the episode's."""

    item: FeedItem
    series: str
    episodes: tuple[str, ...]
    first_seen_at: float


@dataclass(frozen=True, slots=True)
class History:
    """What the store knows of a subscription's series: downloaded episodes by
    ``(series, key)``, and the releases held while waiting for a better one."""

    grabbed: Mapping[tuple[str, str], GrabbedEpisode] = field(default_factory=dict)
    held: Sequence[HeldItem] = ()


@dataclass(frozen=True, slots=True)
class Grab:
    """Download this item. ``series``/``episodes`` are what it covers (empty without
    series rules); ``replaces`` the info-hashes of the downloads it supersedes."""

    item: FeedItem
    reason: str
    series: str | None = None
    episodes: tuple[str, ...] = ()
    is_proper: bool = False
    replaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hold:
    """Keep this item until ``until``: a better release of its episode may come first."""

    item: FeedItem
    series: str
    episodes: tuple[str, ...]
    first_seen_at: float
    until: float


@dataclass(frozen=True, slots=True)
class Skip:
    item: FeedItem
    reason: str


Decision = Grab | Hold | Skip


def plan(rules: CompiledRules, items: Iterable[FeedItem], history: History, now: float) -> list[Decision]:
    """The decision for each of ``items`` (in order of consideration), then a ``Grab`` for
    each held episode whose wait has ended. Items already grabbed elsewhere (the seen-
    database's dedup) should be left out by the caller."""
    grabbed = dict(history.grabbed)
    first_seen: dict[tuple[str, str], float] = {}
    for held in history.held:
        for key in held.episodes:
            first_seen[(held.series, key)] = min(first_seen.get((held.series, key), now), held.first_seen_at)
    held_items = list(history.held)
    decisions: list[Decision] = []

    def release_of(item: FeedItem) -> Release:
        return parse_release(item.title)

    ordered = sorted(items, key=lambda item: _rank(release_of(item)), reverse=True) if rules.series_names else items
    for item in ordered:
        decision = _decide(rules, item, release_of(item), grabbed, first_seen, now)
        if isinstance(decision, Grab) and decision.series is not None:
            for key in decision.episodes:
                grabbed[(decision.series, key)] = GrabbedEpisode(item.info_hash, decision.is_proper, now)
        elif isinstance(decision, Hold):
            for key in decision.episodes:
                first_seen.setdefault((decision.series, key), decision.first_seen_at)
            held_items.append(HeldItem(item, decision.series, decision.episodes, decision.first_seen_at))
        decisions.append(decision)
    decisions.extend(_holds_due(rules, held_items, grabbed, now))
    return decisions


def _rank(release: Release) -> tuple[Quality, bool]:
    return Quality.of(release), release.is_proper or release.is_repack


def episode_keys(release: Release) -> tuple[tuple[str, ...], bool]:
    """(keys, is_pack) for a release name's episodes; no keys for a film."""
    if release.air_date is not None and not release.episodes:
        return (f"D{release.air_date.isoformat()}",), False
    if release.seasons and release.episodes:
        season = release.seasons[0]
        return tuple(f"S{season:02d}E{episode:02d}" for episode in release.episodes), False
    if release.seasons:
        return tuple(f"S{season:02d}" for season in release.seasons), True
    if release.episodes:
        return tuple(f"A{episode:04d}" for episode in release.episodes), False
    return (), False


def _season_of(key: str) -> str | None:
    return key[:3] if key.startswith("S") and len(key) > 3 else None


def series_of(rules: CompiledRules, release: Release) -> str | None:
    """Which of the subscription's series (as the user wrote it) the release is of, if any."""
    title = normalise_series_name(release.title)
    candidates = [title]
    if release.year is not None:
        candidates.append(f"{title} {release.year}")
    if release.country is not None:
        candidates.append(f"{title} {release.country.casefold()}")
    return next((rules.series_names[name] for name in candidates if name in rules.series_names), None)


def _passes_plain_rules(rules: CompiledRules, item: FeedItem) -> str | None:
    """None when the item passes match, exclude and size; else why not."""
    if rules.match is not None and rules.match.search(item.title) is None:
        return "does not match --match"
    if rules.exclude is not None and rules.exclude.search(item.title) is not None:
        return "matches --exclude"
    if item.size_bytes is not None and not size_allowed(rules, item.size_bytes):
        return "size outside --min-size/--max-size"
    return None


def size_allowed(rules: CompiledRules, size_bytes: int) -> bool:
    """Whether content of ``size_bytes`` is within the subscription's bounds (also checked
    on the .torrent itself, for feeds that do not say the size)."""
    subscription = rules.subscription
    if subscription.min_size is not None and size_bytes < subscription.min_size:
        return False
    return subscription.max_size is None or size_bytes <= subscription.max_size


def _decide(
    rules: CompiledRules,
    item: FeedItem,
    release: Release,
    grabbed: Mapping[tuple[str, str], GrabbedEpisode],
    first_seen: Mapping[tuple[str, str], float],
    now: float,
) -> Decision:
    refusal = _passes_plain_rules(rules, item)
    if refusal is not None:
        return Skip(item, refusal)
    if not rules.series_names:
        return Grab(item, "matches the rules")
    series = series_of(rules, release)
    if series is None:
        return Skip(item, "not one of the series")
    keys, is_pack = episode_keys(release)
    if not keys:
        return Skip(item, "names no episode")
    if is_pack and not rules.subscription.packs:
        return Skip(item, "a season pack (--packs takes them)")
    is_proper = release.is_proper or release.is_repack
    quality = Quality.of(release)

    def covered(key: str) -> GrabbedEpisode | None:
        season = _season_of(key)
        return grabbed.get((series, key)) or (grabbed.get((series, season)) if season is not None else None)

    earlier = [covered(key) for key in keys]
    if all(record is not None for record in earlier):
        records = [record for record in earlier if record is not None]
        window = rules.subscription.proper_window_s
        if (
            is_proper
            and not any(record.is_proper for record in records)
            and all(now - record.grabbed_at <= window for record in records)
            and (rules.quality is None or rules.quality.accepts(quality))
        ):
            replaced = tuple(sorted({record.info_hash for record in records if record.info_hash}))
            return Grab(item, "a proper or repack of a download", series, keys, True, replaced)
        return Skip(item, "episode already downloaded")
    if rules.quality is None or rules.quality.accepts(quality):
        return Grab(item, "a new episode", series, keys, is_proper)
    wait_s = rules.subscription.wait_s
    if wait_s is None:
        return Skip(item, f"{quality.describe()} is not {rules.quality.format()}")
    seen_at = min((first_seen.get((series, key), now) for key in keys), default=now)
    return Hold(item, series, keys, seen_at, seen_at + wait_s)


def _holds_due(
    rules: CompiledRules, held: Sequence[HeldItem], grabbed: Mapping[tuple[str, str], GrabbedEpisode], now: float
) -> list[Grab]:
    """The best held release of each episode whose wait has ended and that nothing grabbed."""
    wait_s = rules.subscription.wait_s
    if wait_s is None:
        return []
    best: dict[tuple[str, tuple[str, ...]], HeldItem] = {}
    for candidate in held:
        if any((candidate.series, key) in grabbed for key in candidate.episodes):
            continue
        if now < candidate.first_seen_at + wait_s:
            continue
        group = (candidate.series, candidate.episodes)
        current = best.get(group)
        if current is None or _rank(parse_release(candidate.item.title)) > _rank(parse_release(current.item.title)):
            best[group] = candidate
    grabs = []
    taken: set[tuple[str, str]] = set()
    for (series, keys), candidate in sorted(best.items(), key=lambda pair: pair[0]):
        if any((series, key) in taken for key in keys):
            continue
        taken.update((series, key) for key in keys)
        release = parse_release(candidate.item.title)
        grabs.append(
            Grab(
                candidate.item,
                "the best release when the wait ended",
                series,
                keys,
                release.is_proper or release.is_repack,
            )
        )
    return grabs


def without_items(history: History, items: Iterable[FeedItem]) -> History:
    """``history`` without the held items among ``items`` (they come again from the feed)."""
    guids = {item.guid for item in items}
    return replace(history, held=[held for held in history.held if held.item.guid not in guids])
