"""The read models behind `ls`, `status` and the live view: one query each, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from models.read_models import RECENT_RUNS, producer_status, workflow_overview
from models.run_path import RunPath
from models.schedule_store import ProducerScheduleStore
from models.workflow_store import WorkflowStore
from tests.databases import new_workflow, schedule_spec

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent to the database inside the block, BEGIN included."""
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


def selects(sent: list[str]) -> int:
    return sum(statement.lstrip().upper().startswith("SELECT") for statement in sent)


def add_run(
    engine: Engine, workflow_id: int, producer: str, age: timedelta, error: str | None
) -> None:
    """A finished run of `producer` scheduled and started `age` before NOW."""
    run_path = RunPath(engine)
    run = run_path.begin_run(
        workflow_id=workflow_id,
        producer_name=producer,
        scheduled_for=NOW - age,
        trigger="schedule",
        task_id=None,
        now=NOW - age,
    )
    assert run is not None
    status = "failed" if error else "succeeded"
    run_path.finish_run(
        run, status=status, finished_at=NOW, duration_ms=1.0, error=error, result=None
    )


def populate(engine: Engine, workflows: int, producers: int) -> None:
    """`workflows` workflows of `producers` producers each; every second producer is paused;
    each producer has a recent failed run and an older succeeded one."""
    schedules = ProducerScheduleStore(engine)
    for w in range(workflows):
        workflow = new_workflow(engine, f"w{w:02}", {}, now=NOW)
        for p in range(producers):
            name = f"p{p:02}"
            spec = schedule_spec(
                workflow.id, name, next_run_at=NOW + timedelta(seconds=p), paused=p % 2 == 1
            )
            schedules.upsert(spec, now=NOW)
            add_run(engine, workflow.id, name, timedelta(seconds=10), f"Trace\nValueError: {w}/{p}")
            add_run(engine, workflow.id, name, timedelta(minutes=5), None)


@pytest.mark.parametrize("size", [1, 50])
def test_ls_is_one_query_whatever_the_number_of_workflows(engine: Engine, size: int) -> None:
    populate(engine, workflows=size, producers=2)
    with statements(engine) as sent:
        overview = workflow_overview(engine)
    assert selects(sent) == 1, sent
    assert len(sent) == (2 if engine.dialect.name == "sqlite" else 1), sent  # and BEGIN
    assert [row.name for row in overview] == [f"w{w:02}" for w in range(size)]
    assert {(row.producers, row.paused, row.next_run_at) for row in overview} == {(2, 1, NOW)}


@pytest.mark.parametrize("size", [1, 50])
def test_status_and_the_live_view_are_one_query_whatever_the_number_of_producers(
    engine: Engine, size: int
) -> None:
    populate(engine, workflows=2, producers=size)
    first = WorkflowStore(engine).get("w00")
    assert first is not None
    with statements(engine) as of_one:
        status = producer_status(engine, workflow_id=first.id)
    with statements(engine) as of_all:
        live = producer_status(engine, recent_since=NOW - timedelta(minutes=1))
    for sent in (of_one, of_all):
        assert selects(sent) == 1, sent
        assert len(sent) == (2 if engine.dialect.name == "sqlite" else 1), sent
    assert [p.schedule.producer_name for p in status] == [f"p{p:02}" for p in range(size)]
    assert len(live) == 2 * size
    assert {p.workflow for p in live} == {"w00", "w01"}
    for producer in live:
        w, p = producer.workflow[1:], producer.schedule.producer_name[1:]
        assert producer.last_error == f"Trace\nValueError: {int(w)}/{int(p)}"
        assert producer.recent_runs == 1  # the run 5 minutes ago is not recent
        assert producer.schedule.paused == (int(p) % 2 == 1)
    assert {p.recent_runs for p in status} == {0}  # not asked for


def test_the_last_failure_is_the_newest_error_among_the_newest_runs(engine: Engine) -> None:
    """As `status` found it by scanning the RECENT_RUNS newest runs: the newest run with an
    error wins; an error older than those runs is not shown."""
    workflow = new_workflow(engine, "w", {}, now=NOW)
    ProducerScheduleStore(engine).upsert(schedule_spec(workflow.id, "p", next_run_at=NOW), now=NOW)
    [producer] = producer_status(engine)
    assert (producer.last_error, producer.recent_runs) == (None, 0)
    add_run(engine, workflow.id, "p", timedelta(hours=2), "ValueError: older")
    add_run(engine, workflow.id, "p", timedelta(hours=1), "ValueError: newer")
    add_run(engine, workflow.id, "p", timedelta(minutes=30), None)
    [producer] = producer_status(engine)
    assert producer.last_error == "ValueError: newer"
    for n in range(RECENT_RUNS):
        add_run(engine, workflow.id, "p", timedelta(seconds=n + 1), None)
    [producer] = producer_status(engine, recent_since=NOW - timedelta(minutes=1))
    assert producer.last_error is None
    assert producer.recent_runs == 60  # runs started 1 to 60 s ago; the 200 newest hold them
