"""Child processes (Celery beat and workers) that never outlive the benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

_LIVE: set[Child] = set()


class Child:
    """A `python -m celery ...` process in its own process group, logging to a file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.log():
            if not self.alive():
                raise RuntimeError(f"{self.args[:4]} exited early:\n{self.log()[-2000:]}")
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

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

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL the whole process group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        _LIVE.discard(self)


@contextmanager
def running(args: list[str], env: Mapping[str, str], log_path: Path) -> Iterator[Child]:
    child = Child(args, env, log_path).start()
    try:
        yield child
    finally:
        child.stop()


def stop_all() -> None:
    """Stop every child still running (on error or interrupt)."""
    for child in list(_LIVE):
        child.stop(timeout=5.0)


def worker_args(app: str, queues: str, *, concurrency: int = 2) -> list[str]:
    """A prefork worker as production runs it, minus the cluster chatter and per-task logs."""
    return [
        "-A",
        app,
        "worker",
        "--loglevel=WARNING",
        "--hostname=bench@%h",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        f"--queues={queues}",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
    ]


def beat_args(app: str, scheduler: str, workdir: Path) -> list[str]:
    return [
        "-A",
        app,
        "beat",
        "--loglevel=INFO",
        f"--scheduler={scheduler}",
        f"--schedule={workdir / 'celerybeat-schedule'}",
        f"--pidfile={workdir / 'beat.pid'}",
    ]
