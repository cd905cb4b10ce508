"""Real Celery worker and beat processes for tests, started with `celery -A workers.app`.

The process class and the command lines are drumline's own (`workers/local/`), shared with
`drumline up` and the benchmark.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from celery import Celery

from workers.local.celery_argv import ALL_QUEUES, beat_argv, worker_argv
from workers.local.child import ChildProcess, StartupError
from workers.settings import Settings
from workers.tasks.celery_config import create_app

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0


def client_app(env: Mapping[str, str]) -> Celery:
    """A Celery app configured like the processes started with `env`."""
    return create_app(Settings.from_env(env))


class CeleryProcess(ChildProcess):
    """A child with the test's environment on top of this process's; a failed wait shows the
    end of its log."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        super().__init__(log_path.stem, argv, env={**os.environ, **env}, log_path=log_path)

    def wait_for_log(self, text: str, timeout: float = READY_TIMEOUT_S) -> None:
        try:
            super().wait_for_log(text, timeout)
        except StartupError as error:
            raise StartupError(f"{error}:\n{self.log()[-3000:]}") from None

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        return super().stop(grace)


@contextmanager
def running_worker(
    env: Mapping[str, str],
    log_dir: Path,
    name: str = "w1",
    *,
    concurrency: int = 2,
    queues: str = ALL_QUEUES,
) -> Iterator[CeleryProcess]:
    # No peers to see it (no heartbeat, mingle or gossip): it starts fast.
    argv = worker_argv(name, concurrency=concurrency, queues=queues, peers=False)
    worker = CeleryProcess(argv, env, log_dir / f"worker-{name}.log")
    worker.start()
    try:
        worker.wait_for_log("ready.")
        yield worker
    finally:
        worker.stop()


@contextmanager
def running_beat(
    env: Mapping[str, str], log_dir: Path, name: str = "beat1"
) -> Iterator[CeleryProcess]:
    beat = CeleryProcess(beat_argv(log_dir, name), env, log_dir / f"{name}.log")
    beat.start()
    try:
        beat.wait_for_log("beat: Starting...")
        yield beat
    finally:
        beat.stop()
