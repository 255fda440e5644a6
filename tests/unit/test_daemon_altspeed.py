"""The alternative-speed schedule at virtual local times."""

from __future__ import annotations

import pytest

from bitswarm.daemon.altspeed import (
    ALL_DAYS,
    FRIDAY,
    MONDAY,
    SATURDAY,
    SUNDAY,
    WEEKDAYS,
    WEEKEND,
    AltSpeedSchedule,
    weekday_sunday_0,
)

SUN, MON, TUE, WED, THU, FRI, SAT = range(7)


def at(hour: int, minute: int = 0) -> int:
    return hour * 60 + minute


def test_a_daytime_window_on_weekdays() -> None:
    schedule = AltSpeedSchedule(begin_min=at(9), end_min=at(17), days=WEEKDAYS)
    assert schedule.is_active(MON, at(9))
    assert schedule.is_active(FRI, at(16, 59))
    assert not schedule.is_active(MON, at(8, 59))
    assert not schedule.is_active(MON, at(17))  # the end minute is outside
    assert not schedule.is_active(SAT, at(12))
    assert not schedule.is_active(SUN, at(12))


def test_a_window_crossing_midnight_runs_into_the_next_day_only_from_a_chosen_day() -> None:
    schedule = AltSpeedSchedule(begin_min=at(22), end_min=at(6), days=FRIDAY)
    assert schedule.is_active(FRI, at(23, 30))
    assert schedule.is_active(SAT, at(5, 59))  # Saturday morning belongs to Friday night
    assert not schedule.is_active(SAT, at(6))
    assert not schedule.is_active(SAT, at(23))  # Saturday is not chosen itself
    assert not schedule.is_active(THU, at(23))
    assert not schedule.is_active(FRI, at(5))  # Thursday night was not chosen


def test_saturday_night_runs_into_sunday_around_the_week_end() -> None:
    schedule = AltSpeedSchedule(begin_min=at(20), end_min=at(2), days=SATURDAY)
    assert schedule.is_active(SUN, at(1, 59))
    assert not schedule.is_active(SUN, at(2))


@pytest.mark.parametrize("weekday", range(7))
def test_begin_equal_to_end_is_the_whole_day_and_no_day_is_never(weekday: int) -> None:
    assert AltSpeedSchedule(at(0), at(0), ALL_DAYS).is_active(weekday, at(13, 7))
    assert not AltSpeedSchedule(at(0), at(23, 59), 0).is_active(weekday, at(13, 7))


def test_day_bits_and_pythons_weekday_numbers() -> None:
    assert (SUNDAY, MONDAY, SATURDAY, WEEKEND, ALL_DAYS) == (1, 2, 64, 65, 127)
    assert weekday_sunday_0(0) == MON  # Python's Monday
    assert weekday_sunday_0(6) == SUN
