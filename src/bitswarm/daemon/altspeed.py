"""The alternative-speed schedule (Transmission's ``alt-speed-time-*``), sans-IO.

``alt-speed-time-begin`` and ``-end`` are minutes after local midnight;
``alt-speed-time-day`` is tr_sched_day's bit mask (Sunday 1, Monday 2, ... Saturday 64;
weekdays 62, weekend 65, every day 127). As libtransmission does (``session-alt-speeds.cc``),
each chosen day turns the alternative limits on from ``begin`` to ``end`` of that day; an
``end`` at or before ``begin`` runs past midnight into the next day (so ``begin == end``
is a whole day), whether or not that next day is chosen itself.

The daemon asks once a second and, like Transmission, only acts on a change: at the start
of a window it turns ``alt-speed-enabled`` on, at its end off; in between, the user's own
switch stands.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
SUNDAY, MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY = (1 << day for day in range(7))
WEEKDAYS = MONDAY | TUESDAY | WEDNESDAY | THURSDAY | FRIDAY
WEEKEND = SATURDAY | SUNDAY
ALL_DAYS = WEEKDAYS | WEEKEND


@dataclass(frozen=True, slots=True)
class AltSpeedSchedule:
    begin_min: int
    end_min: int
    days: int

    def is_active(self, weekday_sunday_0: int, minute_of_day: int) -> bool:
        """Whether the alternative limits apply at this local time: ``weekday_sunday_0`` is
        0 for Sunday to 6 for Saturday (C's tm_wday), ``minute_of_day`` 0 to 1439."""
        now = weekday_sunday_0 * MINUTES_PER_DAY + minute_of_day
        end = self.end_min if self.end_min > self.begin_min else self.end_min + MINUTES_PER_DAY
        for day in range(7):
            if not self.days & (1 << day):
                continue
            start = day * MINUTES_PER_DAY + self.begin_min
            # Minutes since this window's start, around the week's end.
            if (now - start) % MINUTES_PER_WEEK < end - self.begin_min:
                return True
        return False


def weekday_sunday_0(python_weekday: int) -> int:
    """datetime's ``weekday()`` (Monday 0) as tm_wday (Sunday 0)."""
    return (python_weekday + 1) % 7
