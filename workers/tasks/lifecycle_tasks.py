"""The lifecycle tasks, on the `lifecycle` queue: how clients change workflows.

A refused change (invalid, busy, conflict, not found) fails the task with its `LifecycleError`,
which the JSON result backend carries back to the caller. Conflicts are not retried here: the
caller decides whether its change still makes sense. Every change is idempotent, so a message
redelivered after a worker died (`acks_late`) is safe to apply again.
"""

from __future__ import annotations

from typing import Any

from models.errors import LifecycleError
from models.records import JSONDict
from workers.services.lifecycle import Lifecycle
from workers.services.locks import WorkflowLocks
from workers.tasks.app import app, settings
from workers.tasks.celery_config import LIFECYCLE_QUEUE
from workers.tasks.resources import resources

TASK_OPTIONS: dict[str, Any] = {
    "queue": LIFECYCLE_QUEUE,
    "acks_late": True,
    # Expected refusals: logged on one line, without a traceback.
    "throws": (LifecycleError,),
}


def _lifecycle() -> Lifecycle:
    """Built per call from the process's connections, which are fresh after each fork."""
    locks = WorkflowLocks(
        resources.redis(settings.lock_redis_url),
        timeout=settings.lock_timeout,
        wait=settings.lock_wait,
    )
    return Lifecycle(
        resources.engine(settings.database_url), locks, max_timeout=settings.max_timeout
    )


@app.task(name="drumline.deploy_workflow", **TASK_OPTIONS)
def deploy_workflow(definition: dict[str, Any]) -> JSONDict:
    return _lifecycle().deploy(definition).to_json()


@app.task(name="drumline.pause_workflow", **TASK_OPTIONS)
def pause_workflow(name: str, by: str | None = None, note: str | None = None) -> JSONDict:
    return _lifecycle().pause(name, by=by, note=note).to_json()


@app.task(name="drumline.resume_workflow", **TASK_OPTIONS)
def resume_workflow(name: str) -> JSONDict:
    return _lifecycle().resume(name).to_json()


@app.task(name="drumline.delete_workflow", **TASK_OPTIONS)
def delete_workflow(name: str) -> JSONDict:
    return _lifecycle().delete(name).to_json()
