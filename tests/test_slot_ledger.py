"""The slot ledger, in-process against real SQLite and PostgreSQL: one outcome per due slot."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from models.run_pruning import PruneLimits, Retention, RunPruner
from models.schedules import IntervalSchedule
from models.slot_ledger import LedgerEntry
from models.slot_ledger_store import Ledger, outcome_at
from models.vocabulary import SlotFate
from tests.databases import schedule_spec
from tests.ledger_checks import coverage_problems, ledger_rows
from tests.test_runner import T0, Harness, _during_run
from workers.cli.main import cli

MINUTE = timedelta(minutes=1)


def _outcomes(h: Harness) -> list[tuple[object, ...]]:
    return [
        (row.slot, row.range_end, row.slot_count, row.outcome, row.attempts)
        for row in ledger_rows(h.engine, h.workflow.id, "poll")
    ]


def test_a_run_on_time_records_its_slot_succeeded(engine: Engine) -> None:
    h = Harness(engine, schedule_value="1m")
    h.clock.now = T0 + timedelta(seconds=1)
    assert h.runner.run(h.claim())["status"] == "succeeded"
    assert _outcomes(h) == [(T0, None, 1, SlotFate.SUCCEEDED, 1)]


def test_slots_missed_before_a_late_run_are_one_coalesced_entry(engine: Engine) -> None:
    h = Harness(engine, schedule_value="1m")
    h.clock.now = T0 + 3 * MINUTE + timedelta(seconds=30)  # down for three more slots
    h.runner.run(h.claim())
    assert _outcomes(h) == [
        (T0, None, 1, SlotFate.SUCCEEDED, 1),
        (T0 + MINUTE, T0 + 4 * MINUTE, 3, SlotFate.COALESCED, 0),
    ]
    assert h.schedule().next_run_at == T0 + 4 * MINUTE
    found = outcome_at(engine, h.workflow.id, "poll", T0 + 2 * MINUTE + timedelta(seconds=5))
    assert found is not None and found.outcome == SlotFate.COALESCED
    assert found.covers(T0 + 2 * MINUTE) and found.policy == "catchup=latest"


def test_slots_due_while_the_run_ran_are_skipped_for_overlap(engine: Engine) -> None:
    h = Harness(engine, run="test.during_run", schedule_value="1m")
    _during_run[:] = [lambda: setattr(h.clock, "now", T0 + 2 * MINUTE + timedelta(seconds=30))]
    try:
        h.runner.run(h.claim())
    finally:
        _during_run.clear()
    assert _outcomes(h) == [
        (T0, None, 1, SlotFate.SUCCEEDED, 1),
        (T0 + MINUTE, T0 + 3 * MINUTE, 2, SlotFate.SKIPPED_OVERLAP, 0),
    ]
    [overlap] = [row for row in ledger_rows(engine, h.workflow.id, "poll") if row.slot != T0]
    assert overlap.policy == "overlap=skip" and "still running" in overlap.reason


def test_a_late_and_long_run_records_both_ranges(engine: Engine) -> None:
    h = Harness(engine, run="test.during_run", schedule_value="1m")
    h.clock.now = T0 + MINUTE + timedelta(seconds=10)
    _during_run[:] = [lambda: setattr(h.clock, "now", T0 + 3 * MINUTE + timedelta(seconds=1))]
    try:
        h.runner.run(h.claim())
    finally:
        _during_run.clear()
    assert _outcomes(h) == [
        (T0, None, 1, SlotFate.SUCCEEDED, 1),
        (T0 + MINUTE, None, 1, SlotFate.COALESCED, 0),
        (T0 + 2 * MINUTE, T0 + 4 * MINUTE, 2, SlotFate.SKIPPED_OVERLAP, 0),
    ]
    rows = ledger_rows(engine, h.workflow.id, "poll")
    assert coverage_problems(rows, IntervalSchedule(MINUTE), T0, T0 + 4 * MINUTE) == []


def test_a_day_of_one_second_slots_is_one_row(engine: Engine) -> None:
    h = Harness(engine, schedule_value="1s")
    h.clock.now = T0 + timedelta(days=1, milliseconds=500)
    h.runner.run(h.claim())
    rows = ledger_rows(engine, h.workflow.id, "poll")
    assert [(row.outcome, row.slot_count) for row in rows] == [
        (SlotFate.SUCCEEDED, 1),
        (SlotFate.COALESCED, 86_400),
    ]
    end = T0 + timedelta(days=1, seconds=1)
    assert rows[1].range_end == end == h.schedule().next_run_at


def test_a_run_past_its_time_limit_is_recorded_timed_out(engine: Engine) -> None:
    h = Harness(engine, run="demo.sleep", params={"seconds": 5}, timeout_seconds=0.2)
    assert h.runner.run(h.claim())["status"] == "failed"
    [own] = ledger_rows(engine, h.workflow.id, "poll")
    assert (own.outcome, own.policy) == (SlotFate.TIMED_OUT, "timeout=0.2s")
    assert "ProducerTimeoutError" in own.reason


def test_a_failed_run_is_recorded_failed_with_its_error(engine: Engine) -> None:
    h = Harness(engine, run="demo.fail", params={"message": "boom"})
    h.runner.run(h.claim())
    [own] = ledger_rows(engine, h.workflow.id, "poll")
    assert own.outcome == SlotFate.FAILED and "boom" in own.reason


def test_a_redeploy_during_the_run_records_it_superseded_and_nothing_else(
    engine: Engine,
) -> None:
    h = Harness(engine, run="test.during_run", schedule_value="1m")
    new_slot = T0 + 10 * MINUTE

    def redeploy() -> None:
        h.clock.now = T0 + 3 * MINUTE
        spec = schedule_spec(h.workflow.id, schedule_value="2m", next_run_at=new_slot)
        h.schedules.upsert(spec, now=h.clock.now)

    _during_run[:] = [redeploy]
    try:
        assert h.runner.run(h.claim())["status"] == "superseded"
    finally:
        _during_run.clear()
    # The running slot and the three that fell due while it ran: one entry, written by the
    # redeploy; the run's own late "superseded" replaces nothing.
    [own] = ledger_rows(engine, h.workflow.id, "poll")
    assert (own.slot, own.range_end, own.slot_count, own.outcome) == (
        T0,
        T0 + 4 * MINUTE,
        4,
        SlotFate.SUPERSEDED,
    )
    assert "redeployed" in own.reason
    assert h.schedule().next_run_at == new_slot


def test_due_slots_a_redeploy_replaces_before_they_run_are_recorded_superseded(
    engine: Engine,
) -> None:
    h = Harness(engine, schedule_value="1m")
    h.clock.now = T0 + 3 * MINUTE + 30 * timedelta(seconds=1)
    spec = schedule_spec(h.workflow.id, schedule_value="5m", next_run_at=T0 + 5 * MINUTE)
    h.schedules.upsert(spec, now=h.clock.now)
    assert _outcomes(h) == [(T0, T0 + 4 * MINUTE, 4, SlotFate.SUPERSEDED, 0)]
    [row] = ledger_rows(engine, h.workflow.id, "poll")
    assert "redeployed" in row.reason and row.policy == "redeploy: the new schedule stands"
    rows = ledger_rows(engine, h.workflow.id, "poll")
    old = IntervalSchedule(MINUTE)
    assert coverage_problems(rows, old, T0, T0 + 4 * MINUTE) == []


def test_slots_that_fell_due_while_paused_are_recorded_paused_by_a_redeploy(
    engine: Engine,
) -> None:
    h = Harness(engine, schedule_value="1m")
    h.schedules.set_paused(h.workflow.id, True, by="ops", note="vendor down", now=T0)
    h.clock.now = T0 + MINUTE
    spec = schedule_spec(
        h.workflow.id, schedule_value="5m", next_run_at=T0 + 5 * MINUTE, paused=True
    )
    h.schedules.upsert(spec, now=h.clock.now)
    assert _outcomes(h) == [(T0, T0 + 2 * MINUTE, 2, SlotFate.PAUSED, 0)]
    assert "vendor down" in ledger_rows(engine, h.workflow.id, "poll")[0].reason


def test_a_redeploy_before_the_next_run_records_nothing(engine: Engine) -> None:
    h = Harness(engine, schedule_value="1m")
    h.clock.now = T0 - timedelta(seconds=1)
    spec = schedule_spec(h.workflow.id, schedule_value="5m", next_run_at=T0 + 5 * MINUTE)
    h.schedules.upsert(spec, now=h.clock.now)
    assert _outcomes(h) == []


def test_paused_slots_and_the_resume_are_recorded_paused_as_one_range(engine: Engine) -> None:
    h = Harness(engine, schedule_value="1m")
    slot = h.claim()
    h.schedules.set_paused(h.workflow.id, True, now=T0)
    h.clock.now = T0 + timedelta(seconds=1)
    assert h.runner.run(slot)["status"] == "skipped: paused"
    assert _outcomes(h) == [(T0, None, 1, SlotFate.PAUSED, 0)]
    # Resume four minutes later: the missed slots move on to the next one, as one entry.
    h.schedules.set_paused(h.workflow.id, False, now=T0)
    resumed = T0 + 4 * MINUTE + timedelta(seconds=30)
    assert h.schedules.move_next_run(h.row.id, read=T0, to=T0 + 5 * MINUTE, now=resumed)
    assert _outcomes(h) == [(T0, T0 + 5 * MINUTE, 5, SlotFate.PAUSED, 0)]


@pytest.mark.parametrize("kind", list(SlotFate))
def test_why_answers_for_every_outcome_kind(engine: Engine, db_url: str, kind: SlotFate) -> None:
    h = Harness(engine, schedule_value="1m")
    ranged = kind in (SlotFate.COALESCED, SlotFate.SKIPPED_OVERLAP, SlotFate.PAUSED)
    entry_end = T0 + 3 * MINUTE if ranged else None
    entry = LedgerEntry(
        slot=T0,
        range_end=entry_end,
        slot_count=3 if ranged else 1,
        outcome=kind,
        reason=f"because {kind}",
        policy="policy-x",
        attempts=2,
    )
    h.runner.run_path.record_outcomes(Ledger(h.workflow.id, "poll", (entry,)), now=T0)
    env = {"DRUMLINE_DATABASE_URL": db_url}
    asked = (T0 + 2 * MINUTE if ranged else T0).isoformat()
    result = CliRunner().invoke(cli, ["why", "prices", "poll", asked], env=env)
    assert result.exit_code == 0, result.output
    assert f"outcome:   {kind}" in result.output
    assert f"because {kind}" in result.output and "policy-x" in result.output
    assert "attempts:  2" in result.output
    assert ("3 slots" in result.output) == ranged
    assert "note:" not in result.output


def test_why_says_when_nothing_is_recorded_and_runs_lists_outcomes(
    engine: Engine, db_url: str
) -> None:
    h = Harness(engine, schedule_value="1m")
    env = {"DRUMLINE_DATABASE_URL": db_url}
    result = CliRunner().invoke(cli, ["why", "prices", "poll"], env=env)
    assert result.exit_code == 1
    assert "has no recorded slot; its next run is 2026-03-01 12:00:00Z" in result.output
    h.clock.now = T0 + 2 * MINUTE + timedelta(seconds=1)
    h.runner.run(h.claim())
    result = CliRunner().invoke(cli, ["why", "prices", "poll"], env=env)
    assert "outcome:   coalesced" in result.output, result.output
    result = CliRunner().invoke(
        cli, ["runs", "prices", "--outcomes", "--json"], env=env, catch_exceptions=False
    )
    outcomes = json.loads(result.output)["outcomes"]
    assert [(o["outcome"], o["slot_count"]) for o in outcomes] == [
        ("coalesced", 2),
        ("succeeded", 1),
    ]
    bad = CliRunner().invoke(cli, ["why", "prices", "poll", "yesterday"], env=env)
    assert bad.exit_code == 2 and "not an ISO 8601 instant" in bad.output


def test_pruning_the_run_history_prunes_the_ledger_up_to_the_newest_pruned_run(
    engine: Engine,
) -> None:
    h = Harness(engine, schedule_value="1m")
    for minute in (0, 3, 4):  # 12:00 on time, 12:01 late at 12:03 (12:02-12:03 coalesced)
        h.clock.now = T0 + minute * MINUTE + timedelta(seconds=1)
        slot = h.claim()
        h.runner.run(slot)
    before = _outcomes(h)
    assert [(slot, outcome) for slot, _, _, outcome, _ in before] == [
        (T0, SlotFate.SUCCEEDED),
        (T0 + MINUTE, SlotFate.SUCCEEDED),
        (T0 + 2 * MINUTE, SlotFate.COALESCED),
        (T0 + 4 * MINUTE, SlotFate.SUCCEEDED),
    ]
    limits = PruneLimits(batch=100, max_rows=1000, budget=timedelta(minutes=1))
    report = RunPruner(engine).prune(
        now=T0 + 5 * MINUTE,
        retention=Retention(max_age=None, keep_per_producer=1),
        limits=limits,
    )
    assert report.by_count == 2
    # The runs of 12:00 and 12:01 are gone, and the ledger up to them.
    assert _outcomes(h) == before[2:]
