"""Catch-up: what beat does with a claimed slot that is late, by the producer's policy.

A slot is late when the slot after it has fallen due too (the system was down, the workflow
paused, or beat behind), or when it is older than the producer's `catchup_window` or
`start_deadline`. Beat then, under its claim, moves the producer's next run to the slot the
policy runs (if any) and records the slots it passes over in the slot ledger:

- `latest`: the most recent due slot runs; the ones before it are coalesced into it;
- `all`: the oldest due slot within the window runs (and the next, after it, and so on);
- `none`: every due slot is missed and the producer waits for its next slot.

The fire times an exclusion dropped among the slots passed over are recorded `excluded`.

Slots older than the window (or the start deadline) are missed under every policy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from models.records import ClaimedSlot
from models.schedules import IntervalSchedule, Schedule, format_interval
from models.slot_ledger import LedgerEntry, excluded_between, ranged
from models.slot_policy import SlotPolicy
from models.stored_schedules import schedule_from_row
from models.vocabulary import CatchupPolicy, SlotFate

# Due slots are walked one by one at most this many times for a cron (an interval's are
# arithmetic); past it, the walk jumps to the slots just before now.
MAX_WALK = 1000
# The shortest time between two slots of any schedule: a slot less late than this cannot have
# been followed by another.
MIN_SLOT_GAP = timedelta(seconds=1)
DEFAULT_POLICY = SlotPolicy()


@dataclass(frozen=True)
class CatchUp:
    """The slot to send now (None: nothing), where the next run goes, and the ledger entries
    of the slots passed over."""

    run_slot: datetime | None
    next_run_at: datetime | None
    entries: tuple[LedgerEntry, ...]


def catch_up(
    schedule: Schedule, policy: SlotPolicy, claimed: datetime, now: datetime
) -> CatchUp | None:
    """What to do with the `claimed` slot at `now`; None: send it as it is."""
    following = schedule.next_after(claimed, anchor=claimed)
    oldest = _oldest_allowed(policy, now)
    behind = following is not None and following <= now
    if not behind and (oldest is None or claimed >= oldest):
        return None
    upcoming = schedule.next_after(now, anchor=claimed)  # the first slot still to come
    end = upcoming if upcoming is not None else following or claimed
    latest = latest_due(schedule, claimed, now)
    first_allowed = claimed if oldest is None else _first_at_or_after(schedule, claimed, oldest)
    first_allowed = min(first_allowed, end)
    entries: list[LedgerEntry] = []
    if first_allowed > claimed:
        entries.append(_range(schedule, claimed, first_allowed, _too_old_reason(policy), policy))
    run_slot: datetime | None
    if first_allowed >= end:
        run_slot = None  # every due slot is too old
    elif policy.catchup == CatchupPolicy.ALL:
        run_slot = first_allowed
    elif policy.catchup == CatchupPolicy.LATEST:
        run_slot = latest
        if latest > first_allowed:
            entries.append(
                _range(
                    schedule,
                    first_allowed,
                    latest,
                    f"missed; coalesced into the run of {latest.isoformat()}",
                    policy,
                    SlotFate.COALESCED,
                )
            )
    else:  # none: nothing missed runs
        run_slot = None
        entries.append(
            _range(schedule, first_allowed, end, "missed; catchup none runs no missed slot", policy)
        )
    if run_slot == claimed and not entries:
        return None
    next_run_at = run_slot if run_slot is not None else upcoming
    if next_run_at is not None:
        entries += excluded_between(schedule, claimed, next_run_at)
    return CatchUp(
        run_slot=run_slot,
        next_run_at=next_run_at,
        entries=tuple(sorted(entries, key=lambda entry: entry.slot)),
    )


def latest_due(schedule: Schedule, first: datetime, now: datetime) -> datetime:
    """The last slot at or before `now`, `first` (a due slot) being the earliest."""
    if isinstance(schedule, IntervalSchedule):
        return first + ((now - first) // schedule.every) * schedule.every
    latest, done = _walk(schedule, first, now)
    if done:
        return latest
    # Too many slots to walk: start again a few average steps before now.
    step = (latest - first) / MAX_WALK
    restart = _first_at_or_after(schedule, first, now - 4 * step)
    return _walk(schedule, restart, now)[0] if restart <= now else latest


def _walk(schedule: Schedule, first: datetime, now: datetime) -> tuple[datetime, bool]:
    """The last slot at or before `now` reached from `first` within MAX_WALK steps, and
    whether it is the last one."""
    latest = first
    for _ in range(MAX_WALK):
        following = schedule.next_after(latest, anchor=first)
        if following is None or following > now:
            return latest, True
        latest = following
    return latest, False


def _first_at_or_after(schedule: Schedule, first: datetime, moment: datetime) -> datetime:
    if moment <= first:
        return first
    found = schedule.next_after(moment - timedelta(microseconds=1), anchor=first)
    return found if found is not None else moment


def _limits(policy: SlotPolicy) -> list[timedelta]:
    return [limit for limit in (policy.catchup_window, policy.start_deadline) if limit]


def _oldest_allowed(policy: SlotPolicy, now: datetime) -> datetime | None:
    limits = _limits(policy)
    return now - min(limits) if limits else None


def _too_old_reason(policy: SlotPolicy) -> str:
    if policy.start_deadline is not None and (
        policy.catchup_window is None or policy.start_deadline <= policy.catchup_window
    ):
        return "missed: could not start within its start deadline"
    return "missed: older than the catch-up window"


def _range(
    schedule: Schedule,
    first: datetime,
    end: datetime,
    reason: str,
    policy: SlotPolicy,
    outcome: SlotFate = SlotFate.MISSED,
) -> LedgerEntry:
    window = deadline = ""
    if policy.catchup_window is not None:
        window = f", catchup_window={format_interval(policy.catchup_window)}"
    if policy.start_deadline is not None:
        deadline = f", start_deadline={format_interval(policy.start_deadline)}"
    return ranged(
        schedule,
        first,
        end,
        outcome=outcome,
        reason=reason,
        policy=f"catchup={policy.catchup}{window}{deadline}",
        anchor=first,
    )


def plan_slot(
    slot: ClaimedSlot, now: datetime, *, as_it_is: bool = False
) -> tuple[ClaimedSlot | None, CatchUp | None]:
    """The message to send for a claimed slot (None: none), and the catch-up decision to
    apply first (None: none; always with `as_it_is`, for a slot whose run was cut short and
    must be taken over). Cheap for a slot on time: no slot can follow within MIN_SLOT_GAP,
    and a producer without policies has no window or deadline to check."""
    policy = SlotPolicy.from_json(slot.policy) if slot.policy else DEFAULT_POLICY
    decision = None
    if not as_it_is and (now - slot.scheduled_for >= MIN_SLOT_GAP or _limits(policy)):
        schedule = schedule_from_row(slot.schedule_type, slot.schedule_value, slot.timezone)
        decision = catch_up(schedule, policy, slot.scheduled_for, now)
    run_slot = slot.scheduled_for if decision is None else decision.run_slot
    if run_slot is None:
        return None, decision
    start_by = None if policy.start_deadline is None else run_slot + policy.start_deadline
    return replace(slot, scheduled_for=run_slot, start_by=start_by), decision
