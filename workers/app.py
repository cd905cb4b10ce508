"""The Celery app: `celery -A workers.app worker` / `celery -A workers.app beat`."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from workers.celery_config import celery_config
from workers.registry import load_producer_modules
from workers.resources import resources
from workers.settings import Settings


def create_app(settings: Settings) -> Celery:
    """A Celery app for `settings`; clients (CLI, tests) build their own with this.

    `DRUMLINE_CELERY_CONFIG_MODULE` may add ordinary Celery settings (a `beat_schedule`, say);
    drumline's own settings are applied over it, since its guarantees depend on them.
    """
    celery = Celery("drumline", include=["workers.lifecycle_tasks", "workers.run_tasks"])
    if settings.celery_config_module:
        celery.config_from_object(settings.celery_config_module)
    celery.conf.update(celery_config(settings))
    celery.conf.drumline_settings = settings
    return celery


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
