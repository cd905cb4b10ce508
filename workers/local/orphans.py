"""A Redis left running by an `up` that was killed outright, found through /proc (Linux)."""

from __future__ import annotations

import os
import signal
import time
from contextlib import suppress
from pathlib import Path

import click

from workers.local.layout import Layout

REDIS_STOP_S = 3.0


def stop_orphaned_redis(layout: Layout) -> None:
    """Stop a Redis left running by an `up` that was killed outright (SIGKILL, OOM killer).

    With the data dir's lock held no live `up` owns it, and two servers must never append to
    one AOF. The process is recognised by its working directory (Linux), not by its pid alone,
    which may have been reused.
    """
    try:
        pid = int(layout.redis_pid.read_text())
        owned = Path(f"/proc/{pid}/cwd").resolve() == layout.redis
    except (OSError, ValueError):
        return
    if owned:
        click.echo(f"stopping the Redis (pid {pid}) left running by an earlier `drumline up`")
        terminate(pid, REDIS_STOP_S)


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM a process that is not our child; SIGKILL it if it outlives `timeout`."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def running(pid: int) -> bool:
    """Whether `pid` runs (Linux): a zombie has exited, it only waits for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
