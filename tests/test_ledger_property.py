"""Property: for random schedules, downtimes, run lengths and policies, the slots with a
ledger outcome are exactly the due slots, each with one outcome, without gaps or overlaps.

Each example drives the real run path and beat's catch-up against a real database with a
clock moved by hand: beat claims what is due, the worker runs it for a random time, and the
system is sometimes down for a random stretch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from models.stored_schedules import schedule_from_row
from tests.ledger_checks import coverage_problems, ledger_rows
from tests.test_runner import T0, Harness, _during_run
from tests.test_slot_policies_run import _beat

POLICIES = st.fixed_dictionaries(
    {},
    optional={
        "overlap": st.sampled_from(["skip", "buffer_one"]),
        "catchup": st.sampled_from(["latest", "all", "none"]),
        "catchup_window": st.sampled_from([30.0, 90.0, 600.0]),
        "start_deadline": st.sampled_from([5.0, 45.0]),
    },
)
# (seconds the system is down before beat looks, seconds the run takes)
STEPS = st.lists(
    st.tuples(st.sampled_from([0, 0, 0, 7, 45, 130, 400]), st.sampled_from([0, 0, 3, 25, 70])),
    min_size=1,
    max_size=12,
)
SCHEDULES = st.sampled_from([("interval", "10s"), ("interval", "30s"), ("cron", "*/20 * * * * *")])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(policy=POLICIES, steps=STEPS, schedule=SCHEDULES)
def test_every_due_slot_has_exactly_one_outcome(
    engine: Engine, policy: dict[str, Any], steps: list[tuple[int, int]], schedule: Any
) -> None:
    kind, value = schedule
    h = Harness(
        engine, run="test.during_run", schedule_type=kind, schedule_value=value, policy=policy
    )
    try:
        for down, runs_for in steps:
            h.clock.now += timedelta(seconds=down)
            row = h.schedule()
            if row.next_run_at is None or row.next_run_at > h.clock():
                h.clock.now = row.next_run_at or h.clock()
            slot = _beat(h)
            if slot is None:
                continue
            delay = h.clock.now + timedelta(seconds=runs_for)
            _during_run[:] = [lambda at=delay: setattr(h.clock, "now", at)]
            h.runner.run(slot)
        end = h.schedule().next_run_at
        assert end is not None
        compiled = schedule_from_row(kind, value, "UTC")
        rows = ledger_rows(engine, h.workflow.id, "poll")
        assert coverage_problems(rows, compiled, T0, end) == []
    finally:
        _during_run.clear()
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM workflows")
