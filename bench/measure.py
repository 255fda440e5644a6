"""What every benchmark here measures besides its subject: other processes' CPU (the
machine is shared and noisy), process trees, the machine and the commit it ran at."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


def machine_busy_s() -> float:
    """CPU seconds all cores spent not idle, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    tree = _children_of()
    found, pending = [], [pid]
    for _step in range(100_000):  # bounded: a process tree, not a graph
        if not pending:
            break
        current = pending.pop()
        found.append(current)
        pending += tree.get(current, [])
    return found


def own_cpu_s() -> float:
    """CPU seconds of this process and every process below it, live or reaped."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    for pid in descendants(os.getpid())[1:]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (fields 14-17 of proc(5); 12-15 after the name).
        total += sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    return total


@dataclass
class Noise:
    """Other processes' CPU seconds over a phase: the machine's busy time minus ours."""

    started_s: float = field(default_factory=time.monotonic)
    busy_s: float = field(default_factory=machine_busy_s)
    own_s: float = field(default_factory=own_cpu_s)

    def measure(self) -> tuple[float, float]:
        """(other processes' CPU s, wall s) since this was made."""
        other = (machine_busy_s() - self.busy_s) - (own_cpu_s() - self.own_s)
        return max(0.0, other), time.monotonic() - self.started_s


def machine() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_gib = int(Path("/proc/meminfo").read_text().split()[1]) / (1 << 20)
    system = f"Linux {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({model}), {memory_gib:.0f} GiB, {system}"


def commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=ROOT)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, cwd=ROOT).stdout.strip()  # fmt: skip
        return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"
