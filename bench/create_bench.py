"""Benchmark: making a torrent of one big file with bitswarm, mktorrent, transmission-create
and libtorrent (issue 2).

    python3 bench/create_bench.py [--size-mib 1024] [--repeat 3] [--piece-kib 512] [--dir DIR]

One file of seeded pseudo-random bytes is written under DIR (a fresh folder under /tmp by
default, never inside the repository) and read once so that every tool reads it from the
page cache. Each tool then runs as a subprocess --repeat times, interleaved (A B C A B C
...), so that noise from a shared machine spreads over all of them; we keep the best and
the median wall time and the median CPU time (user + system, from RUSAGE_CHILDREN). Every
tool gets the same piece length (512 KiB unless --piece-kib says otherwise); bitswarm also
runs once more with its automatic piece length. Times include each program's start-up,
which for bitswarm (a Python program) is shown on its own line; bitswarm runs with its
bytecode cached (under the work folder), as an installed copy would.

The torrents are checked against each other (same v1 piece hashes, same v2 piece layers)
and `bitswarm verify` checks mktorrent's torrent against the data. hashlib's speed on one
core gives the limit: hashing the file on every core with no other cost. Another
process busy on this shared machine skews everything, so the CPU time that other
processes used while we measured is printed too.

This is a measurement, not a test: nothing is asserted about times, and the data, the
torrents and the bytecode cache all stay in the work folder, which is removed afterwards.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bitswarm.metainfo import Torrent, read_torrent_file

REPO = Path(__file__).resolve().parent.parent
SEED = 2  # issue 2
WRITE_BLOCK_BYTES = 4 << 20
HASHLIB_BUFFER_BYTES = 64 << 20
HASHLIB_UPDATE_BYTES = 1 << 20
V2_BLOCK_BYTES = 16 << 10
# One run of one tool on 1 GiB takes about a second; this only stops a hung tool.
RUN_TIMEOUT_S = 300.0
LIBTORRENT_PYTHON = "/usr/bin/python3"  # Debian's python3-libtorrent lives only there
# The bitswarm script beside this Python, not a pyenv shim in front of it: a shim is a bash
# script that adds ~50 ms of its own to every run.
BITSWARM = shutil.which("bitswarm", path=str(Path(sys.executable).parent)) or "bitswarm"

# Runs in Debian's Python: libtorrent 2.0's create_torrent + set_piece_hashes, as a
# client's "create torrent" dialog does. argv: source, output, v1|hybrid, piece length.
LIBTORRENT_CREATE = """
import os, sys
import libtorrent as lt
source, output, kind, piece_length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
storage = lt.file_storage()
lt.add_files(storage, source)
flags = lt.create_torrent.v1_only if kind == "v1" else 0
creator = lt.create_torrent(storage, piece_length, flags=flags)
lt.set_piece_hashes(creator, os.path.dirname(source))
with open(output, "wb") as stream:
    stream.write(lt.bencode(creator.generate()))
"""


@dataclass
class Tool:
    """One way of making the torrent, run as a subprocess."""

    label: str
    kind: str  # "v1" or "hybrid": rows are compared with other tools of the same kind
    is_bitswarm: bool
    output: Path
    command: list[str]
    env: dict[str, str] | None = None
    walls_s: list[float] = field(default_factory=list)
    cpus_s: list[float] = field(default_factory=list)

    @property
    def best_s(self) -> float:
        return min(self.walls_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.walls_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the test file [1024]")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool [3]")
    parser.add_argument("--piece-kib", type=int, default=512, help="piece length for every tool [512]")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to work [/tmp]")
    args = parser.parse_args()
    piece_kib: int = args.piece_kib
    if args.size_mib < 1 or args.repeat < 1 or piece_kib < 16 or piece_kib & (piece_kib - 1):
        parser.error("--size-mib and --repeat must be positive, --piece-kib a power of two from 16")
    base = args.dir.resolve()
    if base == REPO or REPO in base.parents:
        parser.error(f"--dir {args.dir} is inside the repository; pick a folder outside it")

    # No __pycache__ from our runs beside the sources; bitswarm's timed runs get a cache of
    # their own (bytecode_cache_env).
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    print(f"# bitswarm create benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"# {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {machine_note()}")
    print(f"# {tool_versions()}")
    print(f"# bitswarm is {BITSWARM}; load average at start {load_average()}")

    work = Path(tempfile.mkdtemp(prefix="bitswarm-create-bench-", dir=base))
    try:
        return run(work, args.size_mib, args.repeat, piece_kib)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, size_mib: int, repeat: int, piece_kib: int) -> int:
    data = work / "data.bin"
    started = time.perf_counter()
    write_data(data, size_mib << 20)
    print(f"# wrote {size_mib} MiB of seeded pseudo-random bytes to {data} in {time.perf_counter() - started:.1f} s")
    warm_page_cache(data)

    bitswarm_env = bytecode_cache_env(work)
    tools = make_tools(work, data, piece_kib, bitswarm_env)
    startups = [
        Tool("bitswarm start-up (--version)", "-", True, work / "none", [BITSWARM, "--version"], bitswarm_env),
    ]
    print(f"# {len(tools)} tools x {repeat} runs, interleaved, piece length {piece_kib} KiB")
    # hashlib is measured in every round too, so that the limit sees the same noise. From a
    # 64 MiB buffer (the measure) one core streams from memory; from one 1 MiB
    # buffer it hashes from its cache, as the tools do with each piece they have just read.
    in_memory = memoryview(hashlib.shake_128(str(SEED).encode()).digest(HASHLIB_BUFFER_BYTES))
    in_cache = in_memory[:HASHLIB_UPDATE_BYTES]
    speeds = {
        "sha1, 1 MiB updates, 64 MiB buffer": (hashlib.sha1, in_memory, HASHLIB_UPDATE_BYTES, False),
        "sha256, 1 MiB updates, 64 MiB buffer": (hashlib.sha256, in_memory, HASHLIB_UPDATE_BYTES, False),
        "sha1, 1 MiB updates, 1 MiB buffer": (hashlib.sha1, in_cache, HASHLIB_UPDATE_BYTES, False),
        "sha256, 1 MiB updates, 1 MiB buffer": (hashlib.sha256, in_cache, HASHLIB_UPDATE_BYTES, False),
        "sha256, one per 16 KiB block, 1 MiB buffer": (hashlib.sha256, in_cache, V2_BLOCK_BYTES, True),
    }
    mib_s = dict.fromkeys(speeds, 0.0)
    busy_before_s, ours_before_s, started = system_busy_s(), own_cpu_s(), time.perf_counter()
    for _ in range(repeat):
        for tool in [*tools, *startups]:
            measure(tool)
        for label, (new, buffer, update_bytes, fresh) in speeds.items():
            mib_s[label] = max(mib_s[label], hashlib_speed(new, buffer, update_bytes, fresh_per_update=fresh))
    elapsed_s = time.perf_counter() - started
    others_s = system_busy_s() - busy_before_s - (own_cpu_s() - ours_before_s)

    print()
    print_table(tools, startups, size_mib)
    print()
    cores = os.cpu_count() or 1
    sha1_mib_s = mib_s["sha1, 1 MiB updates, 1 MiB buffer"]
    leaves_mib_s = mib_s["sha256, one per 16 KiB block, 1 MiB buffer"]
    v1_limit_s = size_mib / sha1_mib_s / cores
    hybrid_limit_s = (size_mib / sha1_mib_s + size_mib / leaves_mib_s) / cores
    print(f"hashlib on one core, 64 MiB hashed, best of {3 * repeat}:")
    for label, speed in mib_s.items():
        print(f"  {label:44s} {speed:6.0f} MiB/s")
    print(f"limit on {cores} cores from the 1 MiB-buffer speeds (hashing only: no reads, no start-up):")
    print(f"  v1     {v1_limit_s:6.3f} s  ({size_mib / v1_limit_s:5.0f} MiB/s)")
    print(f"  hybrid {hybrid_limit_s:6.3f} s  ({size_mib / hybrid_limit_s:5.0f} MiB/s)")
    print(
        f"noise: other processes used {max(others_s, 0.0):.1f} CPU s during the {elapsed_s:.1f} s of measuring"
        f" ({max(others_s, 0.0) / elapsed_s:.0%} of one core; near 0% means a quiet machine)"
    )
    print(
        "transmission-create checks for the end of hashing every 500 ms, so its wall time is rounded up"
        " to a multiple of 0.5 s; its CPU time shows its hashing work."
    )
    print()
    return check_outputs(tools, data)


def write_data(path: Path, size: int) -> None:
    # SHAKE-128 keyed by the seed and the block's offset: deterministic, random-looking
    # and faster than random.randbytes.
    with path.open("wb") as stream:
        for at in range(0, size, WRITE_BLOCK_BYTES):
            stream.write(hashlib.shake_128(f"{SEED}:{at}".encode()).digest(min(WRITE_BLOCK_BYTES, size - at)))


def warm_page_cache(path: Path) -> None:
    with path.open("rb", buffering=0) as stream:
        while stream.read(WRITE_BLOCK_BYTES):
            pass


def bytecode_cache_env(work: Path) -> dict[str, str]:
    """An environment in which bitswarm's modules load from cached bytecode, as when installed.

    An editable install has no .pyc files until a run writes them, and PYTHONDONTWRITEBYTECODE
    (set on this machine, and by main) stops runs writing them, so every run would compile
    bitswarm's sources again (~10 ms).
    The cache goes under ``work`` rather than into the repository; one run fills it.
    """
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([BITSWARM, "--version"], env=env, capture_output=True, timeout=60, check=True)
    return env


def make_tools(work: Path, data: Path, piece_kib: int, bitswarm_env: dict[str, str]) -> list[Tool]:
    piece = f"{piece_kib}K"
    tools = [
        Tool(
            "mktorrent",
            "v1",
            False,
            work / "mktorrent.torrent",
            [
                "mktorrent",
                "-d",
                "-l",
                str(piece_kib.bit_length() + 9),
                "-o",
                str(work / "mktorrent.torrent"),
                str(data),
            ],
        ),
        Tool(
            "transmission-create",
            "v1",
            False,
            work / "transmission.torrent",
            ["transmission-create", "-s", str(piece_kib), "-o", str(work / "transmission.torrent"), str(data)],
        ),
    ]
    if not has_libtorrent():
        print(f"# libtorrent cannot be imported by {LIBTORRENT_PYTHON}: no libtorrent rows")
    else:
        for kind in ("v1", "hybrid"):
            output = work / f"libtorrent-{kind}.torrent"
            tools.append(
                Tool(
                    f"libtorrent {kind}",
                    kind,
                    False,
                    output,
                    [LIBTORRENT_PYTHON, "-c", LIBTORRENT_CREATE, str(data), str(output), kind, str(piece_kib << 10)],
                )
            )
    for label, kind, options in (
        ("bitswarm v1", "v1", ["--v1", "--piece-length", piece]),
        ("bitswarm hybrid", "hybrid", ["--hybrid", "--piece-length", piece]),
        ("bitswarm v1, auto piece", "v1", ["--v1"]),
        ("bitswarm hybrid, auto piece", "hybrid", ["--hybrid"]),
    ):
        output = work / f"{label.replace(' ', '-').replace(',', '')}.torrent"
        tools.append(
            Tool(
                label,
                kind,
                True,
                output,
                [BITSWARM, "create", *options, "--no-date", "-o", str(output), str(data)],
                bitswarm_env,
            )
        )
    return tools


def has_libtorrent() -> bool:
    try:
        found = subprocess.run(
            [LIBTORRENT_PYTHON, "-c", "import libtorrent"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return found.returncode == 0


def measure(tool: Tool) -> None:
    tool.output.unlink(missing_ok=True)  # mktorrent and bitswarm refuse to overwrite
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        done = subprocess.run(tool.command, env=tool.env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SystemExit(f"create_bench: {tool.label}: {error}") from None
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise SystemExit(f"create_bench: {tool.label} failed ({done.returncode}): {message}")
    tool.walls_s.append(wall_s)
    tool.cpus_s.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def hashlib_speed(
    new: Callable[[], hashlib._Hash], buffer: memoryview, update_bytes: int, *, fresh_per_update: bool = False
) -> float:
    """MiB/s of one thread hashing 64 MiB taken from ``buffer`` (cyclically) in ``update_bytes`` steps.

    With ``fresh_per_update`` every step is a hash of its own, as BEP 52 leaves are. Best of three.
    """
    starts = [at % len(buffer) for at in range(0, HASHLIB_BUFFER_BYTES, update_bytes)]
    best_s = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        if fresh_per_update:
            for at in starts:
                new(buffer[at : at + update_bytes]).digest()  # type: ignore[call-arg]
        else:
            digest = new()
            for at in starts:
                digest.update(buffer[at : at + update_bytes])
            digest.digest()
        best_s = min(best_s, time.perf_counter() - started)
    return (HASHLIB_BUFFER_BYTES >> 20) / best_s


def print_table(tools: list[Tool], startups: list[Tool], size_mib: int) -> None:
    best_other = {
        kind: min((tool.best_s for tool in tools if tool.kind == kind and not tool.is_bitswarm), default=None)
        for kind in ("v1", "hybrid")
    }
    print("| tool | piece | best s | median s | MiB/s (best) | CPU s (median) | best / best other of its kind |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tool in tools:
        other = best_other[tool.kind]
        ratio = f"{tool.best_s / other:.2f}" if other else "-"
        piece_kib = read_torrent_file(tool.output.read_bytes()).piece_length >> 10
        print(
            f"| {tool.label} | {piece_kib} KiB | {tool.best_s:.3f} | {tool.median_s:.3f} | "
            f"{size_mib / tool.best_s:.0f} | {statistics.median(tool.cpus_s):.2f} | {ratio} |"
        )
    for startup in startups:
        print(
            f"| {startup.label} | - | {startup.best_s:.3f} | {startup.median_s:.3f} | - | "
            f"{statistics.median(startup.cpus_s):.2f} | - |"
        )


def check_outputs(tools: list[Tool], data: Path) -> int:
    """Compare what the tools made; 0 when every torrent agrees, 1 otherwise."""
    torrents = {tool.label: read_torrent_file(tool.output.read_bytes()) for tool in tools}
    reference = torrents["mktorrent"]
    problems = []
    compared = []
    for label, torrent in torrents.items():
        if torrent.piece_length != reference.piece_length:
            print(f"check: {label}: piece length {torrent.piece_length >> 10} KiB (automatic), not compared")
            continue
        compared.append(label)
        if torrent.piece_hashes_v1 != reference.piece_hashes_v1:
            problems.append(f"{label}: v1 piece hashes differ from mktorrent's")
    hybrids = {label: torrent for label, torrent in torrents.items() if torrent.has_v2}
    if "libtorrent hybrid" in hybrids:
        expected = v2_hashes(hybrids["libtorrent hybrid"])
        for label, torrent in hybrids.items():
            if torrent.piece_length == reference.piece_length and v2_hashes(torrent) != expected:
                problems.append(f"{label}: v2 pieces root or piece layer differs from libtorrent's")
    ours = torrents["bitswarm v1"]
    same = "the same" if ours.info_hash_v1 == reference.info_hash_v1 else "different"
    print(f"check: bitswarm v1 and mktorrent -d: {same} info-hash ({(ours.info_hash_v1 or b'').hex()})")
    verified = subprocess.run(
        [BITSWARM, "verify", str(tools[0].output), str(data.parent)],
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if verified.returncode != 0:
        problems.append(f"bitswarm verify of mktorrent's torrent: {verified.stdout.decode().strip()}")
    for problem in problems:
        print(f"check FAILED: {problem}")
    if not problems:
        print(f"check: same piece hashes from {', '.join(compared)}; bitswarm verify accepts mktorrent's torrent")
    return 1 if problems else 0


def v2_hashes(torrent: Torrent) -> list[tuple[bytes | None, bytes | None]]:
    return [(entry.pieces_root, torrent.piece_layers.get(entry.pieces_root or b"")) for entry in torrent.data_files()]


def system_busy_s() -> float:
    """CPU time every process on the machine has used since boot (Linux), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    idle_and_iowait = int(fields[3]) + int(fields[4])
    guest = sum(int(value) for value in fields[8:])  # already counted in user and nice
    return (sum(int(value) for value in fields) - idle_and_iowait - guest) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU time of this benchmark and of the tools it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def machine_note() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores, {model}, {system}, Python {platform.python_version()}"


def tool_versions() -> str:
    def first_line(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return f"{command[0]}: not found"
        text = (done.stdout + done.stderr).decode(errors="replace").strip()
        return text.splitlines()[0] if text else f"{command[0]}: ?"

    return "; ".join(
        (
            first_line([BITSWARM, "--version"]),
            first_line(["mktorrent", "-h"]).split(" (c)")[0],
            first_line(["transmission-create", "--version"]),
            "libtorrent " + first_line([LIBTORRENT_PYTHON, "-c", "import libtorrent; print(libtorrent.__version__)"]),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
