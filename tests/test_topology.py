"""The compose topology on one machine: one Redis, one PostgreSQL, two beats, three workers.

Fifty producers on 1-3 s intervals run for 30 s while one worker is SIGKILLed mid-run and
started again; some run with `overlap: allow` (one of them outliving its interval), some with
`catchup: all`. Afterwards every slot due in that time is accounted for, from the run rows,
the schedule grid, the slot ledger and the producers' own journal: committed once, passed over
with one ledger outcome (coalesced, skipped for overlap), or still due at the stop; never
committed twice, never lost; and every slot before each producer's next run has exactly one
ledger outcome.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy import Engine

from models.records import RunRecord, ScheduleRecord
from models.run_path import WORKER_DIED
from models.schedule_store import ProducerScheduleStore
from models.schedules import IntervalSchedule
from models.slot_ledger_store import SlotOutcomeRecord
from models.types import utc_now
from models.workflow_store import WorkflowStore
from tests.e2e import deploy, journal_producer, runs_of, wait_until
from tests.e2e_producers import read_journal
from tests.ledger_checks import coverage_problems, ledger_rows
from tests.processes import CeleryProcess
from workers.local.celery_argv import beat_argv, worker_argv

WORKFLOW = "topology"
PRODUCERS = 50
RUN_FOR_S = 30.0
KILL_AFTER_S = 12.0
RUN_SECONDS = 0.1
# One producer (every 3 s) runs for longer: the kill waits until a worker is inside one of its
# runs, so it cannot miss a run however loaded the machine is.
HOLD_PRODUCER, HOLD_SECONDS = "p02", 1.5
# `overlap: allow` producers; the 1 s one runs for longer than its interval, so runs overlap.
ALLOW = {"p10": RUN_SECONDS, "p11": RUN_SECONDS, "p12": 1.2}
CATCHUP_ALL = ("p15", "p16", "p17")
WORKERS = ("w1", "w2", "w3")
BEATS = ("beat1", "beat2")
# A row past due with no live claim, twice this far apart and unchanged, is stuck.
STUCK_RECHECK_S = 1.5
COMMITTED = ("succeeded", "failed", "superseded")


def every(n: int) -> timedelta:
    return timedelta(seconds=n % 3 + 1)


def beat_process(env: dict[str, str], log_dir: Path, name: str) -> CeleryProcess:
    return CeleryProcess(beat_argv(log_dir, name), env, log_dir / f"{name}.log")


def worker_process(env: dict[str, str], log_dir: Path, name: str, log: str) -> CeleryProcess:
    return CeleryProcess(worker_argv(name, concurrency=2, peers=False), env, log_dir / log)


def start_together(stack: ExitStack, processes: list[CeleryProcess]) -> None:
    """Start all at once (startup is the slow part), then wait until each is ready."""
    for process in processes:
        stack.callback(process.stop)
        process.start()
    for process in processes:
        process.wait_for_log("beat: Starting..." if "beat" in process.argv else "ready.")


def group_pids(process: CeleryProcess) -> set[int]:
    return {process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))}


def open_starts(journal: Path, pids: set[int]) -> list[tuple[str, str]]:
    """Slots that one of `pids` started and has not finished."""
    open_: Counter[tuple[str, str, int]] = Counter()
    for line in read_journal(journal):
        key = (str(line["producer"]), str(line["slot"]), int(line["pid"]))  # type: ignore[call-overload]
        if key[2] in pids:
            open_[key] += 1 if line["event"] == "start" else -1
    return [(producer, slot) for (producer, slot, _), n in open_.items() if n > 0]


def stuck_rows(schedules: list[ScheduleRecord], at: datetime) -> dict[str, datetime]:
    """Rows past due (beat ticks every 0.5 s) with no live claim."""
    return {
        row.producer_name: row.next_run_at
        for row in schedules
        if row.next_run_at is not None
        and row.next_run_at < at - timedelta(seconds=1)
        and (row.claimed_until is None or row.claimed_until <= at)
    }


def queued(client: redis.Redis) -> int:
    return sum(int(client.llen(key)) for key in client.scan_iter(match="producers*"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else float("nan")


@dataclass
class Figures:
    slots_due: int = 0
    committed: int = 0
    coalesced: list[str] = field(default_factory=list)
    still_due: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    off_grid: list[str] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    # The same slots as (producer, scheduled_for ISO) keys, as the journal and run rows share.
    rerun_slots: set[tuple[str, str]] = field(default_factory=set)
    interrupted_slots: set[tuple[str, str]] = field(default_factory=set)
    # Interrupted `overlap: allow` runs, finished failed (their slot was not sent again).
    died: set[tuple[str, str]] = field(default_factory=set)
    ledger_problems: list[str] = field(default_factory=list)
    superseded: int = 0
    after_stop: int = 0
    stuck: dict[str, datetime] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        late = self.lateness
        yield f"topology: {PRODUCERS} producers, {len(WORKERS)} workers x 2, {len(BEATS)} beats"
        yield f"  slots due            {self.slots_due}"
        yield f"  committed            {self.committed} (of which superseded {self.superseded})"
        yield f"  passed over (ledger) {len(self.coalesced)} {self.coalesced[:8]}"
        yield f"  still due at stop    {len(self.still_due)}"
        yield f"  run after the stop   {self.after_stop}"
        yield f"  interrupted by kill  {len(self.interrupted)} {self.interrupted}"
        yield f"  re-run (attempt > 1) {len(self.rerun)} {self.rerun}"
        yield f"  allow runs cut, failed {len(self.died)} {sorted(self.died)}"
        yield f"  ledger problems      {len(self.ledger_problems)} {self.ledger_problems[:8]}"
        yield f"  duplicates           {len(self.duplicates)} {self.duplicates[:8]}"
        yield f"  lost                 {len(self.lost)} {self.lost[:8]}"
        yield f"  off the grid         {len(self.off_grid)} {self.off_grid[:8]}"
        yield f"  stuck producers      {len(self.stuck)} {sorted(self.stuck)[:8]}"
        yield (
            f"  start lateness       p50 {percentile(late, 0.5):.3f}s"
            f"  p99 {percentile(late, 0.99):.3f}s  max {max(late, default=math.nan):.3f}s"
            f"  (n={len(late)})"
        )


def producer(journal: Path, name: str, step: timedelta) -> dict[str, object]:
    seconds = HOLD_SECONDS if name == HOLD_PRODUCER else ALLOW.get(name, RUN_SECONDS)
    policy: dict[str, object] = {}
    if name in ALLOW:
        policy = {"overlap": "allow", "max_concurrent": 2}
    elif name in CATCHUP_ALL:
        policy = {"catchup": "all"}
    return journal_producer(journal, seconds=seconds, interval=f"{step.seconds}s") | policy


def account(
    runs: list[RunRecord],
    journal: list[dict[str, object]],
    killed: set[int],
    first: dict[str, datetime | None],
    final: dict[str, datetime | None],
    stop: datetime,
    ledger: dict[str, list[SlotOutcomeRecord]],
) -> Figures:
    figures = Figures()
    slot_rows = Counter((r.producer_name, r.scheduled_for) for r in runs)
    by_slot = {(r.producer_name, r.scheduled_for): r for r in runs}
    figures.duplicates += [f"{p}@{s:%T.%f} rows={n}" for (p, s), n in slot_rows.items() if n > 1]

    starts: dict[tuple[str, str], list[int]] = defaultdict(list)
    ends: dict[tuple[str, str], list[int]] = defaultdict(list)
    for line in journal:
        key = (str(line["producer"]), str(line["slot"]))
        (starts if line["event"] == "start" else ends)[key].append(int(line["pid"]))  # type: ignore[call-overload]
    for key in starts.keys() | ends.keys():
        label = f"{key[0]}@{datetime.fromisoformat(key[1]):%T.%f}"
        cut = [pid for pid in starts[key] if pid in killed and pid not in ends[key]]
        figures.interrupted += [label] * len(cut)
        if cut:
            figures.interrupted_slots.add(key)
        if len(ends[key]) > 1 or len(starts[key]) - len(cut) > 1 or len(cut) > 1:
            figures.duplicates.append(f"{label} starts={starts[key]} ends={ends[key]}")

    for run in runs:
        label = f"{run.producer_name}@{run.scheduled_for:%T.%f}"
        key = (run.producer_name, run.scheduled_for.isoformat())
        done = len(ends[key])
        # Died: cut by the kill inside the producer, or killed between the run's start
        # statement and the producer's first journal line (no start line at all). Only the
        # killed worker leaves runs behind; every other one finishes what it starts.
        if run.error == WORKER_DIED and (key in figures.interrupted_slots or not starts[key]):
            figures.died.add(key)
        elif run.status == "skipped":  # max_concurrent reached: not run, see the ledger below
            pass
        elif run.status not in COMMITTED or done == 0:  # done > 1 is a duplicate, above
            error = (run.error or "")[:200]
            figures.lost.append(f"{label} status={run.status} journal_ends={done} error={error!r}")
        if run.attempt > 1:
            figures.rerun.append(f"{label} attempt={run.attempt}")
            figures.rerun_slots.add(key)
        figures.lateness.append((run.started_at - run.scheduled_for).total_seconds())
        figures.superseded += run.status == "superseded"
        figures.after_stop += run.scheduled_for > stop

    for n in range(PRODUCERS):
        name, step, start = f"p{n:02d}", every(n), first[f"p{n:02d}"]
        assert start is not None, name
        mine = sorted(
            (r for r in runs if r.producer_name == name and r.status in COMMITTED),
            key=lambda r: r.scheduled_for,
        )
        grid = {start + k * step for k in range(int((stop - start) / step) + 1)}
        figures.off_grid += [
            f"{name}@{r.scheduled_for:%T.%f}"
            for r in mine
            if r.scheduled_for <= stop and r.scheduled_for not in grid
        ]
        for slot in sorted(grid):
            label = f"{name}@{slot:%T.%f}"
            figures.slots_due += 1
            found = by_slot.get((name, slot))
            passed = [row for row in ledger[name] if row.covers(slot)]
            if found is not None and found.status in COMMITTED:
                figures.committed += 1
                continue
            pending = final[name]
            if len(passed) == 1:
                figures.coalesced.append(f"{label} {passed[0].outcome}")
            elif pending is not None and slot >= pending:
                figures.still_due.append(label)
            else:
                figures.lost.append(f"{label} never ran")
        end = final[name]
        if end is not None:
            problems = coverage_problems(ledger[name], IntervalSchedule(step), start, end)
            figures.ledger_problems += [f"{name} {problem}" for problem in problems]
    return figures


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
def test_two_beats_three_workers_and_a_killed_worker_run_every_slot_once(
    env: dict[str, str],
    engine: Engine,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    journal = tmp_path / "journal.jsonl"
    producers = {f"p{n:02d}": producer(journal, f"p{n:02d}", every(n)) for n in range(PRODUCERS)}
    schedules = ProducerScheduleStore(engine)
    broker = redis.Redis.from_url(redis_url)
    with ExitStack() as stack:
        stack.callback(broker.close)
        workers = [worker_process(env, tmp_path, name, f"worker-{name}.log") for name in WORKERS]
        beats = [beat_process(env, tmp_path, name) for name in BEATS]
        start_together(stack, [*workers, *beats])

        summary = deploy(env, {"name": WORKFLOW, "producers": producers})
        began = time.monotonic()
        assert len(summary["added"]) == PRODUCERS
        workflow = WorkflowStore(engine).get(WORKFLOW)
        assert workflow is not None
        first = {row.producer_name: row.next_run_at for row in schedules.list(workflow.id)}

        # SIGKILL the worker that is inside a run of the hold producer, then start it again.
        time.sleep(max(0.0, KILL_AFTER_S - (time.monotonic() - began)))
        worker_pids = [group_pids(worker) for worker in workers]
        holders: list[int] = []

        def find_holder() -> bool:
            holders[:] = [
                index
                for index, pids in enumerate(worker_pids)
                if any(producer == HOLD_PRODUCER for producer, _ in open_starts(journal, pids))
            ]
            return bool(holders)

        wait_until(find_holder, 10, f"a worker to be inside a {HOLD_PRODUCER} run")
        victim, killed = workers[holders[0]], worker_pids[holders[0]]
        victim.kill()
        killed_at = time.monotonic() - began
        victim_name = WORKERS[holders[0]]
        log = f"worker-{victim_name}-restarted.log"
        restarted = worker_process(env, tmp_path, victim_name, log)
        start_together(stack, [restarted])

        time.sleep(max(0.0, RUN_FOR_S - STUCK_RECHECK_S - (time.monotonic() - began)))
        suspects = stuck_rows(schedules.list(workflow.id), utc_now())
        time.sleep(STUCK_RECHECK_S)
        again = stuck_rows(schedules.list(workflow.id), utc_now())
        stuck = {p: at for p, at in again.items() if suspects.get(p) == at}
        stop = utc_now()
        for beat in beats:
            beat.stop()
        wait_until(
            lambda: (
                queued(broker) == 0
                and all(r.status != "running" for r in runs_of(engine, WORKFLOW))
            ),
            20,
            "the workers to drain the queue",
        )
        for worker in [*(w for w in workers if w is not victim), restarted]:
            worker.stop()

    final = {row.producer_name: row.next_run_at for row in schedules.list(workflow.id)}
    ledger = {name: ledger_rows(engine, workflow.id, name) for name in producers}
    figures = account(
        runs_of(engine, WORKFLOW), read_journal(journal), killed, first, final, stop, ledger
    )
    figures.stuck = stuck
    with capsys.disabled():
        print(f"\n  killed {victim_name} at +{killed_at:.1f}s (pids {sorted(killed)})")
        for line in figures.lines():
            print(line)

    assert figures.duplicates == []
    assert figures.lost == []
    assert figures.ledger_problems == []
    assert figures.off_grid == []
    assert figures.stuck == {}
    assert figures.interrupted, "the kill landed outside any run"
    # Every run the kill cut short was taken over by another worker and committed once.
    assert len(figures.rerun) + len(figures.died) >= len(figures.interrupted)
    assert figures.interrupted_slots <= figures.rerun_slots | figures.died, sorted(
        figures.interrupted_slots - figures.rerun_slots - figures.died
    )
    # Everything due is accounted for; little is left due, and most slots really ran (coalescing
    # grows with the machine's load: about 5-10 % of slots on 2 loaded cores).
    assert figures.committed + len(figures.coalesced) + len(figures.still_due) == figures.slots_due
    assert len(figures.still_due) <= PRODUCERS
    assert figures.committed >= 0.6 * figures.slots_due
