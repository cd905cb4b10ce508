"""Run history retention in the store, against real SQLite and PostgreSQL (each test on both)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select

from models.run_pruning import ProducerKey, PruneLimits, PruneReport, Retention, RunPruner
from models.sqlite_space import reclaim_free_pages
from models.tables import producer_runs
from tests.databases import new_workflow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UNBOUNDED = PruneLimits(batch=1000, max_rows=1_000_000, budget=timedelta(hours=1))
DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Run:
    id: int
    workflow_id: int
    producer_name: str
    scheduled_for: datetime
    status: str


def add_runs(
    engine: Engine,
    workflow_id: int,
    producer: str,
    ages: list[timedelta],
    *,
    running: frozenset[int] = frozenset(),
    result: Any = None,
) -> None:
    """One run per age (scheduled that long before NOW); the indexes in `running` still run."""
    rows = [
        {
            "workflow_id": workflow_id,
            "producer_name": producer,
            "scheduled_for": NOW - age,
            "trigger": "schedule",
            "status": "running" if i in running else ("failed", "succeeded", "skipped")[i % 3],
            "started_at": NOW - age,
            "finished_at": None if i in running else NOW - age + timedelta(seconds=1),
            "result": result,
        }
        for i, age in enumerate(ages)
    ]
    with engine.begin() as conn:
        conn.execute(insert(producer_runs), rows)


def all_runs(engine: Engine) -> list[Run]:
    r = producer_runs.c
    query = select(r.id, r.workflow_id, r.producer_name, r.scheduled_for, r.status)
    with engine.connect() as conn:
        return sorted(Run(*row) for row in conn.execute(query))


def survivors(runs: list[Run], retention: Retention) -> tuple[list[Run], int, int]:
    """What retention must leave, and how many rows it deletes by age and then by count.

    The model: a running row stays; a row scheduled before NOW - max_age goes (by age); of the
    rest, a row outside its producer's newest `keep_per_producer` goes (by count).
    """
    kept, by_age, by_count = [], 0, 0
    for run in runs:
        newer = sum(
            1
            for other in runs
            if (other.workflow_id, other.producer_name) == (run.workflow_id, run.producer_name)
            and other.scheduled_for > run.scheduled_for
        )
        if run.status == "running":
            kept.append(run)
        elif retention.max_age is not None and run.scheduled_for < NOW - retention.max_age:
            by_age += 1
        elif retention.keep_per_producer is not None and newer >= retention.keep_per_producer:
            by_count += 1
        else:
            kept.append(run)
    return kept, by_age, by_count


def prune_until_done(
    engine: Engine, retention: Retention, limits: PruneLimits, *, max_passes: int = 1000
) -> list[PruneReport]:
    """Passes, each starting where the last stopped, until one reaches the end deleting nothing."""
    reports: list[PruneReport] = []
    start_at: ProducerKey | None = None
    for _ in range(max_passes):
        report = RunPruner(engine).prune(
            now=NOW, retention=retention, limits=limits, start_at=start_at
        )
        reports.append(report)
        if not report.more and report.by_age + report.by_count == 0:
            return reports
        start_at = report.resume_at
    raise AssertionError(f"pruning did not converge in {max_passes} passes")


@pytest.fixture
def history(engine: Engine) -> list[Run]:
    """Three producers in two workflows, with old and running rows:
    - prices/a: one run an hour for 60 hours; the ones 45 h and 25 h old still run;
    - prices/b: one run an hour for 10 hours;
    - rates/a: one run a minute for 40 minutes (same producer name, other workflow); its
      oldest still runs.
    """
    prices = new_workflow(engine, "prices", {"name": "prices"}, now=NOW).id
    rates = new_workflow(engine, "rates", {"name": "rates"}, now=NOW).id
    hours = [timedelta(hours=h) for h in range(60)]
    add_runs(engine, prices, "a", hours, running=frozenset({45, 25}))
    add_runs(engine, prices, "b", hours[:10])
    add_runs(engine, rates, "a", [timedelta(minutes=m) for m in range(40)], running=frozenset({39}))
    return all_runs(engine)


RETENTIONS = {
    "age-and-count": Retention(max_age=timedelta(hours=30), keep_per_producer=20),
    "age-only": Retention(max_age=timedelta(hours=30), keep_per_producer=None),
    "count-only": Retention(max_age=None, keep_per_producer=20),
    "keep-one": Retention(max_age=None, keep_per_producer=1),
    "off": Retention(max_age=None, keep_per_producer=None),
}


@pytest.mark.parametrize("rule", RETENTIONS)
def test_a_pass_keeps_exactly_the_young_newest_and_running_rows(
    engine: Engine, history: list[Run], rule: str
) -> None:
    retention = RETENTIONS[rule]
    expected, by_age, by_count = survivors(history, retention)
    report = RunPruner(engine).prune(now=NOW, retention=retention, limits=UNBOUNDED)
    assert all_runs(engine) == expected
    assert (report.by_age, report.by_count, report.more) == (by_age, by_count, False)
    assert {run.id for run in history if run.status == "running"} <= {r.id for r in expected}
    if rule == "age-and-count":  # the fixture makes both rules bite, around running rows
        assert (by_age, by_count) == (28, 10 + 19)
        assert report.producers == 3


def test_a_pass_stops_at_its_row_limit_and_says_where_to_go_on(
    engine: Engine, history: list[Run]
) -> None:
    retention = RETENTIONS["age-and-count"]
    limits = PruneLimits(batch=7, max_rows=20, budget=timedelta(hours=1))
    first = RunPruner(engine).prune(now=NOW, retention=retention, limits=limits)
    assert first.by_age + first.by_count == 20
    assert len(history) - len(all_runs(engine)) == 20
    assert first.more and first.resume_at is not None
    assert first.resume_at.producer_name == "a"


def test_a_pass_out_of_time_stops_after_one_statement(engine: Engine, history: list[Run]) -> None:
    limits = PruneLimits(batch=5, max_rows=1000, budget=timedelta(0))
    report = RunPruner(engine).prune(now=NOW, retention=RETENTIONS["keep-one"], limits=limits)
    assert (report.by_age, report.by_count, report.more) == (0, 5, True)
    assert len(history) - len(all_runs(engine)) == 5


@pytest.mark.parametrize("resume", [True, False], ids=["resumed", "from-the-start"])
def test_small_passes_converge_to_what_one_pass_leaves(
    engine: Engine, history: list[Run], resume: bool
) -> None:
    retention = RETENTIONS["age-and-count"]
    expected, by_age, by_count = survivors(history, retention)
    limits = PruneLimits(batch=3, max_rows=10, budget=timedelta(hours=1))
    reports: list[PruneReport] = []
    while not reports or reports[-1].more or reports[-1].by_age + reports[-1].by_count:
        assert len(reports) < 100, "no convergence"
        start_at = reports[-1].resume_at if resume and reports else None
        reports.append(
            RunPruner(engine).prune(now=NOW, retention=retention, limits=limits, start_at=start_at)
        )
    assert all(r.by_age + r.by_count <= 10 for r in reports)
    assert all_runs(engine) == expected
    assert sum(r.by_age for r in reports) == by_age
    assert sum(r.by_count for r in reports) == by_count


def test_concurrent_pruners_delete_each_row_once_and_fail_nothing(engine: Engine) -> None:
    workflow_id = new_workflow(engine, "busy", {"name": "busy"}, now=NOW).id
    for p in range(12):
        add_runs(engine, workflow_id, f"p{p}", [timedelta(minutes=m) for m in range(80)])
    history = all_runs(engine)
    retention = Retention(max_age=timedelta(minutes=69.5), keep_per_producer=10)
    expected, by_age, by_count = survivors(history, retention)
    limits = PruneLimits(batch=5, max_rows=40, budget=timedelta(hours=1))
    barrier = threading.Barrier(2)
    reports: dict[int, list[PruneReport]] = {}
    errors: list[BaseException] = []

    def prune(thread: int) -> None:
        try:
            barrier.wait(timeout=30)
            reports[thread] = prune_until_done(engine, retention, limits)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=prune, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert all_runs(engine) == expected
    every_pass = [report for thread in reports.values() for report in thread]
    assert sum(r.by_age for r in every_pass) == by_age == 12 * 10
    assert sum(r.by_count for r in every_pass) == by_count == 12 * 60
    # Which of the two deletes which rows is up to the scheduler (on SQLite one often trails
    # the other through the same producers and finds them done): not asserted.
    assert sorted(reports) == [0, 1]


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_sqlite_gives_the_pruned_pages_back_to_the_file_system(engine: Engine) -> None:
    def pragma(name: str) -> int:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())

    assert pragma("auto_vacuum") == 2, "a new database must use incremental auto-vacuum"
    workflow_id = new_workflow(engine, "big", {"name": "big"}, now=NOW).id
    ages = [timedelta(minutes=m) for m in range(2000)]
    add_runs(engine, workflow_id, "p", ages, result={"blob": "x" * 2000})
    full = pragma("page_count")
    RunPruner(engine).prune(
        now=NOW, retention=RETENTIONS["keep-one"], limits=PruneLimits(500, 10_000, DAY)
    )
    free = pragma("freelist_count")
    assert free > full * 0.9, "the deleted rows' pages are free, still in the file"
    assert reclaim_free_pages(engine, 100) == 100  # bounded per call
    assert reclaim_free_pages(engine, 1_000_000) == free - 100
    assert pragma("freelist_count") == 0
    assert pragma("page_count") < full * 0.1


def test_every_prune_statement_seeks_the_slot_index_and_sorts_nothing(engine: Engine) -> None:
    workflow_id = new_workflow(engine, "wide", {"name": "wide"}, now=NOW).id
    rows = [
        {
            "workflow_id": workflow_id,
            "producer_name": f"p{p}",
            "scheduled_for": NOW - timedelta(minutes=m),
            "trigger": "schedule",
            "status": "succeeded",
            "started_at": NOW,
            "finished_at": NOW,
        }
        for p in range(200)
        for m in range(100)
    ]
    with engine.begin() as conn:
        conn.execute(insert(producer_runs), rows)
        conn.exec_driver_sql("ANALYZE")
    statements: dict[str, tuple[str, Any]] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "producer_runs" in statement:
            statements.setdefault(statement, (statement, parameters))

    retention = Retention(max_age=timedelta(minutes=90), keep_per_producer=50)
    RunPruner(engine).prune(now=NOW, retention=retention, limits=UNBOUNDED)
    event.remove(engine, "before_cursor_execute", _capture)
    assert len(statements) == 3  # the first producer, the next one, the delete
    sqlite = engine.dialect.name == "sqlite"
    for statement, parameters in statements.values():
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        with engine.connect() as conn:
            plan = "\n".join(
                str(row[-1]) for row in conn.exec_driver_sql(explain + statement, parameters)
            )
        index = "sqlite_autoindex_producer_runs_1" if sqlite else "uq_producer_runs_workflow"
        assert index in plan, plan
        assert "SCAN producer_runs" not in plan and "Seq Scan" not in plan, plan
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


def test_migrate_switches_an_old_sqlite_file_to_incremental_vacuum_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as old:  # a file made before auto_vacuum was set
        old.execute("CREATE TABLE kept (x)")
        old.execute("INSERT INTO kept VALUES (42)")
        old.commit()
        assert old.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    env = {**os.environ, "DRUMLINE_DATABASE_URL": f"sqlite:///{path}"}

    def migrate() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "workers.cli.main", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    assert "rewrote the file once (VACUUM) to turn on incremental auto-vacuum" in migrate()
    assert "VACUUM" not in migrate()
    with closing(sqlite3.connect(path)) as new:
        assert new.execute("PRAGMA auto_vacuum").fetchone() == (2,)
        assert new.execute("SELECT x FROM kept").fetchall() == [(42,)]
