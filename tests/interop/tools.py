"""Run the real BitTorrent tools the interop tests compare bitswarm with.

The tools come from Debian packages: python3-libtorrent 2.0 (driven through `lt_driver.py`
under `/usr/bin/python3`, the only Python that can import it), mktorrent 1.1 and
transmission-cli 3.00 (`transmission-create`, `transmission-show`). A missing tool fails
the test with `pytest.fail`; it never skips it. A tool that runs and fails raises
`ToolFailed`, which carries its command line, exit status and stderr.

`lt(command, ...)` returns the driver's JSON object:

- `version`: {"libtorrent_version": str, "python": str}
- `info TORRENT`: {"info_hash_v1": 40 hex | None, "info_hash_v2": 64 hex | None,
  "name": str, "num_pieces": int, "piece_length": int, "total_size": int (pad files
  included), "content_size": int (pad files excluded), "files": [{"path": "name/sub/file",
  "size": int, "pad": bool}], "trackers": [[url, ...] per tier, each tier sorted],
  "web_seeds": [url], "private": bool}
- `create PATH OUT --format v1|v2|hybrid [--piece-length BYTES] [--tracker URL]...`:
  {"info_hash_v1", "info_hash_v2", "num_pieces", "piece_length"}; each tracker is a tier.
- `check TORRENT SAVE_PATH [--timeout S]`: {"pieces": [bool per piece], "num_pieces": int}

`transmission_show` parses human-readable output. The hash, name, piece count, file
names, privacy and trackers are exact. Sizes are printed rounded to three or four
significant digits, so file and total sizes come back as `ApproxSize` ranges (test them
with `in`); the piece length is recovered exactly (see `_piece_length`).
"""

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypedDict

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
LT_DRIVER = Path(__file__).with_name("lt_driver.py")
# The driver bounds its own waits (60 s by default); this is the outer safety net.
TOOL_TIMEOUT_S = 120.0

# Where each tool comes from, for the message when it is missing.
DEBIAN_PACKAGES = {
    SYSTEM_PYTHON: "python3 with python3-libtorrent",
    "mktorrent": "mktorrent",
    "transmission-create": "transmission-cli",
    "transmission-show": "transmission-cli",
    "aria2c": "aria2",
    "transmission-daemon": "transmission-daemon",
    "opentracker": "opentracker",
    "ip": "iproute2",
    "nft": "nftables",
}

# Pieces are multiples of a 16 KiB block in practice (BEP 3; BEP 52 requires a power of two).
BLOCK_BYTES = 16 * 1024

StrPath = str | os.PathLike[str]


class ToolFailed(Exception):
    """A tool exited non-zero, timed out, or printed output we could not understand."""

    def __init__(self, argv: Sequence[str], reason: str, stderr: str = "") -> None:
        self.argv = list(argv)
        self.reason = reason
        self.stderr = stderr
        detail = f"\nstderr:\n{stderr.rstrip()}" if stderr.strip() else ""
        super().__init__(f"{' '.join(self.argv)}: {reason}{detail}")


def require(tool: str) -> str:
    """Return the absolute path of the executable `tool`.

    Fails the calling test (never skips it) when the tool is not installed.
    """
    found = shutil.which(tool)
    if found is None:
        package = DEBIAN_PACKAGES.get(tool, "?")
        pytest.fail(
            f"{tool} is not installed (Debian package: {package}); interop tests need it",
            pytrace=False,
        )
    return os.path.abspath(found)


def _run(argv: Sequence[str], *, timeout_s: float = TOOL_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run argv without a shell and return the finished process.

    Raises ToolFailed when it times out or exits non-zero.
    """
    # A fixed locale keeps number formats (transmission-show's decimal point) predictable.
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="surrogateescape",
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        raise ToolFailed(argv, f"timed out after {timeout_s} s", stderr) from exc
    if done.returncode != 0:
        raise ToolFailed(argv, f"exit status {done.returncode}", done.stderr or done.stdout)
    return done


@functools.cache
def _libtorrent_version() -> str:
    """Return the version of libtorrent under /usr/bin/python3, or fail the test."""
    python = require(SYSTEM_PYTHON)
    try:
        done = _run([python, str(LT_DRIVER), "version"], timeout_s=30.0)
    except ToolFailed as exc:
        pytest.fail(f"{python} cannot run libtorrent (install python3-libtorrent): {exc}", pytrace=False)
    version: str = json.loads(done.stdout)["libtorrent_version"]
    return version


def lt(command: str, *args: StrPath) -> dict[str, Any]:
    """Run `lt_driver.py command args...` under /usr/bin/python3 and return its JSON object.

    Fails the test when /usr/bin/python3 cannot import libtorrent; raises ToolFailed,
    with the driver's error line, when the command fails.
    """
    argv = lt_argv(command, *args)
    done = _run(argv)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise ToolFailed(argv, f"output is not JSON: {done.stdout[:200]!r}", done.stderr) from exc
    if not isinstance(result, dict):
        raise ToolFailed(argv, f"output is not a JSON object: {done.stdout[:200]!r}", done.stderr)
    return result


def lt_argv(command: str, *args: StrPath) -> list[str]:
    """The command line of `lt_driver.py command args...` under /usr/bin/python3.

    Fails the test when /usr/bin/python3 cannot import libtorrent.
    """
    _libtorrent_version()
    return [SYSTEM_PYTHON, str(LT_DRIVER), command, *(os.fspath(arg) for arg in args)]


def lt_process(
    command: str, *args: StrPath, wrap: Callable[[list[str]], list[str]] | None = None
) -> subprocess.Popen[str]:
    """Start `lt_driver.py command args...` under /usr/bin/python3 with pipes, for commands
    that talk in lines (`download --hold`, `seed`) or that run beside others; stderr is
    kept in a pipe too. ``wrap`` rewrites the command line (to run it in a namespace).

    Fails the test when /usr/bin/python3 cannot import libtorrent. The caller must end
    the process (see `download --hold` and `seed` in lt_driver.py) or wait for it.
    """
    argv = lt_argv(command, *args)
    return subprocess.Popen(
        wrap(argv) if wrap is not None else argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="surrogateescape",
    )


def mktorrent_create(
    path: StrPath,
    out: StrPath,
    *,
    piece_length_exp: int | None = None,
    trackers: Sequence[str] = (),
    private: bool = False,
) -> None:
    """Make a v1 torrent of `path` with mktorrent; each tracker is its own tier.

    mktorrent refuses to overwrite `out`. The creation date is left out (-d), so the
    output is reproducible. Raises ToolFailed when mktorrent fails.
    """
    argv = [require("mktorrent"), "-d", "-o", os.fspath(out)]
    if piece_length_exp is not None:
        argv += ["-l", str(piece_length_exp)]
    for url in trackers:
        argv += ["-a", url]  # one -a per tier; commas inside one -a would share a tier
    if private:
        argv.append("-p")
    _run([*argv, os.fspath(path)])


def transmission_create(
    path: StrPath,
    out: StrPath,
    *,
    piece_size_kib: int | None = None,
    trackers: Sequence[str] = (),
    private: bool = False,
) -> None:
    """Make a v1 torrent of `path` with transmission-create; each tracker is its own tier.

    transmission-create 3.00 leaves out zero-byte files and files whose names start with
    a dot, and overwrites `out`. Raises ValueError for a piece size that is not a power of
    two (the tool would warn and quietly use its default); raises ToolFailed when it fails.
    """
    argv = [require("transmission-create"), "-o", os.fspath(out)]
    if piece_size_kib is not None:
        if piece_size_kib <= 0 or piece_size_kib & (piece_size_kib - 1):
            raise ValueError(f"transmission-create needs a power of two piece size, not {piece_size_kib} KiB")
        argv += ["-s", str(piece_size_kib)]
    for url in trackers:
        argv += ["-t", url]
    if private:
        argv.append("-p")
    done = _run([*argv, os.fspath(path)])
    if "Failed to set piece size" in done.stderr:
        raise ToolFailed(argv, "piece size was not accepted", done.stderr)


@dataclass(frozen=True, slots=True)
class ApproxSize:
    """A byte count known only as a range, from a human-readable size like "1.23 MB"."""

    text: str
    low: int  # inclusive
    high: int  # inclusive

    def __contains__(self, size: object) -> bool:
        return isinstance(size, int) and self.low <= size <= self.high

    @property
    def exact(self) -> int | None:
        """The size when the range holds one value, else None."""
        return self.low if self.low == self.high else None


class ShowInfo(TypedDict):
    name: str
    info_hash: str  # v1, 40 lowercase hex digits
    num_pieces: int
    piece_length: int  # bytes, exact
    total_size: ApproxSize
    files: list[tuple[str, ApproxSize]]  # in the torrent's order; "name/sub/file" if multi-file
    private: bool
    trackers: list[list[str]]  # one list per tier, each tier sorted
    web_seeds: list[str]


_UNIT_BYTES = {
    "B": 1,
    "bytes": 1,
    "kB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
_SIZE = re.compile(r"(?P<number>\d+(?:\.(?P<decimals>\d+))?) (?P<unit>[A-Za-z]+)")
_FILE_LINE = re.compile(r"  (?P<path>.+) \((?P<size>[^()]+)\)")
_SECTIONS = ("GENERAL", "TRACKERS", "WEBSEEDS", "FILES")


def parse_size(text: str) -> ApproxSize:
    """Return the range of byte counts transmission could have printed as `text`.

    transmission-show 3.00 rounds to the printed decimals (999999 bytes is "1000.0 kB");
    the range allows one unit in the last digit either way, so it also holds if a build
    truncates instead. Raises ValueError for text that is not a size.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None or match["unit"] not in _UNIT_BYTES:
        raise ValueError(f"not a size: {text!r}")
    unit = _UNIT_BYTES[match["unit"]]
    value = Fraction(match["number"])
    last_digit = Fraction(1, 10 ** len(match["decimals"] or ""))
    low = max(0, -(-(value - last_digit) * unit // 1))  # ceiling
    high = (value + last_digit) * unit // 1
    return ApproxSize(text.strip(), int(low), int(high))


def _piece_length(text: str) -> int:
    """Return the exact piece length behind a printed one like "32.00 KiB".

    Powers of two are at least twice apart, so the printed range holds at most one: that
    is the answer for every torrent mktorrent, transmission-create and libtorrent make.
    Otherwise the range must hold exactly one multiple of 16 KiB. Raises ValueError if not.
    """
    approx = parse_size(text)
    powers = [1 << bits for bits in range(approx.high.bit_length()) if approx.low <= 1 << bits]
    if len(powers) == 1:
        return powers[0]
    first_block = max(1, -(-approx.low // BLOCK_BYTES))  # ceiling
    last_block = approx.high // BLOCK_BYTES
    if first_block != last_block:
        raise ValueError(f"cannot tell the exact piece length from {text!r}")
    return first_block * BLOCK_BYTES


def _sections(output: str) -> dict[str, list[str]]:
    """Split transmission-show's output into its sections' non-blank lines."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in output.splitlines():
        if line in _SECTIONS:
            current = line
            sections[current] = []
        elif line.strip():
            sections[current].append(line)
    return sections


def _general(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition(": ")
        # First one wins: a multi-line comment comes after Name and Hash and cannot
        # replace them (it could still imitate the later fields; we make our own torrents).
        if sep and key not in fields:
            fields[key] = value
    return fields


def _tiers(lines: list[str]) -> list[list[str]]:
    tiers: list[list[str]] = []
    for line in lines:
        text = line.strip()
        if re.fullmatch(r"Tier #\d+", text):
            tiers.append([])
        elif tiers:
            tiers[-1].append(text)
        else:
            raise ValueError(f"tracker outside a tier: {text!r}")
    return [sorted(tier) for tier in tiers]


def _parse_show(output: str) -> ShowInfo:
    sections = _sections(output)
    general = _general(sections.get("GENERAL", []))
    info_hash = general["Hash"].lower()
    if not re.fullmatch(r"[0-9a-f]{40}", info_hash):
        raise ValueError(f"not a v1 info-hash: {info_hash!r}")
    num_pieces = int(general["Piece Count"])
    piece_length = _piece_length(general["Piece Size"])
    total = parse_size(general["Total Size"])
    if num_pieces > 0:
        # Only the last piece may be short: (n - 1) * length < total <= n * length.
        low = max(total.low, (num_pieces - 1) * piece_length + 1)
        high = min(total.high, num_pieces * piece_length)
        if low > high:
            raise ValueError(f"total size {total.text} does not fit {num_pieces} pieces of {piece_length}")
        total = ApproxSize(total.text, low, high)
    files: list[tuple[str, ApproxSize]] = []
    for line in sections.get("FILES", []):
        match = _FILE_LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"not a file line: {line!r}")
        files.append((match["path"], parse_size(match["size"])))
    return ShowInfo(
        name=general["Name"],
        info_hash=info_hash,
        num_pieces=num_pieces,
        piece_length=piece_length,
        total_size=total,
        files=files,
        private=general["Privacy"] == "Private torrent",
        trackers=_tiers(sections.get("TRACKERS", [])),
        web_seeds=[line.strip() for line in sections.get("WEBSEEDS", [])],
    )


def transmission_show(torrent: StrPath) -> ShowInfo:
    """Describe `torrent` as transmission-show 3.00 reads it (files in the torrent's order).

    transmission-show 3.00 rejects v2-only and hybrid torrents (any info dict with a
    "file tree") with 'Error parsing .torrent file' and exit status 1, which raises
    ToolFailed. Raises ToolFailed too when its output cannot be parsed.
    """
    argv = [require("transmission-show"), "--unsorted", os.fspath(torrent)]
    done = _run(argv)
    try:
        return _parse_show(done.stdout)
    except (KeyError, ValueError) as exc:
        raise ToolFailed(argv, f"cannot parse the output ({exc!r}):\n{done.stdout}", done.stderr) from exc
