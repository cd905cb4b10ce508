"""Backfills: the `backfills` and `backfill_slots` tables and the `backfill` run trigger; and
the slot ledger's `excluded` outcome.

`drumline backfill` records a backfill and one pending run request per slot of the producer's
schedule that has no successful run (trigger `backfill`); beat sends them at the backfill's rate,
and finds a backfill's run whose worker died through the partial index of its running runs.
The slot ledger records the fire times an exclusion dropped as `excluded` ranges.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_TRIGGERS = "trigger IN ('schedule', 'manual')"
NEW_TRIGGERS = "trigger IN ('schedule', 'manual', 'backfill')"
STATUSES = "status IN ('running', 'done', 'cancelled')"
OLD_FATES = (
    "outcome IN ('succeeded', 'failed', 'timed_out', 'superseded', 'skipped_overlap', "
    "'coalesced', 'missed', 'paused')"
)
NEW_FATES = OLD_FATES[:-1] + ", 'excluded')"
PENDING = sa.text("status = 'pending'")
RUNNING_BACKFILL = sa.text("status = 'running' AND trigger = 'backfill'")


def _alter_triggers(check: str) -> None:
    # SQLite cannot alter a CHECK constraint: batch mode copies the table, keeping every row.
    # The partial index is dropped and made again around the copy, which may not keep it.
    op.drop_index("ix_producer_runs_pending", table_name="producer_runs")
    with op.batch_alter_table("producer_runs") as batch:
        batch.drop_constraint(op.f("ck_producer_runs_trigger"), type_="check")
        batch.create_check_constraint(op.f("ck_producer_runs_trigger"), sa.text(check))
    op.create_index(
        "ix_producer_runs_pending",
        "producer_runs",
        ["scheduled_for"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def _alter_fates(check: str) -> None:
    with op.batch_alter_table("slot_outcomes") as batch:
        batch.drop_constraint(op.f("ck_slot_outcomes_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_slot_outcomes_outcome"), sa.text(check))


def upgrade() -> None:
    _alter_fates(NEW_FATES)
    op.create_table(
        "backfills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("producer_name", sa.String(length=63), nullable=False),
        sa.Column("range_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("range_end", UTCDateTime(timezone=True), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("slot_count", sa.Integer(), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(STATUSES, name=op.f("ck_backfills_status")),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_backfills_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfills")),
    )
    op.create_table(
        "backfill_slots",
        sa.Column("backfill_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["backfill_id"],
            ["backfills.id"],
            name=op.f("fk_backfill_slots_backfill_id_backfills"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("backfill_id", "scheduled_for", name=op.f("pk_backfill_slots")),
    )
    _alter_triggers(NEW_TRIGGERS)
    op.create_index(
        "ix_producer_runs_running_backfill",
        "producer_runs",
        ["started_at"],
        postgresql_where=RUNNING_BACKFILL,
        sqlite_where=RUNNING_BACKFILL,
    )


def downgrade() -> None:
    op.drop_index("ix_producer_runs_running_backfill", table_name="producer_runs")
    # The old schema has no backfill trigger: a backfill's runs are kept as manual runs, and a
    # request that never started is kept as skipped, as 0002's downgrade keeps a trigger's.
    op.execute(
        "UPDATE producer_runs SET status = 'skipped', "
        "error = 'backfill request dropped by a schema downgrade' "
        "WHERE trigger = 'backfill' AND status = 'pending'"
    )
    op.execute("UPDATE producer_runs SET trigger = 'manual' WHERE trigger = 'backfill'")
    _alter_triggers(OLD_TRIGGERS)
    op.drop_table("backfill_slots")
    op.drop_table("backfills")
    # The old schema has no excluded outcome: such rows are kept as missed (their reason says
    # they were excluded), so no row is lost.
    op.execute("UPDATE slot_outcomes SET outcome = 'missed' WHERE outcome = 'excluded'")
    _alter_fates(OLD_FATES)
