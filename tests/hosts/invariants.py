"""The invariants of a run under faults, checked from the database and the producers' journal.

Every slot due on a producer's interval grid between its first run and the stop has exactly one
outcome: a run row that finished (committed, or recorded skipped when the workflow was paused
at the stop), coalesced into a late run that ended after it, or still due at the stop. A slot
with none of them is lost. Each execution of a slot must be an attempt the database recorded
(a run row's `attempt` counts them: a slot is taken over only while its last attempt is still
`running`, so after a commit nothing can start it again); a slot that executed more often than
its row counts attempts, or without a row, is a duplicate. Re-runs are legitimate: after a
fault hit a run before its commit landed, the slot's lease expires and it runs again elsewhere.

A slot's end is taken from the journal as well as from its run row. A late commit that the
token fences must leave the run row of the attempt that took the slot over alone; one that
rewrote it (`overwritten`: status `superseded`, its own finish time) would make the slots that
attempt coalesced look lost, so the journal is read too and the test asserts none.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from models.records import RunRecord
from models.slot_ledger_store import SlotOutcomeRecord
from models.vocabulary import RunStatus

FINISHED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SUPERSEDED, RunStatus.SKIPPED}
# A start later than this after its slot counts as late: recovery ends with the last such start.
LATE_S = 2.0


@dataclass
class Ledger:
    slots_due: int = 0
    committed: int = 0
    coalesced: int = 0
    still_due: int = 0
    superseded: int = 0
    reruns: int = 0
    fenced_reruns: int = 0
    overwritten: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    recovery_s: float = 0.0
    max_late_after_recovery_s: float = 0.0

    def row(self) -> dict[str, object]:
        return {
            "slots due": self.slots_due,
            "committed": self.committed,
            "duplicates": len(self.duplicates),
            "lost": len(self.lost),
            "superseded": self.superseded,
            "re-runs": self.reruns,
            "fenced re-runs": self.fenced_reruns,
            "overwritten": len(self.overwritten),
            "coalesced": self.coalesced,
            "still due": self.still_due,
            "recovery s": round(self.recovery_s, 1),
            "max late after s": round(self.max_late_after_recovery_s, 2),
        }


def check(
    runs: list[RunRecord],
    journal: list[dict[str, object]],
    grid: dict[str, tuple[datetime, timedelta]],
    final: dict[str, datetime | None],
    outcomes: list[SlotOutcomeRecord],
    *,
    stop: datetime,
    healed: datetime,
    faulted_pids: set[int],
) -> Ledger:
    """`grid`: each producer's first slot and interval; `final`: its next run at the stop;
    `outcomes`: the slot ledger, which records the slots a late run stood for (catch-up)."""
    ledger = Ledger()
    ends: dict[tuple[str, str], list[int]] = defaultdict(list)
    starts: dict[tuple[str, str], int] = defaultdict(int)
    faulted_starts: set[tuple[str, str]] = set()
    ended_at: dict[tuple[str, str], float] = {}
    for line in journal:
        key = (str(line["producer"]), str(line["slot"]))
        pid = int(str(line["pid"]))
        if line["event"] == "end":
            ends[key].append(pid)
            ended_at[key] = max(ended_at.get(key, 0.0), float(str(line["at"])))
        else:
            starts[key] += 1
            if pid in faulted_pids:
                faulted_starts.add(key)
    attempts = {(r.producer_name, r.scheduled_for.isoformat()): r.attempt for r in runs}
    for key, count in starts.items():
        if count > attempts.get(key, 0):
            label = "@".join(key)
            ledger.duplicates.append(f"{label} ran {count}x, attempts {attempts.get(key)}")
        if key in faulted_starts and set(ends[key]) - faulted_pids:
            ledger.fenced_reruns += 1

    by_slot = {(r.producer_name, r.scheduled_for): r for r in runs}
    ledger.reruns = sum(r.attempt > 1 for r in runs)
    finished: dict[tuple[str, datetime], datetime] = {}
    for run in runs:
        key = (run.producer_name, run.scheduled_for.isoformat())
        if run.status not in FINISHED:
            ledger.lost.append(f"{run.producer_name}@{run.scheduled_for} left {run.status}")
        ledger.superseded += run.status == RunStatus.SUPERSEDED
        taken_over = key in faulted_starts and any(p not in faulted_pids for p in ends[key])
        if run.status == RunStatus.SUPERSEDED and taken_over:
            ledger.overwritten.append(f"{run.producer_name}@{run.scheduled_for}")
        journal_end = ended_at.get(key)
        ends_at = [run.finished_at] if run.finished_at else []
        if journal_end is not None:
            ends_at.append(datetime.fromtimestamp(journal_end, UTC))
        if ends_at:
            finished[(run.producer_name, run.scheduled_for)] = max(ends_at)
    for producer, (first, step) in grid.items():
        mine = sorted((r for r in runs if r.producer_name == producer), key=_slot)
        slot = first
        while slot <= stop:
            ledger.slots_due += 1
            found = by_slot.get((producer, slot))
            before = [r for r in mine if r.scheduled_for < slot]
            pending = final[producer]
            last_end = finished.get((producer, before[-1].scheduled_for)) if before else None
            if found is not None:
                ledger.committed += found.status in FINISHED
            elif (last_end is not None and last_end >= slot) or any(
                o.producer_name == producer and o.covers(slot) for o in outcomes
            ):
                ledger.coalesced += 1
            elif pending is not None and slot >= pending:
                ledger.still_due += 1
            else:
                ledger.lost.append(f"{producer}@{slot} never ran")
            slot += step

    late = [r for r in runs if r.started_at is not None and _lateness(r) > LATE_S]
    last_late = max((r.started_at for r in late if r.started_at >= healed), default=healed)
    ledger.recovery_s = (last_late - healed).total_seconds()
    after = [_lateness(r) for r in runs if r.scheduled_for > last_late and r.started_at]
    ledger.max_late_after_recovery_s = max(after, default=math.nan)
    return ledger


def recovered(runs: list[RunRecord], healed: datetime, settled: timedelta) -> bool:
    """Whether runs have been starting on time for `settled` since the last late one after
    `healed` (or since `healed`, if none was late)."""
    started = [r for r in runs if r.started_at is not None]
    late = [r.started_at for r in started if r.started_at >= healed and _lateness(r) > LATE_S]
    since = max(late, default=healed)
    return any(r.scheduled_for > since + settled for r in started)


def _slot(run: RunRecord) -> datetime:
    return run.scheduled_for


def _lateness(run: RunRecord) -> float:
    assert run.started_at is not None
    return (run.started_at - run.scheduled_for).total_seconds()
