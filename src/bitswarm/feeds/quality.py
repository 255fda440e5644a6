"""A release's quality (resolution and source) and the quality a subscription asks for.

A spec is one or two words: a resolution (``480p``, ``576p``, ``720p``, ``1080p``,
``2160p``) and a source family (``cam``, ``sd``, ``hdtv``, ``webrip``, ``web``,
``bluray``), each exact or, with a ``+``, that or better: ``1080p``, ``720p+``,
``1080p web``, ``720p+ web+``. The source names are families of PTT's quality names
(``WEB-DL`` and ``WEB`` are ``web``; ``BDRip``, ``BluRay REMUX`` are ``bluray``). Sans-IO.
"""

from __future__ import annotations

from dataclasses import dataclass

from bitswarm.errors import UsageError
from bitswarm.releases import Release

RESOLUTIONS = ("480p", "576p", "720p", "1080p", "2160p")
SOURCES = ("cam", "sd", "hdtv", "webrip", "web", "bluray")
# PTT's quality names, by family. Anything else counts as unknown, ranked below all.
_SOURCE_FAMILIES = {
    "cam": "cam", "telesync": "cam", "telecine": "cam", "scr": "cam", "r5": "cam",
    "dvd": "sd", "dvdrip": "sd", "pdtv": "sd", "tvrip": "sd", "satrip": "sd", "vhs": "sd", "vhsrip": "sd",
    "ppvrip": "sd", "hdrip": "sd",
    "hdtv": "hdtv", "hdtvrip": "hdtv",
    "webrip": "webrip", "web-dlrip": "webrip", "webmux": "webrip",
    "web": "web", "web-dl": "web",
    "bluray": "bluray", "bluray remux": "bluray", "remux": "bluray", "bdrip": "bluray", "brrip": "bluray",
    "uhdrip": "bluray",
}  # fmt: skip
# PTT writes "4k" for some 2160p names and "1440p" between the common ones.
_RESOLUTION_ALIASES = {"4k": "2160p", "1440p": "1080p", "360p": "480p", "240p": "480p"}


@dataclass(frozen=True, slots=True, order=True)
class Quality:
    """Ranks (0 = unknown), compared resolution first: the better release is the larger."""

    resolution_rank: int = 0
    source_rank: int = 0

    @classmethod
    def of(cls, release: Release) -> Quality:
        resolution = (release.resolution or "").lower()
        resolution = _RESOLUTION_ALIASES.get(resolution, resolution)
        family = _SOURCE_FAMILIES.get((release.source or "").lower())
        return cls(
            RESOLUTIONS.index(resolution) + 1 if resolution in RESOLUTIONS else 0,
            SOURCES.index(family) + 1 if family is not None else 0,
        )

    def describe(self) -> str:
        words = [RESOLUTIONS[self.resolution_rank - 1] if self.resolution_rank else "unknown resolution"]
        words.append(SOURCES[self.source_rank - 1] if self.source_rank else "unknown source")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class QualitySpec:
    """What a subscription asks for; a rank of 0 asks nothing of that part."""

    resolution_rank: int = 0
    resolution_or_better: bool = False
    source_rank: int = 0
    source_or_better: bool = False

    @classmethod
    def parse(cls, text: str) -> QualitySpec:
        """'720p+ web' -> QualitySpec; raises ``UsageError`` naming the word it does not know."""
        spec = cls()
        words = text.lower().replace(",", " ").split()
        if not words:
            raise UsageError("quality: empty (try 1080p, 720p+ or '1080p web')")
        for word in words:
            name, plus = word.removesuffix("+"), word.endswith("+")
            if name in RESOLUTIONS and not spec.resolution_rank:
                spec = QualitySpec(RESOLUTIONS.index(name) + 1, plus, spec.source_rank, spec.source_or_better)
            elif name in SOURCES and not spec.source_rank:
                spec = QualitySpec(spec.resolution_rank, spec.resolution_or_better, SOURCES.index(name) + 1, plus)
            else:
                known = ", ".join(RESOLUTIONS + SOURCES)
                raise UsageError(f"quality: {word!r} is not one resolution and one source of {known}")
        return spec

    def accepts(self, quality: Quality) -> bool:
        return _meets(quality.resolution_rank, self.resolution_rank, self.resolution_or_better) and _meets(
            quality.source_rank, self.source_rank, self.source_or_better
        )

    def format(self) -> str:
        words = []
        if self.resolution_rank:
            words.append(RESOLUTIONS[self.resolution_rank - 1] + ("+" if self.resolution_or_better else ""))
        if self.source_rank:
            words.append(SOURCES[self.source_rank - 1] + ("+" if self.source_or_better else ""))
        return " ".join(words)


def _meets(rank: int, wanted: int, or_better: bool) -> bool:
    if not wanted:
        return True
    return rank >= wanted if or_better else rank == wanted
