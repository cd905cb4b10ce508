"""CPU time per task by kind of process: where an end-to-end run's cost goes.

Read from psutil (user + system seconds) at the first finished task and at the last, so worker
start-up does not count. A kind maps to a function listing its processes' pids at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress

import psutil

PidLister = Callable[[], list[int]]


def cpu_seconds(kinds: Mapping[str, PidLister]) -> dict[str, float]:
    """CPU seconds used so far by the processes of each kind."""
    totals: dict[str, float] = {}
    for kind, pids in kinds.items():
        total = 0.0
        for pid in pids():
            with suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        totals[kind] = total
    return totals


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants: one server's processes only (other jobs on the machine may
    run their own PostgreSQL, under the same process name)."""
    with suppress(psutil.Error):
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    return []


def per_task(
    before: Mapping[str, float], after: Mapping[str, float], tasks: int
) -> dict[str, float]:
    """Milliseconds of CPU per task for each kind (empty if no task finished)."""
    if tasks <= 0:
        return {}
    return {kind: (after[kind] - before[kind]) / tasks * 1000 for kind in after}


def describe(cpu_ms: Mapping[str, float]) -> str:
    """`CPU/task: worker 8.04 ms, postgres 1.57 ms`, for the report's note column."""
    if not cpu_ms:
        return "CPU/task: n/a"
    return "CPU/task: " + ", ".join(f"{kind} {ms:.2f} ms" for kind, ms in cpu_ms.items())
