"""Exclusions: dates, date ranges and cron expressions during which a producer never runs.

Pure: no I/O, no clock. Each exclusion reads instants on the wall clock of its own time zone and
answers, for an excluded instant, where its excluded block ends, so a search for the next slot
jumps over a holiday (or a night) in one step instead of walking every slot in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from models.errors import ScheduleError, ScheduleFieldError
from models.schedules import CronSchedule, parse_cron
from models.wall_clock import exists, transition

MAX_EXCLUSIONS = 100
_DAY = timedelta(days=1)


class Exclusion(Protocol):
    def block_end(self, instant: datetime) -> datetime | None:
        """If `instant` is excluded: the first instant after it that this exclusion lets
        through (its block's end); None if `instant` is not excluded."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DateExclusion:
    """Whole days, `first` to `last` inclusive, on the calendar of `timezone`."""

    first: date
    last: date
    timezone: str

    def block_end(self, instant: datetime) -> datetime | None:
        zone = ZoneInfo(self.timezone)
        if not self.first <= instant.astimezone(zone).date() <= self.last:
            return None
        return _wall_instant(datetime.combine(self.last + _DAY, time()), zone)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "timezone": self.timezone,
        }


@dataclass(frozen=True)
class CronExclusion:
    """Every wall time a cron matches (to its finest field: the minute, or the second for a
    six-field cron); `* 0-5 * * *` excludes 00:00 to 06:00."""

    cron: CronSchedule

    def block_end(self, instant: datetime) -> datetime | None:
        zone = ZoneInfo(self.cron.timezone)
        fields = self.cron._fields
        seconds = len(fields) == 6
        wall = instant.astimezone(zone).replace(tzinfo=None, microsecond=0)
        if not seconds:
            wall = wall.replace(second=0)
        matches = croniter(
            " ".join(fields), wall - timedelta(seconds=1), second_at_beginning=seconds
        ).get_next(datetime)
        if matches != wall:
            return None
        block = _block(fields, seconds)
        start = wall - (wall - datetime.combine(wall.date(), time())) % block
        return _wall_instant(start + block, zone)

    def to_json(self) -> dict[str, Any]:
        return {"cron": self.cron.expression, "timezone": self.cron.timezone}


def _block(fields: list[str], seconds: bool) -> timedelta:
    """How long a match lasts for sure: the finest field's unit, widened while the finer
    fields are all `*` (minute `*` and hour `0-5`: the whole hour matches)."""
    finest = fields[: 3 if seconds else 2]
    units = [timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)]
    units = units if seconds else units[1:]
    block = units[0]
    for field, wider in zip(finest, [*units[1:], _DAY], strict=True):
        if field != "*":
            break
        block = wider
    return block


def _wall_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant wall time `wall` starts (the change, if DST skipped it)."""
    first = wall.replace(tzinfo=zone, fold=0)
    if exists(first):
        return first.astimezone(UTC)
    return transition(first, wall.replace(tzinfo=zone, fold=1), zone)


def parse_exclusions(items: object, timezone: str, path: str) -> list[Exclusion]:
    """`exclude:`: dates (`'2026-12-25'`), ranges (`{from: '2026-12-24', to: '2026-12-26'}`)
    and crons (`{cron: '* 0-5 * * 1-5'}`), read in `timezone`."""
    if not isinstance(items, list):
        raise ScheduleFieldError(path, "must be a list of dates, {from, to} ranges or {cron}")
    if len(items) > MAX_EXCLUSIONS:
        raise ScheduleFieldError(path, f"has {len(items)} items; the limit is {MAX_EXCLUSIONS}")
    return [_exclusion(item, timezone, f"{path}.{index}") for index, item in enumerate(items)]


def _exclusion(item: object, timezone: str, path: str) -> Exclusion:
    if isinstance(item, str):
        day = _date(item, path)
        return DateExclusion(day, day, timezone)
    if not isinstance(item, dict):
        raise ScheduleFieldError(path, "must be a date, a {from, to} range or a {cron} mapping")
    if set(item) == {"cron"}:
        try:
            return CronExclusion(parse_cron(item["cron"], timezone))
        except ScheduleError as exc:
            raise ScheduleFieldError(f"{path}.cron", str(exc)) from None
    if set(item) == {"from", "to"}:
        first, last = _date(item["from"], f"{path}.from"), _date(item["to"], f"{path}.to")
        if last < first:
            raise ScheduleFieldError(f"{path}.to", "is before `from`: write the earlier date first")
        return DateExclusion(first, last, timezone)
    raise ScheduleFieldError(path, "must have exactly `cron`, or exactly `from` and `to`")


def _date(value: object, path: str) -> date:
    if not isinstance(value, str):
        raise ScheduleFieldError(path, "must be a date like '2026-12-25' (quoted in YAML)")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ScheduleFieldError(path, f"{value[:40]!r} is not a date like '2026-12-25'") from None
    if not 1970 <= day.year < 3000:
        raise ScheduleFieldError(path, f"{value!r} is out of range (1970 to 2999)")
    return day
