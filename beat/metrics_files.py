"""Where drumline's processes keep their Prometheus metrics: one private directory per host.

Celery's prefork pool runs each task in a child process, and beat and the workers are separate
processes too, so their counters are kept as prometheus_client keeps multiprocess metrics: in
memory-mapped files, one set per process id, which one exporter merges (`drumline exporter`).
Each process writes into its own subdirectory, `<role>-<host>-<pid>`; a pool child writes into
its worker's (it inherits the setting over the fork), so a replaced child's counts stay in the
sum. On start, a process removes the subdirectories of its role on this host whose process is
gone: a restarted process starts from zero, as Prometheus expects after a restart.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

from prometheus_client import values

logger = logging.getLogger("drumline.metrics")
# prometheus_client reads its directory from this variable whenever it opens a file.
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
P = ParamSpec("P")


def best_effort(record: Callable[P, None]) -> Callable[P, None]:
    """A metric update that never fails its caller: a full disk or a removed metrics file must
    not stop beat or fail a run. Logged at WARNING each time, without a traceback."""

    @functools.wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception as exc:
            logger.warning(
                "metrics: %s not recorded: %s: %s", record.__name__, type(exc).__name__, exc
            )

    return guarded


def process_dir_name(role: str, host: str, pid: int) -> str:
    return f"{role}-{host}-{pid}"


def enable_multiprocess(directory: Path, role: str) -> Path:
    """Record this process's metrics (and those of its forks) under `directory`; returns the
    process's own subdirectory. Call before any metric is created."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    host = socket.gethostname()
    remove_dead_processes(directory, role, host)
    own = directory / process_dir_name(role, host, os.getpid())
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir(mode=0o700)
    # Not a setting read here: prometheus_client itself looks the directory up in the
    # environment, in this process and in every pool child forked from it.
    os.environ[MULTIPROC_VARIABLE] = str(own)
    values.ValueClass = values.MultiProcessValue()
    return own


def remove_dead_processes(directory: Path, role: str, host: str) -> None:
    """Remove the metrics of this role's processes on this host that are no longer running."""
    prefix = f"{role}-{host}-"
    for candidate in directory.glob(f"{prefix}*"):
        pid_text = candidate.name.removeprefix(prefix)
        if pid_text.isdigit() and not _running(int(pid_text)):
            shutil.rmtree(candidate, ignore_errors=True)


def metric_files(directory: Path) -> list[Path]:
    """Every process's metric files under `directory`."""
    return sorted(directory.glob("*/*.db"))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
