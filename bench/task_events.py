"""Celery task events of `run_producer` messages: when each was sent, received and started.

beat sends `task-sent` (with the slot's `scheduled_for` in the kwargs); a worker's main process
sends `task-received` when it takes a message from Redis, and its pool child `task-started`
when it begins the task. Between them they split a run's start lateness into beat's share,
the time in the queue (prefetch) and the hand-over through the pool's pipe.
"""

from __future__ import annotations

import ast
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery

from bench.infra import wait_for


@dataclass
class TaskTimes:
    """One message's event timestamps (epoch seconds, each process's clock: one machine)."""

    scheduled_for: datetime
    sent: float
    received: float | None = None
    started: float | None = None


class TaskEvents:
    """Listens in a thread; `tasks` maps each task id beat sent to its `TaskTimes`."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.tasks: dict[str, TaskTimes] = {}
        self._early: dict[str, dict[str, float]] = {}  # worker events seen before task-sent
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, name="task-events", daemon=True)

    def _on_sent(self, event: dict[str, Any]) -> None:
        uuid = str(event.get("uuid"))
        if uuid in self.tasks:
            return
        try:
            kwargs = ast.literal_eval(str(event.get("kwargs")))
            scheduled_for = datetime.fromisoformat(kwargs["scheduled_for"])
        except (ValueError, SyntaxError, KeyError, TypeError):
            return
        times = TaskTimes(scheduled_for, float(event["timestamp"]))
        for kind, at in self._early.pop(uuid, {}).items():
            setattr(times, kind, at)
        self.tasks[uuid] = times

    def _on_worker_event(self, kind: str) -> Any:
        def handle(event: dict[str, Any]) -> None:
            uuid = str(event.get("uuid"))
            at = float(event["timestamp"])
            times = self.tasks.get(uuid)
            if times is None:
                self._early.setdefault(uuid, {})[kind] = at
            elif getattr(times, kind) is None:
                setattr(times, kind, at)

        return handle

    def _run(self) -> None:
        handlers = {
            "task-sent": self._on_sent,
            "task-received": self._on_worker_event("received"),
            "task-started": self._on_worker_event("started"),
        }
        with self.app.connection_for_read() as connection:
            self._receiver = self.app.events.Receiver(connection, handlers=handlers)
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def start(self) -> TaskEvents:
        self._thread.start()
        wait_for(lambda: self._receiver is not None, 10)
        time.sleep(1.0)  # the subscription is live once the first drain has begun
        return self

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=5)

    def scheduled_in(self, start: datetime, end: datetime) -> dict[str, TaskTimes]:
        """The messages of slots scheduled in [start, end), by task id."""
        return {k: t for k, t in list(self.tasks.items()) if start <= t.scheduled_for < end}
