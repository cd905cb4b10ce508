"""The peers, driven in-process: RedBeat (Redis) and django-celery-beat (DatabaseScheduler)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import redis
from celery import Celery
from celery.schedules import schedule as every_schedule

from bench.apps.common import DJANGO_QUEUE, NOOP_TASK, REDBEAT_QUEUE

CHUNK = 10_000
DUE_EVERY = timedelta(hours=1)
IDLE_EVERY = timedelta(days=1)


def _now() -> datetime:
    return datetime.now(UTC)


class Peer:
    """A peer scheduler's store, grown to N entries of which the first `due` are due."""

    count = 0

    def add(self, n: int, *, due: bool) -> None:
        raise NotImplementedError

    def grow_to(self, n: int, *, due: int) -> None:
        if self.count == 0:
            self.add(due, due=True)
        if n > self.count:
            self.add(n - self.count, due=False)


class RedBeatPeer(Peer):
    """N RedBeat entries written straight into Redis (hash + schedule ZSET), as `save()` would."""

    def __init__(self, app: Celery, client: redis.Redis) -> None:
        from redbeat.schedulers import ensure_conf

        conf = ensure_conf(app)
        self.app = app
        self.client = client
        self.prefix: str = conf.key_prefix
        self.schedule_key: str = conf.schedule_key
        self.count = 0
        self.due_keys: list[str] = []

    def _definition(self, every: timedelta) -> str:
        from redbeat.decoder import RedBeatJSONEncoder

        return json.dumps(
            {
                "name": "__NAME__",
                "task": NOOP_TASK,
                "args": [],
                "kwargs": {},
                "options": {"queue": REDBEAT_QUEUE},
                "schedule": every_schedule(run_every=every),
                "enabled": True,
            },
            cls=RedBeatJSONEncoder,
        )

    @staticmethod
    def _meta(last_run_at: datetime) -> str:
        from redbeat.decoder import RedBeatJSONEncoder

        return json.dumps({"last_run_at": last_run_at}, cls=RedBeatJSONEncoder)

    def add(self, n: int, *, due: bool) -> None:
        now = _now()
        every = DUE_EVERY if due else IDLE_EVERY
        template = self._definition(every)
        meta = self._meta(now - 2 * DUE_EVERY if due else now)
        base = now.timestamp()
        for start in range(0, n, CHUNK):
            with self.client.pipeline(transaction=False) as pipe:
                for k in range(start, min(n, start + CHUNK)):
                    name = f"e{self.count + k:07d}"
                    key = self.prefix + name
                    pipe.hset(
                        key,
                        mapping={"definition": template.replace("__NAME__", name), "meta": meta},
                    )
                    score = base - 60 if due else base + 86_400 + k % 86_400
                    pipe.zadd(self.schedule_key, {key: score})
                    if due:
                        self.due_keys.append(key)
                pipe.execute()
        self.count += n

    def make_due(self) -> None:
        """Put the due entries back to due (RedBeat moved them an hour ahead when sent)."""
        meta = self._meta(_now() - 2 * DUE_EVERY)
        score = _now().timestamp() - 60
        with self.client.pipeline(transaction=False) as pipe:
            for key in self.due_keys:
                pipe.hset(key, "meta", meta)
                pipe.zadd(self.schedule_key, {key: score})
            pipe.execute()

    def scheduler(self) -> Any:
        """A RedBeatScheduler holding its own lock, as `celery beat` would after `beat_init`."""
        from redbeat.schedulers import RedBeatScheduler, acquire_distributed_beat_lock

        scheduler = RedBeatScheduler(
            app=self.app, lazy=True, lock_key="redbeat::bench-lock", lock_timeout=3600
        )
        acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))
        return scheduler

    def clear(self) -> None:
        keys = [self.prefix + f"e{i:07d}" for i in range(self.count)]
        for start in range(0, len(keys), CHUNK):
            self.client.delete(*keys[start : start + CHUNK])
        self.client.delete(self.schedule_key)
        self.count = 0
        self.due_keys = []


class DjangoPeer(Peer):
    """N django-celery-beat PeriodicTask rows (interval schedules), bulk-created."""

    def __init__(self, database_url: str) -> None:
        from bench.djangodb import configure_django, migrate

        configure_django(database_url)
        migrate()
        self.count = 0
        self.due_names: list[str] = []

    def _interval(self, every: timedelta) -> Any:
        from django_celery_beat.models import IntervalSchedule

        interval, _ = IntervalSchedule.objects.get_or_create(
            every=int(every.total_seconds()), period=IntervalSchedule.SECONDS
        )
        return interval

    def add(self, n: int, *, due: bool) -> None:
        from django_celery_beat.models import PeriodicTask, PeriodicTasks

        now = _now()
        interval = self._interval(DUE_EVERY if due else IDLE_EVERY)
        last_run = now - 2 * DUE_EVERY if due else now
        names = [f"e{self.count + k:07d}" for k in range(n)]
        PeriodicTask.objects.bulk_create(
            (
                PeriodicTask(
                    name=name,
                    task=NOOP_TASK,
                    interval=interval,
                    queue=DJANGO_QUEUE,
                    last_run_at=last_run,
                    enabled=True,
                )
                for name in names
            ),
            batch_size=5_000,
        )
        PeriodicTasks.update_changed()
        if due:
            self.due_names.extend(names)
        self.count += n

    def make_due(self) -> None:
        from django_celery_beat.models import PeriodicTask, PeriodicTasks

        PeriodicTask.objects.filter(name__in=self.due_names).update(
            last_run_at=_now() - 2 * DUE_EVERY
        )
        PeriodicTasks.update_changed()

    def scheduler(self, app: Celery) -> Any:
        """A DatabaseScheduler that has not read its table yet (the first access loads it)."""
        from django_celery_beat.schedulers import (
            DatabaseScheduler,
        )

        return DatabaseScheduler(app=app, lazy=True)

    @staticmethod
    def discard(scheduler: Any) -> None:
        """Drop a scheduler without its exit-time sync writing old run times back."""
        scheduler._dirty.clear()
        scheduler._finalize.cancel()

    def clear(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM django_celery_beat_periodictask")
        self.count = 0
        self.due_names = []
