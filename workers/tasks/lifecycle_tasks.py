"""The lifecycle tasks, on the `lifecycle` queue: how clients change workflows.

A refused change (invalid, busy, conflict, not found) fails the task with its `LifecycleError`,
which the JSON result backend carries back to the caller. Conflicts are not retried here: the
caller decides whether its change still makes sense. Every change is idempotent, so a message
redelivered after a worker died (`acks_late`) is safe to apply again.
"""

from __future__ import annotations

from typing import Any

from models.change_store import ChangeAuthor
from models.errors import LifecycleError
from models.records import JSONDict
from workers.services.lifecycle import UNKNOWN_AUTHOR, Lifecycle
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


def workflow_locks() -> WorkflowLocks:
    """Built per call from the process's connections, which are fresh after each fork."""
    return WorkflowLocks(
        resources.redis(settings.lock_redis_url, settings.sentinel_master),
        timeout=settings.lock_timeout,
        wait=settings.lock_wait,
    )


def author(actor: str | None, note: str | None) -> ChangeAuthor:
    """Who the history names: the message's actor (its contract checked it), else `unknown`."""
    return UNKNOWN_AUTHOR if actor is None else ChangeAuthor(actor, note)


def _lifecycle() -> Lifecycle:
    return Lifecycle(
        resources.engine(settings.database_url),
        workflow_locks(),
        max_timeout=settings.max_timeout,
        history_kept=settings.history_kept,
    )


@app.task(name="drumline.deploy_workflow", **TASK_OPTIONS)
def deploy_workflow(
    definition: dict[str, Any], actor: str | None = None, note: str | None = None
) -> JSONDict:
    return _lifecycle().deploy(definition, author=author(actor, note)).to_json()


@app.task(name="drumline.pause_workflow", **TASK_OPTIONS)
def pause_workflow(name: str, actor: str | None = None, note: str | None = None) -> JSONDict:
    return _lifecycle().pause(name, author=author(actor, note)).to_json()


@app.task(name="drumline.resume_workflow", **TASK_OPTIONS)
def resume_workflow(name: str, actor: str | None = None, note: str | None = None) -> JSONDict:
    return _lifecycle().resume(name, author=author(actor, note)).to_json()


@app.task(name="drumline.delete_workflow", **TASK_OPTIONS)
def delete_workflow(name: str, actor: str | None = None, note: str | None = None) -> JSONDict:
    return _lifecycle().delete(name, author=author(actor, note)).to_json()


@app.task(name="drumline.rollback_workflow", **TASK_OPTIONS)
def rollback_workflow(
    name: str, version: int, actor: str | None = None, note: str | None = None
) -> JSONDict:
    """Deploy the definition the history holds for `version` (never one from the message)."""
    return _lifecycle().rollback(name, version, author=author(actor, note)).to_json()
