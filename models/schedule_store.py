"""Deploy-time reads and writes of `producer_schedules`: specs, pause flags, moved next runs.

Beat claims rows in `models.claims`; workers start and finish runs in `models.run_path`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    delete,
    select,
    update,
)

from models.records import JSONDict, ScheduleRecord, ScheduleSpec
from models.slot_ledger import ranged
from models.slot_ledger_store import Ledger, record_ledger
from models.stored_schedules import schedule_from_row
from models.tables import producer_schedules
from models.transactions import insert_for, transaction
from models.vocabulary import SlotFate

_s = producer_schedules.c
# The end of a range that must include a slot at `now` itself (ends are exclusive).
_JUST_AFTER = timedelta(microseconds=1)


class ProducerScheduleStore:
    """One row per (workflow, producer): its schedule, next run, claim and carried state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(
        self, workflow_id: int, producer_name: str, conn: Connection | None = None
    ) -> ScheduleRecord | None:
        with transaction(self.engine, conn) as c:
            row = c.execute(
                select(producer_schedules).where(
                    _s.workflow_id == workflow_id, _s.producer_name == producer_name
                )
            ).first()
        return schedule_record(row) if row else None

    def list(
        self, workflow_id: int | None = None, conn: Connection | None = None
    ) -> list[ScheduleRecord]:
        query = select(producer_schedules).order_by(_s.workflow_id, _s.producer_name)
        if workflow_id is not None:
            query = query.where(_s.workflow_id == workflow_id)
        with transaction(self.engine, conn) as c:
            return [schedule_record(row) for row in c.execute(query)]

    def upsert(
        self, spec: ScheduleSpec, *, now: datetime, conn: Connection | None = None
    ) -> ScheduleRecord:
        """Insert the row or rewrite its schedule, in one INSERT ... ON CONFLICT statement.

        Rewriting a schedule clears any claim: a run in flight then commits nothing (its token
        no longer matches) and the new `next_run_at` stands. The carried state, last run and
        failure count are kept. The old schedule's slots that fell due and never ran are
        recorded in the slot ledger as one entry (`superseded`, or `paused` if it was paused):
        the rewrite is what ends them.
        """
        values = {
            "workflow_id": spec.workflow_id,
            "producer_name": spec.producer_name,
            "run": spec.run,
            "params": spec.params,
            "timeout_seconds": spec.timeout_seconds,
            "schedule_type": spec.schedule_type,
            "schedule_value": spec.schedule_value,
            "timezone": spec.timezone,
            "paused": spec.paused,
            "policy": spec.policy,
            "next_run_at": spec.next_run_at,
            "claimed_until": None,
            "claim_token": None,
            "consecutive_failures": 0,
            "state": {},
            "created_at": now,
            "updated_at": now,
        }
        keep = {"workflow_id", "producer_name", "consecutive_failures", "state", "created_at"}
        with transaction(self.engine, conn) as c:
            # Locked (PostgreSQL) so no run's commit moves the old next run before the rewrite.
            before = c.execute(
                select(producer_schedules)
                .where(_s.workflow_id == spec.workflow_id, _s.producer_name == spec.producer_name)
                .with_for_update()
            ).first()
            stmt = insert_for(c, producer_schedules).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[_s.workflow_id, _s.producer_name],
                set_={key: stmt.excluded[key] for key in values if key not in keep},
            ).returning(*producer_schedules.c)
            written = schedule_record(c.execute(stmt).one())
            if before is not None:
                record_ledger(c, _superseded_range(schedule_record(before), now), now=now)
            return written

    def update_config(
        self,
        workflow_id: int,
        producer_name: str,
        *,
        run: str,
        params: JSONDict,
        timeout_seconds: float | None,
        now: datetime,
        policy: JSONDict | None = None,
        conn: Connection | None = None,
    ) -> bool:
        """Change what a producer runs with (and its slot policies, unless None), leaving its
        schedule, claim and next run alone."""
        values: JSONDict = {"run": run, "params": params, "timeout_seconds": timeout_seconds}
        if policy is not None:
            values["policy"] = policy
        with transaction(self.engine, conn) as c:
            result = c.execute(
                update(producer_schedules)
                .where(_s.workflow_id == workflow_id, _s.producer_name == producer_name)
                .values(**values, updated_at=now)
            )
        return result.rowcount > 0

    def delete(self, workflow_id: int, producer_name: str, conn: Connection | None = None) -> bool:
        with transaction(self.engine, conn) as c:
            result = c.execute(
                delete(producer_schedules).where(
                    _s.workflow_id == workflow_id, _s.producer_name == producer_name
                )
            )
        return result.rowcount > 0

    def set_paused(
        self,
        workflow_id: int,
        paused: bool,
        *,
        now: datetime,
        producer_name: str | None = None,
        by: str | None = None,
        note: str | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Pause (or resume) every producer of the workflow, or only `producer_name`; a pause
        records when, by whom and why, a resume clears it and starts the failure count afresh
        (else `pause_after_failures` would pause a resumed producer again at its first failure)."""
        query = update(producer_schedules).where(_s.workflow_id == workflow_id)
        if producer_name is not None:
            query = query.where(_s.producer_name == producer_name)
        values: dict[str, object] = {
            "paused": paused,
            "paused_at": now if paused else None,
            "paused_by": by if paused else None,
            "pause_note": note if paused else None,
            "updated_at": now,
        }
        if not paused:
            values["consecutive_failures"] = 0
        with transaction(self.engine, conn) as c:
            result = c.execute(query.values(values))
        return result.rowcount

    def set_next_run(
        self,
        schedule_id: int,
        next_run_at: datetime | None,
        *,
        now: datetime,
        conn: Connection | None = None,
    ) -> None:
        with transaction(self.engine, conn) as c:
            c.execute(
                update(producer_schedules)
                .where(_s.id == schedule_id)
                .values(next_run_at=next_run_at, updated_at=now)
            )

    def move_next_run(
        self,
        schedule_id: int,
        *,
        read: datetime,
        to: datetime | None,
        now: datetime,
        conn: Connection | None = None,
    ) -> bool:
        """Set the next run to `to` only if it is still `read`, the value it was computed
        from; False (nothing written) if a run's commit moved it meanwhile. The slots it
        passes over, from `read` up to `to`, fell due while the producer was paused: they are
        recorded so in the slot ledger, as one entry.

        Any claim on the old slot goes with it: a message still queued for that slot is stale
        now (it names another slot), and its claim must not hold the new slot back for a lease.
        """
        with transaction(self.engine, conn) as c:
            row = c.execute(
                update(producer_schedules)
                .where(_s.id == schedule_id, _s.next_run_at == read)
                .values(next_run_at=to, claimed_until=None, claim_token=None, updated_at=now)
                .returning(*producer_schedules.c)
            ).first()
            if row is not None and to is not None and read < to:
                record_ledger(c, _paused_range(schedule_record(row), read, to), now=now)
        return row is not None


def _paused_range(schedule: ScheduleRecord, read: datetime, to: datetime) -> Ledger:
    compiled = schedule_from_row(schedule.schedule_type, schedule.schedule_value, schedule.timezone)
    entry = ranged(
        compiled,
        read,
        to,
        outcome=SlotFate.PAUSED,
        reason=f"fell due while paused ({schedule.pause_note or 'no note'}); resume moved on",
        policy="resume: missed slots move to the next one",
        anchor=read,
    )
    return Ledger(schedule.workflow_id, schedule.producer_name, (entry,))


def _superseded_range(old: ScheduleRecord, now: datetime) -> Ledger:
    """The old schedule's slots due by `now` that have no outcome yet (none if its next run is
    ahead). A run in flight for the first of them finds its claim gone and records nothing over
    this entry, so a claimed slot whose message is lost gets its outcome too."""
    first = old.next_run_at
    if first is None or first > now:
        return Ledger(old.workflow_id, old.producer_name, ())
    compiled = schedule_from_row(old.schedule_type, old.schedule_value, old.timezone)
    end = compiled.next_after(now, anchor=first)
    if old.paused:
        fate = SlotFate.PAUSED
        note = old.pause_note or "no note"
        reason = f"fell due while paused ({note}); a redeploy changed the schedule"
    else:
        fate = SlotFate.SUPERSEDED
        reason = (
            "fell due under the old schedule and did not complete: the schedule was changed"
            " (redeployed); the new schedule stands"
        )
    entry = ranged(
        compiled,
        first,
        end if end is not None else now + _JUST_AFTER,
        outcome=fate,
        reason=reason,
        policy="redeploy: the new schedule stands",
        anchor=first,
    )
    return Ledger(old.workflow_id, old.producer_name, (entry,))


def schedule_record(row: Row[Any]) -> ScheduleRecord:
    """A `producer_schedules` row as a record."""
    return ScheduleRecord(**row._asdict())
