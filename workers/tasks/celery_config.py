"""Celery configuration derived from drumline's settings."""

from __future__ import annotations

import ssl
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from beat.dispatch import PRODUCERS_QUEUE
from workers.services.redis_client import is_sentinel, transport_options
from workers.settings import Settings, TaskEvents
from workers.tasks.redis_transport import REDIS_TRANSPORT, SENTINEL_TRANSPORT

LIFECYCLE_QUEUE = "lifecycle"
LIFECYCLE_TASKS = (
    "drumline.deploy_workflow",
    "drumline.pause_workflow",
    "drumline.resume_workflow",
    "drumline.delete_workflow",
    "drumline.rollback_workflow",
)
PRUNE_RUNS = "drumline.prune_runs"
PRUNE_RUNS_ENTRY = "drumline-prune-runs"


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings drumline's guarantees rely on; see the README's "Guarantees"."""
    visibility = int(settings.visibility_timeout.total_seconds())
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # JSON only: a pickle payload from the broker would be code execution.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # A message is acknowledged after its run, and given back if the worker dies mid-run.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # One visibility timeout, wherever Celery reads it, longer than any hard time limit.
        "broker_transport_options": {
            "visibility_timeout": visibility,
            **transport_options(settings.broker_url, settings.sentinel_master),
        },
        "result_backend_transport_options": {
            "visibility_timeout": visibility,
            **transport_options(settings.result_backend, settings.sentinel_master),
        },
        "visibility_timeout": visibility,
        # Flower shows every run with `all` (the default); see TaskEvents for the trade-off.
        "worker_send_task_events": settings.task_events is TaskEvents.ALL,
        "task_send_sent_event": settings.task_events is not TaskEvents.OFF,
        "task_track_started": True,
        "result_expires": 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "task_queues": (
            Queue(LIFECYCLE_QUEUE, Exchange(LIFECYCLE_QUEUE), routing_key=LIFECYCLE_QUEUE),
            Queue(PRODUCERS_QUEUE, Exchange(PRODUCERS_QUEUE), routing_key=PRODUCERS_QUEUE),
        ),
        "task_default_queue": PRODUCERS_QUEUE,
        "task_routes": {
            name: {"queue": LIFECYCLE_QUEUE} for name in (*LIFECYCLE_TASKS, PRUNE_RUNS)
        },
        "beat_schedule": _drumline_beat_schedule(settings),
        "beat_scheduler": "beat.scheduler:ProducerScheduler",
        "beat_max_loop_interval": settings.beat_max_interval.total_seconds(),
        # Read by the beat scheduler, which never imports workers/.
        "drumline_database_url": settings.database_url,
        "drumline_lease_seconds": settings.lease.total_seconds(),
        "drumline_beat_batch": settings.beat_batch,
        "drumline_metrics_dir": str(settings.metrics_dir or ""),
        "drumline_beat_stale_seconds": settings.beat_stale_after.total_seconds(),
        # Where the workers' boundary keeps refused messages (`drumline dead-letters`).
        "drumline_redis_url": settings.lock_redis_url,
        "drumline_redis_sentinel_master": settings.sentinel_master,
    }
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # kombu's Redis transport, dropping queue items it cannot decode instead of dying.
        config["broker_transport"] = REDIS_TRANSPORT
    if is_sentinel(settings.broker_url):
        config["broker_transport"] = SENTINEL_TRANSPORT
    if settings.broker_url.startswith("rediss://"):
        config["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.result_backend.startswith("rediss://"):
        config["redis_backend_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return config


def _drumline_beat_schedule(settings: Settings) -> dict[str, Any]:
    """The periodic prune pass, unless both retention rules are off.

    Every beat sends it; passes that overlap are safe (see workers/tasks/retention_tasks.py). A pass
    still queued when the next one is due is dropped (`expires`), so a backlog never builds up
    while no worker is consuming.
    """
    if settings.run_max_age is None and settings.runs_kept_per_producer is None:
        return {}
    interval = settings.prune_interval.total_seconds()
    return {
        PRUNE_RUNS_ENTRY: {
            "task": PRUNE_RUNS,
            "schedule": interval,
            "options": {"queue": LIFECYCLE_QUEUE, "expires": interval},
        }
    }


def create_app(settings: Settings) -> Celery:
    """A Celery app for `settings`; clients (CLI, tests) build their own with this.

    `DRUMLINE_CELERY_CONFIG_MODULE` may add ordinary Celery settings (a `beat_schedule`, say);
    drumline's own settings are applied over it, since its guarantees depend on them. Its
    `beat_schedule` entries are kept beside drumline's own.
    """
    celery = Celery(
        "drumline",
        include=[
            "workers.tasks.lifecycle_tasks",
            "workers.tasks.producer_pause_tasks",
            "workers.tasks.run_tasks",
            "workers.tasks.retention_tasks",
        ],
        # Every task's messages are checked before they run (workers/tasks/message_boundary.py).
        task_cls="workers.tasks.message_boundary:BoundedTask",
    )
    if settings.celery_config_module:
        celery.config_from_object(settings.celery_config_module)
    config = celery_config(settings)
    config["beat_schedule"] = {**(celery.conf.beat_schedule or {}), **config["beat_schedule"]}
    celery.conf.update(config)
    return celery
