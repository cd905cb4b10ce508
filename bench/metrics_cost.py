"""`python -m bench.metrics_cost`: what metrics cost on the run path and on the beat tick.

Both are timed in this process against real SQLite and a real Redis, with the production
recorders (prometheus_client multiprocess files) and with metrics off. The cost is small beside
the noise of a shared machine, so one measurement decides nothing:

- within a repetition, runs (and ticks) alternate on, off, off, on, ... so drift in the
  machine's load, and anything that recurs every other run, falls on both sides alike; the
  repetition's ratio is the median on over the median off;
- `--repeats` repetitions, the first side swapped each time, give the median ratio (target at
  most 1.05) and the spread (lowest to highest);
- each run (and tick) is timed twice: wall clock, and this process's CPU time. What metrics
  add is CPU time in this process, and CPU time leaves out the time other processes on a busy
  machine take the core, the noise that moves the wall-clock ratio most. It also leaves out
  waiting on Redis, so the CPU ratio is the stricter one: it decides met or missed;
- the recorder's own calls, timed alone in a loop, give its cost per run and per tick in µs:
  a floor, with every cache warm; between a tick's database and broker work the same calls
  take several times as long.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from beat.beat_metrics import BeatMetrics, BeatRecorder, NoBeatMetrics
from beat.metrics_files import enable_multiprocess
from beat.scheduler import ProducerScheduler
from bench.seed import ScheduleSeeder, release_claims
from models import migrate
from models.claims import BeatClaims
from models.db import make_engine
from models.types import utc_now
from workers.local.redis_server import RedisServer
from workers.services.run_metrics import NoRunMetrics, RunMetrics, RunRecorder
from workers.services.runner import Slot, SlotRunner
from workers.settings import Settings
from workers.tasks.celery_config import create_app

TARGET = 1.05
RECORDER_LOOPS = 2000
ON, OFF = 0, 1


def side_of(index: int, first: int) -> int:
    """ON or OFF for the index-th run of a repetition: first, other, other, first, ..."""
    return (index + index // 2 + first) % 2


class Timings:
    """Wall-clock and CPU seconds of each run (or tick) of one repetition, by side."""

    def __init__(self) -> None:
        self.wall: tuple[list[float], list[float]] = ([], [])
        self.cpu: tuple[list[float], list[float]] = ([], [])

    def time(self, side: int, call: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        self.cpu[side].append(time.process_time() - cpu)
        self.wall[side].append(time.perf_counter() - wall)

    def repetition(self) -> Repetition:
        return Repetition(
            *(statistics.median(self.wall[side]) for side in (ON, OFF)),
            *(statistics.median(self.cpu[side]) for side in (ON, OFF)),
        )


@dataclass(frozen=True)
class Repetition:
    """Median seconds per run (or tick) with metrics on and off, in one repetition."""

    wall_on: float
    wall_off: float
    cpu_on: float
    cpu_off: float

    @property
    def wall_ratio(self) -> float:
        return self.wall_on / self.wall_off

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_on / self.cpu_off


@dataclass(frozen=True)
class Figures:
    """One path's repetitions and the recorder's own cost per run (or tick)."""

    path: str
    repetitions: list[Repetition]
    recorder_seconds: float

    def median(self, value: Callable[[Repetition], float]) -> float:
        return statistics.median(value(r) for r in self.repetitions)

    def spread(self, value: Callable[[Repetition], float]) -> str:
        values = [value(r) for r in self.repetitions]
        return f"{min(values):.3f} - {max(values):.3f}"

    @property
    def recorder_share(self) -> float:
        """The recorder's own cost as a fraction of a run's (or tick's) CPU, metrics off."""
        return self.recorder_seconds / self.median(lambda r: r.cpu_off)


class RunPath:
    """Runs due slots through `SlotRunner` (start, producer `demo.noop`, commit)."""

    def __init__(self, settings: Settings, runs: int, repeats: int) -> None:
        self.settings = settings
        self.runs = runs
        self.engine = make_engine(settings.database_url)
        # Every repetition's slots from the start, so each runs against a table of one size.
        ScheduleSeeder(self.engine).add(
            runs * repeats, lambda i: utc_now() - timedelta(minutes=1, seconds=i)
        )
        self.recorders: tuple[RunRecorder, RunRecorder] = (
            RunMetrics(producer_labels=False),
            NoRunMetrics(),
        )

    def repeat(self, first: int) -> Repetition:
        s = self.settings
        claimed = BeatClaims(self.engine).claim_due(now=utc_now(), lease=s.lease, limit=self.runs)
        runners = tuple(
            SlotRunner(
                self.engine,
                lease=s.lease,
                max_timeout=s.max_timeout,
                default_timeout=s.default_timeout,
                clock=utc_now,
                result_bounds=s.result_bounds,
                state_bounds=s.state_bounds,
                metrics=recorder,
            )
            for recorder in self.recorders
        )
        timings = Timings()
        for index, claim in enumerate(claimed):
            side = side_of(index, first)
            slot = Slot(
                workflow_id=claim.workflow_id,
                workflow=claim.workflow_name,
                producer=claim.producer_name,
                scheduled_for=claim.scheduled_for,
                claim_token=claim.claim_token,
                task_id=f"bench-{first}-{index}",
            )
            timings.time(side, functools.partial(runners[side].run, slot))
        return timings.repetition()

    def recorder_seconds(self) -> float:
        """The recorder's calls for one scheduled run that succeeded, timed alone."""
        recorder = self.recorders[ON]
        scheduled_for = utc_now() - timedelta(seconds=1)

        def one_run() -> None:
            recorder.started("bench-00000", "p0000", scheduled_for, utc_now())
            recorder.finished(
                "bench-00000",
                "p0000",
                trigger="schedule",
                outcome="succeeded",
                seconds=0.001,
                attempt=1,
            )

        return per_call(one_run)

    def close(self) -> None:
        self.engine.dispose()


class BeatTick:
    """Beat's tick: claim `due` slots and send them to Redis; the claims are cleared between
    ticks, so every tick claims and sends the same rows."""

    def __init__(self, settings: Settings, due: int) -> None:
        self.engine = make_engine(settings.database_url)
        ScheduleSeeder(self.engine).add(due, lambda i: utc_now() - timedelta(minutes=1, seconds=i))
        self.app = create_app(settings)
        self.scheduler = ProducerScheduler(app=self.app, lazy=True)
        self.due = due
        self.recorders: tuple[BeatRecorder, BeatRecorder] = (BeatMetrics(), NoBeatMetrics())

    def repeat(self, ticks: int, first: int) -> Repetition:
        timings = Timings()
        for index in range(ticks):
            side = side_of(index, first)
            self.scheduler.__dict__["metrics"] = self.recorders[side]
            release_claims(self.engine)
            timings.time(side, self.scheduler._dispatch_due)
        return timings.repetition()

    def recorder_seconds(self) -> float:
        """The recorder's calls for one tick that claims and sends `due` slots, timed alone."""
        recorder = self.recorders[ON]
        now = utc_now()
        scheduled = [now - timedelta(minutes=1, seconds=i) for i in range(self.due)]

        def one_tick() -> None:
            recorder.claimed(self.due, 0, 0.002)
            recorder.sent(scheduled, utc_now(), 0.004)

        return per_call(one_tick)

    def close(self) -> None:
        self.scheduler.close()
        self.app.close()
        self.engine.dispose()


def per_call(call: Callable[[], None]) -> float:
    """Median seconds of one call, over 5 rounds of RECORDER_LOOPS calls."""
    rounds = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(RECORDER_LOOPS):
            call()
        rounds.append((time.perf_counter() - began) / RECORDER_LOOPS)
    return statistics.median(rounds)


def measure(work: Path, redis_url: str, args: argparse.Namespace) -> list[Figures]:
    settings = {}
    for name in ("runs", "ticks"):
        url = f"sqlite:///{work / name}.db"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        settings[name] = Settings.from_env(
            {
                "DRUMLINE_BROKER_URL": redis_url,
                "DRUMLINE_DATABASE_URL": url,
                "DRUMLINE_DATA_DIR": str(work),
            }
        )
    run_path = RunPath(settings["runs"], args.runs, args.repeats)
    tick = BeatTick(settings["ticks"], args.due)
    runs: list[Repetition] = []
    ticks: list[Repetition] = []
    try:
        for number in range(args.repeats):
            first = number % 2  # on first, then off first, ...
            runs.append(run_path.repeat(first))
            ticks.append(tick.repeat(args.ticks, first))
        return [
            Figures("run path", runs, run_path.recorder_seconds()),
            Figures("beat tick", ticks, tick.recorder_seconds()),
        ]
    finally:
        run_path.close()
        tick.close()


def report(figures: list[Figures], args: argparse.Namespace) -> str:
    load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
    lines = [
        f"{args.repeats} repetitions of {args.runs} runs and {args.ticks} ticks"
        f" ({args.due} slots each), load average {load}",
        "",
        "| path | CPU off (median) | CPU on / off: median | spread"
        " | wall off (median) | wall on / off: median | spread | recorder alone |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.path} | {f.median(lambda r: r.cpu_off) * 1000:.3f} ms"
            f" | {f.median(lambda r: r.cpu_ratio):.3f} | {f.spread(lambda r: r.cpu_ratio)}"
            f" | {f.median(lambda r: r.wall_off) * 1000:.3f} ms"
            f" | {f.median(lambda r: r.wall_ratio):.3f} | {f.spread(lambda r: r.wall_ratio)}"
            f" | {f.recorder_seconds * 1e6:.1f} µs ({f.recorder_share:.1%}) |"
        )
    lines.append("")
    for f in figures:
        each = " ".join(f"{r.cpu_ratio:.3f}" for r in f.repetitions)
        lines.append(f"{f.path}, CPU on / off per repetition: {each}")
    worst = max(f.median(lambda r: r.cpu_ratio) for f in figures)
    verdict = "met" if worst <= TARGET else "missed"
    lines.append(f"\nworst median CPU ratio {worst:.3f} (target at most {TARGET}): {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__)
    parser.add_argument("--runs", type=int, default=2000, help="slots run per repetition")
    parser.add_argument("--ticks", type=int, default=200, help="beat ticks per repetition")
    parser.add_argument("--due", type=int, default=100, help="slots claimed and sent per tick")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions, each on and off")
    args = parser.parse_args(argv)
    for name in ("runs", "ticks", "due", "repeats"):
        if getattr(args, name) < 2:
            parser.error(f"--{name} must be at least 2")
    work = Path(tempfile.mkdtemp(prefix="drumline-metrics-cost-"))
    enable_multiprocess(work / "metrics", "bench")
    with RedisServer(work / "redis", appendonly=False) as redis:
        figures = measure(work, redis.url, args)
    print(report(figures, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
