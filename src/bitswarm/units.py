"""Sizes and durations as people type them on command lines, in config files and forms."""

from __future__ import annotations

import re

from bitswarm.errors import UsageError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Up to 15 digits: a petabyte in bytes, and no integer a typo makes enormous.
_SIZE = re.compile(r"(\d{1,15})\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_duration(text: str) -> float:
    """'90', '30m', '6h', '2d' -> seconds; raises ``UsageError``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{text[:40]!r} is not a duration like 90, 30m, 6h or 2d")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_size(text: str) -> int:
    """'262144', '256K', '700M', '1GiB' -> bytes (powers of 1024); raises ``UsageError``."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{text[:40]!r} is not a size like 262144, 256K, 700M or 8G")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
