"""A producer's schedule rebuilt from its row: `schedule_type`, `schedule_value`, `timezone`."""

from __future__ import annotations

import functools

from models.errors import ScheduleError
from models.schedule_rules import from_value
from models.schedules import IntervalSchedule, ManualSchedule, Schedule, parse_cron, parse_interval
from models.vocabulary import ScheduleKind


@functools.lru_cache(maxsize=4096)
def schedule_from_row(kind: str, value: str, timezone: str) -> Schedule:
    """Rebuild a stored schedule (`producer_schedules.schedule_type/value/timezone`).

    Cached: every run commit needs its schedule, and validating a cron builds several croniter
    objects (about 1 ms); schedules are immutable values.
    """
    if kind == ScheduleKind.INTERVAL:
        return IntervalSchedule(parse_interval(value))
    if kind == ScheduleKind.CRON:
        return parse_cron(value, timezone)
    if kind == ScheduleKind.MANUAL:
        return ManualSchedule()
    if kind == ScheduleKind.RULES:
        return from_value(value)
    raise ScheduleError(
        f"unknown schedule type {kind!r} (expected 'interval', 'cron', 'rules' or 'manual')"
    )
