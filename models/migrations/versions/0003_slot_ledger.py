"""The slot ledger (`slot_outcomes`), each producer's slot policies and who paused it.

Every slot a producer was due for gets one final outcome; a range of slots with one fate is
one row. `producer_schedules.policy` holds the producer's validated slot policies (overlap,
catch-up, start deadline, retries, auto-pause) as JSON, `{}` meaning today's behaviour;
a run row waits for its slot's next attempt as `retrying`;
`paused_at`, `paused_by` and `pause_note` say when, by whom and why one producer was paused.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('running', 'succeeded', 'failed', 'superseded', 'skipped', 'pending')"
NEW_STATUSES = (
    "status IN ('running', 'succeeded', 'failed', 'superseded', 'skipped', 'pending', 'retrying')"
)
OUTCOMES = (
    "outcome IN ('succeeded', 'failed', 'timed_out', 'superseded', 'skipped_overlap',"
    " 'coalesced', 'missed', 'paused')"
)


def upgrade() -> None:
    op.create_table(
        "slot_outcomes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("producer_name", sa.String(length=63), nullable=False),
        sa.Column("slot", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("range_end", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("slot_count", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy", sa.String(length=200), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(OUTCOMES, name=op.f("ck_slot_outcomes_outcome")),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_slot_outcomes_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_outcomes")),
        sa.UniqueConstraint(
            "workflow_id",
            "producer_name",
            "slot",
            name=op.f("uq_slot_outcomes_workflow_id_producer_name_slot"),
        ),
    )
    with op.batch_alter_table("producer_schedules") as batch:
        batch.add_column(sa.Column("policy", sa.JSON(), server_default="{}", nullable=False))
        batch.add_column(
            sa.Column("paused_at", models.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("paused_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("pause_note", sa.Text(), nullable=True))
    # SQLite cannot alter a CHECK constraint: batch mode copies the table, keeping every row.
    with op.batch_alter_table("producer_runs") as batch:
        batch.drop_constraint(op.f("ck_producer_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_producer_runs_status"), sa.text(NEW_STATUSES))


def downgrade() -> None:
    # The old schema has no retrying status: a slot waiting for its retry is kept as failed.
    op.execute("UPDATE producer_runs SET status = 'failed' WHERE status = 'retrying'")
    with op.batch_alter_table("producer_runs") as batch:
        batch.drop_constraint(op.f("ck_producer_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_producer_runs_status"), sa.text(OLD_STATUSES))
    with op.batch_alter_table("producer_schedules") as batch:
        batch.drop_column("pause_note")
        batch.drop_column("paused_by")
        batch.drop_column("paused_at")
        batch.drop_column("policy")
    op.drop_table("slot_outcomes")
