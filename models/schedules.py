"""Schedule math: intervals and cron expressions in a time zone. Pure: no I/O, no clock.

Every instant in and out is a timezone-aware UTC datetime. A producer's schedule decides its
next slot strictly after a given instant; `None` means it never runs again. Every kind, manual
included, implements the `Schedule` protocol, so callers never ask which kind they hold.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadCronError, CroniterBadDateError, CroniterError

from models.errors import ScheduleError
from models.vocabulary import ScheduleKind

MAX_INTERVAL = timedelta(days=365)

_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
_INTERVAL = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.ASCII)


def parse_interval(text: str) -> timedelta:
    """Parse `30s`, `5m`, `1h30m`, `1d`, `1w2d3h4m5s` (units in this order, each once)."""
    if not isinstance(text, str) or not text:
        raise ScheduleError("interval is empty: use a duration like '30s', '5m' or '1h30m'")
    if text.isascii() and text.isdigit():
        raise ScheduleError(f"interval {text!r} has no unit: write e.g. '{text}s' or '{text}m'")
    if text.startswith("-"):
        raise ScheduleError(f"interval {text!r} is negative: it must be a positive duration")
    match = _INTERVAL.fullmatch(text)
    if match is None:
        raise ScheduleError(
            f"interval {text!r} is not understood: use numbers with units w, d, h, m, s "
            "in that order, e.g. '1h30m'"
        )
    total = 0
    for unit, amount in zip(_UNITS, match.groups(), strict=True):
        if amount is not None:
            total += int(amount) * int(_UNITS[unit].total_seconds())
    if total == 0:
        raise ScheduleError(f"interval {text!r} is zero: it must be at least 1s")
    if total > MAX_INTERVAL.total_seconds():
        raise ScheduleError(f"interval {text!r} is longer than the maximum of 365d")
    return timedelta(seconds=total)


def format_interval(every: timedelta) -> str:
    """The canonical text of an interval: the inverse of `parse_interval`."""
    remaining = int(every.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        count, remaining = divmod(remaining, int(size.total_seconds()))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {instant}")


class Schedule(Protocol):
    """What every kind of schedule offers; `(kind, value, timezone)` is how it is stored."""

    kind: ClassVar[ScheduleKind]

    @property
    def value(self) -> str: ...

    @property
    def timezone(self) -> str: ...

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The next slot strictly after `after`, or None if there is none."""

    def describe(self, *, exhausted: bool = False) -> str:
        """In words, for people; `exhausted` when no slot is left to run."""


def _described(text: str, exhausted: bool) -> str:
    return f"{text}, exhausted (never runs again)" if exhausted else text


@dataclass(frozen=True)
class ManualSchedule:
    """No schedule of its own: the producer runs only when triggered, so it is never due."""

    kind: ClassVar[ScheduleKind] = ScheduleKind.MANUAL

    @property
    def value(self) -> str:
        return ""

    @property
    def timezone(self) -> str:
        return "UTC"

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        return None

    def describe(self, *, exhausted: bool = False) -> str:
        return "manual only"  # a manual producer has no slots to run out of


@dataclass(frozen=True)
class IntervalSchedule:
    """Every `every`, on a grid anchored at the producer's first slot."""

    every: timedelta
    kind: ClassVar[ScheduleKind] = ScheduleKind.INTERVAL

    @property
    def value(self) -> str:
        return format_interval(self.every)

    @property
    def timezone(self) -> str:
        return "UTC"

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime:
        """The first grid point `anchor + k*every` strictly after `after` (k >= 0).

        Without an anchor a fresh grid starts at `after`. Missed slots coalesce: however far
        back the anchor is, one slot comes out, the next one after `after`.
        """
        _require_aware(after, "after")
        after = after.astimezone(UTC)
        if anchor is None:
            return after + self.every
        _require_aware(anchor, "anchor")
        anchor = anchor.astimezone(UTC)
        if anchor > after:
            return anchor
        steps = (after - anchor) // self.every + 1
        return anchor + steps * self.every

    def describe(self, *, exhausted: bool = False) -> str:
        return _described(f"every {self.value}", exhausted)


_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS_5 = ("minute", "hour", "day-of-month", "month", "day-of-week")
_FIELDS_6 = ("second", *_FIELDS_5)
# Longest stretch a DST change can move wall time; candidates are searched around it.
_DST_MARGIN = timedelta(hours=3)
# A cron whose next match lies further away than this never fires (e.g. 30 February).
_HORIZON_YEARS = 30


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression evaluated on the wall clock of `timezone`.

    5 fields, or 6 with **seconds first** (as in Quartz and Spring): `*/10 * * * * *` fires
    every ten seconds. Across DST changes it follows cronie and Vixie cron: a job with a fixed
    minute and hour runs once on the day clocks go back, and once right after the change when
    its time falls in the hour skipped going forward; a job whose minute or hour field is a
    wildcard keeps to real elapsed time.
    """

    expression: str
    timezone: str
    kind: ClassVar[ScheduleKind] = ScheduleKind.CRON

    @property
    def value(self) -> str:
        return self.expression

    @property
    def _fields(self) -> list[str]:
        return _ALIASES.get(self.expression, self.expression).split()

    @property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def _wildcard(self) -> bool:
        """Vixie cron's MIN_STAR | HR_STAR: such jobs run by real elapsed time across DST."""
        fields = self._fields
        minute, hour = (fields[1], fields[2]) if len(fields) == 6 else (fields[0], fields[1])
        return minute.startswith("*") or hour.startswith("*")

    def describe(self, *, exhausted: bool = False) -> str:
        return _described(f"cron '{self.expression}' ({self.timezone})", exhausted)

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The first firing strictly after `after`, or None if it never fires again."""
        _require_aware(after, "after")
        after = after.astimezone(UTC)
        zone = self._zone
        wall_start = after.astimezone(zone).replace(tzinfo=None)
        if not _steady(after, zone):
            wall_start -= _DST_MARGIN  # a repeated hour may hold matches still to come
        walls = croniter(
            " ".join(self._fields),
            wall_start,
            second_at_beginning=len(self._fields) == 6,
            max_years_between_matches=_HORIZON_YEARS,
        )
        best: datetime | None = None
        while True:
            try:
                wall: datetime = walls.get_next(datetime)
            except CroniterBadDateError:
                return best
            if best is not None and (
                _steady(best, zone)
                or wall - _DST_MARGIN > best.astimezone(zone).replace(tzinfo=None)
            ):
                return best
            for instant in self._instants(wall, zone):
                if instant > after and (best is None or instant < best):
                    best = instant

    def _instants(self, wall: datetime, zone: ZoneInfo) -> list[datetime]:
        """The real instants at which a wall-clock match fires (0, 1 or 2 of them)."""
        first = wall.replace(tzinfo=zone, fold=0)
        second = wall.replace(tzinfo=zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        if _exists(first):  # repeated hour when clocks go back
            earlier, later = sorted((first.astimezone(UTC), second.astimezone(UTC)))
            return [earlier, later] if self._wildcard else [earlier]
        if self._wildcard:  # skipped hour when clocks go forward
            return []
        return [_transition(first.astimezone(UTC), second.astimezone(UTC), zone)]


def _steady(instant: datetime, zone: ZoneInfo) -> bool:
    """No DST change near `instant`: wall-clock order is then real-time order around it."""
    before = (instant - _DST_MARGIN).astimezone(zone).utcoffset()
    return before == (instant + _DST_MARGIN).astimezone(zone).utcoffset()


def _exists(local: datetime) -> bool:
    """Whether a wall time occurs on the clock (False inside a spring-forward gap)."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None) == local.replace(tzinfo=None)


def _transition(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The instant clocks jumped forward, between `low` and `high` (a second's precision)."""
    low, high = min(low, high), max(low, high)
    offset_before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def parse_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Validate a cron expression and time zone; errors name the field that is wrong."""
    zone_name = check_timezone(timezone)
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("cron expression is empty")
    expression = " ".join(expression.split())
    if expression.startswith("@") and expression not in _ALIASES:
        raise ScheduleError(
            f"invalid cron {expression!r}: unknown alias (use one of {', '.join(_ALIASES)})"
        )
    fields = _ALIASES.get(expression, expression).split()
    if len(fields) not in (5, 6):
        raise ScheduleError(
            f"invalid cron {expression!r}: it has {len(fields)} fields; use 5 (minute hour "
            "day-of-month month day-of-week) or 6 with seconds first"
        )
    names = _FIELDS_6 if len(fields) == 6 else _FIELDS_5
    for position, (name, field) in enumerate(zip(names, fields, strict=True)):
        probe = ["*"] * len(fields)
        probe[position] = field
        try:
            croniter(" ".join(probe), second_at_beginning=len(fields) == 6)
        except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
            raise ScheduleError(
                f"invalid cron {expression!r}: {name} field {field!r} is not valid ({exc})"
            ) from None
    try:
        croniter(" ".join(fields), second_at_beginning=len(fields) == 6)
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(f"invalid cron {expression!r}: {exc}") from None
    return CronSchedule(expression=expression, timezone=zone_name)


def check_timezone(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ScheduleError("timezone is empty: use an IANA name such as 'Europe/Berlin'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None
    return name


def compile_schedule(
    *, interval: str | None, cron: str | None, timezone: str | None
) -> Schedule | None:
    """The schedule a producer definition asks for; None for a manual-only producer."""
    if interval is not None and cron is not None:
        raise ScheduleError("set either interval or cron, not both")
    if interval is not None:
        if timezone is not None:
            raise ScheduleError("timezone applies to cron schedules only, not to an interval")
        return IntervalSchedule(parse_interval(interval))
    if cron is not None:
        return parse_cron(cron, timezone if timezone is not None else "UTC")
    if timezone is not None:
        raise ScheduleError("timezone is set but there is no cron schedule to apply it to")
    return None


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
    raise ScheduleError(f"unknown schedule type {kind!r} (expected 'interval', 'cron' or 'manual')")
