"""Poisoned and forged task messages against a real worker: real Redis, SQLite and PostgreSQL.

One worker per database serves the whole module. Each poison is published raw to the queue the
system uses; the test then proves that the worker refused it once, acknowledged it, listed it
as a dead letter and wrote nothing, and that the next good deploy and run still succeed.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from click.testing import CliRunner
from sqlalchemy import Engine

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER, run_producer_call
from models import migrate
from models.claims import BeatClaims
from models.db import make_engine
from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.types import utc_now
from models.workflow_store import WorkflowStore
from tests.conftest import BACKENDS
from tests.databases import fresh_postgres_database, table_dump
from tests.e2e import deploy, wait_until
from tests.processes import CeleryProcess, client_app, running_worker
from workers.cli.main import cli
from workers.local.redis_server import RedisServer
from workers.tasks.celery_config import LIFECYCLE_QUEUE
from workers.tasks.message_contracts import RefusedMessage

DEPLOY = "drumline.deploy_workflow"
TIMEOUT_S = 20
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_names = itertools.count()


@dataclass
class System:
    env: dict[str, str]
    engine: Engine
    worker: CeleryProcess
    client: Celery
    redis: redis.Redis


@pytest.fixture(scope="module", params=BACKENDS)
def system(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
) -> Iterator[System]:
    """One migrated database of each kind, and one worker on it for every test of the module."""
    tmp = tmp_path_factory.mktemp(f"boundary-{request.param}")
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    with _database(request, tmp) as db_url:
        engine = make_engine(db_url)
        migrate.upgrade(engine)
        env = {
            "DRUMLINE_BROKER_URL": redis_server.url,
            "DRUMLINE_DATABASE_URL": db_url,
            "DRUMLINE_DATA_DIR": str(tmp / "data"),
            "DRUMLINE_LEASE_SECONDS": "6",
            "DRUMLINE_PRODUCER_TIMEOUT_SECONDS": "4",
        }
        app = client_app(env)
        try:
            with running_worker(env, tmp, concurrency=1) as worker:
                yield System(env, engine, worker, app, client)
            assert "Restoring" not in worker.log(), "a message was left unacknowledged"
        finally:
            app.close()
            engine.dispose()
            client.close()


def _database(request: pytest.FixtureRequest, tmp: Path) -> AbstractContextManager[str]:
    if request.param == "sqlite":
        return nullcontext(f"sqlite:///{tmp / 'drumline.db'}")
    return fresh_postgres_database(request.getfixturevalue("postgres_admin_url"))


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def deep_json(depth: int) -> str:
    """JSON nested `depth` levels: built as text, as no encoder goes past ~1,000 levels."""
    return "[" * depth + "]" * depth


def publish_raw(system: System, task: str, queue: str, body: str, **headers: Any) -> str:
    """Publish a task message body as it stands, as anyone with access to the broker can."""
    task_id = f"poison-{uuid.uuid4().hex}"
    with system.client.connection_for_write() as connection:
        connection.Producer().publish(
            body,
            exchange="",
            routing_key=queue,
            content_type="application/json",
            content_encoding="utf-8",
            headers={"lang": "py", "task": task, "id": task_id, **headers},
        )
    return task_id


def run_kwargs(workflow_id: int = 1, **changes: Any) -> dict[str, Any]:
    _, kwargs = run_producer_call(workflow_id, "w", "p", utc_now(), claim_token="forged-token")
    return {**kwargs, **changes}


def definition(name: str, **params: Any) -> dict[str, Any]:
    return {
        "name": name,
        "producers": {"p": {"run": "demo.noop", "interval": "1h", "params": params}},
    }


def refusals(system: System, task_id: str) -> int:
    return system.worker.log().count(f"id {task_id}: ")


def dead_letters(system: System) -> dict[str, dict[str, Any]]:
    """`drumline dead-letters --json`, by task id."""
    listed = CliRunner().invoke(cli, ["dead-letters", "--json", "--limit", "1000"], env=system.env)
    assert listed.exit_code == 0, listed.output
    return {entry["task_id"]: entry for entry in json.loads(listed.output)["dead_letters"]}


def assert_refused(system: System, refused: dict[str, str], before: Any) -> None:
    """The messages (task id: task name) were refused once each, acknowledged and
    dead-lettered, and changed nothing."""
    wait_until(
        lambda: all(refusals(system, task_id) > 0 for task_id in refused),
        TIMEOUT_S,
        f"the refusal of {', '.join(refused)}",
    )
    wait_until(lambda: system.redis.hlen("unacked") == 0, TIMEOUT_S, "the refused messages' ack")
    assert system.redis.llen(LIFECYCLE_QUEUE) == system.redis.llen(PRODUCERS_QUEUE) == 0
    assert system.worker.process is not None and system.worker.process.poll() is None
    assert table_dump(system.engine) == before
    letters = dead_letters(system)
    assert {task_id: letters[task_id]["task"] for task_id in refused} == refused
    assert all(letters[task_id]["reason"] for task_id in refused)


def assert_good_messages_run(system: System) -> None:
    """A deploy, then a run of its producer's claimed slot, as beat would send it."""
    name = f"good-{next(_names)}"
    summary = deploy(system.env, definition(name, symbol="EURUSD"))
    assert summary["added"] == ["p"]
    workflow = WorkflowStore(system.engine).get(name)
    assert workflow is not None
    schedules = ProducerScheduleStore(system.engine)
    row = schedules.get(workflow.id, "p")
    assert row is not None
    now = utc_now()
    schedules.set_next_run(row.id, now, now=now)
    (slot,) = [
        s
        for s in BeatClaims(system.engine).claim_due(
            now=utc_now(), lease=timedelta(seconds=6), limit=100
        )
        if s.workflow_name == name
    ]
    task_id, kwargs = run_producer_call(
        slot.workflow_id, name, "p", slot.scheduled_for, claim_token=slot.claim_token
    )
    system.client.send_task(
        RUN_PRODUCER, kwargs=kwargs, task_id=task_id, queue=PRODUCERS_QUEUE, ignore_result=True
    )
    runs = RunStore(system.engine)
    wait_until(
        lambda: any(run.status == "succeeded" for run in runs.list(workflow.id)),
        TIMEOUT_S,
        f"the run of {name}",
    )


def refused_deploy(system: System, poisoned: dict[str, Any]) -> str:
    """Send a deploy as the CLI does; the waiting client gets the refusal as the task's error."""
    result = system.client.send_task(DEPLOY, args=[poisoned])
    error = result.get(timeout=TIMEOUT_S, propagate=False)
    assert isinstance(error, RefusedMessage)
    assert "nested deeper than 40 levels" in str(error)
    return str(result.id)


POISONS: dict[str, tuple[str, Any]] = {
    "run_producer-480-deep-claim-token": (
        RUN_PRODUCER,
        lambda s: (
            s.client.send_task(
                RUN_PRODUCER, kwargs=run_kwargs(claim_token=nested(480)), queue=PRODUCERS_QUEUE
            ).id
        ),
    ),
    "run_producer-5000-deep-claim-token": (
        RUN_PRODUCER,
        lambda s: publish_raw(
            s,
            RUN_PRODUCER,
            PRODUCERS_QUEUE,
            json.dumps([[], run_kwargs(claim_token="@"), EMBED]).replace('"@"', deep_json(5000)),
        ),
    ),
    "run_producer-undecodable-100k-deep-body": (
        RUN_PRODUCER,
        lambda s: publish_raw(s, RUN_PRODUCER, PRODUCERS_QUEUE, deep_json(100_000)),
    ),
    "run_producer-480-deep-header": (
        RUN_PRODUCER,
        lambda s: publish_raw(
            s,
            RUN_PRODUCER,
            PRODUCERS_QUEUE,
            json.dumps([[], run_kwargs(), EMBED]),
            stamps=nested(480),
        ),
    ),
    "deploy-480-deep-params": (
        DEPLOY,
        lambda s: refused_deploy(s, definition("poisoned", deep=nested(480))),
    ),
    "deploy-5000-deep-params": (
        DEPLOY,
        lambda s: publish_raw(
            s,
            DEPLOY,
            LIFECYCLE_QUEUE,
            json.dumps([[definition("poisoned", deep="@")], {}, EMBED]).replace(
                '"@"', deep_json(5000)
            ),
        ),
    ),
    "deploy-undecodable-100k-deep-body": (
        DEPLOY,
        lambda s: publish_raw(s, DEPLOY, LIFECYCLE_QUEUE, f"[[{deep_json(100_000)}], {{}}, {{}}]"),
    ),
}


def test_a_queue_item_that_is_not_even_a_readable_envelope_is_dropped(system: System) -> None:
    """Pushed straight onto the queue list, below kombu: the envelope itself nests 5,000 deep."""
    pid = system.worker.pid
    before = table_dump(system.engine)
    dropped = "dropped an unreadable item from the broker"
    system.redis.lpush(PRODUCERS_QUEUE, '{"body": "", "headers": ' + deep_json(5000) + "}")
    wait_until(lambda: dropped in system.worker.log(), TIMEOUT_S, "the unreadable item's drop")
    assert system.redis.llen(PRODUCERS_QUEUE) == 0
    assert table_dump(system.engine) == before
    assert_good_messages_run(system)
    assert (system.worker.pid, system.worker.log().count(dropped)) == (pid, 1)
    assert "Unrecoverable error" not in system.worker.log()


@pytest.mark.parametrize("poison", POISONS)
def test_a_poison_message_is_refused_once_and_the_worker_carries_on(
    system: System, poison: str
) -> None:
    pid = system.worker.pid
    before = table_dump(system.engine)
    task, send = POISONS[poison]
    task_id = send(system)
    assert_refused(system, {task_id: task}, before)
    assert_good_messages_run(system)
    assert (system.worker.pid, refusals(system, task_id)) == (pid, 1)


def test_arguments_of_the_wrong_type_or_shape_are_refused_and_write_nothing(
    system: System,
) -> None:
    name = f"typed-{next(_names)}"
    deploy(system.env, definition(name))
    workflow = WorkflowStore(system.engine).get(name)
    assert workflow is not None
    before = table_dump(system.engine)
    # Each of these, taken as a manual trigger of a real producer, would have run it.
    real = run_kwargs(workflow.id, workflow=name)
    forged = {
        "workflow_id true": (RUN_PRODUCER, [], {**real, "workflow_id": True}),
        "workflow_id string": (RUN_PRODUCER, [], {**real, "workflow_id": str(workflow.id)}),
        "extra kwarg": (RUN_PRODUCER, [], {**real, "import_path": "os.system"}),
        "positional": (RUN_PRODUCER, list(real.values()), {}),
        "name with a newline": (RUN_PRODUCER, [], {**real, "producer": "p\nFORGED"}),
        "instant without a zone": (RUN_PRODUCER, [], {**real, "scheduled_for": "2026-03-01T00:00"}),
        "10,000 char instant": (RUN_PRODUCER, [], {**real, "scheduled_for": "2" * 10_000}),
        "celery built-in": ("celery.accumulate", [nested(480)], {}),
        "pause of a bad name": ("drumline.pause_workflow", [f"{name}\nFORGED"], {}),
    }
    sent = {
        what: (task, system.client.send_task(task, args=args, kwargs=kwargs, **options))
        for what, (task, args, kwargs) in forged.items()
        for options in [
            {"queue": LIFECYCLE_QUEUE}
            if task.endswith("_workflow")
            else {"queue": PRODUCERS_QUEUE, "ignore_result": True}
        ]
    }
    paused = sent["pause of a bad name"][1].get(timeout=TIMEOUT_S, propagate=False)
    assert isinstance(paused, RefusedMessage)
    assert str(paused).startswith("refused by the worker: name: String should match pattern")
    assert_refused(system, {result.id: task for task, result in sent.values()}, before)
    assert WorkflowStore(system.engine).get(name) == workflow
    assert all(refusals(system, result.id) == 1 for _, result in sent.values())
