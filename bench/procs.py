"""Child processes (Celery beat and workers) that never outlive the benchmark.

The process class and the command lines are drumline's own (`workers/local/`); the benchmark adds
a registry of live children, their memory and their process trees.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Self

import psutil

from workers.local.celery_argv import beat_argv, worker_argv
from workers.local.child import ChildProcess

_LIVE: set[Child] = set()
STOP_GRACE_S = 15.0
# What drumline's beat logs once it has read its settings, before its first tick.
BEAT_READY = "beat: producer schedules in"


class Child(ChildProcess):
    """A child with the benchmark's environment on top of this process's."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        super().__init__(log_path.stem, argv, env={**os.environ, **env}, log_path=log_path)

    def start(self) -> Self:
        super().start()
        _LIVE.add(self)
        return self

    def peak_rss_mib(self) -> float:
        """Peak resident set size of the main process (VmHWM), in MiB."""
        status = Path(f"/proc/{self.pid}/status")
        with suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float(psutil.Process(self.pid).memory_info().rss) / 2**20

    def children(self) -> list[int]:
        with suppress(psutil.Error):
            return [p.pid for p in psutil.Process(self.pid).children(recursive=True)]
        return []

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """SIGTERM (warm shutdown), then SIGKILL the whole process group."""
        try:
            return super().stop(grace)
        finally:
            _LIVE.discard(self)


@contextmanager
def running(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> Iterator[Child]:
    child = Child(argv, env, log_path).start()
    try:
        yield child
    finally:
        child.stop()


def stop_all() -> None:
    """Stop every child still running (on error or interrupt)."""
    for child in list(_LIVE):
        child.stop(grace=5.0)


def worker_args(app: str, queues: str, *, concurrency: int = 2) -> list[str]:
    """A prefork worker as production runs it, minus the cluster chatter and per-task logs."""
    return worker_argv(
        "bench", app=app, queues=queues, concurrency=concurrency, loglevel="WARNING", peers=False
    )


def beat_args(app: str, scheduler: str, workdir: Path) -> list[str]:
    """Beat with `scheduler`; its pid and schedule files in `workdir`."""
    return beat_argv(workdir, "beat", app=app, scheduler=scheduler)
