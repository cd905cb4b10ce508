"""The terminal view of `drumline up`: what every producer is doing, read from the database.

The database is the record of what ran (workers commit every run there), so the view needs no
connection to the workers. On a terminal it is a table redrawn in place; otherwise (output sent to
a file or a pipe) the data dir and log paths come once, then one short line every few seconds,
so logs stay readable.
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

from models.log_text import loggable
from models.read_models import producer_status
from models.types import utc_now
from models.vocabulary import RunStatus
from workers.read_views import describe_policy, describe_schedule, last_failure

RECENT = timedelta(minutes=1)
# The log line names at most this many failing producers, each reason cut to REASON_CHARS.
FAILING_NAMED = 3
REASON_CHARS = 60
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
    paused: bool = False
    paused_by: str | None = None
    consecutive_failures: int = 0
    last_failure: str | None = None

    @property
    def label(self) -> str:
        return loggable(f"{self.workflow}/{self.producer}")


def snapshot(engine: Engine, now: datetime) -> list[ProducerView]:
    """One view per producer of every workflow, ordered by workflow then producer."""
    views = [
        ProducerView(
            workflow=producer.workflow,
            producer=producer.schedule.producer_name,
            schedule=describe_schedule(producer.schedule)
            + (f"; {describe_policy(producer.schedule)}" if producer.schedule.policy else ""),
            next_run_at=producer.schedule.next_run_at,
            last_run_at=producer.schedule.last_run_at,
            last_status=producer.schedule.last_status,
            recent_runs=producer.recent_runs,
            paused=producer.schedule.paused,
            paused_by=producer.schedule.paused_by,
            consecutive_failures=producer.schedule.consecutive_failures,
            last_failure=last_failure(producer.last_error),
        )
        for producer in producer_status(engine, recent_since=now - RECENT)
    ]
    return sorted(views, key=lambda view: (view.workflow, view.producer))


def render(views: Sequence[ProducerView], header: Sequence[str], now: datetime) -> RenderableType:
    """A table with one row per producer, each workflow's name on a row of its own."""
    table = Table(
        Column("producer", no_wrap=True),
        Column("schedule", ratio=1),
        *(Column(name, no_wrap=True) for name in ("next run", "last run", "status", "runs/min")),
        Column("last failure", ratio=1),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        caption=f"{now:%H:%M:%S}Z - Ctrl-C stops everything",
    )
    workflow = None
    for view in views:
        if view.workflow != workflow:
            workflow = view.workflow
            table.add_row(Text(loggable(workflow), style="bold"))
        table.add_row(
            Text(f" {loggable(view.producer)}"),
            view.schedule,
            next_run(view, now),
            relative(view.last_run_at, now),
            Text(view.last_status or "-", style=STATUS_STYLES.get(view.last_status or "", "")),
            str(view.recent_runs),
            Text(view.last_failure or "-", style="red" if view.consecutive_failures else ""),
        )
    if not views:
        table.add_row("(no workflows deployed)")
    return Group(*(Text(line) for line in header), table)


def progress_line(views: Sequence[ProducerView], now: datetime) -> str:
    """One short line for logs: runs in the last minute, and which producers are failing."""
    total = sum(view.recent_runs for view in views)
    paused = sum(view.paused for view in views)
    failing = [view for view in views if view.consecutive_failures]
    producers = f"{len(views)} producer{'' if len(views) == 1 else 's'}"
    line = f"{now:%H:%M:%S}Z {total} runs in the last minute, {producers}"
    if paused:
        line += f", {paused} paused"
    if failing:
        named = [
            f"{view.label} ({loggable(view.last_failure or view.last_status, REASON_CHARS)})"
            for view in failing[:FAILING_NAMED]
        ]
        more = f" and {len(failing) - FAILING_NAMED} more" if len(failing) > FAILING_NAMED else ""
        line += f", {len(failing)} failing: {', '.join(named)}{more}"
    return line


def next_run(view: ProducerView, now: datetime) -> str:
    """When the producer runs next: `paused` (its stored next run will pass without a run),
    `due` (now, or overdue and about to be sent), `in 5s`, or `never`."""
    if view.paused:
        return f"paused ({loggable(view.paused_by, 40)})" if view.paused_by else "paused"
    if view.next_run_at is None:
        return "never"
    return "due" if view.next_run_at <= now else relative(view.next_run_at, now)


def relative(moment: datetime | None, now: datetime, never: str = "-") -> str:
    if moment is None:
        return never
    seconds = round((moment - now).total_seconds())
    if seconds == 0:
        return "now"
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
        _watch_plain(engine, header, check, console)


def _watch_live(
    engine: Engine, header: Sequence[str], check: Callable[[], None], console: Console
) -> None:
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            check()
            now = utc_now()
            live.update(render(snapshot(engine, now), header, now), refresh=True)
            time.sleep(LIVE_REFRESH_S)


def _watch_plain(
    engine: Engine, header: Sequence[str], check: Callable[[], None], console: Console
) -> None:
    for line in header:
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    next_line = time.monotonic()
    while True:
        check()
        if time.monotonic() >= next_line:
            now = utc_now()
            line = progress_line(snapshot(engine, now), now)
            console.print(line, soft_wrap=True, markup=False, highlight=False)
            next_line += PLAIN_REFRESH_S
        time.sleep(LIVE_REFRESH_S)
