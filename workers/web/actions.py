"""The web's actions, each only by enqueuing what the CLI enqueues: the lifecycle tasks
(deploy, pause, resume) and a recorded manual run. Blocking: the pages call these in a thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import Engine

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER
from models.log_text import loggable
from models.records import RunRecord, WorkflowRecord
from models.run_store import TERMINAL_STATUSES, RunStore
from workers.tasks.manual_runs import request_manual_run
from workers.tasks.sending import BrokerUnreachableError, send, wait_for

__all__ = ["BrokerUnreachableError", "Outcome", "change", "trigger"]

logger = logging.getLogger("drumline.web")

# How long a page waits for a lifecycle task's answer, or for a triggered run to finish,
# before it shows what it knows (the task id; the producer page shows the rest).
ANSWER_WAIT_S = 15.0
RUN_WAIT_S = 10.0
POLL_S = 0.2

PAUSE, RESUME, DEPLOY = (
    "drumline.pause_workflow",
    "drumline.resume_workflow",
    "drumline.deploy_workflow",
)


@dataclass(frozen=True)
class Outcome:
    """A lifecycle task's answer, in the shape of `drumline pause --json` (one item)."""

    workflow: str
    ok: bool
    summary: dict[str, Any] | None
    error: str | None
    task_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "ok": self.ok,
            "summary": self.summary,
            "error": self.error,
        }


def change(celery: Celery, task: str, workflow: str, argument: Any, note: str = "") -> Outcome:
    """Send lifecycle `task` and wait for its answer."""
    logger.info(
        "%s of workflow %s requested from the web%s",
        task,
        loggable(workflow),
        f" with the note {loggable(note)}" if note else "",
    )
    result = send(celery, task, argument)
    answer = wait_for(result, ANSWER_WAIT_S)
    summary = answer.value if answer.ok else None
    return Outcome(workflow, answer.ok, summary, answer.error, result.id)


def trigger(
    celery: Celery, engine: Engine, workflow: WorkflowRecord, producer: str
) -> RunRecord | None:
    """Record and send a manual run of `producer` now, then wait a little for it to finish;
    the run as it stands (None: its slot had a run already, nothing was sent)."""

    def send_run(task_id: str, kwargs: dict[str, Any]) -> None:
        send(celery, RUN_PRODUCER, kwargs=kwargs, task_id=task_id, queue=PRODUCERS_QUEUE)

    logger.info(
        "manual run of %s.%s requested from the web", loggable(workflow.name), loggable(producer)
    )
    request = request_manual_run(engine, workflow, producer, send_run)
    if request is None:
        return None
    runs = RunStore(engine)
    deadline = time.monotonic() + RUN_WAIT_S
    run: RunRecord | None = request
    while time.monotonic() < deadline:
        run = runs.get_slot(workflow.id, producer, request.scheduled_for)
        if run is None or run.status in TERMINAL_STATUSES:
            break
        time.sleep(POLL_S)
    return run or request
