"""Rule schedules (models/schedule_rules.py and the modules it builds on): several entries
merged, RRULE, exclusions and calendars, DST policies, jitter and one-off `at` entries.

Pure: no database, no Redis, no clock.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.definitions import parse_definition
from models.errors import DefinitionError, ScheduleError, ScheduleFieldError
from models.exclusions import CronExclusion, DateExclusion
from models.jitter import offset
from models.schedule_entries import (
    AtEntry,
    CronEntry,
    IntervalEntry,
    RRuleEntry,
    parse_entry,
)
from models.schedule_rules import RulesSchedule, compile_rules, from_value
from models.schedules import CronSchedule, parse_cron
from models.stored_schedules import schedule_from_row
from models.wall_clock import DstPolicy, Repeated, Skipped


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def chain(schedule: Any, start: datetime, count: int) -> list[datetime]:
    """The next `count` slots after `start`, by chaining next_after as the run path does."""
    out: list[datetime] = []
    cursor = start
    while len(out) < count and (slot := schedule.next_after(cursor)) is not None:
        out.append(slot)
        cursor = slot
    return out


def rules(fields: dict[str, Any], calendars: dict[str, Any] | None = None) -> RulesSchedule:
    schedule = compile_rules(fields, calendars or {}, "wf/producer")
    assert schedule is not None
    return schedule


# --- each form, valid -------------------------------------------------------------------------


def test_interval_entries_keep_a_grid_from_their_start() -> None:
    schedule = rules({"schedules": [{"interval": "15m"}]})
    assert chain(schedule, utc(2026, 1, 1, 10, 7), 3) == [
        utc(2026, 1, 1, 10, 15),
        utc(2026, 1, 1, 10, 30),
        utc(2026, 1, 1, 10, 45),
    ]
    started = rules({"schedules": [{"interval": "1h", "start": "2026-01-01T00:20:00Z"}]})
    assert chain(started, utc(2025, 1, 1), 2) == [utc(2026, 1, 1, 0, 20), utc(2026, 1, 1, 1, 20)]


def test_rrule_follows_rfc_5545_in_its_time_zone() -> None:
    schedule = rules(
        {
            "rrule": "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
            "dtstart": "2026-01-05T09:00:00",
            "timezone": "Europe/Berlin",
        }
    )
    assert chain(schedule, utc(2026, 1, 5), 3) == [
        utc(2026, 1, 5, 8),  # Monday 09:00 CET
        utc(2026, 1, 7, 8),
        utc(2026, 1, 12, 8),
    ]
    assert schedule.timezone == "Europe/Berlin"


def test_rrule_count_and_until_exhaust_it() -> None:
    counted = rules({"rrule": "FREQ=DAILY;COUNT=3", "dtstart": "2026-01-01T06:00:00"})
    assert chain(counted, utc(2025, 12, 1), 10) == [
        utc(2026, 1, 1, 6),
        utc(2026, 1, 2, 6),
        utc(2026, 1, 3, 6),
    ]
    assert counted.next_after(utc(2026, 1, 3, 6)) is None
    until = rules({"rrule": "FREQ=DAILY;UNTIL=20260102T060000", "dtstart": "2026-01-01T06:00:00"})
    assert chain(until, utc(2025, 12, 1), 10) == [utc(2026, 1, 1, 6), utc(2026, 1, 2, 6)]
    assert "exhausted" in until.describe(exhausted=True)


def test_an_hourly_rrule_from_long_ago_answers_as_one_from_yesterday() -> None:
    """The fast-forward of an HOURLY rule keeps its set: same answers as without it."""
    old = RRuleEntry("FREQ=HOURLY;INTERVAL=5;BYMINUTE=10", datetime(2016, 1, 1, 3, 10), "UTC")
    new_start = datetime(2026, 6, 1, 0, 0)
    hours = (new_start - old.dtstart) // timedelta(hours=5)
    recent = RRuleEntry(old.text, old.dtstart + hours * timedelta(hours=5), "UTC")
    after = utc(2026, 6, 2, 7, 30)
    assert chain(old, after, 5) == chain(recent, after, 5)
    assert all(
        (t - utc(2016, 1, 1, 3, 10)) % timedelta(hours=5) == timedelta(0)
        for t in chain(old, after, 5)
    )


def test_at_runs_once_then_is_exhausted() -> None:
    schedule = rules({"at": "2026-12-31T23:00:00", "timezone": "Europe/Berlin"})
    assert chain(schedule, utc(2026, 1, 1), 5) == [utc(2026, 12, 31, 22)]
    assert schedule.next_after(utc(2026, 12, 31, 22)) is None
    with_offset = rules({"at": "2026-12-31T23:00:00+01:00"})
    assert with_offset.next_after(utc(2026, 1, 1)) == utc(2026, 12, 31, 22)


def test_the_single_forms_alone_are_not_rules() -> None:
    definition = parse_definition(
        {
            "name": "w",
            "producers": {
                "a": {"run": "demo.noop", "interval": "30s"},
                "b": {"run": "demo.noop", "cron": "0 2 * * *", "timezone": "Europe/Berlin"},
            },
        }
    )
    assert [p.schedule.kind for p in definition.producers.values() if p.schedule] == [
        "interval",
        "cron",
    ]


# --- each form, invalid -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [
        ({"schedules": []}, "schedules", "at least one entry"),
        ({"schedules": [{"interval": "5m"}] * 21}, "schedules", "limit is 20"),
        ({"schedules": [{"interval": "5m", "cron": "* * * * *"}]}, "schedules.0", "exactly one"),
        ({"schedules": [{}]}, "schedules.0", "it sets none"),
        ({"schedules": ["5m"]}, "schedules.0", "must be a mapping"),
        ({"schedules": [{"interval": "5x"}]}, "schedules.0.interval", "not understood"),
        ({"schedules": [{"interval": "5m", "dst": {}}]}, "schedules.0.dst", "does not apply"),
        ({"schedules": [{"cron": "61 * * * *"}]}, "schedules.0.cron", "minute"),
        (
            {"schedules": [{"cron": "0 2 * * *", "timezone": "Mars/Base"}]},
            "schedules.0.timezone",
            "unknown timezone",
        ),
        (
            {"schedules": [{"cron": "*/5 * * * *", "dst": {"skipped": "skip"}}]},
            "schedules.0.dst",
            "fixed minute and hour",
        ),
        ({"cron": "0 2 * * *", "dst": {"repeated": "twice"}}, ".dst.repeated", "first, last, both"),
        ({"cron": "0 2 * * *", "dst": {"skipped": "later"}}, ".dst.skipped", "shift, skip"),
        ({"cron": "0 2 * * *", "dst": {"when": "x"}}, ".dst.when", "not a known field"),
        ({"rrule": "FREQ=DAILY"}, ".dtstart", "is required"),
        ({"rrule": "FREQ=DAILY", "dtstart": "2026-01-01T00:00:00Z"}, ".dtstart", "has an offset"),
        ({"rrule": "FREQ=DAILY", "dtstart": "yesterday"}, ".dtstart", "not a wall time"),
        ({"rrule": "FREQ=SOMETIMES", "dtstart": "2026-01-01T00:00:00"}, ".rrule", "not valid"),
        ({"rrule": "FREQ=MINUTELY", "dtstart": "2026-01-01T00:00:00"}, ".rrule", "HOURLY"),
        ({"rrule": "FREQ=DAILY;COUNT=100001", "dtstart": "2026-01-01T00:00:00"}, ".rrule", "COUNT"),
        (
            {"rrule": "FREQ=DAILY;INTERVAL=99999999", "dtstart": "2026-01-01T00:00:00"},
            ".rrule",
            "INTERVAL",
        ),
        (
            {"rrule": "FREQ=DAILY\nRDATE:20260101", "dtstart": "2026-01-01T00:00:00"},
            ".rrule",
            "one RRULE line",
        ),
        (
            {"rrule": "DTSTART:20260101T000000;FREQ=DAILY", "dtstart": "2026-01-01T00:00:00"},
            ".rrule",
            "dtstart",
        ),
        (
            {"rrule": "FREQ=DAILY;" + "BYHOUR=1;" * 60, "dtstart": "2026-01-01T00:00:00"},
            ".rrule",
            "longer than 500",
        ),
        ({"at": "soon"}, ".at", "ISO 8601"),
        ({"at": "2026-12-31T23:00:00.5Z"}, ".at", "fractions"),
        ({"at": "3026-12-31T23:00:00Z"}, ".at", "out of range"),
        ({"interval": "1h", "cron": "0 * * * *", "jitter": "1m"}, "", "not several"),
        ({"jitter": "1m"}, "", "need a schedule"),
        ({"interval": "1h", "jitter": "2d"}, "jitter", "maximum of 1d"),
        ({"interval": "1h", "jitter": "soon"}, "jitter", "jitter"),
        ({"schedules": [{"interval": "1h"}], "cron": "0 * * * *"}, "cron", "not both"),
        ({"interval": "1h", "exclude": "2026-12-25"}, "exclude", "must be a list"),
        ({"interval": "1h", "exclude": ["2026-12-25"] * 101}, "exclude", "limit is 100"),
        ({"interval": "1h", "exclude": ["Christmas"]}, "exclude.0", "not a date"),
        (
            {"interval": "1h", "exclude": [{"from": "2026-12-26", "to": "2026-12-24"}]},
            "exclude.0.to",
            "before",
        ),
        ({"interval": "1h", "exclude": [{"from": "2026-12-26"}]}, "exclude.0", "exactly"),
        ({"interval": "1h", "exclude": [{"cron": "* 25 * * *"}]}, "exclude.0.cron", "hour"),
        ({"interval": "1h", "calendars": ["nope"]}, "calendars.0", "no calendar named 'nope'"),
        ({"interval": "1h", "calendars": ["a"] * 21}, "calendars", "limit is 20"),
        ({"interval": "1h", "jitter": "1s", "timezone": "UTC"}, "timezone", "not to an interval"),
    ],
)
def test_each_form_refuses_bad_input_naming_the_field(
    fields: dict[str, Any], path: str, fragment: str
) -> None:
    with pytest.raises(ScheduleFieldError) as caught:
        compile_rules(fields, {}, "wf/p")
    assert caught.value.path == path
    assert fragment in str(caught.value)


def test_a_schedule_too_large_to_store_is_refused() -> None:
    days = [(date(2026, 1, 1) + timedelta(days=n)).isoformat() for n in range(100)]
    calendar = {"exclude": [{"from": day, "to": "2026-12-31"} for day in days]}
    calendars = {f"c{n}": calendar for n in range(20)}
    with pytest.raises(ScheduleFieldError, match="larger than 65536 characters"):
        compile_rules({"interval": "1h", "calendars": list(calendars)}, calendars, "wf/p")


def test_definition_problems_name_the_producer_field_and_calendar() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(
            {
                "name": "w",
                "calendars": {"hol": {"exclude": ["not-a-date"]}, "Bad Name": {"exclude": []}},
                "producers": {
                    "p": {
                        "run": "demo.noop",
                        "schedules": [{"cron": "0 2 * * *", "dst": {"repeated": "x"}}],
                    },
                    "q": {"run": "demo.noop", "interval": "1h", "calendars": ["hol"]},
                },
            }
        )
    found = {(problem.path, problem.message.split(":")[0]) for problem in caught.value.problems}
    paths = {path for path, _ in found}
    assert "calendars.hol.exclude.0" in paths
    assert "calendars.Bad Name" in paths
    assert "producers.p.schedules.0.dst.repeated" in paths
    assert not any(path.startswith("producers.q") for path in paths)  # its calendar's problem


# --- merging ----------------------------------------------------------------------------------


def test_coinciding_entries_make_one_slot() -> None:
    schedule = rules(
        {
            "schedules": [
                {"interval": "30m"},
                {"cron": "0 * * * *"},  # every hour: also on the 30m grid
                {"at": "2026-01-01T10:45:00Z"},
                {"at": "2026-01-01T10:30:00Z"},  # coincides with the interval
            ]
        }
    )
    assert chain(schedule, utc(2026, 1, 1, 10), 5) == [
        utc(2026, 1, 1, 10, 30),
        utc(2026, 1, 1, 10, 45),
        utc(2026, 1, 1, 11),
        utc(2026, 1, 1, 11, 30),
        utc(2026, 1, 1, 12),
    ]


def test_weekdays_every_15_minutes_and_hourly_at_weekends() -> None:
    schedule = rules(
        {
            "schedules": [
                {"cron": "*/15 * * * 1-5"},
                {"cron": "0 * * * 0,6"},
            ],
            "timezone": "America/New_York",
        }
    )
    friday_late = datetime(2026, 1, 9, 23, 30, tzinfo=ZoneInfo("America/New_York"))
    local = [
        t.astimezone(ZoneInfo("America/New_York")).strftime("%a %H:%M")
        for t in chain(schedule, friday_late, 4)
    ]
    assert local == ["Fri 23:45", "Sat 00:00", "Sat 01:00", "Sat 02:00"]


# --- exclusions -------------------------------------------------------------------------------


def test_date_ranges_exclude_whole_days_in_their_zone_edges_included() -> None:
    schedule = rules(
        {
            "interval": "6h",
            "timezone": "Europe/Berlin",
            "exclude": [{"from": "2026-12-24", "to": "2026-12-26"}],
        }
    )
    times = chain(schedule, utc(2026, 12, 23, 12), 4)
    # 23 Dec 18:00Z is 19:00 in Berlin (allowed); 24 Dec 00:00Z is 01:00 Berlin, excluded;
    # the range ends at 27 Dec 00:00 Berlin = 26 Dec 23:00Z, so the next is 27 Dec 00:00Z.
    assert times == [
        utc(2026, 12, 23, 18),
        utc(2026, 12, 27),
        utc(2026, 12, 27, 6),
        utc(2026, 12, 27, 12),
    ]
    last_allowed = rules({"interval": "1h", "timezone": "Europe/Berlin", "exclude": ["2026-12-24"]})
    assert last_allowed.next_after(utc(2026, 12, 23, 21, 30)) == utc(
        2026, 12, 23, 22
    )  # 23:00 local
    assert last_allowed.next_after(utc(2026, 12, 23, 22)) == utc(2026, 12, 24, 23)  # 25 Dec 00:00


def test_cron_exclusions_cut_nights_and_weekends() -> None:
    schedule = rules(
        {
            "interval": "1h",
            "exclude": [{"cron": "* 0-5 * * *"}, {"cron": "* * * * 0,6"}],
        }
    )
    # Friday 2026-01-09 22:00 UTC; then Monday 06:00.
    assert chain(schedule, utc(2026, 1, 9, 21, 30), 3) == [
        utc(2026, 1, 9, 22),
        utc(2026, 1, 9, 23),
        utc(2026, 1, 12, 6),
    ]
    minute = rules(
        {"schedules": [{"cron": "*/10 * * * *"}], "exclude": [{"cron": "20-39 * * * *"}]}
    )
    assert [t.minute for t in chain(minute, utc(2026, 1, 1), 5)] == [10, 40, 50, 0, 10]


def test_a_workflow_calendar_is_shared_by_name() -> None:
    definition = parse_definition(
        {
            "name": "trading",
            "calendars": {"holidays": {"timezone": "America/New_York", "exclude": ["2026-07-03"]}},
            "producers": {
                "a": {
                    "run": "demo.noop",
                    "cron": "0 12 * * *",
                    "timezone": "America/New_York",
                    "calendars": ["holidays"],
                },
                "b": {"run": "demo.noop", "interval": "1d", "calendars": ["holidays"]},
            },
        }
    )
    for producer in definition.producers.values():
        schedule = producer.schedule
        assert schedule is not None
        slots = chain(schedule, utc(2026, 7, 2, 18), 2)
        days = [t.astimezone(ZoneInfo("America/New_York")).date() for t in slots]
        assert date(2026, 7, 3) not in days, (producer, slots)


def test_an_exclusion_covering_everything_exhausts_the_schedule() -> None:
    schedule = rules({"interval": "1h", "exclude": [{"from": "2026-01-01", "to": "2999-12-31"}]})
    assert schedule.next_after(utc(2026, 1, 1)) is None


def test_exclusion_blocks_jump_whole_units() -> None:
    night = CronExclusion(parse_cron("* 0-5 * * *"))
    assert night.block_end(utc(2026, 1, 1, 3, 17, 5)) == utc(2026, 1, 1, 4)
    assert night.block_end(utc(2026, 1, 1, 6)) is None
    weekend = CronExclusion(parse_cron("* * * * 6"))
    assert weekend.block_end(utc(2026, 1, 10, 13)) == utc(2026, 1, 11)
    day = DateExclusion(date(2026, 3, 29), date(2026, 3, 29), "Europe/Berlin")
    assert day.block_end(utc(2026, 3, 29, 12)) == utc(2026, 3, 29, 22)  # CEST midnight


# --- DST policies -----------------------------------------------------------------------------

# Each zone's two changes in 2026, and a wall time the change skips or repeats there.
TRANSITIONS = {
    "Europe/Berlin": {
        "spring": (utc(2026, 3, 28, 12), "30 2 * * *"),
        "fall": (utc(2026, 10, 24, 12), "30 2 * * *"),
    },
    "America/New_York": {
        "spring": (utc(2026, 3, 7, 12), "30 2 * * *"),
        "fall": (utc(2026, 10, 31, 12), "30 1 * * *"),
    },
}
# The fire times of the day of the change in UTC, for each policy: zone -> change -> times.
EXPECTED = {
    ("Europe/Berlin", "spring", "shift"): [utc(2026, 3, 29, 1)],  # at the change, 03:00 CEST
    ("Europe/Berlin", "spring", "skip"): [],
    ("Europe/Berlin", "fall", "first"): [utc(2026, 10, 25, 0, 30)],  # 02:30 CEST
    ("Europe/Berlin", "fall", "last"): [utc(2026, 10, 25, 1, 30)],  # 02:30 CET
    ("Europe/Berlin", "fall", "both"): [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)],
    ("America/New_York", "spring", "shift"): [utc(2026, 3, 8, 7)],  # 03:00 EDT
    ("America/New_York", "spring", "skip"): [],
    ("America/New_York", "fall", "first"): [utc(2026, 11, 1, 5, 30)],  # 01:30 EDT
    ("America/New_York", "fall", "last"): [utc(2026, 11, 1, 6, 30)],  # 01:30 EST
    ("America/New_York", "fall", "both"): [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)],
}


@pytest.mark.parametrize("zone", sorted(TRANSITIONS))
@pytest.mark.parametrize("repeated", list(Repeated))
@pytest.mark.parametrize("skipped", list(Skipped))
@pytest.mark.parametrize("form", ["cron", "rrule"])
def test_every_dst_policy_on_both_changes(
    zone: str, repeated: Repeated, skipped: Skipped, form: str
) -> None:
    for change, (start, cron) in TRANSITIONS[zone].items():
        minute, hour = cron.split()[:2]
        fields: dict[str, Any] = (
            {"cron": cron}
            if form == "cron"
            else {
                "rrule": f"FREQ=DAILY;BYHOUR={hour};BYMINUTE={minute}",
                "dtstart": f"2026-01-01T0{hour}:{minute}:00",
            }
        )
        entry = parse_entry(
            {**fields, "timezone": zone, "dst": {"repeated": repeated, "skipped": skipped}}, "e"
        )
        day = [t for t in chain(entry, start, 4) if t < start + timedelta(days=1, hours=12)]
        key = (zone, change, skipped.value if change == "spring" else repeated.value)
        assert day == EXPECTED[key], (change, day)
        # The other days keep their wall time.
        later = chain(entry, start + timedelta(days=2), 1)[0]
        assert later.astimezone(ZoneInfo(zone)).strftime("%H:%M") == f"{int(hour):02d}:{minute}"


def test_the_default_policy_is_exactly_the_single_cron() -> None:
    for zone in TRANSITIONS:
        for start, cron in TRANSITIONS[zone].values():
            single = CronSchedule(cron, zone)
            walker = CronEntry(single, DstPolicy(Repeated.BOTH))
            default = CronEntry(single)
            assert chain(default, start, 5) == chain(single, start, 5)
            assert set(chain(single, start, 3)) <= set(chain(walker, start, 6))


def test_validate_notes_say_what_dst_moved_or_removed_and_which_rule() -> None:
    spring_skip = rules(
        {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "dst": {"skipped": "skip"}}
    )
    lines = spring_skip.fire_times(utc(2026, 3, 27), 3)
    removed = [line for line in lines if line.at is None]
    assert (
        len(removed) == 1
        and "removed" in removed[0].notes[0]
        and "skipped: skip" in removed[0].notes[0]
    )
    assert [line.at for line in lines if line.at] == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]
    fall_both = rules(
        {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "dst": {"repeated": "both"}}
    )
    noted = [line for line in fall_both.fire_times(utc(2026, 10, 24, 12), 3) if line.notes]
    assert [line.at for line in noted] == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]
    assert all("repeated: both" in line.notes[0] for line in noted)
    shifted = rules({"schedules": [{"cron": "30 2 * * *", "timezone": "America/New_York"}]})
    moved = [line for line in shifted.fire_times(utc(2026, 3, 7, 12), 2) if line.notes]
    assert [line.at for line in moved] == [utc(2026, 3, 8, 7)]
    assert "moved" in moved[0].notes[0] and "skipped: shift" in moved[0].notes[0]


# --- jitter -----------------------------------------------------------------------------------


def test_jitter_is_deterministic_within_bounds_and_per_producer() -> None:
    fields = {"cron": "0 * * * *", "jitter": "10m"}
    one = compile_rules(fields, {}, "wf/a")
    again = compile_rules(fields, {}, "wf/a")
    other = compile_rules(fields, {}, "wf/b")
    assert one is not None and again is not None and other is not None
    start = utc(2026, 1, 1)
    times = chain(one, start, 24)
    assert times == chain(again, start, 24)  # every beat agrees
    assert times != chain(other, start, 24)  # producers spread
    for hour, slot in enumerate(times):
        assert start + timedelta(hours=hour) <= slot < start + timedelta(hours=hour, minutes=10)
        assert slot.microsecond == 0
    assert len({t.minute for t in times}) > 3  # spread, not all on the hour
    # From any instant, including between a base slot and its jittered slot, the same stream.
    for slot in times[:5]:
        assert one.next_after(slot - timedelta(seconds=1)) == slot
        assert one.next_after(slot - timedelta(minutes=10, seconds=1)) in (slot, *times)


def test_jitter_never_reorders_dense_slots() -> None:
    schedule = compile_rules({"interval": "2s", "jitter": "1h"}, {}, "wf/dense")
    assert schedule is not None
    times = chain(schedule, utc(2026, 1, 1), 50)
    assert all(b - a >= timedelta(seconds=1) for a, b in itertools.pairwise(times))
    # Each slot moved by less than the 2 s gap to the next: by 0 or 1 whole second.
    bases = [utc(2026, 1, 1) + timedelta(seconds=2 * n) for n in range(60)]
    assert all(
        t - max(b for b in bases if b <= t) in (timedelta(0), timedelta(seconds=1)) for t in times
    )
    assert offset("s", utc(2026, 1, 1), timedelta(seconds=0.5)) == timedelta(0)


# --- stored form ------------------------------------------------------------------------------


def test_the_stored_value_rebuilds_the_same_schedule() -> None:
    schedule = rules(
        {
            "schedules": [
                {"interval": "15m", "start": "2026-01-01T00:05:00Z"},
                {
                    "cron": "30 2 * * *",
                    "timezone": "Europe/Berlin",
                    "dst": {"repeated": "both", "skipped": "skip"},
                },
                {
                    "rrule": "FREQ=WEEKLY;BYDAY=MO",
                    "dtstart": "2026-01-05T09:00:00",
                    "timezone": "America/New_York",
                },
                {"at": "2026-12-31T23:00:00Z"},
            ],
            "exclude": [
                "2026-12-25",
                {"from": "2026-12-30", "to": "2027-01-02"},
                {"cron": "* 0-5 * * *"},
            ],
            "timezone": "Europe/Berlin",
            "jitter": "30s",
        }
    )
    rebuilt = schedule_from_row(schedule.kind, schedule.value, schedule.timezone)
    assert rebuilt == schedule
    assert chain(rebuilt, utc(2026, 12, 20), 30) == chain(schedule, utc(2026, 12, 20), 30)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"exclude": []}', "lacks"),
        (
            '{"entries": [{"interval": "0s", "start": "1970-01-01T00:00:00Z"}], "exclude": []}',
            "zero",
        ),
        ("x" * 70000, "longer than"),
    ],
)
def test_a_bad_stored_value_is_refused(value: str, fragment: str) -> None:
    with pytest.raises(ScheduleError, match=fragment):
        from_value(value)


# --- properties -------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York"]
entries = st.one_of(
    st.builds(
        lambda minutes: {"interval": f"{minutes}m"},
        st.integers(min_value=1, max_value=180),
    ),
    st.builds(
        lambda minute, hour, zone, repeated, skipped: {
            "cron": f"{minute} {hour} * * *",
            "timezone": zone,
            "dst": {"repeated": repeated, "skipped": skipped},
        },
        st.sampled_from(["0", "30", "0,45", "*/20"]),
        st.sampled_from(["1", "2", "*/3", "1-3"]),
        st.sampled_from(ZONES),
        st.sampled_from(list(Repeated)),
        st.sampled_from(list(Skipped)),
    ).filter(
        lambda entry: (
            ("*" not in entry["cron"].split()[1] and "*" not in entry["cron"].split()[0])
            or entry["dst"] == {"repeated": "first", "skipped": "shift"}
        )
    ),
    st.builds(
        lambda freq, hour, zone, count: {
            "rrule": f"FREQ={freq};BYHOUR={hour};BYMINUTE=30"
            + (f";COUNT={count}" if count else ""),
            "dtstart": "2026-01-01T00:30:00",
            "timezone": zone,
        },
        st.sampled_from(["DAILY", "WEEKLY"]),
        st.integers(min_value=0, max_value=23),
        st.sampled_from(ZONES),
        st.sampled_from([None, 5, 40]),
    ),
    st.builds(
        lambda hours: {
            "at": (utc(2026, 3, 1) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        },
        st.integers(min_value=0, max_value=24 * 300),
    ),
)
exclusions = st.one_of(
    st.builds(
        lambda day: (date(2026, 3, 1) + timedelta(days=day)).isoformat(), st.integers(0, 300)
    ),
    st.builds(
        lambda day, length: {
            "from": (date(2026, 3, 1) + timedelta(days=day)).isoformat(),
            "to": (date(2026, 3, 1) + timedelta(days=day + length)).isoformat(),
        },
        st.integers(0, 300),
        st.integers(0, 10),
    ),
    st.sampled_from([{"cron": "* 0-5 * * *"}, {"cron": "* * * * 0"}, {"cron": "0-29 * * * *"}]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chosen=st.lists(entries, min_size=1, max_size=4),
    excluded=st.lists(exclusions, max_size=4),
    zone=st.sampled_from(ZONES),
    start_hours=st.integers(min_value=0, max_value=24 * 300),
    skip=st.integers(min_value=0, max_value=20),
)
def test_random_rules_lie_on_entries_avoid_exclusions_increase_and_agree(
    chosen: list[dict[str, Any]], excluded: list[Any], zone: str, start_hours: int, skip: int
) -> None:
    fields: dict[str, Any] = {"schedules": chosen, "timezone": zone}
    if excluded:
        fields["exclude"] = excluded
    schedule = rules(fields)
    start = utc(2026, 3, 1) + timedelta(hours=start_hours)
    times = chain(schedule, start, 25)
    assert all(a < b for a, b in itertools.pairwise(times))  # strictly increasing
    assert all(t > start for t in times)
    for slot in times:
        # On some entry: that entry fires exactly there.
        assert any(
            entry.next_after(slot - timedelta(seconds=1)) == slot for entry in schedule.entries
        )
        assert all(x.block_end(slot) is None for x in schedule.exclusions)  # none excluded
    # From any instant: the stream from a later instant is the tail of the earlier one.
    if len(times) > skip + 5:
        middle = times[skip]
        assert chain(schedule, middle - timedelta(seconds=1), 5) == times[skip : skip + 5]
        assert chain(schedule, middle, 4) == times[skip + 1 : skip + 5]


@settings(max_examples=40, deadline=None)
@given(
    every=st.integers(min_value=1, max_value=7200),
    jitter=st.integers(min_value=1, max_value=7200),
    start=st.integers(min_value=0, max_value=10**6),
    probe=st.integers(min_value=0, max_value=10**5),
)
def test_random_jitter_stays_ordered_bounded_and_consistent(
    every: int, jitter: int, start: int, probe: int
) -> None:
    schedule = compile_rules({"interval": f"{every}s", "jitter": f"{jitter}s"}, {}, "wf/prop")
    assert schedule is not None
    begin = utc(2026, 1, 1) + timedelta(seconds=start)
    times = chain(schedule, begin, 12)
    assert all(a < b for a, b in itertools.pairwise(times))
    steps = (times[-1] - begin) // timedelta(seconds=every) + jitter // every + 3
    bases = chain(IntervalEntry(timedelta(seconds=every)), begin - timedelta(seconds=jitter), steps)
    for slot in times:
        base = max(b for b in bases if b <= slot)
        assert slot - base < timedelta(seconds=min(every, jitter))
    cursor = begin + timedelta(seconds=probe)
    after = [t for t in times if t > cursor]
    if after and after[0] != times[-1]:
        assert schedule.next_after(cursor) == after[0]


def test_entry_types_round_trip_their_json() -> None:
    for entry in (
        IntervalEntry(timedelta(minutes=5)),
        AtEntry(utc(2026, 1, 1)),
        CronEntry(
            CronSchedule("0 2 * * *", "Europe/Berlin"), DstPolicy(Repeated.LAST, Skipped.SKIP)
        ),
        RRuleEntry("FREQ=DAILY", datetime(2026, 1, 1, 9), "UTC"),
    ):
        assert parse_entry(entry.to_json(), "e") == entry
