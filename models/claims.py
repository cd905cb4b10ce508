"""Beat's SQL: claim due slots, give back claims never sent, and when to look again.

The claim, not a leader lock, keeps a slot from being sent twice, so any number of beats may
run at once. Both statements run every tick and are built once (see `models.transactions.bind`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    Update,
    bindparam,
    case,
    func,
    select,
    union_all,
    update,
)

from models.catchup import CatchUp
from models.records import ClaimedSlot
from models.slot_ledger_store import Ledger, record_ledger
from models.tables import can_be_due, producer_runs, producer_schedules, unclaimed_due, workflows
from models.transactions import bind, transaction
from models.vocabulary import RunStatus

_s = producer_schedules.c


class BeatClaims:
    """Claims on `producer_schedules` rows: a token and a lease end, written by one beat."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim_due(
        self,
        *,
        now: datetime,
        lease: timedelta,
        limit: int,
        conn: Connection | None = None,
    ) -> list[ClaimedSlot]:
        """Claim up to `limit` due rows in one statement, oldest first.

        Due: not paused, `next_run_at <= now`, and no live claim (never claimed or released,
        or its lease ran out). PostgreSQL skips rows another beat is claiming (FOR UPDATE SKIP
        LOCKED); SQLite serialises writers (BEGIN IMMEDIATE).
        A row whose earlier lease ran out gets the batch's token marked as a re-claim, so the
        slot says so (`lease_expired`) without another query.
        """
        token = uuid.uuid4().hex
        claimed_until = now + lease
        with transaction(self.engine, conn) as c:
            rows = c.execute(
                _claim_statement(c.dialect.name),
                _claim_params(now=now, limit=limit, until=claimed_until, token=token),
            ).all()
        reclaim_token = token + _RECLAIM_MARK
        slots = [
            ClaimedSlot(
                schedule_id=row.id,
                workflow_id=row.workflow_id,
                workflow_name=row.workflow_name,
                producer_name=row.producer_name,
                scheduled_for=row.next_run_at,
                claim_token=row.claim_token,
                claimed_until=claimed_until,
                schedule_type=row.schedule_type,
                schedule_value=row.schedule_value,
                timezone=row.timezone,
                policy=row.policy,
                lease_expired=row.claim_token == reclaim_token,
            )
            for row in rows
        ]
        return sorted(slots, key=lambda slot: slot.scheduled_for)

    def move_claimed(
        self, slot: ClaimedSlot, catch_up: CatchUp, *, now: datetime, conn: Connection | None = None
    ) -> bool:
        """Apply a catch-up decision under the slot's claim, in one transaction: the next run
        moves to the slot that runs (the claim kept, to send it) or to the next slot to come
        (the claim released), and the slots passed over are recorded in the ledger. False:
        the claim was lost meanwhile, nothing written."""
        keep = catch_up.run_slot is not None
        with transaction(self.engine, conn) as c:
            result = c.execute(
                update(producer_schedules)
                .where(_s.id == slot.schedule_id, _s.claim_token == slot.claim_token)
                .values(
                    next_run_at=catch_up.next_run_at,
                    claimed_until=slot.claimed_until if keep else None,
                    claim_token=slot.claim_token if keep else None,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return False
            ledger = Ledger(slot.workflow_id, slot.producer_name, catch_up.entries)
            record_ledger(c, ledger, now=now)
        return True

    def shorten_claim(
        self, slot: ClaimedSlot, until: datetime, conn: Connection | None = None
    ) -> bool:
        """End the claim at `until` (a start deadline), so that a message dropped unstarted at
        its deadline leaves the slot to beat then, not a whole lease later; False if the
        claim is no longer this one."""
        with transaction(self.engine, conn) as c:
            result = c.execute(
                update(producer_schedules)
                .where(_s.id == slot.schedule_id, _s.claim_token == slot.claim_token)
                .values(claimed_until=until)
            )
        return result.rowcount == 1

    def was_started(self, slot: ClaimedSlot, conn: Connection | None = None) -> bool:
        """Whether a run of this very slot started and never finished (its worker died): such
        a slot is sent again as it is, for a worker to take it over, whatever its lateness."""
        with transaction(self.engine, conn) as c:
            found = c.execute(
                select(producer_runs.c.id).where(
                    producer_runs.c.workflow_id == slot.workflow_id,
                    producer_runs.c.producer_name == slot.producer_name,
                    producer_runs.c.scheduled_for == slot.scheduled_for,
                    producer_runs.c.status == RunStatus.RUNNING.value,
                )
            ).first()
        return found is not None

    def release_claims(self, slots: list[ClaimedSlot], conn: Connection | None = None) -> int:
        """Give back claims that were never sent, so the slots are due again at once.

        A claim a worker has already taken (its lease renewed by `RunPath.take_claim`) is left
        alone: releasing it would let the slot be sent and run a second time.
        """
        if not slots:
            return 0
        with transaction(self.engine, conn) as c:
            result = c.execute(
                update(producer_schedules)
                .where(
                    _s.id.in_([slot.schedule_id for slot in slots]),
                    _s.claim_token.in_(sorted({slot.claim_token for slot in slots})),
                    _s.claimed_until == slots[0].claimed_until,
                )
                .values(claimed_until=None, claim_token=None)
            )
        return result.rowcount

    def next_wakeup(self, *, now: datetime, conn: Connection | None = None) -> datetime | None:
        """The earliest instant a row can become due: a next run, or a live claim's expiry."""
        with transaction(self.engine, conn) as c:
            moments = c.execute(_NEXT_WAKEUP, {"b_now": now}).one()
        candidates = [moment for moment in moments if moment is not None]
        return min(candidates) if candidates else None


_NOW = bind("b_now", _s.next_run_at)
# Appended to the token of a row re-claimed after its lease ran out. The claim statement can
# only tell this by the row's old `claimed_until`, which RETURNING does not show (SQLite, and
# PostgreSQL before 18, return the new row), so the mark carries it into the returned token.
_RECLAIM_MARK = "-r"
# A claim whose lease has run out: the row is due again (if it can be) as if never claimed.
_LEASE_ENDED = _s.claimed_until <= _NOW
_LIMIT = bindparam("b_limit", type_=Integer())


def claim_search(dialect: str) -> Select[tuple[int]]:
    """The ids of the `b_limit` oldest due rows with no live claim, from two small searches.

    One search over `can_be_due` with "unclaimed or lease ended" would walk every in-flight
    row (claimed rows keep their `next_run_at`) before it reached an unclaimed one. Instead,
    unclaimed rows come from `ix_producer_schedules_unclaimed_due` in `next_run_at` order and
    rows whose lease ended from `ix_producer_schedules_claimed` in `claimed_until` order (the
    lease that ended first goes first); each takes at most `b_limit`, and the oldest
    `b_limit` of both are claimed. PostgreSQL skips rows another beat is claiming.
    """
    unclaimed = (
        select(_s.id, _s.next_run_at)
        .where(unclaimed_due, _s.next_run_at <= _NOW)
        .order_by(_s.next_run_at)
        .limit(_LIMIT)
    )
    lease_ended = (
        select(_s.id, _s.next_run_at)
        .where(can_be_due, _s.next_run_at <= _NOW, _LEASE_ENDED)
        .order_by(_s.claimed_until)
        .limit(_LIMIT)
    )
    if dialect == "postgresql":
        unclaimed = unclaimed.with_for_update(skip_locked=True)
        lease_ended = lease_ended.with_for_update(skip_locked=True)
    # Each search is a derived table: SQLite allows ORDER BY/LIMIT, and PostgreSQL FOR UPDATE,
    # only there, not in an arm of a UNION.
    arms = union_all(
        *(search.subquery().select() for search in (unclaimed, lease_ended))
    ).subquery()
    return select(arms.c.id).order_by(arms.c.next_run_at).limit(_LIMIT)


@cache
def _claim_statement(dialect: str) -> Update:
    """Claim the `b_limit` oldest due rows; PostgreSQL skips rows another beat is claiming."""
    workflow_name = (
        select(workflows.c.name).where(workflows.c.id == _s.workflow_id).scalar_subquery()
    )
    return (
        update(producer_schedules)
        .where(_s.id.in_(claim_search(dialect).scalar_subquery()))
        .values(
            claimed_until=bind("b_until", _s.claimed_until),
            claim_token=case(
                (_s.claimed_until.is_(None), bind("b_token", _s.claim_token)),
                else_=bind("b_reclaim_token", _s.claim_token),
            ),
        )
        .returning(
            _s.id,
            _s.workflow_id,
            _s.producer_name,
            _s.next_run_at,
            _s.schedule_type,
            _s.schedule_value,
            _s.timezone,
            _s.policy,
            _s.claim_token,
            workflow_name.label("workflow_name"),
        )
    )


def _claim_params(*, now: datetime, limit: int, until: datetime, token: str) -> dict[str, Any]:
    return {
        "b_now": now,
        "b_limit": limit,
        "b_until": until,
        "b_token": token,
        "b_reclaim_token": token + _RECLAIM_MARK,
    }


# The earliest next run of an unclaimed row that can be due, and of one whose lease ran out
# (each from its own partial index, as in the claim), and the earliest end of a live claim.
_NEXT_WAKEUP = select(
    select(func.min(_s.next_run_at)).where(unclaimed_due).scalar_subquery(),
    select(func.min(_s.next_run_at)).where(can_be_due, _LEASE_ENDED).scalar_subquery(),
    select(func.min(_s.claimed_until))
    .where(_s.claimed_until.is_not(None), _s.claimed_until > _NOW)
    .scalar_subquery(),
)
