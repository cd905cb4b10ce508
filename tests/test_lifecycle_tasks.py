"""The lifecycle tasks through Celery: real Redis, real worker processes, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine

from models.definitions import parse_definition
from models.errors import (
    InvalidDefinitionError,
    LifecycleError,
    VersionConflictError,
    WorkflowBusyError,
    WorkflowNotFoundError,
)
from models.schedule_store import ProducerScheduleStore
from models.workflow_store import WorkflowStore
from tests.processes import client_app, running_worker
from workers.services.locks import WorkflowLocks

TIMEOUT_S = 30
CONCURRENT_DEPLOYS = 30


@pytest.fixture
def client(drumline_env: dict[str, str]) -> Iterator[Celery]:
    app = client_app(drumline_env)
    yield app
    app.close()


@pytest.fixture
def locks(redis_url: str) -> Iterator[WorkflowLocks]:
    """The workers' locks, as a concurrent change elsewhere would hold them."""
    client = redis.Redis.from_url(redis_url)
    yield WorkflowLocks(client, timeout=timedelta(seconds=30), wait=timedelta(0))
    client.close()


def call(client: Celery, task: str, argument: Any) -> Any:
    """Run a task and return its summary, or the LifecycleError it failed with."""
    result = client.send_task(task, args=[argument])
    outcome = result.get(timeout=TIMEOUT_S, propagate=False)
    assert result.state in ("SUCCESS", "FAILURE")
    return outcome


def schedules(engine: Engine, workflow: str) -> dict[str, tuple[str, bool]]:
    """Each producer's (schedule value, paused) as stored."""
    record = WorkflowStore(engine).get(workflow)
    assert record is not None
    return {
        row.producer_name: (row.schedule_value, row.paused)
        for row in ProducerScheduleStore(engine).list(record.id)
    }


def test_lifecycle_tasks_on_a_worker(
    drumline_env: dict[str, str],
    client: Celery,
    locks: WorkflowLocks,
    engine: Engine,
    tmp_path: Path,
) -> None:
    definition = {
        "name": "prices",
        "producers": {
            "fast": {"run": "demo.noop", "interval": "30s"},
            "daily": {"run": "demo.counter", "cron": "0 9 * * *", "timezone": "Europe/Paris"},
        },
    }
    with running_worker(drumline_env, tmp_path) as worker:
        deployed = call(client, "drumline.deploy_workflow", definition)
        assert (deployed["version"], deployed["added"]) == (1, ["daily", "fast"])
        assert schedules(engine, "prices") == {
            "fast": ("30s", False),
            "daily": ("0 9 * * *", False),
        }

        paused = call(client, "drumline.pause_workflow", "prices")
        assert (paused["status"], paused["version"]) == ("paused", 2)
        assert all(is_paused for _, is_paused in schedules(engine, "prices").values())

        resumed = call(client, "drumline.resume_workflow", "prices")
        assert (resumed["status"], resumed["version"]) == ("active", 3)
        assert not any(is_paused for _, is_paused in schedules(engine, "prices").values())

        invalid = call(
            client,
            "drumline.deploy_workflow",
            {**definition, "producers": {"fast": {"run": "demo.noop", "cron": "61 * * * *"}}},
        )
        assert isinstance(invalid, InvalidDefinitionError)
        assert invalid.code == "invalid"
        assert [e["path"] for e in invalid.details["errors"]] == ["producers.fast.cron"]
        assert str(invalid).startswith("workflow 'prices': invalid definition: producers.fast.cron")
        assert WorkflowStore(engine).get("prices").version == 3  # type: ignore[union-attr]

        with locks.hold("prices"):
            busy = call(client, "drumline.delete_workflow", "prices")
        assert isinstance(busy, WorkflowBusyError)
        assert str(busy) == "workflow 'prices' is busy: another change holds its lock; retry"
        assert WorkflowStore(engine).get("prices") is not None

        deleted = call(client, "drumline.delete_workflow", "prices")
        assert (deleted["deleted"], deleted["removed"]) == (True, ["daily", "fast"])
        assert WorkflowStore(engine).get("prices") is None

        missing = call(client, "drumline.pause_workflow", "prices")
        assert isinstance(missing, WorkflowNotFoundError)
        assert str(missing) == "workflow 'prices' does not exist"
    log = worker.log()
    assert "deployed workflow 'prices' v1: added ['daily', 'fast']" in log
    assert "Traceback" not in log  # refusals are expected outcomes, not crashes


def concurrent_definition(index: int) -> dict[str, Any]:
    """Shared producers on an interval of `index + 1` minutes, plus one producer of its own."""
    every = f"{index + 1}m"
    return {
        "name": "contended",
        "producers": {
            "shared-a": {"run": "demo.noop", "interval": every},
            "shared-b": {"run": "demo.counter", "interval": every, "params": {"i": index}},
            f"only-{index}": {"run": "demo.noop", "interval": every},
        },
    }


def test_concurrent_deploys_leave_exactly_one_definition(
    drumline_env: dict[str, str], client: Celery, engine: Engine, tmp_path: Path
) -> None:
    definitions = [concurrent_definition(i) for i in range(CONCURRENT_DEPLOYS)]
    with (
        running_worker(drumline_env, tmp_path, name="w1", concurrency=2) as w1,
        running_worker(drumline_env, tmp_path, name="w2", concurrency=2) as w2,
    ):
        pending = [client.send_task("drumline.deploy_workflow", args=[d]) for d in definitions]
        outcomes = [result.get(timeout=TIMEOUT_S, propagate=False) for result in pending]

    applied = {i: o for i, o in enumerate(outcomes) if isinstance(o, dict)}
    refused = [o for o in outcomes if not isinstance(o, dict)]
    assert applied, "no deploy was applied"
    assert all(isinstance(o, VersionConflictError | WorkflowBusyError) for o in refused), refused
    assert all(isinstance(o, LifecycleError) and "'contended'" in str(o) for o in refused)
    # Applied changes are serialised: each one has a version of its own.
    versions = sorted(summary["version"] for summary in applied.values())
    assert versions == list(range(1, len(applied) + 1))

    last = max(applied, key=lambda i: applied[i]["version"])
    workflow = WorkflowStore(engine).get("contended")
    assert workflow is not None
    assert workflow.version == len(applied)
    expected = parse_definition(definitions[last])
    assert workflow.definition == expected.model_dump(mode="json")
    rows = ProducerScheduleStore(engine).list(workflow.id)
    assert {row.producer_name: (row.run, row.schedule_value, row.params) for row in rows} == {
        name: (producer.run, producer.schedule.value, producer.params)  # type: ignore[union-attr]
        for name, producer in expected.producers.items()
    }
    for worker in (w1, w2):
        assert "IntegrityError" not in worker.log()
        assert "Traceback" not in worker.log()
    served = [w for w in (w1, w2) if "drumline.deploy_workflow" in w.log()]
    assert len(served) == 2, "both workers should have taken deploys"
