"""The Celery app: `celery -A workers.app worker` / `celery -A workers.app beat`."""

from __future__ import annotations

from typing import Any

from celery import signals

from workers.celery_config import create_app
from workers.registry import load_producer_modules
from workers.resources import resources
from workers.settings import Settings

settings = Settings.from_env()
app = create_app(settings)


@signals.worker_init.connect
def _load_producers(**_: Any) -> None:
    """Import producer modules once in the main worker process, before the pool forks."""
    load_producer_modules(settings.producer_modules)


@signals.worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    """Database and Redis connections must never be shared across a fork."""
    resources.reset()
