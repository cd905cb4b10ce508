"""The slot ledger's `excluded` outcome: fire times an exclusion dropped are recorded by the run
that passes them, one range per gap between two slots, bounded (models/schedule_rules.py
`excluded_ranges`, models/slot_ledger.py). Pure, then a run against SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from models.catchup import catch_up
from models.schedule_rules import MAX_EXCLUDED_RANGES, RulesSchedule, compile_rules
from models.slot_ledger import slots_between
from models.slot_policy import SlotPolicy
from models.vocabulary import CatchupPolicy, SlotFate
from tests.ledger_checks import coverage_problems, ledger_rows
from tests.test_runner import Harness

DAY1 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)


def _rules(**fields: Any) -> RulesSchedule:
    schedule = compile_rules(fields, {}, "wf/p")
    assert schedule is not None
    return schedule


NIGHTS_OFF = _rules(cron="0 * * * *", exclude=[{"cron": "* 0-5 * * *"}])


def test_a_night_of_excluded_fire_times_is_one_range_up_to_the_next_slot() -> None:
    last_evening = DAY1 + 23 * HOUR
    morning = NIGHTS_OFF.next_after(last_evening)
    assert morning == DAY1 + 30 * HOUR  # 06:00 the next day
    [entry] = slots_between(NIGHTS_OFF, last_evening, morning, started_at=last_evening)
    assert (entry.slot, entry.range_end, entry.outcome) == (
        DAY1 + 24 * HOUR,
        morning,
        SlotFate.EXCLUDED,
    )
    assert entry.slot_count is None and entry.policy == "exclude"
    # A slot followed by the next one: nothing excluded between them, nothing recorded.
    assert slots_between(NIGHTS_OFF, DAY1 + 7 * HOUR, DAY1 + 8 * HOUR, started_at=DAY1) == []


def test_a_late_run_records_each_night_it_passed_beside_the_coalesced_slots() -> None:
    evening, later = DAY1 + 23 * HOUR, DAY1 + 48 * HOUR + 7 * HOUR  # two nights on, 07:00
    entries = slots_between(NIGHTS_OFF, evening, later, started_at=later)
    assert [(e.outcome, e.slot, e.range_end) for e in entries] == [
        (SlotFate.EXCLUDED, DAY1 + 24 * HOUR, DAY1 + 30 * HOUR),
        (SlotFate.COALESCED, DAY1 + 30 * HOUR, later),
        (SlotFate.EXCLUDED, DAY1 + 48 * HOUR, DAY1 + 54 * HOUR),
    ]
    coalesced = entries[1]
    assert coalesced.slot_count == 18 + 1  # 06:00-23:00, then 06:00: no excluded one counted


def test_excluded_ranges_are_bounded() -> None:
    odd_minutes_off = _rules(cron="* * * * *", exclude=[{"cron": "1-59/2 * * * *"}])
    ranges = odd_minutes_off.excluded_ranges(DAY1, DAY1 + 10 * HOUR)  # 300 of them
    assert len(ranges) == MAX_EXCLUDED_RANGES
    assert ranges[0] == (DAY1 + timedelta(minutes=1), DAY1 + timedelta(minutes=2))
    assert _rules(cron="0 * * * *").excluded_ranges(DAY1, DAY1 + 10 * HOUR) == []


def test_a_run_records_the_night_it_passes_as_excluded(engine: Engine) -> None:
    h = Harness(
        engine,
        next_run_at=DAY1 + 23 * HOUR,
        schedule_type="rules",
        schedule_value=NIGHTS_OFF.value,
    )
    h.clock.now = DAY1 + 23 * HOUR + timedelta(seconds=1)
    assert h.runner.run(h.claim())["status"] == "succeeded"
    assert h.schedule().next_run_at == DAY1 + 30 * HOUR
    rows = [(r.slot, r.range_end, r.outcome) for r in ledger_rows(engine, h.workflow.id, "poll")]
    assert rows == [
        (DAY1 + 23 * HOUR, None, SlotFate.SUCCEEDED),
        (DAY1 + 24 * HOUR, DAY1 + 30 * HOUR, SlotFate.EXCLUDED),
    ]


def test_runs_late_and_on_time_across_nights_leave_an_exact_ledger(engine: Engine) -> None:
    """Every slot has one outcome, each night one excluded range, and no row covers an
    excluded fire time but that range."""
    start = DAY1 + 22 * HOUR
    h = Harness(engine, next_run_at=start, schedule_type="rules", schedule_value=NIGHTS_OFF.value)
    # On time at 22:00 and 23:00, then down until 09:30 two days on: one late run.
    for moment in (start, start + HOUR, DAY1 + 57 * HOUR + 30 * timedelta(minutes=1)):
        h.clock.now = moment + timedelta(seconds=1)
        assert h.runner.run(h.claim())["status"] == "succeeded"
    end = h.schedule().next_run_at
    assert end == DAY1 + 58 * HOUR
    rows = ledger_rows(engine, h.workflow.id, "poll")
    assert coverage_problems(rows, NIGHTS_OFF, start, end) == []
    nights = [(r.slot, r.range_end) for r in rows if r.outcome == SlotFate.EXCLUDED]
    assert nights == [
        (DAY1 + 24 * HOUR, DAY1 + 30 * HOUR),
        (DAY1 + 48 * HOUR, DAY1 + 54 * HOUR),
    ]


def test_beat_s_catch_up_records_the_nights_it_passes_over() -> None:
    claimed, now = DAY1 + 23 * HOUR, DAY1 + 57 * HOUR + 30 * timedelta(minutes=1)
    latest = catch_up(NIGHTS_OFF, SlotPolicy(catchup=CatchupPolicy.LATEST), claimed, now)
    assert latest is not None and latest.run_slot == DAY1 + 57 * HOUR
    assert [(e.outcome, e.slot) for e in latest.entries] == [
        (SlotFate.COALESCED, claimed),
        (SlotFate.EXCLUDED, DAY1 + 24 * HOUR),
        (SlotFate.EXCLUDED, DAY1 + 48 * HOUR),
    ]
    # `all` runs the claimed slot itself: its run records what it passes, beat nothing.
    every = catch_up(NIGHTS_OFF, SlotPolicy(catchup=CatchupPolicy.ALL), claimed, now)
    assert every is None or every.entries == ()
