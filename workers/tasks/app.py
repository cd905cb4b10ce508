"""The Celery app behind `celery -A workers.app worker | beat` (`workers/app.py` names it)."""

from __future__ import annotations

from typing import Any

from celery import signals
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.solo import TaskPool as SoloPool

from workers.registry import load_producer_modules
from workers.services.run_metrics import enable_run_metrics
from workers.settings import Settings
from workers.tasks.celery_config import create_app
from workers.tasks.resources import resources

settings = Settings.from_env()
app = create_app(settings)


@signals.worker_init.connect
def _require_a_main_thread_pool(sender: Any, **_: Any) -> None:
    """Refuse to start rather than fail every run: a producer's time limit is a SIGALRM,
    which only a process's main thread can receive (prefork children, or the solo pool)."""
    pool = get_implementation(sender.pool_cls)
    if not issubclass(pool, (PreforkPool, SoloPool)):
        # SystemExit, not an exception: Celery logs and ignores exceptions raised by handlers.
        raise SystemExit(
            f"drumline workers need --pool prefork or --pool solo, not {pool.__module__}: "
            "producer time limits are alarms that only a process's main thread receives"
        )


@signals.worker_init.connect
def _load_producers(**_: Any) -> None:
    """Import producer modules once in the main worker process, before the pool forks."""
    load_producer_modules(settings.producer_modules)


@signals.worker_init.connect
def _record_metrics(**_: Any) -> None:
    """Set up this worker's metrics files in the main process, before the pool forks: each
    pool process then writes its own files in the same private directory."""
    enable_run_metrics(settings.metrics_dir, producer_labels=settings.metrics_producer_labels)


@signals.worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    """Database and Redis connections must never be shared across a fork."""
    resources.reset()
