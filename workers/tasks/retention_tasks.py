"""`drumline.prune_runs`: one bounded pass of run history retention, sent by beat.

Every beat sends it every DRUMLINE_PRUNE_INTERVAL_SECONDS, to the `lifecycle` queue. No lock
keeps passes apart: each deletes only final rows that its rules select, a few hundred per
short statement, so a second pass running at the same time deletes what the first has not
(PostgreSQL: it skips the rows being deleted; SQLite: the statements take turns on the write
lock) and fails nothing. A lock would save only the duplicated index seeks of overlapping
passes, and a lost lock would stop pruning until it expired.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from models.log_text import loggable
from models.run_pruning import PruneLimits, PruneReport, Retention, RunPruner
from models.sqlite_space import reclaim_free_pages
from models.types import utc_now
from workers.services.prune_cursor import PruneCursor
from workers.tasks.app import app, settings
from workers.tasks.celery_config import LIFECYCLE_QUEUE, PRUNE_RUNS
from workers.tasks.resources import resources

logger = logging.getLogger("drumline.retention")

# One pass: at most 50,000 rows in 500-row statements, and about 5 s, so that lifecycle tasks
# queued behind it wait little. At the default interval (60 s) that is ~800 rows/s, above the
# ~400 runs/s that 5,000 busy producers write.
PASS_LIMITS = PruneLimits(batch=500, max_rows=50_000, budget=timedelta(seconds=5))
# SQLite: free pages given back to the file system per pass (4 KiB each by default).
RECLAIM_PAGES_PER_PASS = 10_000


@app.task(name=PRUNE_RUNS, queue=LIFECYCLE_QUEUE, acks_late=True, ignore_result=True)
def prune_runs() -> None:
    retention = Retention(
        max_age=settings.run_max_age, keep_per_producer=settings.runs_kept_per_producer
    )
    engine = resources.engine(settings.database_url)
    cursor = PruneCursor(resources.redis(settings.lock_redis_url, settings.sentinel_master))
    report = RunPruner(engine).prune(
        now=utc_now(), retention=retention, limits=PASS_LIMITS, start_at=cursor.load()
    )
    cursor.save(report.resume_at)
    reclaimed = reclaim_free_pages(engine, RECLAIM_PAGES_PER_PASS)
    logger.info("%s", _describe(report, retention, reclaimed))


def _describe(report: PruneReport, retention: Retention, reclaimed: int) -> str:
    age = f"{retention.max_age.total_seconds() / 86400:g} days" if retention.max_age else "off"
    count = retention.keep_per_producer or "off"
    if report.resume_at is None:
        progress = "all producers done"
    else:
        progress = (
            f"more to do, next pass resumes at workflow {report.resume_at.workflow_id}"
            f" producer {loggable(report.resume_at.producer_name)}"
        )
    return (
        f"prune_runs: deleted {report.by_age} runs by age (max age {age})"
        f" and {report.by_count} by count (newest {count} per producer kept)"
        f" in {report.seconds:.2f}s, {report.producers} producers visited, {progress};"
        f" {reclaimed} free pages reclaimed"
    )
