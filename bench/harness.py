"""Driving schedulers in-process: count what they publish, tick until a target is sent."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from celery.signals import after_task_publish


class SendCounter:
    """Counts task messages this process publishes (Celery's `after_task_publish` signal)."""

    def __init__(self) -> None:
        self.count = 0
        after_task_publish.connect(self._on_publish, weak=False)

    def _on_publish(self, **_: Any) -> None:
        self.count += 1

    def close(self) -> None:
        after_task_publish.disconnect(self._on_publish)

    def __enter__(self) -> SendCounter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass(frozen=True)
class TickRun:
    seconds: float
    sent: int
    ticks: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else float("nan")


def tick_until(
    scheduler: Any, counter: SendCounter, target: int, *, timeout: float, stall_ticks: int = 500
) -> TickRun:
    """Call `scheduler.tick()` back to back until `target` messages were sent or time is up.

    Beat would sleep for what `tick()` returns; here every tick follows at once, so the time
    measured is the scheduler's own work. Gives up after `stall_ticks` ticks that send nothing.
    """
    start_count = counter.count
    began = time.perf_counter()
    deadline = began + timeout
    ticks = idle = 0
    while counter.count - start_count < target:
        before = counter.count
        scheduler.tick()
        ticks += 1
        idle = idle + 1 if counter.count == before else 0
        if idle >= stall_ticks or time.perf_counter() > deadline:
            break
    return TickRun(time.perf_counter() - began, counter.count - start_count, ticks)


def timed_tick(scheduler: Any) -> float:
    """Seconds one `tick()` takes."""
    began = time.perf_counter()
    scheduler.tick()
    return time.perf_counter() - began
