"""Helpers for end-to-end tests: deploy through the lifecycle task, read back what ran."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from models.records import RunRecord
from models.run_store import RunStore
from models.workflow_store import WorkflowStore
from tests.e2e_producers import read_journal
from tests.processes import client_app

TASK_TIMEOUT_S = 30


def lifecycle(env: Mapping[str, str], task: str, argument: Any) -> dict[str, Any]:
    """Run a lifecycle task on the workers and return its summary."""
    app = client_app(env)
    try:
        summary: dict[str, Any] = app.send_task(task, args=[argument]).get(timeout=TASK_TIMEOUT_S)
    finally:
        app.close()
    return summary


def deploy(env: Mapping[str, str], definition: dict[str, Any]) -> dict[str, Any]:
    return lifecycle(env, "drumline.deploy_workflow", definition)


def journal_producer(journal: Path, seconds: float = 0, **schedule: str) -> dict[str, Any]:
    return {
        "run": "test.journal",
        "params": {"journal": str(journal), "seconds": seconds},
        **schedule,
    }


def runs_of(engine: Engine, workflow: str) -> list[RunRecord]:
    record = WorkflowStore(engine).get(workflow)
    assert record is not None, f"workflow {workflow} not found"
    return sorted(
        RunStore(engine).list(record.id), key=lambda r: (r.producer_name, r.scheduled_for)
    )


def executions(journal: Path, event: str = "start") -> Counter[tuple[str, str]]:
    """How many times each (producer, slot) really started (or ended) executing."""
    return Counter(
        (str(line["producer"]), str(line["slot"]))
        for line in read_journal(journal)
        if line["event"] == event
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
