"""`python -m bench.metrics_cost`: what metrics cost on the run path and on the beat tick.

Both are timed in this process against real SQLite and a real Redis, alternating metrics on
and off slot by slot (run path) and tick by tick (beat), so drift in the machine's load falls
on both alike. The figure is the ratio of the medians, on / off; the target is at most 1.05.
Metrics on is the production recorder writing prometheus_client multiprocess files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from beat.beat_metrics import BeatMetrics, NoBeatMetrics
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


def run_path_ratio(settings: Settings, slots: int) -> tuple[float, float, float]:
    """Median seconds per run with metrics on and off, and their ratio."""
    engine = make_engine(settings.database_url)
    ScheduleSeeder(engine).add(slots, lambda i: utc_now() - timedelta(minutes=1, seconds=i))
    claimed = BeatClaims(engine).claim_due(now=utc_now(), lease=settings.lease, limit=slots)
    recorders: tuple[RunRecorder, RunRecorder] = (
        RunMetrics(producer_labels=False),
        NoRunMetrics(),
    )
    timings: tuple[list[float], list[float]] = ([], [])
    for index, claim in enumerate(claimed):
        side = index % 2
        runner = SlotRunner(
            engine,
            lease=settings.lease,
            max_timeout=settings.max_timeout,
            default_timeout=settings.default_timeout,
            clock=utc_now,
            result_bounds=settings.result_bounds,
            state_bounds=settings.state_bounds,
            metrics=recorders[side],
        )
        slot = Slot(
            workflow_id=claim.workflow_id,
            workflow=claim.workflow_name,
            producer=claim.producer_name,
            scheduled_for=claim.scheduled_for,
            claim_token=claim.claim_token,
            task_id=f"bench-{index}",
        )
        began = time.perf_counter()
        runner.run(slot)
        timings[side].append(time.perf_counter() - began)
    engine.dispose()
    return _ratio(timings)


def tick_ratio(settings: Settings, ticks: int, due: int) -> tuple[float, float, float]:
    """Median seconds per beat tick (claim and send `due` slots) with metrics on and off."""
    engine = make_engine(settings.database_url)
    seeder = ScheduleSeeder(engine)
    seeder.add(due, lambda i: utc_now() - timedelta(minutes=1, seconds=i))
    app = create_app(settings)
    scheduler = ProducerScheduler(app=app, lazy=True)
    recorders = (BeatMetrics(), NoBeatMetrics())
    timings: tuple[list[float], list[float]] = ([], [])
    for index in range(ticks):
        side = index % 2
        scheduler.__dict__["metrics"] = recorders[side]
        release_claims(engine)
        began = time.perf_counter()
        scheduler._dispatch_due()
        timings[side].append(time.perf_counter() - began)
    scheduler.close()
    app.close()
    engine.dispose()
    return _ratio(timings)


def _ratio(timings: tuple[list[float], list[float]]) -> tuple[float, float, float]:
    on, off = statistics.median(timings[0]), statistics.median(timings[1])
    return on, off, on / off


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__)
    parser.add_argument("--runs", type=int, default=2000, help="slots run (half with metrics)")
    parser.add_argument("--ticks", type=int, default=200, help="beat ticks (half with metrics)")
    parser.add_argument("--due", type=int, default=100, help="slots claimed and sent per tick")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="drumline-metrics-cost-"))
    enable_multiprocess(work / "metrics", "bench")
    with RedisServer(work / "redis", appendonly=False) as redis:
        rows = []
        for name, database in (("run path", "runs.db"), ("beat tick", "ticks.db")):
            url = f"sqlite:///{work / database}"
            engine = make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            settings = Settings.from_env(
                {
                    "DRUMLINE_BROKER_URL": redis.url,
                    "DRUMLINE_DATABASE_URL": url,
                    "DRUMLINE_DATA_DIR": str(work),
                }
            )
            if name == "run path":
                rows.append((name, *run_path_ratio(settings, args.runs)))
            else:
                rows.append((name, *tick_ratio(settings, args.ticks, args.due)))
    print("| path | metrics on (median) | off (median) | on / off |")
    print("|---|---|---|---|")
    for name, on, off, ratio in rows:
        print(f"| {name} | {on * 1000:.3f} ms | {off * 1000:.3f} ms | {ratio:.3f} |")
    worst = max(ratio for *_, ratio in rows)
    print(f"\nworst ratio {worst:.3f} (target at most {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
