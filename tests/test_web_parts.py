"""The parts of the web view that need no server: its read models on both databases, the
lateness figures and charts, pasted definitions, the credentials check and the actor a
change through the web is recorded under."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update

from models.definitions import MAX_DEFINITION_BYTES, load_definition_text
from models.errors import DefinitionError
from models.read_models import failing_producers, run_timings
from models.run_path import RunPath
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.tables import producer_schedules
from models.vocabulary import RunStatus, Trigger
from models.workflow_store import WorkflowStore
from tests.databases import new_workflow, schedule_spec
from workers.web.auth import BASIC, TOKEN, Credentials, web_actor
from workers.web.charts import Point, line_chart, percentile

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>'


def add_run(engine: Engine, workflow_id: int, producer: str, slot: datetime, late: float) -> None:
    run_path = RunPath(engine)
    run = run_path.begin_run(
        workflow_id=workflow_id,
        producer_name=producer,
        scheduled_for=slot,
        trigger=Trigger.SCHEDULE,
        task_id=f"{producer}@{slot.isoformat()}",
        now=slot + timedelta(seconds=late),
    )
    assert run is not None
    run_path.finish_run(
        run,
        status=RunStatus.SUCCEEDED,
        finished_at=slot + timedelta(seconds=late + 1),
        duration_ms=late * 10,
        error=None,
        result=None,
    )


def test_run_timings_are_the_newest_scheduled_runs_since_a_time_per_producer(
    engine: Engine,
) -> None:
    workflow = new_workflow(engine, "wf", {}, now=NOW)
    schedules = ProducerScheduleStore(engine)
    for name in ("a", "b"):
        schedules.upsert(schedule_spec(workflow.id, name, next_run_at=NOW), now=NOW)
    for k in range(6):
        add_run(engine, workflow.id, "a", NOW - timedelta(minutes=k), late=k)
    add_run(engine, workflow.id, "b", NOW - timedelta(days=2), late=9)  # before `since`
    add_run(engine, workflow.id, "b", NOW - timedelta(minutes=1), late=0.5)
    # A manual run (its slot is when it was asked for) and a pending request count for nothing.
    RunStore(engine).request_trigger(
        workflow_id=workflow.id,
        producer_name="b",
        scheduled_for=NOW,
        trigger_token="t" * 32,
        task_id="manual",
        now=NOW,
    )
    since = NOW - timedelta(days=1)

    timings = run_timings(engine, workflow.id, since=since, per_producer=4)
    assert [(t.producer, (t.started_at - t.scheduled_for).total_seconds()) for t in timings] == [
        ("a", 3.0),
        ("a", 2.0),
        ("a", 1.0),
        ("a", 0.0),
        ("b", 0.5),
    ]
    only_b = run_timings(engine, workflow.id, since=since, producer="b")
    assert [(t.producer, t.duration_ms, t.task_id) for t in only_b] == [
        ("b", 5.0, f"b@{(NOW - timedelta(minutes=1)).isoformat()}")
    ]


def test_failing_producers_are_counted_per_workflow(engine: Engine) -> None:
    schedules = ProducerScheduleStore(engine)
    for name in ("quiet", "noisy"):
        workflow = new_workflow(engine, name, {}, now=NOW)
        for producer in ("p", "q", "r"):
            schedules.upsert(schedule_spec(workflow.id, producer, next_run_at=NOW), now=NOW)
    noisy = WorkflowStore(engine).get("noisy")
    assert noisy is not None
    with engine.begin() as conn:
        conn.execute(
            update(producer_schedules)
            .where(
                producer_schedules.c.workflow_id == noisy.id,
                producer_schedules.c.producer_name.in_(["p", "q"]),
            )
            .values(consecutive_failures=3)
        )
    assert failing_producers(engine) == {"noisy": 2}


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)
    assert (percentile([7.0], 0.5), percentile([7.0], 0.99)) == (7.0, 7.0)
    assert percentile([], 0.5) is None


def test_a_chart_draws_every_point_and_escapes_its_text() -> None:
    points = [
        Point(NOW, 0.5, "succeeded"),
        Point(NOW + timedelta(seconds=10), 2.0, HOSTILE),
        Point(NOW + timedelta(seconds=20), 1.0, "failed"),
    ]
    svg = str(line_chart(HOSTILE, HOSTILE, points))
    assert svg.count("<circle") == 3 and svg.count('class="bad"') == 1
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "no runs yet" in str(line_chart("duration", "ms", []))


def test_a_pasted_definition_is_checked_like_a_file() -> None:
    json_text = '{"name": "wf", "producers": {"p": {"run": "demo.noop", "interval": "5s"}}}'
    assert load_definition_text(json_text, source="<pasted>").producers["p"].interval == "5s"
    cases = {
        "name: wf\nproducers: {p: {run: demo.noop, interval: }}": "producers.p.interval",
        "name: wf\nproducers: [": "YAML syntax error",
        "name: wf\nwhen: 2026-01-01\nproducers: {p: {run: demo.noop}}": "when",
        "# " + "x" * MAX_DEFINITION_BYTES: f"the limit is {MAX_DEFINITION_BYTES}",
    }
    for text, expected in cases.items():
        with pytest.raises(DefinitionError) as refused:
            load_definition_text(text, source="<pasted>")
        assert expected in str(refused.value), str(refused.value)[:300]
        assert str(refused.value).startswith("<pasted>")


def test_credentials_accept_the_basic_pair_or_the_bearer_token_only() -> None:
    both = Credentials([b"user:pass"], "a-token-of-twenty-four-chars")
    basic = "Basic " + base64.b64encode(b"user:pass").decode()
    assert both.principal(basic) == BASIC
    assert both.principal("bearer a-token-of-twenty-four-chars") == TOKEN
    for wrong in (
        "Basic " + base64.b64encode(b"user:other").decode(),
        "Bearer a-token-of-twenty-four-charX",
        "Bearer ",
        "Basic %%%",
        "a-token-of-twenty-four-chars",
        "",
    ):
        assert both.principal(wrong) is None, wrong
    assert Credentials([], None).principal(basic) is None
    assert Credentials([b"user:pass"], None).principal("Bearer ") is None


def test_a_change_through_the_web_names_its_user_escaped_or_the_token() -> None:
    def basic(pair: bytes) -> str:
        return "Basic " + base64.b64encode(pair).decode()

    assert web_actor(BASIC, basic(b"alice:secret:with:colons")) == "web:alice"
    assert web_actor(BASIC, basic(b"bob\x1b[31m:pw")) == "web:bob\\x1b[31m"
    assert web_actor(BASIC, basic(b"x" * 100 + b":pw")).startswith("web:" + "x" * 64 + "...(+36")
    assert web_actor(TOKEN, "Bearer a-token-of-twenty-four-chars") == "web:token"
