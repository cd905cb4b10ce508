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


@dataclass(frozen=True)
class SlotOutcome:
    """What a finished run writes back to its schedule row."""

    status: str
    ran_at: datetime
    next_run_at: datetime | None
    state: JSONDict


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
