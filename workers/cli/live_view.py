"""The terminal view of `drumline up`: what every producer is doing, read from the database.

The database is the record of what ran (workers commit every run there), so the view needs no
connection to the workers. On a terminal it is a table redrawn in place; otherwise (output sent to
a file or a pipe) it is one plain line every few seconds, so logs stay readable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy import Engine

from models.run_store import RunStore
from models.schedule_store import ProducerScheduleStore
from models.types import utc_now
from models.vocabulary import RunStatus
from models.workflow_store import WorkflowStore
from workers.cli.read_commands import describe_schedule

RECENT = timedelta(minutes=1)
# Runs read per producer to count the recent ones: more than a 1s schedule makes in a minute.
RECENT_LIMIT = 200
LIVE_REFRESH_S = 1.0
PLAIN_REFRESH_S = 5.0
STATUS_STYLES: dict[str, str] = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "bold red",
    RunStatus.SUPERSEDED: "yellow",
}


@dataclass(frozen=True)
class ProducerView:
    workflow: str
    producer: str
    schedule: str
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    recent_runs: int


def snapshot(engine: Engine, now: datetime) -> list[ProducerView]:
    """One view per producer of every workflow, ordered by workflow then producer."""
    names = {workflow.id: workflow.name for workflow in WorkflowStore(engine).list()}
    runs = RunStore(engine)
    views = []
    for row in ProducerScheduleStore(engine).list():
        if row.workflow_id not in names:
            continue  # deployed between the two reads; shown on the next refresh
        recent = runs.list(row.workflow_id, producer_name=row.producer_name, limit=RECENT_LIMIT)
        schedule = describe_schedule(row)
        views.append(
            ProducerView(
                workflow=names[row.workflow_id],
                producer=row.producer_name,
                schedule=f"{schedule} (paused)" if row.paused else schedule,
                next_run_at=row.next_run_at,
                last_run_at=row.last_run_at,
                last_status=row.last_status,
                recent_runs=sum(1 for run in recent if run.started_at >= now - RECENT),
            )
        )
    return sorted(views, key=lambda view: (view.workflow, view.producer))


def render(views: Sequence[ProducerView], header: Sequence[str], now: datetime) -> RenderableType:
    """A table with one row per producer, each workflow's name on a row of its own."""
    table = Table(
        Column("producer", no_wrap=True),
        Column("schedule", ratio=1),
        *(Column(name, no_wrap=True) for name in ("next run", "last run", "status", "runs/min")),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        caption=f"{now:%H:%M:%S}Z - Ctrl-C stops everything",
    )
    workflow = None
    for view in views:
        if view.workflow != workflow:
            workflow = view.workflow
            table.add_row(Text(workflow, style="bold"))
        table.add_row(
            f" {view.producer}",
            view.schedule,
            relative(view.next_run_at, now, never="never"),
            relative(view.last_run_at, now),
            Text(view.last_status or "-", style=STATUS_STYLES.get(view.last_status or "", "")),
            str(view.recent_runs),
        )
    if not views:
        table.add_row("(no workflows deployed)")
    return Group(*(Text(line) for line in header), table)


def progress_line(views: Sequence[ProducerView], now: datetime) -> str:
    """One line for logs: the runs in the last minute and the last status of each producer."""
    total = sum(view.recent_runs for view in views)
    parts = [
        f"{view.workflow}/{view.producer}={view.recent_runs} ({view.last_status or '-'})"
        for view in views
    ]
    return f"{now:%H:%M:%S}Z {total} runs in the last minute: {', '.join(parts) or 'no producers'}"


def relative(moment: datetime | None, now: datetime, never: str = "-") -> str:
    if moment is None:
        return never
    seconds = round((moment - now).total_seconds())
    return f"in {_duration(seconds)}" if seconds > 0 else f"{_duration(-seconds)} ago"


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172_800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86_400}d"


def watch(
    engine: Engine, header: Sequence[str], check: Callable[[], None], console: Console
) -> None:
    """Refresh until interrupted; `check` raises when the system being shown has broken."""
    if console.is_terminal:
        _watch_live(engine, header, check, console)
    else:
        _watch_plain(engine, check, console)


def _watch_live(
    engine: Engine, header: Sequence[str], check: Callable[[], None], console: Console
) -> None:
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            check()
            now = utc_now()
            live.update(render(snapshot(engine, now), header, now), refresh=True)
            time.sleep(LIVE_REFRESH_S)


def _watch_plain(engine: Engine, check: Callable[[], None], console: Console) -> None:
    next_line = time.monotonic()
    while True:
        check()
        if time.monotonic() >= next_line:
            now = utc_now()
            console.print(progress_line(snapshot(engine, now), now), soft_wrap=True)
            next_line += PLAIN_REFRESH_S
        time.sleep(LIVE_REFRESH_S)
