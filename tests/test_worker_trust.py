"""What a worker process runs, and refuses to run: real Redis, real worker processes, beat's
own claim and send (in-process), the `drumline` CLI, SQLite and PostgreSQL.

Every test waits for the worker's own "Task ...[id] succeeded" line of each message it sent,
so "nothing ran" is checked after the worker handled the message, not after a guessed sleep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER, RunProducerPublisher, run_producer_call
from beat.scheduler import ProducerScheduler
from models.claims import BeatClaims
from models.records import ClaimedSlot, ScheduleRecord, WorkflowRecord
from models.schedule_store import ProducerScheduleStore
from models.tables import producer_runs
from models.types import utc_now
from models.workflow_store import WorkflowStore
from tests.databases import table_dump
from tests.e2e import (
    deploy,
    executions,
    journal_producer,
    lifecycle,
    runs_of,
    wait_until,
)
from tests.e2e_producers import read_journal
from tests.processes import CeleryProcess, client_app, running_worker

# Long enough that a claim outlives a worker's start on a busy machine: a message that found
# its claim expired would be skipped as stale, which is not what these tests are about.
LEASE_SECONDS = "60"
HANDLED_WITHIN_S = 60.0
FAR_FUTURE = "9999-12-31T23:59:59+00:00"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.jsonl"


@pytest.fixture
def long_lease_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "DRUMLINE_LEASE_SECONDS": LEASE_SECONDS}


def send(env: Mapping[str, str], task_id: str, kwargs: dict[str, Any]) -> None:
    """Publish a `run_producer` message as anyone who can reach the broker could."""
    app = client_app(env)
    try:
        app.send_task(RUN_PRODUCER, kwargs=kwargs, task_id=task_id, queue=PRODUCERS_QUEUE)
    finally:
        app.close()


def wait_handled(worker: CeleryProcess, task_id: str, times: int = 1) -> None:
    """Wait until the worker finished the task `task_id` `times` times."""
    line = f"{RUN_PRODUCER}[{task_id}] succeeded"
    worker.wait_for_log(line, HANDLED_WITHIN_S)
    if times > 1:
        wait_until(lambda: worker.log().count(line) >= times, HANDLED_WITHIN_S, line)


def make_due(engine: Engine, workflow: str) -> tuple[WorkflowRecord, list[ScheduleRecord]]:
    """Move every producer's next run of `workflow` to a second ago, so beat finds it due."""
    record = WorkflowStore(engine).get(workflow)
    assert record is not None
    store = ProducerScheduleStore(engine)
    due = utc_now() - timedelta(seconds=1)
    for row in store.list(record.id):
        store.set_next_run(row.id, due, now=utc_now())
    return record, store.list(record.id)


def beat_tick(env: Mapping[str, str]) -> None:
    """One tick of beat's own scheduler: it claims the due rows and sends their messages."""
    app = client_app(env)
    scheduler = ProducerScheduler(app=app, lazy=True)
    try:
        scheduler.tick()
    finally:
        scheduler.close()
        app.close()


def beat_send(env: Mapping[str, str], slots: list[ClaimedSlot]) -> None:
    """Send claimed slots with beat's own publisher."""
    app = client_app(env)
    try:
        publisher = RunProducerPublisher(app)
        with app.producer_or_acquire() as producer:
            publisher.declare(producer)
            for slot in slots:
                publisher.publish(producer, slot)
    finally:
        app.close()


def task_id_of(workflow: str, producer: str, slot: datetime) -> str:
    return f"{workflow}.{producer}@{slot.isoformat()}"


def drumline(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "workers.cli.main", *args]
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=90, check=False
    )


@pytest.fixture
def life_worker(long_lease_env: dict[str, str], tmp_path: Path) -> Iterator[CeleryProcess]:
    """A worker for lifecycle tasks only: it runs no producer."""
    with running_worker(long_lease_env, tmp_path, name="life", queues="lifecycle") as worker:
        yield worker


def test_forged_and_replayed_messages_run_nothing_and_write_nothing(
    long_lease_env: dict[str, str],
    engine: Engine,
    journal: Path,
    tmp_path: Path,
    life_worker: CeleryProcess,
) -> None:
    env = long_lease_env
    deploy(env, {"name": "forge", "producers": {"p": journal_producer(journal, interval="1h")}})
    workflow, [row] = make_due(engine, "forge")
    slot = row.next_run_at
    assert slot is not None
    # Beat's claim; its message is sent only after the forgeries were handled.
    [claimed] = BeatClaims(engine).claim_due(
        now=utc_now(), lease=timedelta(seconds=int(LEASE_SECONDS)), limit=10
    )
    base = {"workflow_id": workflow.id, "workflow": "forge", "producer": "p"}
    at_slot = {**base, "scheduled_for": slot.isoformat()}
    later = (slot + timedelta(hours=1)).isoformat()
    forgeries = {
        "no-token": at_slot,
        "unrecorded-trigger": {**at_slot, "trigger_token": "0" * 32},
        "pre-empt": {**base, "scheduled_for": later, "claim_token": claimed.claim_token},
        "far-claim": {**base, "scheduled_for": FAR_FUTURE, "claim_token": claimed.claim_token},
        "far-trigger": {**base, "scheduled_for": FAR_FUTURE, "trigger_token": "0" * 32},
    }
    for name, kwargs in forgeries.items():
        send(env, f"forged-{name}", kwargs)
    before = table_dump(engine)
    with running_worker(env, tmp_path, name="runner", queues="producers") as worker:
        for name in forgeries:
            wait_handled(worker, f"forged-{name}")
        assert read_journal(journal) == []
        assert table_dump(engine) == before

        # Beat's own message for the slot the pre-empting one named too: it runs, once.
        beat_send(env, [claimed])
        wait_handled(worker, task_id_of("forge", "p", slot))
        assert executions(journal) == {("p", slot.isoformat()): 1}
        [run] = runs_of(engine, "forge")
        assert (run.scheduled_for, run.status, run.trigger) == (slot, "succeeded", "schedule")

        # A trigger recorded by `drumline trigger` runs once; the same message again, nothing.
        triggered = drumline(env, "trigger", "forge", "p", "--wait", "--json")
        assert triggered.returncode == 0, triggered.stderr
        outcome = json.loads(triggered.stdout)
        assert (outcome["workflow"], outcome["producer"], outcome["status"]) == (
            "forge",
            "p",
            "succeeded",
        )
        manual = datetime.fromisoformat(outcome["scheduled_for"])
        with engine.connect() as conn:
            token = conn.execute(
                select(producer_runs.c.trigger_token).where(producer_runs.c.trigger == "manual")
            ).scalar_one()
        task_id, kwargs = run_producer_call(workflow.id, "forge", "p", manual, trigger_token=token)
        assert outcome["task_id"] == task_id
        before_replay = table_dump(engine)
        send(env, task_id, kwargs)
        wait_handled(worker, task_id, times=2)
        assert table_dump(engine) == before_replay
    assert executions(journal) == {("p", slot.isoformat()): 1, ("p", manual.isoformat()): 1}
    assert "refused" in worker.log() and "forged or replayed" in worker.log()


def test_messages_queued_before_a_pause_are_skipped_as_paused(
    long_lease_env: dict[str, str],
    engine: Engine,
    journal: Path,
    tmp_path: Path,
    life_worker: CeleryProcess,
) -> None:
    env = long_lease_env
    producers = {f"p{n}": journal_producer(journal, interval="1h") for n in range(5)}
    deploy(env, {"name": "held", "producers": producers})
    workflow, rows = make_due(engine, "held")
    beat_tick(env)  # five slots claimed and sent, none run yet
    claimed = ProducerScheduleStore(engine).list(workflow.id)
    assert all(row.claim_token is not None for row in claimed)
    lifecycle(env, "drumline.pause_workflow", "held")
    with running_worker(env, tmp_path, name="runner", queues="producers") as worker:
        for row in rows:
            assert row.next_run_at is not None
            wait_handled(worker, task_id_of("held", row.producer_name, row.next_run_at))
    assert read_journal(journal) == []
    runs = runs_of(engine, "held")
    assert sorted((r.producer_name, r.scheduled_for) for r in runs) == sorted(
        (row.producer_name, row.next_run_at) for row in rows
    )
    assert {(r.status, r.error, r.trigger) for r in runs} == {("skipped", "paused", "schedule")}
    for row in ProducerScheduleStore(engine).list(workflow.id):
        assert (row.paused, row.claim_token, row.claimed_until) == (True, None, None)
    # A manual trigger of the paused workflow is refused and writes nothing.
    before = table_dump(engine)
    refused = drumline(env, "trigger", "held", "p0", "--json")
    assert refused.returncode == 1
    assert "workflow 'held' is paused, so nothing was triggered" in refused.stderr
    assert "drumline resume held" in refused.stderr
    unknown = drumline(env, "trigger", "held", "nope")
    assert unknown.returncode == 1
    assert "workflow 'held' has no producer 'nope'" in unknown.stderr
    assert table_dump(engine) == before


def test_a_producer_that_swallows_its_time_limit_fails_in_a_worker(
    long_lease_env: dict[str, str],
    engine: Engine,
    journal: Path,
    tmp_path: Path,
    life_worker: CeleryProcess,
) -> None:
    env = long_lease_env
    swallower = {
        "run": "test.journal_swallowing_timeout",
        "params": {"journal": str(journal), "seconds": 2.5},
        "interval": "1h",
        "timeout": "1s",
    }
    deploy(env, {"name": "stubborn", "producers": {"p": swallower}})
    workflow, [row] = make_due(engine, "stubborn")
    assert row.next_run_at is not None
    beat_tick(env)
    with running_worker(env, tmp_path, name="runner", queues="producers") as worker:
        wait_handled(worker, task_id_of("stubborn", "p", row.next_run_at))
    assert executions(journal, "end") == {("p", row.next_run_at.isoformat()): 1}  # it returned
    [run] = runs_of(engine, "stubborn")
    assert (run.status, run.result) == ("failed", None)
    assert "timed out after 1s (the producer caught its time limit and returned" in (
        run.error or ""
    )
    schedule = ProducerScheduleStore(engine).get(workflow.id, "p")
    assert schedule is not None
    assert (schedule.consecutive_failures, schedule.last_status) == (1, "failed")
