"""The beat scheduler against real Redis and real SQLite and PostgreSQL; no worker needed.

Most tests call `ProducerScheduler.tick()` in-process and read the task messages that land in
Redis (kombu's Redis transport keeps each queue as a list of JSON messages).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine, event, insert, text, update

from beat.metrics_files import metric_files
from beat.scheduler import ProducerScheduler
from models.claims import BeatClaims
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.tables import producer_schedules
from models.types import utc_now
from tests.crashing_beat import crashing_beat_args
from tests.databases import new_workflow, schedule_spec
from tests.processes import CeleryProcess, client_app, running_beat
from workers.local.redis_server import RedisServer, free_port

LEASE = timedelta(seconds=6)  # DRUMLINE_LEASE_SECONDS in the drumline_env fixture
MAX_INTERVAL_S = 0.5  # DRUMLINE_BEAT_MAX_INTERVAL_SECONDS in the drumline_env fixture


@dataclass(frozen=True)
class Message:
    task: str
    id: str
    kwargs: dict[str, Any]
    expires: datetime | None
    ignore_result: bool


def queued(client: redis.Redis, queue: str = "producers") -> list[Message]:
    """The task messages waiting in `queue`, oldest first."""
    messages = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        assert envelope["content-type"] == "application/json"
        _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        headers = envelope["headers"]
        expires = datetime.fromisoformat(headers["expires"]) if headers["expires"] else None
        messages.append(
            Message(headers["task"], headers["id"], kwargs, expires, headers["ignore_result"])
        )
    return messages


def queued_at(url: str) -> list[Message]:
    with redis.Redis.from_url(url) as client:
        return queued(client)


def add_workflow(
    engine: Engine, name: str, next_runs: Mapping[str, datetime | None], paused: bool = False
) -> int:
    """A workflow with one interval producer per entry of `next_runs`."""
    now = utc_now()
    workflow_id = new_workflow(engine, name, {"name": name}, now=now).id
    store = ProducerScheduleStore(engine)
    for producer, next_run_at in next_runs.items():
        store.upsert(
            schedule_spec(workflow_id, producer, next_run_at=next_run_at, paused=paused), now=now
        )
    return workflow_id


@contextmanager
def scheduler_for(
    env: Mapping[str, str], *, lazy: bool = True, **conf: Any
) -> Iterator[ProducerScheduler]:
    """A scheduler on an app configured like `celery -A workers.app beat` with `env`."""
    app = client_app(env)
    app.conf.update(conf)
    scheduler = ProducerScheduler(app=app, lazy=lazy)
    try:
        yield scheduler
    finally:
        scheduler.close()
        app.close()


@pytest.fixture
def scheduler(drumline_env: dict[str, str]) -> Iterator[ProducerScheduler]:
    with scheduler_for(drumline_env) as scheduler:
        yield scheduler


def run_beat_loop(scheduler: ProducerScheduler, seconds: float) -> None:
    """Tick and sleep as `celery beat` does, for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(scheduler.tick(), max(0.0, deadline - time.monotonic())))


# --- dispatch ----------------------------------------------------------------------------------


def test_due_slots_are_sent_once_as_run_producer_tasks(
    scheduler: ProducerScheduler,
    engine: Engine,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = utc_now()
    due = {"a": now - timedelta(seconds=2), "b": now - timedelta(seconds=1)}
    workflow_id = add_workflow(engine, "prices", {**due, "later": now + timedelta(hours=1)})
    add_workflow(engine, "held", {"p": now - timedelta(seconds=3)}, paused=True)

    with caplog.at_level(logging.DEBUG, logger="drumline.beat"):
        scheduler.tick()

    messages = queued(redis_client)
    rows = {row.producer_name: row for row in ProducerScheduleStore(engine).list(workflow_id)}
    assert [m.kwargs["producer"] for m in messages] == ["a", "b"]
    for message in messages:
        row = rows[message.kwargs["producer"]]
        slot = row.next_run_at.isoformat()  # type: ignore[union-attr]
        assert message.task == "drumline.run_producer"
        assert message.id == f"prices.{row.producer_name}@{slot}"
        assert message.kwargs == {
            "workflow_id": workflow_id,
            "workflow": "prices",
            "producer": row.producer_name,
            "scheduled_for": slot,
            "claim_token": row.claim_token,
        }
        assert message.expires == row.claimed_until
        assert row.claimed_until is not None
        assert now + LEASE <= row.claimed_until <= utc_now() + LEASE
    assert rows["later"].claim_token is None
    assert "beat: sent 2 producer runs, worst lateness" in caplog.text
    assert f"beat: sent prices.a@{rows['a'].next_run_at.isoformat()}" in caplog.text  # type: ignore[union-attr]
    assert all(m.ignore_result for m in messages), "beat must not subscribe to results"

    scheduler.tick()
    assert len(queued(redis_client)) == 2, "a claimed slot was sent again"


def beat_counter(env: Mapping[str, str], name: str) -> float:
    """A counter of the beat in this process, summed from its metrics files."""
    files = metric_files(Path(env["DRUMLINE_DATA_DIR"]) / "metrics")
    merged = MultiProcessCollector.merge([str(f) for f in files], accumulate=True)
    return float(sum(s.value for m in merged for s in m.samples if s.name == name))


def test_a_slot_whose_lease_ran_out_is_sent_again_and_counted(
    drumline_env: dict[str, str],
    scheduler: ProducerScheduler,
    engine: Engine,
    redis_client: redis.Redis,
) -> None:
    now = utc_now()
    add_workflow(engine, "lost", {"a": now - timedelta(seconds=1), "b": now})
    scheduler.tick()
    assert [m.kwargs["producer"] for m in queued(redis_client)] == ["a", "b"]
    # "a"'s message is never run and its lease runs out.
    with engine.begin() as conn:
        conn.execute(
            update(producer_schedules)
            .where(producer_schedules.c.producer_name == "a")
            .values(claimed_until=now)
        )
    scheduler.tick()
    resent = queued(redis_client)[2:]
    assert [m.kwargs["producer"] for m in resent] == ["a"]
    assert beat_counter(drumline_env, "drumline_beat_slots_claimed_total") == 3
    assert beat_counter(drumline_env, "drumline_beat_expired_leases_resent_total") == 1


def test_a_backlog_drains_one_full_batch_per_tick_without_sleeping(
    drumline_env: dict[str, str], engine: Engine, redis_client: redis.Redis
) -> None:
    start = utc_now() - timedelta(minutes=1)
    add_workflow(engine, "backlog", {f"p{i:02}": start + timedelta(seconds=i) for i in range(15)})
    with scheduler_for({**drumline_env, "DRUMLINE_BEAT_BATCH": "5"}) as scheduler:
        delays, sent = [], []
        for _ in range(4):
            delays.append(scheduler.tick())
            sent.append(len(queued(redis_client)))
    assert delays[:3] == [0, 0, 0]
    assert delays[3] > 0
    assert sent == [5, 10, 15, 15]
    assert [m.kwargs["producer"] for m in queued(redis_client)] == [f"p{i:02}" for i in range(15)]


def test_a_tick_sends_its_slots_before_claiming_trigger_requests_even_in_a_backlog(
    drumline_env: dict[str, str], engine: Engine, redis_client: redis.Redis
) -> None:
    # Slots are the hot path: the trigger claim's round trip comes after their publish, and a
    # full batch (a backlog, delay 0) still sends the requests that are due.
    start = utc_now() - timedelta(minutes=1)
    workflow_id = add_workflow(engine, "mixed", {"p0": start, "p1": start + timedelta(seconds=1)})
    RunStore(engine).request_trigger(
        workflow_id=workflow_id,
        producer_name="p1",
        scheduled_for=start + timedelta(seconds=30),
        trigger_token="asked",
        task_id="mixed.p1@asked",
        now=start,
    )
    with scheduler_for({**drumline_env, "DRUMLINE_BEAT_BATCH": "1"}) as scheduler:
        assert scheduler.tick() == 0
        sent = [(m.kwargs["producer"], m.kwargs.get("trigger_token")) for m in queued(redis_client)]
        assert sent == [("p0", None), ("p1", "asked")]
        scheduler.tick()
    assert [m.kwargs["producer"] for m in queued(redis_client)] == ["p0", "p1", "p1"]
    assert "trigger_token" not in queued(redis_client)[2].kwargs, "the request was sent twice"


def test_an_idle_tick_sleeps_until_the_earliest_next_run_or_lease_end(
    drumline_env: dict[str, str], engine: Engine
) -> None:
    # Offsets of tens of seconds, so a stall of a few seconds on a loaded machine cannot make a
    # slot due or a lease expire between the setup and the tick that is measured.
    with scheduler_for({**drumline_env, "DRUMLINE_BEAT_MAX_INTERVAL_SECONDS": "120"}) as scheduler:
        assert scheduler.tick() == 120  # nothing scheduled at all
        workflow_id = add_workflow(engine, "far", {"p": utc_now() + timedelta(hours=1)})
        assert scheduler.tick() == 120

        add_workflow(engine, "soon", {"p": utc_now() + timedelta(seconds=60)})
        add_workflow(engine, "sooner-paused", {"p": utc_now()}, paused=True)
        assert 50 < scheduler.tick() <= 60

        store = ProducerScheduleStore(engine)
        [far] = store.list(workflow_id)
        store.set_next_run(far.id, utc_now(), now=utc_now())
        [claimed] = BeatClaims(engine).claim_due(
            now=utc_now(), lease=timedelta(seconds=30), limit=5
        )
        assert claimed.workflow_name == "far"
        assert 20 < scheduler.tick() <= 30, "a live claim's expiry must wake beat"


def test_a_due_slot_is_sent_at_its_time_not_at_the_next_poll(
    drumline_env: dict[str, str], engine: Engine, redis_client: redis.Redis
) -> None:
    max_interval_s = 5.0
    env = {**drumline_env, "DRUMLINE_BEAT_MAX_INTERVAL_SECONDS": str(max_interval_s)}
    with scheduler_for(env) as scheduler:
        next_run = utc_now() + timedelta(seconds=0.3)
        add_workflow(engine, "punctual", {"p": next_run})
        deadline = time.monotonic() + 2 * max_interval_s
        while time.monotonic() < deadline:
            delay = scheduler.tick()
            if queued(redis_client):
                break
            time.sleep(delay)
    lateness = utc_now() - next_run
    assert len(queued(redis_client)) == 1
    # Beat sleeps until the next run, not for its 5 s max interval. The wide margin absorbs a
    # loaded CI machine; lateness itself is measured by bench/, not asserted here.
    assert timedelta(0) <= lateness < timedelta(seconds=max_interval_s / 2)


def test_static_beat_schedule_entries_still_fire_beside_producers(
    drumline_env: dict[str, str], engine: Engine, redis_client: redis.Redis
) -> None:
    static = {"ping": {"task": "tests.ping", "schedule": 0.2, "options": {"queue": "static"}}}
    with scheduler_for(drumline_env, lazy=False, beat_schedule=static) as scheduler:
        assert scheduler.tick() <= 0.2, "the next static entry must bound the sleep"
        add_workflow(engine, "mixed", {"p": utc_now() + timedelta(seconds=0.1)})
        run_beat_loop(scheduler, 1.5)
    pings = queued(redis_client, "static")
    assert len(pings) >= 3
    assert {m.task for m in pings} == {"tests.ping"}
    assert [m.kwargs["producer"] for m in queued(redis_client)] == ["p"]


# --- outages -----------------------------------------------------------------------------------


def test_a_broker_outage_releases_the_claims_and_beat_recovers(
    drumline_env: dict[str, str],
    engine: Engine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, password = free_port(), "broker-secret"
    broker = RedisServer(tmp_path / "broker", port=port, password=password, appendonly=False)
    env = {**drumline_env, "DRUMLINE_BROKER_URL": broker.url}
    with broker, scheduler_for(env) as scheduler:
        add_workflow(engine, "before", {"p": utc_now()})
        scheduler.tick()
        assert len(queued_at(broker.url)) == 1
        broker.stop()

        workflow_id = add_workflow(engine, "during", {"p": utc_now()})
        assert 0 < scheduler.tick() <= MAX_INTERVAL_S
        assert 0 < scheduler.tick() <= MAX_INTERVAL_S  # backing off: no second attempt yet
        [row] = ProducerScheduleStore(engine).list(workflow_id)
        assert (row.claim_token, row.claimed_until) == (None, None), "claims not released"
        assert caplog.text.count("cannot dispatch producer runs") == 1
        assert "retrying in 0.5s" in caplog.text
        assert "released 1 unsent claims" in caplog.text

        back = RedisServer(tmp_path / "back", port=port, password=password, appendonly=False)
        with back:
            time.sleep(scheduler.backoff.remaining())
            scheduler.tick()
            assert [m.kwargs["workflow"] for m in queued_at(back.url)] == ["during"]


def test_a_database_outage_is_logged_and_retried_with_backoff(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "DRUMLINE_BROKER_URL": redis_url,
        "DRUMLINE_DATABASE_URL": f"postgresql+psycopg://beat:db-secret@127.0.0.1:{free_port()}/x",
        "DRUMLINE_DATA_DIR": str(tmp_path),
    }
    with caplog.at_level(logging.INFO, logger="drumline.beat"), scheduler_for(env, lazy=False) as s:
        delays = [s.tick(), s.tick()]
        time.sleep(s.backoff.remaining())
        delays.append(s.tick())
    assert delays[0] == 0.5 and delays[2] == 1.0
    assert 0 < delays[1] <= 0.5
    assert caplog.text.count("cannot dispatch producer runs") == 2
    assert "retrying in 0.5s" in caplog.text and "retrying in 1.0s" in caplog.text
    assert "producer schedules in postgresql+psycopg://beat:***@127.0.0.1" in caplog.text
    assert "db-secret" not in caplog.text


# --- query cost --------------------------------------------------------------------------------


def plan(engine: Engine, statement: str, parameters: Any) -> str:
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(explain + statement, parameters).all()
    return "\n".join(str(row[-1]) for row in rows)


def reads_every_schedule(query_plan: str) -> bool:
    """A sequential scan (PostgreSQL) or a SCAN/SEARCH using no index (SQLite) of the table."""
    return any(
        "Seq Scan on producer_schedules" in line
        or (
            line.startswith(("SCAN producer_schedules", "SEARCH producer_schedules"))
            and "USING" not in line
        )
        for line in query_plan.splitlines()
    )


def test_a_tick_reads_schedules_through_the_partial_indexes_only(
    scheduler: ProducerScheduler, engine: Engine
) -> None:
    now = utc_now()
    workflow_id = add_workflow(engine, "many", {})
    rows = [
        {
            "workflow_id": workflow_id,
            "producer_name": f"p{i}",
            "run": "demo.noop",
            "params": {},
            "schedule_type": "interval",
            "schedule_value": "1h",
            "timezone": "UTC",
            "paused": i % 100 == 1,
            "next_run_at": now - timedelta(seconds=1) if i < 10 else now + timedelta(seconds=i),
            "state": {},
            "created_at": now,
            "updated_at": now,
        }
        for i in range(20_000)
    ]
    with engine.begin() as conn:
        conn.execute(insert(producer_schedules), rows)
        conn.execute(text("ANALYZE"))
    statements: list[tuple[str, Any]] = []

    @event.listens_for(scheduler.store.engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "producer_schedules" in statement:
            statements.append((statement, parameters))

    scheduler.tick()
    plans = [plan(engine, statement, parameters) for statement, parameters in statements]
    assert len(plans) == 2  # the claim, and next_wakeup's three minimums in one statement
    for query_plan in plans:  # unclaimed rows, and rows whose lease ran out, each by its index
        assert "ix_producer_schedules_unclaimed_due" in query_plan
        assert "ix_producer_schedules_claimed" in query_plan
    assert not [query_plan for query_plan in plans if reads_every_schedule(query_plan)]


# --- a real `celery beat` process --------------------------------------------------------------


def test_celery_beat_sends_due_slots_and_stops_cleanly_on_sigterm(
    drumline_env: dict[str, str], engine: Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    with running_beat(drumline_env, tmp_path) as beat:
        add_workflow(engine, "live", {name: utc_now() for name in ("a", "b", "c")})
        deadline = time.monotonic() + 10
        while len(queued(redis_client)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(m.id.split("@")[0] for m in queued(redis_client)) == [
            "live.a",
            "live.b",
            "live.c",
        ]
        assert beat.stop() == 0
    log = beat.log()
    assert "beat: producer schedules in" in log
    assert re.search(r"beat: sent [123] producer runs, worst lateness \d+ ms", log)
    assert "Traceback" not in log


def test_the_crash_hook_kills_beat_after_claiming_and_before_sending(
    drumline_env: dict[str, str], engine: Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    workflow_id = add_workflow(engine, "doomed", {"p": utc_now()})
    doomed = CeleryProcess(
        crashing_beat_args(tmp_path, "doomed"),
        drumline_env,
        tmp_path / "doomed.log",
    ).start()
    assert doomed.process is not None
    try:
        assert doomed.process.wait(30) == -9
    finally:
        doomed.stop()
    [row] = ProducerScheduleStore(engine).list(workflow_id)
    assert row.claim_token is not None
    assert queued(redis_client) == []
