"""`drumline backfill` end to end: real Redis, workers and beats, SQLite and PostgreSQL.

A backfill's slots run once each beside the producer's scheduled runs, a second backfill of the
same range started at the same moment adds nothing, and a backfill finishes when its worker is
killed mid-run and another takes over (beat re-sends; nothing depends on a worker staying up).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from models.backfill_store import BackfillRecord
from models.db import make_engine
from models.types import utc_now
from models.vocabulary import Trigger
from tests.e2e import deploy, executions, journal_producer, runs_of, wait_until
from tests.processes import running_beat, running_worker
from workers.client import Drumline
from workers.settings import Settings

SECOND = timedelta(seconds=1)


def _client(env: dict[str, str]) -> Drumline:
    settings = Settings.from_env(env)
    return Drumline(settings, engine=make_engine(settings.database_url), actor="ops@test")


def _concurrently(
    env: dict[str, str], name: str, producer: str, start: datetime, end: datetime, rate: float
) -> list[BackfillRecord]:
    """Two clients start the same backfill at the same moment (a barrier)."""
    barrier = threading.Barrier(2)
    made: list[BackfillRecord] = []

    def one() -> None:
        client = _client(env)
        barrier.wait(timeout=10)
        made.append(client.backfill(name, producer, start=start, end=end, rate=rate))
        client.engine.dispose()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(made) == 2, "a backfill call failed (see the captured output)"
    return made


def test_200_slots_run_once_each_beside_the_scheduled_runs_and_a_second_backfill_adds_nothing(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    with (
        running_worker(env, tmp_path),
        running_beat(env, tmp_path, name="beat1"),
        running_beat(env, tmp_path, name="beat2"),
    ):
        deploy(
            env, {"name": "fill", "producers": {"tick": journal_producer(journal, interval="1s")}}
        )

        def scheduled() -> list[datetime]:
            return [
                r.scheduled_for
                for r in runs_of(engine, "fill")
                if r.trigger == Trigger.SCHEDULE and r.status == "succeeded"
            ]

        wait_until(lambda: len(scheduled()) >= 2, 30, "the first scheduled runs")
        first = min(scheduled())
        start, end = first - 200 * SECOND, utc_now()
        made = _concurrently(env, "fill", "tick", start, end, rate=40.0)
        begun = utc_now()
        assert sorted(b.requested for b in made) == [0, made[0].requested + made[1].requested]
        [backfill] = [b for b in made if b.requested]
        # The 200 slots before the first scheduled one, and any the schedule coalesced since.
        assert backfill.requested >= 200
        assert backfill.slot_count >= backfill.requested

        def progress() -> tuple[int, int]:
            [shown] = [p for p in _client(env).backfills("fill") if p.backfill.id == backfill.id]
            return shown.done, shown.pending + shown.running

        wait_until(lambda: progress() == (backfill.requested, 0), 90, "the backfill to finish")
        finished = utc_now()
        during = [slot for slot in scheduled() if begun <= slot <= finished]
    runs = runs_of(engine, "fill")
    backfilled = [r for r in runs if r.trigger == Trigger.BACKFILL]
    assert len(backfilled) == backfill.requested
    assert {r.status for r in backfilled} == {"succeeded"}
    assert {first - i * SECOND for i in range(1, 201)} <= {r.scheduled_for for r in backfilled}
    assert all(r.scheduled_for < first or r.scheduled_for <= end for r in backfilled)
    # Once per slot: one row each (UNIQUE), and the journal, outside the database, agrees.
    started = executions(journal)
    assert len(started) == len(runs) and max(started.values()) == 1, started.most_common(3)
    # The schedule kept running meanwhile (a 1 s producer; a loaded machine may coalesce some).
    seconds = (finished - begun).total_seconds()
    assert len(during) >= seconds / 3, (len(during), seconds)


def test_a_backfill_finishes_when_its_worker_is_killed_mid_run_and_another_takes_over(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    with running_beat(env, tmp_path):
        with running_worker(env, tmp_path, name="w1") as first_worker:
            # Hourly: no scheduled run within the test; the backfill takes 30 past hours.
            job = journal_producer(journal, seconds=0.5, interval="1h")
            deploy(env, {"name": "slow", "producers": {"job": job}})
            end = utc_now()
            backfill = _client(env).backfill(
                "slow", "job", start=end - timedelta(hours=30), end=end, rate=5.0
            )
            assert backfill.requested == 30

            def in_flight() -> set[tuple[str, str]]:
                ended = executions(journal, "end")
                return {slot for slot in executions(journal) if slot not in ended}

            wait_until(
                lambda: len(executions(journal, "end")) >= 3 and bool(in_flight()),
                60,
                "a few runs done and one in flight",
            )
            first_worker.kill()
        killed = in_flight()  # the dead worker's journal is final: these were cut short
        assert killed
        committed = {r.scheduled_for for r in runs_of(engine, "slow") if r.status == "succeeded"}
        with running_worker(env, tmp_path, name="w2"):

            def succeeded() -> int:
                return sum(r.status == "succeeded" for r in runs_of(engine, "slow"))

            wait_until(lambda: succeeded() == 30, 90, "the backfill to finish on w2")
    runs = {r.scheduled_for.isoformat(): r for r in runs_of(engine, "slow")}
    assert len(runs) == 30 and {r.trigger for r in runs.values()} == {"backfill"}
    started = executions(journal)
    assert {started[("job", slot)] for (_, slot) in killed} == {2}
    assert {runs[slot].attempt for (_, slot) in killed} == {2}
    once = [slot for slot, r in runs.items() if r.scheduled_for in committed]
    assert once and all(started[("job", slot)] == 1 for slot in once)
    assert all(count <= 2 for count in started.values()), Counter(started.values())
    [progress] = _client(env).backfills("slow")  # recorded done by this read
    assert (progress.status, progress.done, progress.failed) == ("done", 30, 0)
    assert _client(env).backfills("slow") == []
