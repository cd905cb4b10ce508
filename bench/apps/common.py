"""Plain Celery configuration shared by the baselines and peers."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

NOOP_TASK = "bench.noop"
RAW_QUEUE = "bench.raw"
REDBEAT_QUEUE = "bench.redbeat"
DJANGO_QUEUE = "bench.django"
DONE_KEY = "bench:done"


def broker_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def plain_config(url: str) -> dict[str, Any]:
    """Celery defaults, JSON messages, a 1 s beat loop (drumline's default max interval)."""
    return {
        "broker_url": url,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "beat_max_loop_interval": 1.0,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": True,
    }


def plain_app(name: str, url: str | None = None) -> Celery:
    app = Celery(name)
    app.conf.update(plain_config(url or broker_url()))
    return app


def drumline_celery_settings(url: str) -> dict[str, Any]:
    """The Celery settings drumline runs with that change a worker's or sender's cost."""
    from workers.settings import Settings
    from workers.tasks.celery_config import celery_config

    config = celery_config(Settings.from_env({"DRUMLINE_BROKER_URL": url}))
    keys = (
        "result_backend",
        "task_acks_late",
        "task_reject_on_worker_lost",
        "worker_prefetch_multiplier",
        "broker_transport_options",
        "worker_send_task_events",
        "task_send_sent_event",
        "task_track_started",
    )
    return {key: config[key] for key in keys}
