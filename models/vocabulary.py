"""The words drumline stores and compares: statuses, triggers, schedule kinds, skip reasons.

`StrEnum`s, so each member is equal to the string in the database and in JSON: the schema's
CHECK constraints list exactly these values (`models/tables.py`) and need no migration.
"""

from __future__ import annotations

from enum import StrEnum


class WorkflowStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class ScheduleKind(StrEnum):
    """`producer_schedules.schedule_type`: how a producer's next run is found."""

    INTERVAL = "interval"
    CRON = "cron"
    MANUAL = "manual"  # never due: runs only when triggered
    # Several entries, RRULE, one-offs, exclusions or jitter: the value is the rules' JSON.
    RULES = "rules"


class RunStatus(StrEnum):
    """`producer_runs.status`, and a schedule's `last_status`."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # the claim was lost meanwhile: the schedule was left alone
    SKIPPED = "skipped"
    # A trigger request `drumline trigger` recorded; a worker starts it only if its message
    # carries the same `trigger_token` (so a forged message cannot run anything).
    PENDING = "pending"
    # A failed attempt whose slot is tried again (`retries:`); the next attempt takes it over.
    RETRYING = "retrying"


class Trigger(StrEnum):
    """`producer_runs.trigger`: what started a run."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    BACKFILL = "backfill"  # a slot of the producer's own schedule re-run by `drumline backfill`


class SkipReason(StrEnum):
    """Why a worker ran nothing for a message; part of the task's result and log line."""

    STALE_MESSAGE = "stale or forged message (its claim does not hold this slot)"
    ALREADY_FINISHED = "slot already finished"
    PRODUCER_GONE = "producer no longer exists"
    # Also the `error` of the run row of a slot skipped because its producer is paused.
    PAUSED = "paused"
    NO_TRIGGER_REQUEST = "no pending trigger request matches (a forged or replayed message)"
    # The `error` of a trigger request withdrawn by `drumline cancel` before it started.
    CANCELLED = "cancelled"


class BackfillStatus(StrEnum):
    """`backfills.status`: a backfill is running until each of its requests has finished
    (then `done`, as read; see models/backfill_store.py) or it is cancelled."""

    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class ChangeAction(StrEnum):
    """`workflow_changes.action`: which lifecycle change a history entry records."""

    DEPLOY = "deploy"
    PAUSE = "pause"
    RESUME = "resume"
    DELETE = "delete"
    ROLLBACK = "rollback"
    # One producer paused or resumed by hand, or paused by its `pause_after_failures`: these
    # change no definition and keep the workflow's version (the entry names the producer).
    PAUSE_PRODUCER = "pause_producer"
    RESUME_PRODUCER = "resume_producer"
    AUTO_PAUSE = "auto_pause"


class SlotFate(StrEnum):
    """`slot_outcomes.outcome`: the one final outcome of a slot (or of a range of slots)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SUPERSEDED = "superseded"  # a redeploy changed the schedule while it ran
    SKIPPED_OVERLAP = "skipped_overlap"  # fell due while the producer's previous run ran
    COALESCED = "coalesced"  # fell due before a late run started, which stood for it
    MISSED = "missed"  # past its start deadline, or outside the catch-up window
    PAUSED = "paused"  # fell due while the producer or its workflow was paused
    EXCLUDED = "excluded"  # an entry's fire time that an exclusion (`exclude:`) dropped


class OverlapPolicy(StrEnum):
    """`overlap:` what happens to a slot that falls due while the previous run still runs."""

    SKIP = "skip"  # not run; recorded skipped for overlap
    BUFFER_ONE = "buffer_one"  # the latest such slot waits and runs right after
    ALLOW = "allow"  # runs at once, up to `max_concurrent` runs of the producer


class CatchupPolicy(StrEnum):
    """`catchup:` which missed slots run after downtime, a pause or a backlog."""

    LATEST = "latest"  # the most recent missed slot, once
    ALL = "all"  # every missed slot within the window, oldest first
    NONE = "none"  # none: wait for the next slot
