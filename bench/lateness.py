"""4. Lateness: how long after its slot each run is sent and starts, at a load workers carry.

Beat alone: 2,000 producers every 10 s (200 due/s), each producer's first slot only (nothing
commits a next run). With workers: one beat and one 2-process prefork worker stay up while the
due rate steps up (x1.5 from `first_per_s`, short windows) until the workers fall behind; the
last rate that kept up is then confirmed, and the gap to the first that fell behind narrowed,
with loads as long as the measurement's (a load near the limit keeps up for 10 s and falls
behind over 30 s). The lateness is measured at `share` of the highest rate that kept up over
the long window. Every load seeds fresh producers whose first slots fall due only once beat is
up, and counts only the slots scheduled in its window, which opens one interval after the first
slot (each producer has run once, so the workers are in their steady state).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import psutil
import redis
from celery import Celery
from sqlalchemy import Engine, select, update

from beat.dispatch import PRODUCERS_QUEUE
from bench.cpu import PidLister, cpu_seconds, process_tree
from bench.infra import Infra, analyze, drumline_app, drumline_env, step, wait_for
from bench.procs import BEAT_READY, beat_args, running, worker_args
from bench.report import Results
from bench.seed import FAR_FUTURE, ScheduleSeeder
from bench.task_events import TaskEvents, TaskTimes
from models.db import make_engine
from models.tables import producer_runs, producer_schedules
from models.types import utc_now

LEAD_S = 3.0  # seconds between seeding and the first slot: beat's next tick sees them
GRACE_S = 1.0  # after a window closes, before its slots are counted
MACHINE = "machine, all processes"
QUEUE_POLL_S = 0.25


@dataclass(frozen=True)
class SearchPlan:
    """The search for the highest due/s 2 worker processes keep up with."""

    first_per_s: float = 25.0
    factor: float = 1.5
    max_per_s: float = 1_500.0
    # The x`factor` steps: short loads, to find the range quickly.
    interval_s: float = 5.0
    window_s: float = 10.0
    # Then, with the measurement's interval and window: the last step that kept up is tried
    # again (and, while it falls behind, `factor` lower, at most `confirm_tries` rates), and the
    # gap to the first rate that fell behind is halved (geometrically) `refine_steps` times.
    confirm_tries: int = 3
    refine_steps: int = 2
    # Kept up: this share of the window's slots started within GRACE_S of its end, and the
    # queue's median length grew by less than `backlog_s` of due slots from the window's first
    # third to its last (one sample at the end is too noisy: a batch may have just arrived)
    # and was no longer than that in the last third: a standing backlog that shrinks a little
    # (166 -> 95 queued at 171.5 due/s, starts p50 722 ms late) is behind, not keeping up.
    started_share: float = 0.95
    backlog_s: float = 0.25
    # The measured loads, as shares of the highest rate kept up with.
    shares: tuple[float, ...] = (0.8,)


@dataclass(frozen=True)
class LatenessPlan:
    """Beat alone on `beat_stores`; beat with a 2-process worker on `stores`."""

    seconds: float
    stores: tuple[str, ...]
    beat_stores: tuple[str, ...] = ("sqlite", "postgresql")
    producers: int = 2_000
    interval_s: float = 10.0
    search: SearchPlan = field(default_factory=SearchPlan)


def percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values_ms)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "p50": at(0.50), "p99": at(0.99), "max": ordered[-1]}


def run(infra: Infra, results: Results, plan: LatenessPlan) -> None:
    for store in plan.beat_stores:
        with infra.database(store) as url:
            _add(results, _beat_alone(infra, plan, store, url))
    for store in plan.stores:
        with infra.database(store) as url, _Rig(infra, store, url) as rig:
            kept_up = _search(rig, results, plan.search, Shape(plan.interval_s, plan.seconds))
            for share in plan.search.shares:
                # If nothing kept up, the shares are of the first step's rate.
                per_s = share * (kept_up or plan.search.first_per_s)
                step(f"lateness: {store}: kept up with {kept_up:.1f} due/s; at {per_s:.1f}")
                load = rig.load(per_s, plan.interval_s, plan.seconds)
                row = load.row(store, "2 worker processes")
                row["kept_up_per_s"] = kept_up
                _add(results, row)


def _add(results: Results, row: dict[str, Any]) -> None:
    results.add("lateness", **row)
    s, t = row["sent_ms"], row["started_ms"]
    step(
        f"lateness: {row['store']}/{row['workers']}, {row['due_per_s']:.0f} due/s: sent "
        f"{row['slots_sent']}/{row['slots_expected']}, p50 {s['p50']:.0f} ms, p99 {s['p99']:.0f}"
        f" ms; started {row['slots_started']}, p50 {t['p50']:.0f} ms, p99 {t['p99']:.0f} ms"
    )


class Loads(Protocol):
    """What the search needs of a rig: its store, and a load run at a given shape."""

    store: str

    def load(self, per_s: float, interval_s: float, window_s: float) -> LoadWindow: ...


@dataclass(frozen=True)
class Shape:
    """A load's producer interval and counted window, in seconds."""

    interval_s: float
    window_s: float


def _search(rig: Loads, results: Results, plan: SearchPlan, measured: Shape) -> float:
    """The highest due/s that kept up over a window as long as the measurement's (0 if none).

    Short x`factor` steps bracket the limit; the bracket is then checked and narrowed with
    `measured`-shaped loads, because near the limit a 10 s window ends before a backlog shows.
    """
    short = Shape(plan.interval_s, plan.window_s)
    per_s, below, above = plan.first_per_s, 0.0, None
    while per_s <= plan.max_per_s:
        if not _kept_up(rig, results, plan, per_s, short, f"x{plan.factor:g} step"):
            above = per_s
            break
        below = per_s
        per_s *= plan.factor
    kept_up = 0.0
    for _ in range(plan.confirm_tries):
        if below <= 0:
            break
        if _kept_up(rig, results, plan, below, measured, "confirm"):
            kept_up = below
            break
        above, below = below, below / plan.factor
    if kept_up and above is not None:
        for _ in range(plan.refine_steps):
            middle = (kept_up * above) ** 0.5
            if _kept_up(rig, results, plan, middle, measured, "refine"):
                kept_up = middle
            else:
                above = middle
    return kept_up


def _kept_up(
    rig: Loads, results: Results, plan: SearchPlan, per_s: float, shape: Shape, stage: str
) -> bool:
    """Run one load and judge it by `plan`'s criteria; the judgement is a `lateness_search`
    row."""
    load = rig.load(per_s, shape.interval_s, shape.window_s)
    share = load.started_in_time / load.expected if load.expected else 0.0
    allowed = per_s * plan.backlog_s
    growth = load.backlog_end - load.backlog_start
    ok = share >= plan.started_share and growth <= allowed and load.backlog_end <= allowed
    results.add(
        "lateness_search",
        store=rig.store,
        stage=stage,
        due_per_s=per_s,
        interval_s=shape.interval_s,
        window_s=shape.window_s,
        slots_expected=load.expected,
        started_in_time=load.started_in_time,
        backlog_start=load.backlog_start,
        backlog_end=load.backlog_end,
        started_ms=percentiles(load.started_ms()),
        cpu_cores=load.cpu_cores,
        cpu_pressure=load.cpu_pressure,
        kept_up=ok,
    )
    step(
        f"lateness search ({stage}, {shape.window_s:g} s): {rig.store}: {per_s:.1f} due/s: "
        f"{load.started_in_time}/{load.expected} started in time, median queue "
        f"{load.backlog_start:g} -> {load.backlog_end:g}: {'kept up' if ok else 'fell behind'}"
    )
    return ok


@dataclass
class LoadWindow:
    """What one load's window saw: its slots' messages and runs, and the queue's length."""

    per_s: float
    producers: int
    interval_s: float
    window_s: float
    expected: int
    messages: dict[str, TaskTimes]  # by task id
    runs: list[tuple[str | None, datetime, datetime]]  # (task id, scheduled_for, started_at)
    started_in_time: int
    backlog_start: float  # the queue's median length in the window's first third
    backlog_end: float  # and in its last third
    cpu_cores: dict[str, float]  # CPU seconds per second of the window, by kind of process
    cpu_pressure: float | None  # share of the window some runnable task waited for a core

    def started_ms(self) -> list[float]:
        return [(started - at).total_seconds() * 1000 for _, at, started in self.runs]

    def row(self, store: str, workers: str) -> dict[str, Any]:
        sent_ms = [(t.sent - t.scheduled_for.timestamp()) * 1000 for t in self.messages.values()]
        return {
            "store": store,
            "workers": workers,
            "producers": self.producers,
            "interval_s": self.interval_s,
            "due_per_s": self.per_s,
            "seconds": self.window_s,
            "slots_expected": self.expected,
            "slots_sent": len(sent_ms),
            "slots_started": len(self.runs),
            "sent_ms": percentiles(sent_ms),
            "started_ms": percentiles(self.started_ms()),
            "parts_ms": self._parts(),
            "cpu_cores": self.cpu_cores,
            "cpu_pressure": self.cpu_pressure,
        }

    def _parts(self) -> dict[str, dict[str, float]]:
        """Start lateness split at the worker's events: beat (sent), the queue (sent to
        received: prefetch), the pool's pipe (received to started) and the run's own start
        statement (task-started to the run row's `started_at`)."""
        started_at = {task_id: started for task_id, _, started in self.runs}
        queue, pipe, statement = [], [], []
        for task_id, t in self.messages.items():
            if t.received is not None:
                queue.append((t.received - t.sent) * 1000)
            if t.received is not None and t.started is not None:
                pipe.append((t.started - t.received) * 1000)
            if t.started is not None and task_id in started_at:
                statement.append((started_at[task_id].timestamp() - t.started) * 1000)
        return {
            "queue": percentiles(queue),
            "pool pipe": percentiles(pipe),
            "start statement": percentiles(statement),
        }


class _Rig:
    """A beat and a 2-process worker (or beat alone) on one database, kept across loads."""

    def __init__(self, infra: Infra, store: str, url: str, *, workers: bool = True) -> None:
        self.infra = infra
        self.store = store
        self.workers = workers
        self.env = drumline_env(infra, url, infra.scratch("data"))
        self.engine: Engine = make_engine(url)
        self.app: Celery = drumline_app(self.env)
        self.client: redis.Redis = infra.redis()
        self.seeder = ScheduleSeeder(self.engine)
        self._stack = contextlib.ExitStack()
        self.events: TaskEvents | None = None
        self.kinds: dict[str, PidLister] = {}

    def __enter__(self) -> _Rig:
        workdir = self.infra.scratch("lateness")
        # Messages a previous run left in the queue would be worked off first, and every one
        # of them delays the runs measured here (round two's "no run started in the window").
        self.client.delete(PRODUCERS_QUEUE)
        try:
            if self.workers:
                argv = worker_args("workers.app", PRODUCERS_QUEUE)
                worker = self._stack.enter_context(running(argv, self.env, workdir / "worker.log"))
                if not wait_for(lambda: _ping(self.app) or not worker.alive(), 60, 0.5):
                    raise RuntimeError(f"worker not ready:\n{worker.log()[-2000:]}")
                self.kinds["worker"] = lambda: [worker.pid, *worker.children()]
            self.events = TaskEvents(self.app).start()
            self._stack.callback(self.events.stop)
            argv = beat_args("workers.app", "beat.scheduler:ProducerScheduler", workdir)
            beat = self._stack.enter_context(running(argv, self.env, workdir / "beat.log"))
            # The first slots fall due once beat is up: its start-up is not lateness.
            if not wait_for(lambda: beat.logged(BEAT_READY) or not beat.alive(), 120, 0.2):
                raise RuntimeError(f"beat not ready:\n{beat.log()[-2000:]}")
            redis_process = self.infra.redis_server.process
            assert redis_process is not None
            self.kinds |= {
                "beat": lambda: [beat.pid],
                "redis": lambda: [redis_process.pid],
                "bench (event receiver)": lambda: [os.getpid()],
            }
            if self.store == "postgresql":
                self.kinds["postgres"] = lambda: process_tree(self.infra.pg_pid)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self._stack.close()
        finally:
            self.client.delete(PRODUCERS_QUEUE)
            self.client.close()
            self.engine.dispose()
            self.app.close()

    def load(self, per_s: float, interval_s: float, window_s: float) -> LoadWindow:
        """`per_s` due each second from fresh producers; the window opens one interval after
        their first slot (`interval_s` = 0: the first slots are the window)."""
        producers = max(1, round(per_s * interval_s))
        first = utc_now() + timedelta(seconds=LEAD_S)
        spacing = timedelta(seconds=interval_s / producers)
        self.seeder.every = f"{interval_s:g}s"
        self.seeder.add(producers, lambda i: first + i * spacing)
        analyze(self.engine)
        start = first + timedelta(seconds=interval_s if self.workers else 0)
        end = start + timedelta(seconds=window_s)
        _sleep_until(start)
        cpu_before = {**cpu_seconds(self.kinds), MACHINE: _busy_seconds()}
        stalled_before = _cpu_stalled_seconds()
        queue = self._queue_lengths(end)
        third = max(1, len(queue) // 3)
        backlog_start, backlog_end = _median(queue[:third]), _median(queue[-third:])
        cpu = {**cpu_seconds(self.kinds), MACHINE: _busy_seconds()}
        stalled = _cpu_stalled_seconds()
        _sleep_until(end + timedelta(seconds=GRACE_S))
        in_time = len(_runs(self.engine, start, end))
        assert self.events is not None
        messages = self.events.scheduled_in(start, end)
        if self.workers:
            # Slots still queued may start later: wait (bounded) for every message sent.
            wait_for(lambda: len(_runs(self.engine, start, end)) >= len(messages), 15, 0.5)
        runs = _runs(self.engine, start, end)
        self._retire()
        return LoadWindow(
            per_s=per_s,
            producers=producers,
            interval_s=interval_s,
            window_s=window_s,
            expected=round(per_s * window_s),
            messages=self.events.scheduled_in(start, end),
            runs=runs,
            started_in_time=in_time,
            backlog_start=backlog_start,
            backlog_end=backlog_end,
            cpu_cores={kind: (cpu[kind] - cpu_before[kind]) / window_s for kind in cpu},
            cpu_pressure=None
            if stalled is None or stalled_before is None
            else (stalled - stalled_before) / window_s,
        )

    def _queue_lengths(self, until: datetime) -> list[int]:
        """The `producers` queue's length every `QUEUE_POLL_S` until `until` (none without
        workers: nothing consumes it then)."""
        lengths = []
        while (left := (until - utc_now()).total_seconds()) > 0:
            if self.workers:
                lengths.append(int(self.client.llen(PRODUCERS_QUEUE)))
            time.sleep(min(QUEUE_POLL_S, left))
        return lengths

    def _retire(self) -> None:
        """Every producer a day away and unclaimed (a run still in flight then commits
        nothing), and the queue emptied: the next load starts from an idle system."""
        with self.engine.begin() as conn:
            conn.execute(
                update(producer_schedules).values(
                    next_run_at=utc_now() + FAR_FUTURE, claimed_until=None, claim_token=None
                )
            )
        self.client.delete(PRODUCERS_QUEUE)


def _beat_alone(infra: Infra, plan: LatenessPlan, store: str, url: str) -> dict[str, Any]:
    step(f"lateness: {store}: {plan.producers:,} producers every {plan.interval_s:g}s, beat alone")
    per_s = plan.producers / plan.interval_s
    with _Rig(infra, store, url, workers=False) as rig:
        # Without workers nothing commits, so each producer's first slot is its only one.
        load = rig.load(per_s, plan.interval_s, plan.interval_s)
    return load.row(store, "none (beat alone)")


def _median(values: list[int]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _busy_seconds() -> float:
    """CPU seconds every process on the machine has used (other jobs' too)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq")  # guest time is counted in user
    return float(sum(getattr(times, name, 0.0) for name in busy))


def _cpu_stalled_seconds() -> float | None:
    """Seconds in which some runnable task waited for a core (Linux PSI), if the kernel
    reports it: the share of a window spent so is how contended the cores were."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    total = dict(part.split("=", 1) for part in first.split()[1:]).get("total")
    return None if total is None else int(total) / 1e6


def _sleep_until(at: datetime) -> None:
    time.sleep(max(0.0, (at - utc_now()).total_seconds()))


def _ping(app: Celery) -> bool:
    try:
        return bool(app.control.ping(timeout=0.5))
    except Exception:
        return False


def _runs(
    engine: Engine, start: datetime, end: datetime
) -> list[tuple[str | None, datetime, datetime]]:
    """(task id, scheduled_for, started_at) of the runs of slots scheduled in [start, end)."""
    r = producer_runs.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.task_id, r.scheduled_for, r.started_at).where(
                r.scheduled_for >= start, r.scheduled_for < end
            )
        ).all()
    return [(task_id, scheduled_for, started_at) for task_id, scheduled_for, started_at in rows]
