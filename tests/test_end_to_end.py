"""drumline end to end: real Redis, real worker and beat processes, SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from models.schedule_store import ProducerScheduleStore
from models.types import utc_now
from models.workflow_store import WorkflowStore
from tests.crashing_beat import crashing_beat_args
from tests.e2e import (
    deploy,
    executions,
    journal_producer,
    lifecycle,
    runs_of,
    wait_until,
)
from tests.processes import CeleryProcess, running_beat, running_worker
from workers.local.celery_argv import worker_argv
from workers.local.redis_server import RedisServer


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.jsonl"


SQLITE_ONLY = pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)


def drain(engine: Engine, workflow: str, timeout: float = 15) -> None:
    """Wait until no run of the workflow is still running."""
    wait_until(
        lambda: all(run.status != "running" for run in runs_of(engine, workflow)),
        timeout,
        "runs in flight to finish",
    )


def test_producers_run_once_per_slot_on_their_schedules(
    env: dict[str, str], engine: Engine, journal: Path, tmp_path: Path
) -> None:
    definition = {
        "name": "e2e",
        "producers": {
            "every-1s": journal_producer(journal, interval="1s"),
            "every-2s": journal_producer(journal, interval="2s"),
            "cron-3s": journal_producer(journal, cron="*/3 * * * * *"),
        },
    }
    with running_worker(env, tmp_path), running_beat(env, tmp_path):
        deploy(env, definition)
        workflow = WorkflowStore(engine).get("e2e")
        assert workflow is not None
        first = {
            s.producer_name: s.next_run_at for s in ProducerScheduleStore(engine).list(workflow.id)
        }
        time.sleep(12)
        stop = utc_now()
    runs = runs_of(engine, "e2e")
    every = {
        "every-1s": timedelta(seconds=1),
        "every-2s": timedelta(seconds=2),
        "cron-3s": timedelta(seconds=3),
    }
    for producer, step in every.items():
        slots = [
            r.scheduled_for for r in runs if r.producer_name == producer and r.status == "succeeded"
        ]
        start = first[producer]
        assert start is not None
        expected = int((stop - start) / step) + 1
        assert abs(len(slots) - expected) <= 1, (producer, len(slots), expected)
        assert slots == sorted(set(slots)), f"{producer}: slots not strictly increasing"
        assert all(b - a == step for a, b in itertools.pairwise(slots)), producer
    started = executions(journal)
    assert started and max(started.values()) == 1, "a slot executed twice"
    assert all(run.attempt == 1 for run in runs)


def test_two_beats_never_send_a_slot_twice(
    env: dict[str, str], engine: Engine, journal: Path, tmp_path: Path
) -> None:
    producers = {f"p{n:02d}": journal_producer(journal, interval="1s") for n in range(20)}
    with (
        running_worker(env, tmp_path, concurrency=4),
        running_beat(env, tmp_path, name="beat1"),
        running_beat(env, tmp_path, name="beat2"),
    ):
        deploy(env, {"name": "twins", "producers": producers})
        time.sleep(15)
    drain(engine, "twins")
    started = executions(journal)
    assert sum(started.values()) >= 20 * 10, "far fewer runs than slots"
    assert max(started.values()) == 1, [k for k, v in started.items() if v > 1][:5]
    assert all(run.attempt == 1 for run in runs_of(engine, "twins"))


def test_a_slot_of_a_killed_worker_is_sent_again_and_committed_once(
    env: dict[str, str], engine: Engine, journal: Path, tmp_path: Path
) -> None:
    definition = {
        "name": "crash",
        "producers": {"slow": journal_producer(journal, seconds=3, cron="*/10 * * * * *")},
    }
    # running_worker stops the victim in a `finally`, should the test fail before the kill.
    with (
        running_beat(env, tmp_path),
        running_worker(env, tmp_path, name="victim", concurrency=1) as victim,
    ):
        deploy(env, definition)
        wait_until(lambda: bool(executions(journal)), 15, "the first run to start")
        [(producer, slot)] = executions(journal).keys()
        victim.kill()
        with running_worker(env, tmp_path, name="rescuer"):
            wait_until(lambda: executions(journal, "end")[(producer, slot)] == 1, 25, "the re-run")
            # The first message comes back once the visibility timeout (2 x lease) passes.
            time.sleep(8)
    [run] = [r for r in runs_of(engine, "crash") if r.scheduled_for.isoformat() == slot]
    assert (run.status, run.attempt) == ("succeeded", 2)
    assert executions(journal)[(producer, slot)] == 2  # the killed attempt and the re-run
    assert executions(journal, "end")[(producer, slot)] == 1


@POSTGRES_ONLY
def test_a_beat_killed_between_claim_and_send_loses_nothing(
    env: dict[str, str], engine: Engine, journal: Path, tmp_path: Path
) -> None:
    # catchup: all, so that the lost slot itself runs once its lease is over (by default the
    # latest due slot would run, the lost one coalesced into it).
    producer = journal_producer(journal, interval="1s") | {"catchup": "all"}
    definition = {"name": "beatcrash", "producers": {"p": producer}}
    with running_worker(env, tmp_path):
        deploy(env, definition)
        doomed = CeleryProcess(
            crashing_beat_args(tmp_path, "doomed"),
            env,
            tmp_path / "doomed.log",
        ).start()
        try:
            assert doomed.process is not None
            doomed.process.wait(20)
            assert doomed.process.returncode == -9, doomed.log()[-3000:]
        finally:
            doomed.stop()
        workflow = WorkflowStore(engine).get("beatcrash")
        assert workflow is not None
        [row] = ProducerScheduleStore(engine).list(workflow.id)
        assert row.claim_token is not None and row.claimed_until is not None
        lost_slot = row.next_run_at
        with running_beat(env, tmp_path):
            wait_until(
                lambda: any(
                    r.scheduled_for == lost_slot and r.status == "succeeded"
                    for r in runs_of(engine, "beatcrash")
                ),
                20,
                "the claimed slot to be sent after its lease",
            )
    [run] = [r for r in runs_of(engine, "beatcrash") if r.scheduled_for == lost_slot]
    assert run.started_at >= row.claimed_until
    assert lost_slot is not None  # a claimed row always has its slot
    assert executions(journal)[("p", lost_slot.isoformat())] == 1


@POSTGRES_ONLY
def test_a_redeploy_mid_run_supersedes_it_and_the_new_schedule_stands(
    env: dict[str, str], engine: Engine, journal: Path, tmp_path: Path
) -> None:
    old = {
        "name": "change",
        "producers": {"p": journal_producer(journal, seconds=2.5, interval="1s")},
    }
    new = {
        "name": "change",
        "producers": {"p": journal_producer(journal, seconds=2.5, interval="1h")},
    }
    with running_worker(env, tmp_path), running_beat(env, tmp_path):
        deploy(env, old)
        wait_until(lambda: bool(executions(journal)), 15, "a run to start")
        summary = deploy(env, new)
        assert summary["changed"] == ["p"]
        workflow = WorkflowStore(engine).get("change")
        assert workflow is not None
        new_next = ProducerScheduleStore(engine).get(workflow.id, "p").next_run_at  # type: ignore[union-attr]
        drain(engine, "change")
    statuses = Counter(run.status for run in runs_of(engine, "change"))
    assert statuses["superseded"] == 1
    row = ProducerScheduleStore(engine).get(workflow.id, "p")
    assert row is not None
    assert (row.next_run_at, row.schedule_value) == (new_next, "1h")
    assert new_next is not None and new_next > utc_now() + timedelta(minutes=50)


@SQLITE_ONLY
def test_pause_sends_nothing_and_resume_does_not_burst(
    env: dict[str, str], engine: Engine, journal: Path, tmp_path: Path
) -> None:
    definition = {"name": "pausing", "producers": {"p": journal_producer(journal, interval="1s")}}
    with running_worker(env, tmp_path), running_beat(env, tmp_path):
        deploy(env, definition)
        time.sleep(3)
        lifecycle(env, "drumline.pause_workflow", "pausing")
        paused_at = utc_now()
        time.sleep(4)
        resumed_at = utc_now()
        lifecycle(env, "drumline.resume_workflow", "pausing")
        time.sleep(3)
        stop = utc_now()
    slots = [r.scheduled_for for r in runs_of(engine, "pausing")]
    during = [s for s in slots if paused_at + timedelta(seconds=1) < s < resumed_at]
    assert during == []
    after = [s for s in slots if s >= resumed_at]
    assert 1 <= len(after) <= int((stop - resumed_at).total_seconds()) + 1


@SQLITE_ONLY
def test_a_failing_producer_keeps_its_error_and_moves_on(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    failing = {
        "name": "failing",
        "producers": {
            "p": {"run": "demo.fail", "interval": "1s", "params": {"message": "exchange down"}}
        },
    }
    with running_worker(env, tmp_path), running_beat(env, tmp_path):
        deploy(env, failing)
        workflow = WorkflowStore(engine).get("failing")
        assert workflow is not None
        schedules = ProducerScheduleStore(engine)
        wait_until(
            lambda: schedules.get(workflow.id, "p").consecutive_failures >= 3,  # type: ignore[union-attr]
            15,
            "three failures",
        )
        row = schedules.get(workflow.id, "p")
        assert row is not None and row.next_run_at is not None
        assert row.last_status == "failed" and row.next_run_at > utc_now() - timedelta(seconds=2)
        deploy(env, {"name": "failing", "producers": {"p": {"run": "demo.noop", "interval": "1s"}}})
        wait_until(
            lambda: schedules.get(workflow.id, "p").consecutive_failures == 0,  # type: ignore[union-attr]
            15,
            "the failure count to reset after a success",
        )
    failed = [r for r in runs_of(engine, "failing") if r.status == "failed"]
    assert len(failed) >= 3
    assert all("exchange down" in (r.error or "") for r in failed)


@SQLITE_ONLY
def test_a_static_beat_schedule_entry_still_fires(
    env: dict[str, str], engine: Engine, journal: Path, tmp_path: Path, redis_url: str
) -> None:
    env = {**env, "DRUMLINE_CELERY_CONFIG_MODULE": "tests.static_beat_config"}
    definition = {"name": "mixed", "producers": {"p": journal_producer(journal, interval="1s")}}
    with running_worker(env, tmp_path), running_beat(env, tmp_path):
        deploy(env, definition)
        time.sleep(4)
    client = redis.Redis.from_url(redis_url)
    assert client.llen("static-test") >= 4
    assert len(runs_of(engine, "mixed")) >= 2


@POSTGRES_ONLY
def test_runs_resume_after_a_redis_restart_and_no_slot_is_lost(
    drumline_env: dict[str, str], engine: Engine, journal: Path, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "own-redis", appendonly=True).start()
    env = {
        **drumline_env,
        "DRUMLINE_BROKER_URL": server.url,
        "DRUMLINE_PRODUCER_MODULES": "tests.e2e_producers",
    }
    producers = {f"p{n}": journal_producer(journal, interval="1s") for n in range(3)}
    worker = CeleryProcess(worker_argv("w1", peers=False), env, tmp_path / "worker-w1.log").start()
    try:
        worker.wait_for_log("ready.")
        with running_beat(env, tmp_path):
            deploy(env, {"name": "outage", "producers": producers})
            time.sleep(4)
            server.stop()
            time.sleep(3)
            server = RedisServer(
                server.data_dir, port=server.port, password=server.password, appendonly=True
            ).start()
            back = utc_now()
            time.sleep(1)
            assert worker.process is not None
            if worker.process.poll() is not None:
                # kombu 5.7 can die with "Unrecoverable error" when Redis vanishes mid-ack;
                # in production the process supervisor (compose `restart:`) starts it again.
                worker = CeleryProcess(
                    worker_argv("w1b", peers=False), env, tmp_path / "worker-w1b.log"
                )
                worker.start().wait_for_log("ready.")

            def resumed() -> bool:
                runs = runs_of(engine, "outage")
                return all(
                    sum(
                        r.scheduled_for > back and r.status == "succeeded"
                        for r in runs
                        if r.producer_name == name
                    )
                    >= 3
                    for name in producers
                )

            # A message delivered just before the outage may wait out the visibility timeout
            # (2 x lease) before Redis hands it out again; its slot is late, never lost.
            wait_until(resumed, 45, "every producer to run again after the restart")
        drain(engine, "outage")
    finally:
        worker.stop()
        server.stop()
    runs = runs_of(engine, "outage")
    for name in producers:
        after = [r for r in runs if r.producer_name == name and r.scheduled_for > back]
        assert len(after) >= 3, f"{name}: only {len(after)} runs after Redis came back"
    assert all(run.status in ("succeeded", "superseded") for run in runs)
    workflow = WorkflowStore(engine).get("outage")
    assert workflow is not None
    for row in ProducerScheduleStore(engine).list(workflow.id):
        # Not stuck: every schedule moved on past the outage.
        assert row.next_run_at is not None and row.next_run_at > back
    assert max(executions(journal).values()) == 1
