"""A subscription: a feed's address and the rules that pick its items, as stored and as
compiled for the matching core.

Rules combine: an item is taken only if it passes every rule given (``match`` and not
``exclude`` on its title, the size bounds, and, with ``series``, one of the series and a
new episode in the wanted quality). The stored form is plain JSON (``to_json`` and
``from_json``, which refuses unknown keys and wrong types with one line). Sans-IO.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bitswarm.errors import UsageError
from bitswarm.feeds.quality import QualitySpec

# How long after an episode's download a proper or repack of it still replaces it.
DEFAULT_PROPER_WINDOW_S = 7 * 24 * 3600.0
# A feed is polled no more often than this, whatever its ttl says (trackers ban faster pollers).
DEFAULT_MIN_INTERVAL_S = 15 * 60.0
MIN_INTERVAL_FLOOR_S = 60.0
# User-written regular expressions are trusted (the user's own rules) but kept short.
MAX_PATTERN_CHARS = 1000
MAX_URL_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Subscription:
    """One feed and its rules, as ``subscribe add`` records it. Sizes in bytes, times in
    seconds; ``cookies`` are ``NAME=VALUE`` sent with the feed's and its torrents' requests
    (private trackers); ``labels`` and ``download_dir`` go with every torrent it adds."""

    id: int
    url: str
    match: str | None = None
    exclude: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    series: tuple[str, ...] = ()
    quality: str | None = None
    wait_s: float | None = None
    proper_window_s: float = DEFAULT_PROPER_WINDOW_S
    packs: bool = False
    download_dir: str | None = None
    labels: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()
    min_interval_s: float = DEFAULT_MIN_INTERVAL_S

    def __post_init__(self) -> None:
        compile_rules(self)  # every check in one place: a Subscription that exists is valid

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_json(cls, data: object) -> Subscription:
        """Raises ``UsageError`` naming the key that is unknown or of the wrong type."""
        if not isinstance(data, dict):
            raise UsageError("subscription: not an object")
        known = {item.name: item for item in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise UsageError(f"subscription: unknown key {key!r}")
            values[key] = _checked(key, value)
        if "id" not in values or "url" not in values:
            raise UsageError("subscription: needs 'id' and 'url'")
        return cls(**values)


def describe_rules(subscription: Subscription, size: Callable[[int], str] = str) -> list[str]:
    """The rules in words, one each ("match 'x'", "series A, B", "into /srv/tv"), sizes as
    ``size`` writes them; what ``subscribe list`` and the daemon's page show."""
    s = subscription
    rules = []
    rules += [f"match {s.match!r}"] if s.match else []
    rules += [f"exclude {s.exclude!r}"] if s.exclude else []
    rules += [f"min {size(s.min_size)}"] if s.min_size is not None else []
    rules += [f"max {size(s.max_size)}"] if s.max_size is not None else []
    rules += [f"series {', '.join(s.series)}"] if s.series else []
    rules += [f"quality {s.quality}"] if s.quality else []
    rules += [f"wait {s.wait_s:g} s"] if s.wait_s is not None else []
    rules += ["packs"] if s.packs else []
    rules += [f"into {s.download_dir}"] if s.download_dir else []
    rules += [f"labels {', '.join(s.labels)}"] if s.labels else []
    return rules


_TUPLES = {"series", "labels", "cookies"}
_TEXTS = {"url", "match", "exclude", "quality", "download_dir"}
_NUMBERS = {"wait_s", "proper_window_s", "min_interval_s"}
_INTEGERS = {"id", "min_size", "max_size"}


def _checked(key: str, value: object) -> object:
    if value is None and key not in {"id", "url", "proper_window_s", "min_interval_s", "packs"}:
        return None
    ok = (
        (key in _TUPLES and isinstance(value, list) and all(isinstance(v, str) for v in value))
        or (key in _TEXTS and isinstance(value, str))
        or (key in _NUMBERS and isinstance(value, int | float) and not isinstance(value, bool))
        or (key in _INTEGERS and isinstance(value, int) and not isinstance(value, bool))
        or (key == "packs" and isinstance(value, bool))
    )
    if not ok:
        raise UsageError(f"subscription: {key}: wrong type {type(value).__name__}")
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """A subscription ready for the matching core."""

    subscription: Subscription
    match: re.Pattern[str] | None
    exclude: re.Pattern[str] | None
    quality: QualitySpec | None
    series_names: dict[str, str] = field(default_factory=dict)  # normalised -> as the user wrote it


def normalise_series_name(name: str) -> str:
    """'The.Office.(US)' -> 'the office us': case, punctuation and spacing do not count."""
    return " ".join(re.sub(r"[^\w]+", " ", name.casefold().replace("&", " and ")).split())


def compile_rules(subscription: Subscription) -> CompiledRules:
    """Raises ``UsageError`` for a bad URL, pattern, size, time or quality."""
    if not subscription.url.lower().startswith(("http://", "https://")) or len(subscription.url) > MAX_URL_CHARS:
        raise UsageError(f"{subscription.url[:80]}: not an http:// or https:// feed address")
    patterns: list[re.Pattern[str] | None] = []
    for name, text in (("match", subscription.match), ("exclude", subscription.exclude)):
        if text is None:
            patterns.append(None)
            continue
        if len(text) > MAX_PATTERN_CHARS:
            raise UsageError(f"--{name}: longer than {MAX_PATTERN_CHARS} characters")
        try:
            patterns.append(re.compile(text, re.IGNORECASE))
        except re.error as error:
            raise UsageError(f"--{name}: {error}") from None
    if any(size is not None and size < 0 for size in (subscription.min_size, subscription.max_size)):
        raise UsageError("--min-size/--max-size: sizes are not negative")
    bounds = (subscription.min_size, subscription.max_size)
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise UsageError("--min-size is larger than --max-size")
    if subscription.wait_s is not None and subscription.wait_s < 0:
        raise UsageError("--wait: not negative")
    if subscription.proper_window_s < 0:
        raise UsageError("--proper-window: not negative")
    if subscription.min_interval_s < MIN_INTERVAL_FLOOR_S:
        raise UsageError(f"--interval: at least {MIN_INTERVAL_FLOOR_S:.0f} seconds")
    for cookie in subscription.cookies:
        name, equals, _value = cookie.partition("=")
        if not equals or not name.strip() or any(c in cookie for c in "\r\n;"):
            raise UsageError("--cookie: NAME=VALUE, one cookie each, no ';' or line breaks")
    quality = QualitySpec.parse(subscription.quality) if subscription.quality is not None else None
    if (quality is not None or subscription.wait_s is not None or subscription.packs) and not subscription.series:
        raise UsageError("--quality, --wait and --packs choose among a series' releases: give --series too")
    names = {normalise_series_name(name): name for name in subscription.series}
    if "" in names:
        raise UsageError("--series: a name has no letters or digits")
    return CompiledRules(subscription, patterns[0], patterns[1], quality, names)
