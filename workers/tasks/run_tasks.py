"""`drumline.run_producer`: the task beat sends for every due slot (and `drumline trigger`)."""

from __future__ import annotations

from datetime import UTC, datetime

from celery import Task

from beat.dispatch import PRODUCERS_QUEUE, RUN_PRODUCER
from models.types import utc_now
from workers.services.run_metrics import RunRecorder, run_recorder
from workers.services.runner import Slot, SlotRunner
from workers.tasks.app import app, settings
from workers.tasks.resources import resources


@app.task(
    name=RUN_PRODUCER,
    bind=True,
    queue=PRODUCERS_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,
    # The producer's own limit (an alarm inside the run) ends it first and records the failure;
    # this hard limit is the backstop, still inside the lease so no re-send can overlap it.
    time_limit=settings.hard_time_limit.total_seconds(),
    # Runs are recorded in the database; keeping a result per run would only fill Redis.
    ignore_result=True,
)
def run_producer(
    self: Task,
    workflow_id: int,
    workflow: str,
    producer: str,
    scheduled_for: str,
    claim_token: str | None = None,
    trigger_token: str | None = None,
) -> str:
    """Run one slot. Beat sends `claim_token`, `drumline trigger` sends `trigger_token`; the
    runner refuses a message with neither and runs only what the database confirms.

    Returns the run's status (`succeeded`, `skipped: slot already finished`, ...), which
    Celery logs and Flower show; the run itself, its result included, is in the database.
    Celery reprs the return value for its log line and task event on every run: the runner's
    summary with the producer's result cost more to repr than the rest of the task."""
    slot = Slot(
        workflow_id=int(workflow_id),
        workflow=workflow,
        producer=producer,
        scheduled_for=_parse_instant(scheduled_for),
        claim_token=claim_token,
        task_id=self.request.id,
        trigger_token=trigger_token,
    )
    return str(_runners.current().run(slot)["status"])


class _ProcessRunner:
    """This process's SlotRunner, built once instead of per message (the settings' derived
    bounds and limits are computed then), and built again whenever the process's engine or
    metrics recorder is a different object: after a fork `resources.reset()` drops the engine,
    so a pool child never runs with its parent's. The runner keeps nothing about any schedule:
    every run reads its slot from the database under its claim token."""

    def __init__(self) -> None:
        self._runner: SlotRunner | None = None
        self._metrics: RunRecorder | None = None

    def current(self) -> SlotRunner:
        engine = resources.engine(settings.database_url)
        metrics = run_recorder()
        runner = self._runner
        if runner is None or runner.run_path.engine is not engine or self._metrics is not metrics:
            runner = SlotRunner(
                engine,
                lease=settings.lease,
                max_timeout=settings.max_timeout,
                default_timeout=settings.default_timeout,
                clock=utc_now,
                result_bounds=settings.result_bounds,
                state_bounds=settings.state_bounds,
                metrics=metrics,
                history_kept=settings.history_kept,
            )
            self._runner, self._metrics = runner, metrics
        return runner


_runners = _ProcessRunner()


def _parse_instant(text: str) -> datetime:
    """An aware instant, in UTC (so the database can store any slot a message names)."""
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        raise ValueError(f"scheduled_for {text!r} has no time zone")
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"scheduled_for {text!r} is out of range in UTC") from None
