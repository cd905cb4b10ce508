"""`drumline.pause_producer` and `drumline.resume_producer`, on the `lifecycle` queue."""

from __future__ import annotations

from models.records import JSONDict
from workers.services.locks import WorkflowLocks
from workers.services.producer_pause import ProducerPauses
from workers.tasks.app import app, settings
from workers.tasks.lifecycle_tasks import TASK_OPTIONS
from workers.tasks.resources import resources


def _pauses() -> ProducerPauses:
    locks = WorkflowLocks(
        resources.redis(settings.lock_redis_url),
        timeout=settings.lock_timeout,
        wait=settings.lock_wait,
    )
    return ProducerPauses(resources.engine(settings.database_url), locks)


@app.task(name="drumline.pause_producer", **TASK_OPTIONS)
def pause_producer(name: str, producer: str, by: str, note: str | None = None) -> JSONDict:
    return _pauses().pause(name, producer, by=by, note=note).to_json()


@app.task(name="drumline.resume_producer", **TASK_OPTIONS)
def resume_producer(name: str, producer: str) -> JSONDict:
    return _pauses().resume(name, producer).to_json()
