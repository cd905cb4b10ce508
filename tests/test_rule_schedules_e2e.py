"""Rule schedules end to end: real Redis, worker and beat processes, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from models.schedule_store import ProducerScheduleStore
from models.stored_schedules import schedule_from_row
from models.types import utc_now
from models.workflow_store import WorkflowStore
from tests.e2e import deploy, executions, journal_producer, runs_of, wait_until
from tests.processes import running_beat, running_worker
from workers.read_views import describe_schedule

WINDOW = timedelta(seconds=24)
# Seconds 8-13, 28-33 and 48-53 of every minute: a 24 s window holds at least one such block.
EXCLUDED = "8-13,28-33,48-53 * * * * *"


def test_two_schedules_and_an_exclusion_run_exactly_their_slots_and_a_one_off_runs_once(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    merged = journal_producer(journal)
    merged["schedules"] = [{"interval": "4s"}, {"cron": "*/6 * * * * *"}]
    merged["exclude"] = [{"cron": EXCLUDED}]
    once = journal_producer(journal)
    with running_worker(env, tmp_path), running_beat(env, tmp_path):
        at = (utc_now() + timedelta(seconds=15)).replace(microsecond=0)  # within the window
        once["at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        deploy(env, {"name": "rules", "producers": {"merged": merged, "once": once}})
        workflow = WorkflowStore(engine).get("rules")
        assert workflow is not None
        rows = {row.producer_name: row for row in ProducerScheduleStore(engine).list(workflow.id)}
        first = rows["merged"].next_run_at
        assert first is not None and rows["once"].next_run_at == at

        def succeeded(producer: str) -> list[datetime]:
            return [
                run.scheduled_for
                for run in runs_of(engine, "rules")
                if run.producer_name == producer and run.status == "succeeded"
            ]

        wait_until(
            lambda: bool(succeeded("merged")) and max(succeeded("merged")) >= first + WINDOW,
            WINDOW.total_seconds() + 30,
            "the merged producer's slots over the window",
        )
        wait_until(lambda: bool(succeeded("once")), 30, "the one-off run")
    runs = runs_of(engine, "rules")
    assert all(run.status == "succeeded" for run in runs), [
        (r.producer_name, r.error) for r in runs
    ]
    ran = [run.scheduled_for for run in runs if run.producer_name == "merged"]
    schedule = schedule_from_row(
        rows["merged"].schedule_type, rows["merged"].schedule_value, rows["merged"].timezone
    )
    expected = [first]
    while (slot := schedule.next_after(expected[-1])) is not None and slot <= ran[-1]:
        expected.append(slot)
    assert ran == expected  # every slot of the merged stream, none excluded, none missing
    assert all(not 8 <= slot.second % 20 <= 13 for slot in ran)
    whole = {
        first + timedelta(seconds=s) for s in range(int((ran[-1] - first).total_seconds()) + 1)
    }
    unexcluded = sorted(t for t in whole if t.second % 4 == 0 or t.second % 6 == 0)
    assert len(unexcluded) > len(ran), "the window held no excluded slot"
    started = executions(journal)
    assert max(started.values()) == 1, "a slot executed twice"
    assert [run.scheduled_for for run in runs if run.producer_name == "once"] == [at]
    done = {row.producer_name: row for row in ProducerScheduleStore(engine).list(workflow.id)}
    assert done["once"].next_run_at is None  # exhausted: never claimed again
    assert describe_schedule(done["once"]).endswith("exhausted (never runs again)")


def test_jittered_slots_are_the_same_for_two_beats_and_run_once_each(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    producer = journal_producer(journal, cron="*/5 * * * * *")
    producer["jitter"] = "4s"
    with (
        running_worker(env, tmp_path),
        running_beat(env, tmp_path, name="beat1"),
        running_beat(env, tmp_path, name="beat2"),
    ):
        deploy(env, {"name": "spread", "producers": {"job": producer}})
        workflow = WorkflowStore(engine).get("spread")
        assert workflow is not None
        (row,) = ProducerScheduleStore(engine).list(workflow.id)
        first = row.next_run_at
        assert first is not None

        def succeeded() -> list[datetime]:
            runs = runs_of(engine, "spread")
            return [run.scheduled_for for run in runs if run.status == "succeeded"]

        wait_until(lambda: len(succeeded()) >= 6, 60, "six jittered slots to run")
    ran = succeeded()
    schedule = schedule_from_row(row.schedule_type, row.schedule_value, row.timezone)
    expected = [first]
    while (slot := schedule.next_after(expected[-1])) is not None and slot <= ran[-1]:
        expected.append(slot)
    assert ran == expected  # the stream every beat and `validate --next` compute
    assert all(
        timedelta(0) <= slot - slot.replace(second=slot.second // 5 * 5) < timedelta(seconds=4)
        for slot in ran
    )
    assert any(slot.second % 5 for slot in ran), "no slot was moved"
    started = executions(journal)
    assert len(started) == len(ran) and max(started.values()) == 1
