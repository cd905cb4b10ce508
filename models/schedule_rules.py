"""A producer's schedule built from rules: several entries merged, exclusions, jitter.

Pure: no I/O, no clock. The entries' fire times merge into one strictly increasing stream (two
entries firing at the same instant make one slot); a slot any exclusion covers is dropped; then
jitter moves each slot. Stored as its canonical JSON (`schedule_type` `rules`), from which
`from_value` rebuilds the same schedule with the same checks a definition gets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from models.errors import ScheduleError, ScheduleFieldError
from models.exclusions import Exclusion, parse_exclusions
from models.jitter import MAX_JITTER, jittered_next, last_base_at_or_before
from models.schedule_entries import Entry, parse_entry, zone_field
from models.schedules import HORIZON_YEARS, format_interval, parse_interval
from models.vocabulary import ScheduleKind

MAX_ENTRIES = 20
# Slots one search may find excluded before it gives up: each excluded block (a day of a date
# range, an hour of `* 0-5 * * *`) costs one, so this covers years of holidays and nights.
# Like a cron's, the search also stops HORIZON_YEARS past its start: no slot there, exhausted.
MAX_EXCLUDED_STEPS = 1000
MAX_VALUE_CHARS = 64 * 1024
MAX_CALENDARS = 20  # per workflow, and named per producer
# The slot ledger's excluded ranges between two slots a commit passes: at most this many
# ranges, found among at most MAX_WALKED_SLOTS slots, so a long backlog costs bounded time.
MAX_EXCLUDED_RANGES = 20
MAX_WALKED_SLOTS = 100


@dataclass(frozen=True)
class FireTime:
    """A line of `validate --next`: a slot (`at`), or a wall time DST removed (`at` None)."""

    at: datetime | None
    notes: tuple[str, ...] = ()
    wall: datetime | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class RulesSchedule:
    entries: tuple[Entry, ...]
    exclusions: tuple[Exclusion, ...] = ()
    jitter: timedelta | None = None
    seed: str = ""
    kind: ClassVar[ScheduleKind] = ScheduleKind.RULES

    @property
    def value(self) -> str:
        data: dict[str, Any] = {
            "entries": [entry.to_json() for entry in self.entries],
            "exclude": [exclusion.to_json() for exclusion in self.exclusions],
        }
        if self.jitter is not None:
            data["jitter"] = format_interval(self.jitter)
            data["seed"] = self.seed
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @property
    def timezone(self) -> str:
        """The first wall-clock entry's zone (fire times are shown in it too), else UTC."""
        return next((e.timezone for e in self.entries if e.timezone != "UTC"), "UTC")

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The next slot strictly after `after`; every entry keeps its own grid, so the
        anchor (the previous slot) is not needed."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"after must be a timezone-aware datetime, got naive {after}")
        after = after.astimezone(UTC)
        if self.jitter is None:
            return self.base_next(after)
        return jittered_next(self.base_next, self.seed, self.jitter, after)

    def base_next(self, after: datetime) -> datetime | None:
        """The next slot before jitter: the earliest entry's, unless an exclusion covers it."""
        cursor = after
        horizon = after + timedelta(days=366 * HORIZON_YEARS)
        for _ in range(MAX_EXCLUDED_STEPS):
            found = [t for entry in self.entries if (t := entry.next_after(cursor)) is not None]
            if not found or min(found) > horizon:
                return None
            candidate = min(found)
            ends = [e for x in self.exclusions if (e := x.block_end(candidate)) is not None]
            if not ends:
                return candidate
            cursor = max(ends) - timedelta(microseconds=1)
        return None

    def excluded_ranges(self, after: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
        """The runs of fire times an exclusion dropped, strictly after `after` and before
        `until`: (first dropped, the next slot or `until`), oldest first. One range per gap
        between two slots, however many blocks (nights, holidays) it spans; bounded by
        MAX_EXCLUDED_RANGES and MAX_WALKED_SLOTS."""
        if not self.exclusions:
            return []
        ranges: list[tuple[datetime, datetime]] = []
        cursor = after.astimezone(UTC)
        for _ in range(MAX_WALKED_SLOTS):
            found = [t for entry in self.entries if (t := entry.next_after(cursor)) is not None]
            if not found or min(found) >= until:
                break
            slot = self.base_next(cursor)
            if slot is None or slot > min(found):
                ranges.append((min(found), until if slot is None else min(slot, until)))
                if len(ranges) == MAX_EXCLUDED_RANGES:
                    break
            if slot is None or slot >= until:
                break
            cursor = slot
        return ranges

    def describe(self, *, exhausted: bool = False) -> str:
        parts = [entry.describe() for entry in self.entries]
        text = " + ".join(parts)
        if self.exclusions:
            text += f", except {len(self.exclusions)} exclusion(s)"
        if self.jitter is not None:
            text += f", jitter {format_interval(self.jitter)}"
        return f"{text}, exhausted (never runs again)" if exhausted else text

    def fire_times(self, start: datetime, count: int) -> list[FireTime]:
        """The next `count` slots after `start`, each with the DST rule that placed it, and
        the wall times DST removed among them."""
        slots: list[tuple[datetime, datetime]] = []  # (before jitter, slot)
        cursor = start
        while len(slots) < count and (slot := self.next_after(cursor)) is not None:
            base = None
            if self.jitter is not None:
                base = last_base_at_or_before(self.base_next, slot, self.jitter)
            slots.append((base or slot, slot))
            cursor = slot
        end = slots[-1][0] if slots else start
        notes: dict[datetime, list[str]] = {}
        removed: list[FireTime] = []
        for entry in self.entries:
            zone = entry.timezone
            for placement in entry.dst_placements(start, end):
                assert placement.note is not None
                for instant in placement.instants:
                    notes.setdefault(instant, []).append(placement.note)
                approximately = placement.wall.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
                if not placement.instants and start < approximately <= end:
                    removed.append(FireTime(None, (placement.note,), placement.wall, zone))
        lines = [FireTime(slot, tuple(notes.get(base, ()))) for base, slot in slots]
        return sorted(lines + removed, key=_line_order)


def _line_order(line: FireTime) -> datetime:
    if line.at is not None:
        return line.at
    assert line.wall is not None
    return line.wall.replace(tzinfo=ZoneInfo(line.timezone)).astimezone(UTC)


def compile_rules(
    fields: dict[str, Any], calendars: dict[str, Any], seed: str
) -> RulesSchedule | None:
    """A producer's rules from its definition fields (and the workflow's `calendars:`).

    None when the producer only uses the single `interval:`/`cron:` forms, which keep their
    own schedules (an interval anchored on the deploy)."""
    entries = _entries(fields)
    exclusions = _exclusions(fields, calendars)
    jitter = _jitter(fields.get("jitter"))
    schedule = RulesSchedule(tuple(entries), tuple(exclusions), jitter, seed if jitter else "")
    if len(schedule.value) > MAX_VALUE_CHARS:
        raise ScheduleFieldError(
            "",
            f"its schedule is larger than {MAX_VALUE_CHARS} characters as JSON (entries, "
            "exclusions and the calendars it names): split it, or share fewer calendars",
        )
    return schedule


RULE_FIELDS = ("schedules", "rrule", "dtstart", "at", "dst", "exclude", "calendars", "jitter")
_SINGLE = ("interval", "cron", "rrule", "at")


def _entries(fields: dict[str, Any]) -> list[Entry]:
    single = [key for key in _SINGLE if key in fields]
    timezone = fields.get("timezone")
    if "schedules" in fields:
        if single:
            raise ScheduleFieldError(
                single[0], "set either `schedules:` or a single schedule field, not both"
            )
        items = fields["schedules"]
        if not isinstance(items, list) or not items:
            raise ScheduleFieldError("schedules", "must be a list of at least one entry")
        if len(items) > MAX_ENTRIES:
            message = f"has {len(items)} entries; the limit is {MAX_ENTRIES}"
            raise ScheduleFieldError("schedules", message)
        return [parse_entry(item, f"schedules.{i}", timezone) for i, item in enumerate(items)]
    if len(single) > 1:
        raise ScheduleFieldError("", f"set one of {', '.join(single)}, not several")
    if not single:
        raise ScheduleFieldError("", "exclusions and jitter need a schedule to apply to")
    own = {key: fields[key] for key in (*_SINGLE, "dtstart", "dst", "timezone") if key in fields}
    if (
        single[0] == "interval"
        and own.pop("timezone", None) is not None
        and "exclude" not in fields
    ):
        raise ScheduleFieldError(
            "timezone", "applies to cron, rrule, at and exclusions, not to an interval"
        )
    return [parse_entry(own, "", None)]


def _exclusions(fields: dict[str, Any], calendars: dict[str, Any]) -> list[Exclusion]:
    found: list[Exclusion] = []
    if "exclude" in fields:
        zone = zone_field(fields.get("timezone"), "timezone")
        found.extend(parse_exclusions(fields["exclude"], zone, "exclude"))
    names = fields.get("calendars", [])
    if not isinstance(names, list):
        raise ScheduleFieldError("calendars", "must be a list of calendar names")
    if len(names) > MAX_CALENDARS:
        message = f"names {len(names)} calendars; the limit is {MAX_CALENDARS}"
        raise ScheduleFieldError("calendars", message)
    for index, name in enumerate(names):
        if not isinstance(name, str) or name not in calendars:
            known = ", ".join(sorted(calendars)) or "none"
            raise ScheduleFieldError(
                f"calendars.{index}",
                f"no calendar named {str(name)[:63]!r} in the workflow's calendars (defined: "
                f"{known})",
            )
        found.extend(calendar_exclusions(calendars[name], f"calendars.{name}"))
    return found


def calendar_exclusions(calendar: object, path: str) -> list[Exclusion]:
    """A workflow-level calendar: `{timezone: ..., exclude: [...]}`."""
    if not isinstance(calendar, dict) or "exclude" not in calendar:
        raise ScheduleFieldError(path, "must be a mapping with `exclude:` (and `timezone:`)")
    unknown = sorted(set(calendar) - {"exclude", "timezone"})
    if unknown:
        raise ScheduleFieldError(f"{path}.{unknown[0]}", "is not a known field")
    zone = zone_field(calendar.get("timezone"), f"{path}.timezone")
    return parse_exclusions(calendar["exclude"], zone, f"{path}.exclude")


def _jitter(value: object) -> timedelta | None:
    if value is None:
        return None
    try:
        jitter = parse_interval(value if isinstance(value, str) else "")
    except ScheduleError as exc:
        raise ScheduleFieldError("jitter", str(exc).replace("interval", "jitter", 1)) from None
    if jitter > MAX_JITTER:
        raise ScheduleFieldError("jitter", f"{value!r} is longer than the maximum of 1d")
    return jitter


def from_value(value: str) -> RulesSchedule:
    """Rebuild a stored schedule, checked as a definition is."""
    if len(value) > MAX_VALUE_CHARS:
        raise ScheduleError(f"a rules schedule is longer than {MAX_VALUE_CHARS} characters")
    try:
        data = json.loads(value)
    except ValueError:
        raise ScheduleError("a stored rules schedule is not JSON") from None
    if not isinstance(data, dict):
        raise ScheduleError("a stored rules schedule is not a JSON object")
    try:
        entries = [parse_entry(item, f"entries.{i}") for i, item in enumerate(data["entries"])]
        exclusions = [
            exclusion
            for i, item in enumerate(data["exclude"])
            for exclusion in parse_exclusions(
                [_exclusion_item(item)], str(item["timezone"]), f"exclude.{i}"
            )
        ]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ScheduleError(f"a stored rules schedule lacks {exc}") from None
    jitter = _jitter(data.get("jitter"))
    return RulesSchedule(tuple(entries), tuple(exclusions), jitter, str(data.get("seed", "")))


def _exclusion_item(item: dict[str, Any]) -> object:
    return {key: value for key, value in item.items() if key != "timezone"}
