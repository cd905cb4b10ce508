"""The schema: workflows, their producers' schedules, and one row per run slot.

Tables are SQLAlchemy Core objects because every access goes through the stores as explicit
statements (upserts, claims, fenced updates); no ORM identity map sits between them and SQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from models.types import UTCDateTime
from models.vocabulary import (
    BackfillStatus,
    ChangeAction,
    RunStatus,
    ScheduleKind,
    SlotFate,
    Trigger,
    WorkflowStatus,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

WORKFLOW_STATUSES = tuple(WorkflowStatus)
SCHEDULE_TYPES = tuple(ScheduleKind)
RUN_STATUSES = tuple(RunStatus)
RUN_TRIGGERS = tuple(Trigger)
CHANGE_ACTIONS = tuple(ChangeAction)
SLOT_FATES = tuple(SlotFate)
BACKFILL_STATUSES = tuple(BackfillStatus)


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    """`column IN (...)`, named after the column (the migration holds the same text)."""
    listed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


workflows = Table(
    "workflows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    _one_of("status", WORKFLOW_STATUSES),
    CheckConstraint("version >= 1", name="version"),
)

producer_schedules = Table(
    "producer_schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "workflow_id",
        Integer,
        ForeignKey("workflows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("producer_name", String(63), nullable=False),
    Column("run", String(200), nullable=False),
    Column("params", JSON, nullable=False),
    Column("timeout_seconds", Float, nullable=True),
    Column("schedule_type", String(16), nullable=False),
    Column("schedule_value", Text, nullable=False),  # a rules schedule's JSON is long
    Column("timezone", String(64), nullable=False),
    Column("paused", Boolean, nullable=False, server_default=false()),
    # When, by whom (a user, or `auto-pause`) and why this one producer was paused.
    Column("paused_at", UTCDateTime, nullable=True),
    Column("paused_by", String(200), nullable=True),
    Column("pause_note", Text, nullable=True),
    # Its slot policies (`models.slot_policy.SlotPolicy` as JSON); `{}`: the defaults.
    Column("policy", JSON, nullable=False, server_default="{}"),
    Column("next_run_at", UTCDateTime, nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("claim_token", String(36), nullable=True),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("last_status", String(16), nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("state", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("workflow_id", "producer_name"),
    _one_of("schedule_type", SCHEDULE_TYPES),
)

# Rows that can be due: not paused and with a next run.
can_be_due = (producer_schedules.c.paused == false()) & producer_schedules.c.next_run_at.is_not(
    None
)
# ... and not claimed. The due queries state this predicate as it is, so that both databases
# use the partial index below: it leaves in-flight (claimed) rows out, so its cost follows the
# rows beat has yet to send, not the table nor a burst in flight. Rows whose lease ran out are
# found through `ix_producer_schedules_claimed`.
unclaimed_due = can_be_due & producer_schedules.c.claimed_until.is_(None)

Index(
    "ix_producer_schedules_unclaimed_due",
    producer_schedules.c.next_run_at,
    postgresql_where=unclaimed_due,
    sqlite_where=unclaimed_due,
)

producer_runs = Table(
    "producer_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "workflow_id",
        Integer,
        ForeignKey("workflows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("producer_name", String(63), nullable=False),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("task_id", String(255), nullable=True),
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("duration_ms", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("result", JSON, nullable=True),
    # The secret a manual run's message must carry; set only on rows `drumline trigger` wrote.
    Column("trigger_token", String(64), nullable=True),
    # One row per slot: this is what makes committing a slot idempotent.
    UniqueConstraint("workflow_id", "producer_name", "scheduled_for"),
    _one_of("status", RUN_STATUSES),
    _one_of("trigger", RUN_TRIGGERS),
)

# Beat wakes when a live claim expires (its slot is then due again) and finds rows whose lease
# ran out through this index; only in-flight rows hold a claim, so it stays as small as the
# number of runs in flight.
Index(
    "ix_producer_schedules_claimed",
    producer_schedules.c.claimed_until,
    postgresql_where=producer_schedules.c.claimed_until.is_not(None),
    sqlite_where=producer_schedules.c.claimed_until.is_not(None),
)

# The history of lifecycle changes, keyed by the workflow's NAME (no foreign key): it outlives a
# deleted workflow, and a workflow created again under the same name goes on from its versions.
workflow_changes = Table(
    "workflow_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workflow", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("diff", JSON, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("note", Text, nullable=True),
    Column("changed_at", UTCDateTime, nullable=False),
    # Set on an entry about one producer (its pause or resume): it keeps the workflow's version.
    Column("producer", String(63), nullable=True),
    _one_of("action", CHANGE_ACTIONS),
)
# One workflow-wide entry per version of a workflow: two changes can never both claim one.
# Producer entries share the version they applied to; `id` orders all of a workflow's entries.
Index(
    "uq_workflow_changes_workflow_version",
    workflow_changes.c.workflow,
    workflow_changes.c.version,
    unique=True,
    postgresql_where=workflow_changes.c.producer.is_(None),
    sqlite_where=workflow_changes.c.producer.is_(None),
)
Index("ix_workflow_changes_workflow_id", workflow_changes.c.workflow, workflow_changes.c.id)
# One row per beat process: when it last ticked and how many slots it sent, for `drumline
# beats`, `drumline health` and the exporter (a beat that stopped ticking is alerted on).
beat_heartbeats = Table(
    "beat_heartbeats",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_tick_at", UTCDateTime, nullable=False),
    Column("slots_sent", Integer, nullable=False, server_default="0"),
)

Index("ix_beat_heartbeats_last_tick_at", beat_heartbeats.c.last_tick_at)
# Trigger requests beat sends when their slot comes (`drumline trigger --at`): only pending rows,
# so this index stays as small as the requests waiting.
Index(
    "ix_producer_runs_pending",
    producer_runs.c.scheduled_for,
    postgresql_where=text("status = 'pending'"),
    sqlite_where=text("status = 'pending'"),
)
# A backfill's runs in flight, so beat finds one whose worker died without reading every run.
RUNNING_BACKFILL = "status = 'running' AND trigger = 'backfill'"
Index(
    "ix_producer_runs_running_backfill",
    producer_runs.c.started_at,
    postgresql_where=text(RUNNING_BACKFILL),
    sqlite_where=text(RUNNING_BACKFILL),
)
# The slot ledger: every slot a producer was due for gets exactly one row here, or falls inside
# one row's range, so "why did it (not) run at 02:00?" has an answer. A range of slots with one
# fate (a day of coalesced 1s slots) is ONE row: `slot` is its first, `range_end` the instant
# its last one is followed by (exclusive; NULL for a single slot). Rows are written by the run
# that holds the slot's claim, in the same transaction as its commit, so ranges never overlap.
slot_outcomes = Table(
    "slot_outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "workflow_id",
        Integer,
        ForeignKey("workflows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("producer_name", String(63), nullable=False),
    Column("slot", UTCDateTime, nullable=False),
    Column("range_end", UTCDateTime, nullable=True),
    # How many slots the row stands for; NULL when counting them would cost too much.
    Column("slot_count", Integer, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    # The policy that decided the outcome, e.g. `overlap=skip` or `catchup=latest`.
    Column("policy", String(200), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("recorded_at", UTCDateTime, nullable=False),
    UniqueConstraint("workflow_id", "producer_name", "slot"),
    _one_of("outcome", SLOT_FATES),
)

# `drumline backfill`: one row per backfill, and one row per slot it requested. A requested slot's
# run is the ordinary run row of that slot (a pending request, trigger `backfill`), so progress
# is a join, and the row outlives any worker: beat sends the requests (models/trigger_claims.py).
backfills = Table(
    "backfills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "workflow_id",
        Integer,
        ForeignKey("workflows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("producer_name", String(63), nullable=False),
    Column("range_start", UTCDateTime, nullable=False),
    Column("range_end", UTCDateTime, nullable=False),
    Column("rate", Float, nullable=False),  # requests sent per second
    Column("status", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("note", Text, nullable=True),
    # The schedule's slots in the range, and how many of them it requested (the others had run).
    Column("slot_count", Integer, nullable=False),
    Column("requested", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("cancelled_at", UTCDateTime, nullable=True),
    _one_of("status", BACKFILL_STATUSES),
)
backfill_slots = Table(
    "backfill_slots",
    metadata,
    Column(
        "backfill_id",
        Integer,
        ForeignKey("backfills.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("scheduled_for", UTCDateTime, primary_key=True),
)
