"""The command lines of drumline's processes, in one place: `drumline up`, the tests and the
benchmark start the same Celery worker, beat, Flower and web view."""

from __future__ import annotations

import sys
from pathlib import Path

from beat.dispatch import PRODUCERS_QUEUE
from workers.tasks.celery_config import LIFECYCLE_QUEUE

CELERY = (sys.executable, "-m", "celery")
DRUMLINE = (sys.executable, "-m", "workers.cli.main")
APP = "workers.app"
SCHEDULER = "beat.scheduler:ProducerScheduler"
ALL_QUEUES = f"{LIFECYCLE_QUEUE},{PRODUCERS_QUEUE}"


def worker_argv(
    name: str,
    *,
    queues: str = ALL_QUEUES,
    concurrency: int = 2,
    loglevel: str = "INFO",
    peers: bool = True,
    app: str = APP,
) -> list[str]:
    """A prefork worker named `name@<host>` consuming the comma-separated `queues`.

    `peers=False` starts it without heartbeat, mingle and gossip: faster, for a worker nobody
    (Flower, other workers) needs to see.
    """
    argv = [
        *CELERY,
        "-A",
        app,
        "worker",
        f"--hostname={name}@%h",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        f"--loglevel={loglevel}",
    ]
    if not peers:
        argv += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    return argv


def beat_argv(
    workdir: Path,
    name: str,
    *,
    scheduler: str = SCHEDULER,
    loglevel: str = "INFO",
    app: str = APP,
) -> list[str]:
    """Beat with drumline's scheduler; its pid and schedule files in `workdir`, named after it."""
    return [
        *CELERY,
        "-A",
        app,
        "beat",
        f"--scheduler={scheduler}",
        f"--schedule={workdir / f'{name}-schedule'}",
        f"--pidfile={beat_pidfile(workdir, name)}",
        f"--loglevel={loglevel}",
    ]


def beat_pidfile(workdir: Path, name: str) -> Path:
    return workdir / f"{name}.pid"


def exporter_argv(port: int) -> list[str]:
    """`drumline exporter` on loopback: this host's metrics and the database's, for Prometheus."""
    return [*DRUMLINE, "exporter", f"--port={port}", "--address=127.0.0.1"]


def flower_argv(port: int) -> list[str]:
    """`drumline flower` on loopback (its credentials come through the environment)."""
    return [*DRUMLINE, "flower", f"--port={port}", "--address=127.0.0.1"]


def web_argv(port: int) -> list[str]:
    """`drumline web` on loopback (its credentials come through the environment)."""
    return [*DRUMLINE, "web", f"--port={port}", "--host=127.0.0.1"]
