"""The alt-speed schedule wired into a running daemon's scheduler (the times themselves are
unit-tested in tests/unit/test_daemon_altspeed.py)."""

from __future__ import annotations

from datetime import datetime

from interop.trackers import wait_for

from .conftest import Daemon


def _alt(daemon: Daemon) -> bool:
    return bool(daemon.call("session-get", fields=["alt-speed-enabled"])["alt-speed-enabled"])


def test_the_schedule_turns_the_alternative_limits_on_inside_its_window_and_off_outside(daemon: Daemon) -> None:
    now = datetime.now()  # the daemon's schedule is in local time too
    minute = now.hour * 60 + now.minute
    assert not _alt(daemon)
    daemon.call("session-set", **{
        "alt-speed-time-begin": (minute - 10) % 1440, "alt-speed-time-end": (minute + 10) % 1440,
        "alt-speed-time-day": 127, "alt-speed-time-enabled": True,
    })  # fmt: skip
    wait_for(lambda: _alt(daemon), "alternative limits on by the schedule", timeout_s=10)
    daemon.call(
        "session-set", **{"alt-speed-time-begin": (minute + 60) % 1440, "alt-speed-time-end": (minute + 120) % 1440}
    )
    wait_for(lambda: not _alt(daemon), "alternative limits off by the schedule", timeout_s=10)
    answer = daemon.rpc("session-set", **{"alt-speed-time-day": 128})
    assert answer["result"] == "alt-speed-time-day: a bit mask of days, at most 127"
