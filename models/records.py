"""Plain, immutable views of rows: what the stores return and accept."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class WorkflowRecord:
    id: int
    name: str
    status: str
    version: int
    definition: JSONDict
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ScheduleSpec:
    """Everything a deploy decides about one producer's schedule row."""

    workflow_id: int
    producer_name: str
    run: str
    params: JSONDict
    timeout_seconds: float | None
    schedule_type: str
    schedule_value: str
    timezone: str
    next_run_at: datetime | None
    paused: bool = False
    policy: JSONDict = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleRecord:
    id: int
    workflow_id: int
    producer_name: str
    run: str
    params: JSONDict
    timeout_seconds: float | None
    schedule_type: str
    schedule_value: str
    timezone: str
    paused: bool
    paused_at: datetime | None
    paused_by: str | None
    pause_note: str | None
    policy: JSONDict
    next_run_at: datetime | None
    claimed_until: datetime | None
    claim_token: str | None
    last_run_at: datetime | None
    last_status: str | None
    consecutive_failures: int
    state: JSONDict
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ClaimedSlot:
    """A due slot that one beat has claimed and must now send."""

    schedule_id: int
    workflow_id: int
    workflow_name: str
    producer_name: str
    scheduled_for: datetime
    claim_token: str
    claimed_until: datetime
    # What beat's catch-up needs: the schedule (type, value, time zone) and the policies.
    schedule_type: str = "manual"
    schedule_value: str = ""
    timezone: str = "UTC"
    policy: JSONDict = field(default_factory=dict)
    # The end of the slot's start deadline, if it has one: its message expires then.
    start_by: datetime | None = None
    # Claimed again because an earlier claim's lease ran out (its message was lost, dropped
    # unstarted, or its worker died), not because the slot came due.
    lease_expired: bool = False

    @property
    def message_expires(self) -> datetime:
        """When the slot's message is dropped unstarted: at the lease end or the deadline."""
        return (
            self.claimed_until if self.start_by is None else min(self.claimed_until, self.start_by)
        )


@dataclass(frozen=True)
class SlotOutcome:
    """What a finished run writes back to its schedule row."""

    status: str
    ran_at: datetime
    next_run_at: datetime | None
    state: JSONDict
    # A failure that makes this many in a row pauses the producer, with this note.
    pause_after_failures: int | None = None
    pause_note: str | None = None


@dataclass(frozen=True)
class RunRecord:
    id: int
    workflow_id: int
    producer_name: str
    scheduled_for: datetime
    trigger: str
    task_id: str | None
    attempt: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    result: Any
