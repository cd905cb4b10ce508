"""`drumline.pause_producer` and `drumline.resume_producer`, on the `lifecycle` queue."""

from __future__ import annotations

from models.records import JSONDict
from workers.services.producer_pause import ProducerPauses
from workers.tasks.app import app, settings
from workers.tasks.lifecycle_tasks import TASK_OPTIONS, author, workflow_locks
from workers.tasks.resources import resources


def _pauses() -> ProducerPauses:
    return ProducerPauses(
        resources.engine(settings.database_url),
        workflow_locks(),
        history_kept=settings.history_kept,
    )


@app.task(name="drumline.pause_producer", **TASK_OPTIONS)
def pause_producer(
    name: str, producer: str, actor: str | None = None, note: str | None = None
) -> JSONDict:
    return _pauses().pause(name, producer, author=author(actor, note)).to_json()


@app.task(name="drumline.resume_producer", **TASK_OPTIONS)
def resume_producer(
    name: str, producer: str, actor: str | None = None, note: str | None = None
) -> JSONDict:
    return _pauses().resume(name, producer, author=author(actor, note)).to_json()
