"""The slot policies with real Redis, real worker and beat processes, on both databases:
overlap (skip, allow), catch-up after the system was stopped for several slots (latest, all
with a window, none), retries, auto-pause, and `drumline why` on what they recorded.

Every wait is for a row or an instant, never a fixed sleep: the downtime is measured, and each
phase waits until the ledger or the schedule shows what it needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from models.schedule_store import ProducerScheduleStore
from models.schedules import IntervalSchedule
from models.types import utc_now
from models.vocabulary import SlotFate
from models.workflow_store import WorkflowStore
from tests.e2e import deploy, journal_producer, runs_of, wait_until
from tests.e2e_producers import read_journal
from tests.ledger_checks import coverage_problems, ledger_rows
from tests.processes import running_beat, running_worker

SECOND = timedelta(seconds=1)
DOWN_FOR = 6 * SECOND


def _definition(journal: Path) -> dict[str, object]:
    return {
        "name": "policies",
        "producers": {
            "skip": journal_producer(journal, seconds=2.2, interval="1s"),
            "allow": journal_producer(journal, seconds=2.2, interval="1s")
            | {"overlap": "allow", "max_concurrent": 3},
            "flaky": {
                "run": "demo.fail",
                "interval": "10s",
                "retries": {"max": 2, "backoff": "1s", "max_backoff": "1s"},
            },
            "fragile": {"run": "demo.fail", "interval": "1s", "pause_after_failures": 3},
            "latest": journal_producer(journal, interval="1s"),
            "all": journal_producer(journal, interval="1s")
            | {"catchup": "all", "catchup_window": "1m"},
            # Its window is shorter than the restart takes: the downtime's slots are missed.
            "all-narrow": journal_producer(journal, interval="1s")
            | {"catchup": "all", "catchup_window": "1s"},
            "none": journal_producer(journal, interval="1s") | {"catchup": "none"},
        },
    }


def test_every_policy_with_real_processes_and_a_stopped_system(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    schedules = ProducerScheduleStore(engine)

    def outcomes(producer: str) -> list[tuple[str, int | None, int]]:
        rows = ledger_rows(engine, workflow_id, producer)
        return [(row.outcome, row.slot_count, row.attempts) for row in rows]

    with running_worker(env, tmp_path, concurrency=6), running_beat(env, tmp_path):
        deploy(env, _definition(journal))
        workflow = WorkflowStore(engine).get("policies")
        assert workflow is not None
        workflow_id = workflow.id
        first = {row.producer_name: row.next_run_at for row in schedules.list(workflow_id)}
        wait_until(
            lambda: any(o[0] == SlotFate.SKIPPED_OVERLAP for o in outcomes("skip")),
            30,
            "a slot of `skip` skipped for overlap",
        )
        wait_until(
            lambda: any(o[0] == SlotFate.FAILED for o in outcomes("flaky")),
            40,
            "`flaky` to fail its first slot after its retries",
        )
        wait_until(
            lambda: bool((row := schedules.get(workflow_id, "fragile")) and row.paused),
            30,
            "`fragile` to be paused after 3 failed slots",
        )
    stopped = utc_now()
    # Stopped: the slots of the next DOWN_FOR seconds fall due with nothing running.
    wait_until(lambda: utc_now() >= stopped + DOWN_FOR, 30, "the downtime to pass")
    restarted = utc_now()
    with running_worker(env, tmp_path, concurrency=6), running_beat(env, tmp_path) as beat:
        wait_until(
            lambda: all(
                (row := schedules.get(workflow_id, name)) is not None
                and row.next_run_at is not None
                and row.next_run_at > restarted + 2 * SECOND
                for name in ("latest", "all", "all-narrow", "none")
            ),
            30,
            "the catch-up producers to be past the downtime",
        )
        beat.stop()
        wait_until(
            lambda: all(run.status != "running" for run in runs_of(engine, "policies")),
            30,
            "runs in flight to finish",
        )

    # overlap: skip never ran two at once; allow did.
    def overlapping(name: str) -> bool:
        lines = [line for line in read_journal(journal) if line["producer"] == name]
        running, most = 0, 0
        for line in sorted(lines, key=lambda line: float(str(line["at"]))):
            running += 1 if line["event"] == "start" else -1
            most = max(most, running)
        return most > 1

    assert not overlapping("skip")
    assert overlapping("allow")
    # retries: three attempts on one slot, the grid kept.
    [failed, *_] = [row for row in ledger_rows(engine, workflow_id, "flaky")]
    assert (failed.slot, failed.outcome, failed.attempts) == (first["flaky"], "failed", 3)
    # auto-pause, with its reason.
    fragile = schedules.get(workflow_id, "fragile")
    assert fragile is not None and fragile.paused_by == "auto-pause"
    assert "3 consecutive failed slots" in (fragile.pause_note or "")
    # catch-up: the downtime's slots were coalesced, run, or missed, by policy.
    down = [(r.outcome, r.slot_count) for r in ledger_rows(engine, workflow_id, "latest")]
    assert any(o == SlotFate.COALESCED and (n or 0) >= 4 for o, n in down), down
    ran = {r.scheduled_for for r in runs_of(engine, "policies") if r.producer_name == "all"}
    in_downtime = [slot for slot in ran if stopped < slot < restarted]
    assert len(in_downtime) >= 2, sorted(ran)  # the window's slots, run after the restart
    assert all(r.outcome != SlotFate.MISSED for r in ledger_rows(engine, workflow_id, "all"))
    narrow = ledger_rows(engine, workflow_id, "all-narrow")
    assert any(r.outcome == SlotFate.MISSED and "window" in r.reason for r in narrow), narrow
    none_runs = {r.scheduled_for for r in runs_of(engine, "policies") if r.producer_name == "none"}
    assert not [slot for slot in none_runs if stopped + SECOND < slot < restarted]
    assert any(r.outcome == SlotFate.MISSED for r in ledger_rows(engine, workflow_id, "none"))
    # The ledger is exact for every producer: one outcome per due slot, up to its next run.
    for row in schedules.list(workflow_id):
        start, end = first[row.producer_name], row.next_run_at
        assert start is not None and end is not None
        every = timedelta(seconds=10 if row.producer_name == "flaky" else 1)
        rows = ledger_rows(engine, workflow_id, row.producer_name)
        assert coverage_problems(rows, IntervalSchedule(every), start, end) == [], row.producer_name
    # `drumline why` answers for a slot in the downtime.
    asked = (stopped + 3 * SECOND).isoformat()
    why = subprocess.run(
        [sys.executable, "-m", "workers.cli.main", "why", "policies", "latest", asked],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert why.returncode == 0, why.stderr
    assert "outcome:   coalesced" in why.stdout and "note:" not in why.stdout, why.stdout
