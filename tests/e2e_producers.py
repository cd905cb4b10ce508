"""Producers for end-to-end tests: each execution leaves a line in a journal file.

The journal is written outside the database, so a slot that really ran twice shows up twice
even if drumline's own bookkeeping were wrong.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from workers.registry import ProducerContext, producer
from workers.services.time_limit import ProducerTimeoutError


def _journal(context: ProducerContext, event: str) -> None:
    line = json.dumps(
        {
            "event": event,
            "workflow": context.workflow,
            "producer": context.producer,
            "slot": context.scheduled_for.isoformat(),
            "trigger": context.trigger,
            "pid": os.getpid(),
            "at": time.time(),
        }
    )
    with Path(str(context.params["journal"])).open("a") as journal:
        journal.write(line + "\n")


@producer("test.journal")
def journal(context: ProducerContext) -> dict[str, str]:
    """Records the execution, optionally sleeping `params.seconds` in between."""
    _journal(context, "start")
    time.sleep(float(context.params.get("seconds", 0)))
    _journal(context, "end")
    return {"slot": context.scheduled_for.isoformat()}


@producer("test.journal_swallowing_timeout")
def journal_swallowing_timeout(context: ProducerContext) -> dict[str, int]:
    """Catches every time-limit exception until `params.seconds` have passed, then returns as
    if all went well: the run must still be recorded as timed out."""
    _journal(context, "start")
    end = time.monotonic() + float(context.params["seconds"])
    caught = 0
    while (left := end - time.monotonic()) > 0:
        try:
            time.sleep(left)
        except ProducerTimeoutError:
            caught += 1
    _journal(context, "end")
    return {"caught": caught}


def read_journal(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
