"""Real Celery worker and beat processes for tests, started with `celery -A workers.app`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from celery import Celery

from workers.settings import Settings
from workers.tasks.celery_config import create_app

READY_TIMEOUT_S = 60.0


def client_app(env: Mapping[str, str]) -> Celery:
    """A Celery app configured like the processes started with `env`."""
    return create_app(Settings.from_env(env))


class CeleryProcess:
    """A `celery` child process whose output goes to a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CeleryProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited early:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged in {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (warm shutdown), SIGKILL if it does not stop in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Prefork children share the process group; none may outlive the test.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode


def worker_args(
    name: str, *, concurrency: int = 2, queues: str = "lifecycle,producers"
) -> list[str]:
    return [
        "worker",
        "--loglevel=INFO",
        f"--hostname={name}@%h",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        f"--queues={queues}",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
    ]


@contextmanager
def running_worker(
    env: Mapping[str, str], log_dir: Path, name: str = "w1", **options: object
) -> Iterator[CeleryProcess]:
    worker = CeleryProcess(worker_args(name, **options), env, log_dir / f"worker-{name}.log")  # type: ignore[arg-type]
    worker.start()
    try:
        worker.wait_for_log("ready.")
        yield worker
    finally:
        worker.stop()


def beat_args(log_dir: Path, name: str = "beat1") -> list[str]:
    """`celery beat` with drumline's scheduler; its pid and schedule files named after it."""
    return [
        "beat",
        "--loglevel=INFO",
        "--scheduler=beat.scheduler:ProducerScheduler",
        f"--pidfile={log_dir / (name + '.pid')}",
        f"--schedule={log_dir / (name + '-schedule')}",
    ]


@contextmanager
def running_beat(
    env: Mapping[str, str], log_dir: Path, name: str = "beat1"
) -> Iterator[CeleryProcess]:
    beat = CeleryProcess(beat_args(log_dir, name), env, log_dir / f"{name}.log")
    beat.start()
    try:
        beat.wait_for_log("beat: Starting...")
        yield beat
    finally:
        beat.stop()
