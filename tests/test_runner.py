"""The worker run path, in-process, against real SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from models.claims import BeatClaims
from models.plain_json import JsonBounds
from models.run_path import RunPath
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from tests.clock import Clock
from tests.databases import new_workflow, schedule_spec, table_dump
from workers.registry import ProducerContext, ProducerResult, producer
from workers.services.runner import Slot, SlotRunner
from workers.services.time_limit import ProducerTimeoutError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
BOUNDS = JsonBounds(max_depth=8, max_bytes=1024)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@producer("test.record")
def record_producer(context: ProducerContext) -> ProducerResult:
    seen = [*context.state.get("seen", []), context.scheduled_for.isoformat()]
    return ProducerResult(result={"n": len(seen)}, state={"seen": seen})


_during_run: list[Any] = []


@producer("test.during_run")
def during_run_producer(context: ProducerContext) -> None:
    """Runs whatever the test put in `_during_run`, as if it happened while the run was busy."""
    for action in _during_run:
        action()


@producer("test.unserialisable")
def unserialisable_producer(context: ProducerContext) -> Any:
    return object()


@producer("test.list_state")
def list_state_producer(context: ProducerContext) -> ProducerResult:
    return ProducerResult(result=None, state=[1, 2])  # type: ignore[arg-type]


class Harness:
    def __init__(
        self,
        engine: Engine,
        run: str = "demo.counter",
        next_run_at: datetime | None = T0,
        **spec: Any,
    ) -> None:
        self.engine = engine
        self.clock = Clock(T0)
        self.workflow = new_workflow(engine, "prices", {}, now=T0)
        self.schedules = ProducerScheduleStore(engine)
        self.runs = RunStore(engine)
        self.row = self.schedules.upsert(
            schedule_spec(self.workflow.id, run=run, next_run_at=next_run_at, **spec), now=T0
        )
        self.runner = SlotRunner(
            engine,
            lease=LEASE,
            max_timeout=timedelta(seconds=2),
            default_timeout=timedelta(seconds=1),
            clock=self.clock,
            result_bounds=BOUNDS,
            state_bounds=BOUNDS,
        )

    def claim(self) -> Slot:
        [claimed] = BeatClaims(self.engine).claim_due(now=self.clock(), lease=LEASE, limit=1)
        return Slot(
            workflow_id=claimed.workflow_id,
            workflow=claimed.workflow_name,
            producer=claimed.producer_name,
            scheduled_for=claimed.scheduled_for,
            claim_token=claimed.claim_token,
            task_id="task-1",
        )

    def schedule(self) -> Any:
        return self.schedules.get(self.workflow.id, "poll")

    def request_trigger(self, moment: datetime, token: str = "t0ken") -> Slot:
        """Record a trigger request as `drumline trigger` does; its message's slot."""
        assert self.runs.request_trigger(
            workflow_id=self.workflow.id,
            producer_name="poll",
            scheduled_for=moment,
            trigger_token=token,
            task_id="manual-1",
            now=moment,
        )
        return Slot(self.workflow.id, "prices", "poll", moment, None, "manual-1", token)


def test_a_run_commits_next_run_state_and_run_row(engine: Engine) -> None:
    h = Harness(engine)
    h.clock.now = T0 + timedelta(seconds=2)
    summary = h.runner.run(h.claim())
    assert summary["status"] == "succeeded"
    row = h.schedule()
    assert row.next_run_at == T0 + timedelta(seconds=30)
    assert (row.last_status, row.state, row.claim_token) == ("succeeded", {"count": 1}, None)
    [run] = h.runs.list(h.workflow.id)
    assert (run.scheduled_for, run.status, run.result, run.attempt) == (
        T0,
        "succeeded",
        {"count": 1},
        1,
    )
    assert run.finished_at is not None


def test_each_step_of_a_scheduled_run_is_one_statement_on_postgresql(engine: Engine) -> None:
    h = Harness(engine)
    slot = h.claim()
    with driver_statements(engine) as statements:
        assert h.runner.run(slot)["status"] == "succeeded"
    if engine.dialect.name == "postgresql":
        # Start and finish are each one data-modifying CTE, sent in autocommit.
        assert statements == [("WITH", True), ("WITH", True)]
        with engine.connect() as conn:  # and the pooled connection is given back transactional
            assert conn.connection.driver_connection.autocommit is False  # type: ignore[union-attr]
    else:
        # The finish transaction records the slot's ledger entry too.
        start = ["BEGIN", "UPDATE", "INSERT", "COMMIT"]
        finish = ["BEGIN", "UPDATE", "UPDATE", "INSERT", "COMMIT"]
        assert [first for first, _ in statements] == start + finish


@contextmanager
def driver_statements(engine: Engine) -> Iterator[list[tuple[str, bool]]]:
    """Each statement the driver sends on connections checked out meanwhile (the run path
    sends its own on the driver's cursor, past SQLAlchemy's execute events): its first word,
    and whether the connection was in autocommit. PostgreSQL: a recording cursor class;
    SQLite: the driver's trace callback."""
    import psycopg

    sent: list[tuple[str, bool]] = []

    def note(sql: str, autocommit: bool) -> None:
        sent.append((sql.split(None, 1)[0].upper(), autocommit))

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            note(str(query), self.connection.autocommit)
            return super().execute(query, params, **kwargs)

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_connection, psycopg.Connection):
            dbapi_connection.cursor_factory = Recording
        else:
            dbapi_connection.set_trace_callback(lambda sql: note(sql, False))

    def on_checkin(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, psycopg.Connection):
            dbapi_connection.cursor_factory = psycopg.Cursor
        else:
            dbapi_connection.set_trace_callback(None)

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
    try:
        yield sent
    finally:
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "checkin", on_checkin)


def test_a_late_run_skips_to_the_next_slot_on_its_grid(engine: Engine) -> None:
    h = Harness(engine)
    h.clock.now = T0 + timedelta(seconds=95)
    h.runner.run(h.claim())
    assert h.schedule().next_run_at == T0 + timedelta(seconds=120)


def test_state_is_carried_from_run_to_run(engine: Engine) -> None:
    h = Harness(engine, run="test.record")
    for n in range(3):
        h.clock.now = T0 + timedelta(seconds=30 * n)
        h.runner.run(h.claim())
    assert h.schedule().state == {
        "seen": [(T0 + timedelta(seconds=30 * n)).isoformat() for n in range(3)]
    }


def test_a_message_arriving_after_its_lease_runs_nothing(engine: Engine) -> None:
    h = Harness(engine)
    slot = h.claim()
    h.clock.now = T0 + LEASE
    assert h.runner.run(slot)["status"].startswith("skipped: stale")
    assert h.runs.list(h.workflow.id) == []


def test_starting_a_run_renews_its_claim_for_a_whole_lease(engine: Engine) -> None:
    h = Harness(engine, run="test.during_run")
    slot = h.claim()
    h.clock.now = T0 + LEASE / 2
    seen: list[Any] = []
    _during_run[:] = [lambda: seen.append(h.schedule().claimed_until)]
    try:
        h.runner.run(slot)
    finally:
        _during_run.clear()
    assert seen == [T0 + LEASE / 2 + LEASE]


def test_a_stale_token_runs_nothing(engine: Engine) -> None:
    h = Harness(engine)
    slot = h.claim()
    h.clock.now = T0 + LEASE
    fresh = h.claim()  # the lease expired and the slot was claimed again
    assert fresh.claim_token != slot.claim_token
    assert h.runner.run(slot)["status"].startswith("skipped: stale")
    assert h.runs.list(h.workflow.id) == []
    assert h.runner.run(fresh)["status"] == "succeeded"
    assert h.runner.run(fresh)["status"].startswith("skipped: stale")
    assert len(h.runs.list(h.workflow.id)) == 1


def test_a_schedule_change_mid_run_supersedes_the_run(engine: Engine) -> None:
    h = Harness(engine)
    slot = h.claim()
    new_next = T0 + timedelta(minutes=10)

    def redeploy() -> None:
        h.schedules.upsert(
            schedule_spec(
                h.workflow.id, run="test.during_run", schedule_value="10m", next_run_at=new_next
            ),
            now=T0,
        )

    h.schedules.update_config(
        h.workflow.id, "poll", run="test.during_run", params={}, timeout_seconds=None, now=T0
    )
    _during_run[:] = [redeploy]
    try:
        assert h.runner.run(slot)["status"] == "superseded"
    finally:
        _during_run.clear()
    row = h.schedule()
    assert (row.next_run_at, row.schedule_value, row.last_status) == (new_next, "10m", None)
    [run] = h.runs.list(h.workflow.id)
    assert run.status == "superseded"


def test_a_failing_producer_advances_and_counts_failures(engine: Engine) -> None:
    h = Harness(engine, run="demo.fail", params={"message": "exchange down"})
    for n in (1, 2):
        h.clock.now = T0 + timedelta(seconds=30 * (n - 1))
        assert h.runner.run(h.claim())["status"] == "failed"
        row = h.schedule()
        assert row.consecutive_failures == n
        assert row.next_run_at == T0 + timedelta(seconds=30 * n)
    [latest, _] = h.runs.list(h.workflow.id)
    assert latest.status == "failed"
    assert "exchange down" in (latest.error or "")
    h.schedules.update_config(
        h.workflow.id, "poll", run="demo.noop", params={}, timeout_seconds=None, now=T0
    )
    h.clock.now = T0 + timedelta(seconds=60)
    h.runner.run(h.claim())
    assert h.schedule().consecutive_failures == 0


def test_a_producer_past_its_time_limit_fails_and_moves_on(engine: Engine) -> None:
    h = Harness(engine, run="demo.sleep", params={"seconds": 5}, timeout_seconds=0.3)
    summary = h.runner.run(h.claim())
    assert summary["status"] == "failed"
    assert summary["duration_ms"] < 2000
    [run] = h.runs.list(h.workflow.id)
    assert "timed out after 0.3s" in (run.error or "")
    assert h.schedule().next_run_at == T0 + timedelta(seconds=30)


def test_an_unserialisable_result_is_a_failure(engine: Engine) -> None:
    h = Harness(engine, run="test.unserialisable")
    assert h.runner.run(h.claim())["status"] == "failed"
    [run] = h.runs.list(h.workflow.id)
    # Was json.dumps' "not JSON serializable"; now the one plain-JSON check names the path.
    assert "result: a object is not plain JSON" in (run.error or "")


def test_a_state_that_is_not_a_mapping_is_a_failure_and_keeps_the_old_state(
    engine: Engine,
) -> None:
    h = Harness(engine, run="test.list_state")
    assert h.runner.run(h.claim())["status"] == "failed"
    [run] = h.runs.list(h.workflow.id)
    assert "ProducerResult.state must be a dict (a JSON object), not list" in (run.error or "")
    schedule = h.schedule()
    assert schedule.state == {}
    assert schedule.next_run_at == T0 + timedelta(seconds=30)


def test_a_finished_slot_is_not_run_again(engine: Engine) -> None:
    h = Harness(engine)
    slot = h.claim()
    h.runner.run(slot)
    # Force the row back to the finished slot with a live claim, as if a commit had been lost.
    h.schedules.set_next_run(h.row.id, T0, now=T0)
    again = h.claim()
    assert h.runner.run(again)["status"] == "skipped: slot already finished"
    row = h.schedule()
    assert (row.next_run_at, row.claim_token, row.state) == (
        T0 + timedelta(seconds=30),
        None,
        {"count": 1},
    )
    assert len(h.runs.list(h.workflow.id)) == 1


def test_a_retried_message_takes_over_a_slot_whose_worker_died(engine: Engine) -> None:
    h = Harness(engine)
    slot = h.claim()
    RunPath(engine).begin_run(
        workflow_id=h.workflow.id,
        producer_name="poll",
        scheduled_for=T0,
        trigger="schedule",
        task_id="task-1",
        now=T0,
    )
    assert h.runner.run(slot)["status"] == "succeeded"
    [run] = h.runs.list(h.workflow.id)
    assert (run.attempt, run.status) == (2, "succeeded")


def test_a_manual_trigger_keeps_the_next_run(engine: Engine) -> None:
    h = Harness(engine, schedule_type="manual", schedule_value="", next_run_at=None)
    moment = T0 + timedelta(seconds=7)
    slot = h.request_trigger(moment)  # was a message without a token; now a recorded request
    assert h.runner.run(slot)["status"] == "succeeded"
    row = h.schedule()
    assert (row.next_run_at, row.last_status, row.state) == (None, "succeeded", {"count": 1})
    [run] = h.runs.list(h.workflow.id)
    assert (run.trigger, run.scheduled_for) == ("manual", moment)


def test_a_slot_of_a_deleted_producer_is_skipped(engine: Engine) -> None:
    h = Harness(engine)
    slot = h.claim()
    manual = h.request_trigger(T0 + timedelta(seconds=1))  # was a message without a token
    h.schedules.delete(h.workflow.id, "poll")
    assert h.runner.run(slot)["status"].startswith("skipped")
    assert h.runner.run(manual)["status"] == "skipped: producer no longer exists"


def test_a_time_limit_above_the_cap_is_capped(engine: Engine) -> None:
    h = Harness(engine, run="demo.sleep", params={"seconds": 5}, timeout_seconds=100.0)
    summary = h.runner.run(h.claim())
    assert summary["status"] == "failed"
    [run] = h.runs.list(h.workflow.id)
    assert "timed out after 2s" in (run.error or "")


# --- messages are trusted only as far as the database confirms them --------------------------

_tally: list[str] = []


@producer("test.tally")
def tally_producer(context: ProducerContext) -> None:
    """Notes each execution outside the database, so a run that happened cannot hide."""
    _tally.append(context.scheduled_for.isoformat())


def forged(h: Harness, slot: Slot, **changes: Any) -> Slot:
    return dataclasses.replace(slot, **{"task_id": "forged", **changes})


def assert_runs_nothing(h: Harness, slot: Slot, status: str) -> None:
    """The message runs no producer and writes no row."""
    before = table_dump(h.engine)
    _tally.clear()
    assert h.runner.run(slot)["status"].startswith(status)
    assert _tally == []
    assert table_dump(h.engine) == before


def test_a_message_with_no_token_or_both_is_refused(engine: Engine) -> None:
    h = Harness(engine, run="test.tally")
    claimed = h.claim()
    no_token = forged(h, claimed, claim_token=None)
    assert_runs_nothing(h, no_token, "refused: no claim_token or trigger_token")
    both = forged(h, claimed, trigger_token="t0ken")
    assert_runs_nothing(h, both, "refused: both claim_token and trigger_token")


def test_a_claim_token_for_another_slot_cannot_pre_empt_it(engine: Engine) -> None:
    h = Harness(engine, run="test.tally")
    claimed = h.claim()
    stale = "skipped: stale or forged message"
    for moment in (T0 + timedelta(seconds=30), T0 - timedelta(seconds=30), FAR_FUTURE):
        assert_runs_nothing(h, forged(h, claimed, scheduled_for=moment), stale)
    assert_runs_nothing(h, forged(h, claimed, workflow="other"), stale)
    assert_runs_nothing(h, forged(h, claimed, producer="other"), stale)
    # The real message of the claimed slot still runs, once.
    _tally.clear()
    assert h.runner.run(claimed)["status"] == "succeeded"
    assert _tally == [T0.isoformat()]
    # The early message of the next slot is no better once the claim is gone.
    assert_runs_nothing(h, forged(h, claimed, scheduled_for=T0 + timedelta(seconds=30)), stale)


def test_a_trigger_token_nobody_recorded_runs_nothing(engine: Engine) -> None:
    h = Harness(engine, run="test.tally")
    recorded = h.request_trigger(T0 + timedelta(seconds=5))
    unmatched = "skipped: no pending trigger request matches"
    assert_runs_nothing(h, forged(h, recorded, trigger_token="guessed"), unmatched)
    for moment in (T0, FAR_FUTURE):
        assert_runs_nothing(h, forged(h, recorded, scheduled_for=moment), unmatched)
    assert_runs_nothing(h, forged(h, recorded, workflow="other"), unmatched)
    assert_runs_nothing(h, forged(h, recorded, producer="other"), unmatched)
    _tally.clear()
    assert h.runner.run(recorded)["status"] == "succeeded"
    assert _tally == [recorded.scheduled_for.isoformat()]


def test_a_replayed_trigger_runs_nothing(engine: Engine) -> None:
    h = Harness(engine, run="test.tally")
    slot = h.request_trigger(T0 + timedelta(seconds=5))
    assert h.runner.run(slot)["status"] == "succeeded"
    assert_runs_nothing(h, slot, "skipped: no pending trigger request matches")
    [run] = h.runs.list(h.workflow.id)
    assert (run.status, run.trigger, run.attempt) == ("succeeded", "manual", 1)


# --- paused means paused -----------------------------------------------------------------------


def test_a_claimed_slot_of_a_paused_producer_is_skipped_and_released(engine: Engine) -> None:
    h = Harness(engine, run="test.tally")
    slot = h.claim()
    h.schedules.set_paused(h.workflow.id, True, now=T0)
    _tally.clear()
    h.clock.now = T0 + timedelta(seconds=1)
    assert h.runner.run(slot)["status"] == "skipped: paused"
    assert _tally == []
    [run] = h.runs.list(h.workflow.id)
    assert (run.status, run.error, run.scheduled_for) == ("skipped", "paused", T0)
    assert run.finished_at == T0 + timedelta(seconds=1)
    row = h.schedule()
    # The claim is released; the next run stays for resume to move past the pause.
    assert (row.claim_token, row.claimed_until, row.next_run_at) == (None, None, T0)
    assert (row.last_status, row.consecutive_failures) == (None, 0)
    assert_runs_nothing(h, slot, "skipped: stale or forged message")


def test_a_paused_producer_that_died_running_is_taken_over_as_skipped(engine: Engine) -> None:
    h = Harness(engine, run="test.tally")
    slot = h.claim()
    RunPath(engine).begin_run(
        workflow_id=h.workflow.id,
        producer_name="poll",
        scheduled_for=T0,
        trigger="schedule",
        task_id="task-1",
        now=T0,
    )
    h.schedules.set_paused(h.workflow.id, True, now=T0)
    assert h.runner.run(slot)["status"] == "skipped: paused"
    [run] = h.runs.list(h.workflow.id)
    assert (run.status, run.error, run.attempt) == ("skipped", "paused", 2)


def test_a_trigger_request_of_a_paused_producer_is_skipped(engine: Engine) -> None:
    h = Harness(engine, run="test.tally")
    slot = h.request_trigger(T0 + timedelta(seconds=5))
    h.schedules.set_paused(h.workflow.id, True, now=T0)
    _tally.clear()
    assert h.runner.run(slot)["status"] == "skipped: paused"
    assert _tally == []
    [run] = h.runs.list(h.workflow.id)
    assert (run.status, run.error, run.trigger) == ("skipped", "paused", "manual")
    assert_runs_nothing(h, slot, "skipped: no pending trigger request matches")


# --- time limits a producer cannot swallow -----------------------------------------------------


@producer("test.swallow_timeout")
def swallow_timeout_producer(context: ProducerContext) -> ProducerResult:
    """Catches its time limit every time until `params.seconds` have passed, then returns."""
    end = time.monotonic() + float(context.params["seconds"])
    caught = 0
    while time.monotonic() < end:
        try:
            time.sleep(max(0.0, end - time.monotonic()))
        except ProducerTimeoutError:
            caught += 1
    return ProducerResult(result={"caught": caught}, state={"caught": caught})


@producer("test.catch_once")
def catch_once_producer(context: ProducerContext) -> str:
    """Catches its time limit once, then starts a clean-up that would take 30 s."""
    try:
        time.sleep(30)
    except ProducerTimeoutError:
        time.sleep(30)
    return "done"


def test_a_producer_that_swallows_its_time_limit_is_recorded_timed_out(engine: Engine) -> None:
    h = Harness(engine, run="test.swallow_timeout", params={"seconds": 0.8}, timeout_seconds=0.3)
    summary = h.runner.run(h.claim())
    assert summary["status"] == "failed"
    [run] = h.runs.list(h.workflow.id)
    assert run.status == "failed" and run.result is None
    assert "timed out after 0.3s (the producer caught its time limit and returned" in (
        run.error or ""
    )
    row = h.schedule()
    assert (row.consecutive_failures, row.last_status, row.state) == (1, "failed", {})
    assert row.next_run_at == T0 + timedelta(seconds=30)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no alarm left behind


def test_a_producer_that_catches_its_time_limit_once_is_interrupted_again(
    engine: Engine,
) -> None:
    h = Harness(engine, run="test.catch_once", timeout_seconds=0.3)
    again_every = h.runner.again_every
    summary = h.runner.run(h.claim())
    assert summary["status"] == "failed"
    # Stopped by the re-armed alarm, not after its 30 s clean-up (nor Celery's hard limit).
    assert summary["duration_ms"] < (0.3 + again_every + 1.0) * 1000
    [run] = h.runs.list(h.workflow.id)
    assert "ProducerTimeoutError: timed out after 0.3s" in (run.error or "")
    assert h.schedule().consecutive_failures == 1
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


# --- result and state limits -------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


_OUTPUTS: dict[str, ProducerResult] = {
    "big result": ProducerResult(result="x" * 2000),
    "big state": ProducerResult(result=None, state={"blob": "x" * 2000}),
    "deep result": ProducerResult(result=_nested(20)),
    "deep state": ProducerResult(result=None, state={"deep": _nested(20)}),
    "nan result": ProducerResult(result={"price": float("nan")}),
    "set state": ProducerResult(result=None, state={"seen": {1, 2}}),
    "datetime result": ProducerResult(result={"at": T0}),
    "ok": ProducerResult(result={"fine": True}, state={"cursor": 7}),
}


@producer("test.output")
def output_producer(context: ProducerContext) -> ProducerResult:
    """Returns the output `params.kind` names from _OUTPUTS."""
    return _OUTPUTS[str(context.params["kind"])]


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("big result", "result: larger than 1024 bytes as JSON"),
        ("big state", "state.blob: larger than 1024 bytes as JSON"),
        ("deep result", "nested deeper than 8 levels"),
        ("deep state", "state.deep" + "[0]" * 8 + ": nested deeper than 8 levels"),
        ("nan result", "result.price: nan is not a JSON number"),
        ("set state", "state.seen: a set is not plain JSON"),
        ("datetime result", "result.at: a datetime is not plain JSON"),
    ],
)
def test_a_result_or_state_over_its_limits_fails_and_stores_nothing(
    engine: Engine, kind: str, problem: str
) -> None:
    h = Harness(engine, run="test.output", params={"kind": "ok"})
    assert h.runner.run(h.claim())["status"] == "succeeded"
    h.schedules.update_config(
        h.workflow.id,
        "poll",
        run="test.output",
        params={"kind": kind},
        timeout_seconds=None,
        now=T0,
    )
    h.clock.now = T0 + timedelta(seconds=30)
    summary = h.runner.run(h.claim())
    assert (summary["status"], summary["result"]) == ("failed", None)
    latest = h.runs.list(h.workflow.id)[0]
    assert (latest.status, latest.result) == ("failed", None)
    assert latest.error is not None
    assert "the producer's output was not stored" in latest.error
    assert problem in latest.error
    assert kind.split()[1] in latest.error  # names the result or the state
    row = h.schedule()
    assert (row.state, row.consecutive_failures) == ({"cursor": 7}, 1)
    assert row.next_run_at == T0 + timedelta(seconds=60)


# --- the run task's runner, kept per process ---------------------------------------------------


def _run_task(slot: Slot) -> str:
    """The slot as `drumline.run_producer` runs it in a pool process (eagerly, in this one):
    the status it returns."""
    from workers.tasks import run_tasks

    kwargs = {
        "workflow_id": slot.workflow_id,
        "workflow": slot.workflow,
        "producer": slot.producer,
        "scheduled_for": slot.scheduled_for.isoformat(),
        "claim_token": slot.claim_token,
    }
    status: str = run_tasks.run_producer.apply(kwargs=kwargs, task_id="t").get()
    return status


@pytest.fixture
def process_runner(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Engine], Clock]:
    """A fresh per-process runner cache whose process engine is the list's only item (a test
    swaps it, as `resources.reset()` after a fork does), and the clock its runners read."""
    from workers.tasks import run_tasks
    from workers.tasks.resources import resources

    engines = [engine]
    clock = Clock(T0)
    monkeypatch.setattr(run_tasks, "_runners", run_tasks._ProcessRunner())
    monkeypatch.setattr(resources, "engine", lambda _url: engines[0])
    monkeypatch.setattr(run_tasks, "utc_now", clock)
    return engines, clock


def test_the_run_task_builds_its_runner_once_per_process_engine(
    engine: Engine, process_runner: tuple[list[Engine], Clock]
) -> None:
    from models.db import make_engine
    from workers.tasks import run_tasks

    first = run_tasks._runners.current()
    assert run_tasks._runners.current() is first
    assert first.run_path.engine is engine
    process_runner[0][0] = after_fork = make_engine("sqlite://")
    try:
        rebuilt = run_tasks._runners.current()
        assert rebuilt is not first and rebuilt.run_path.engine is after_fork
    finally:
        after_fork.dispose()


def test_a_schedule_change_between_two_runs_of_one_process_runner_still_fences(
    engine: Engine, process_runner: tuple[list[Engine], Clock]
) -> None:
    from workers.tasks import run_tasks

    _engines, clock = process_runner
    h = Harness(engine)
    clock.now = h.clock.now = T0 + timedelta(seconds=2)
    assert _run_task(h.claim()) == "succeeded"
    runner = run_tasks._runners.current()
    clock.now = h.clock.now = T0 + timedelta(seconds=31)
    second = h.claim()
    new_next = T0 + timedelta(minutes=10)
    h.schedules.upsert(
        schedule_spec(h.workflow.id, schedule_value="10m", next_run_at=new_next), now=T0
    )
    assert _run_task(second).startswith("skipped: stale")
    assert run_tasks._runners.current() is runner  # the same runner refused it
    row = h.schedule()
    assert (row.next_run_at, row.schedule_value, row.claim_token) == (new_next, "10m", None)
    assert [run.scheduled_for for run in h.runs.list(h.workflow.id)] == [T0]
