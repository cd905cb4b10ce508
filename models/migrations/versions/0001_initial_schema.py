"""Initial schema: workflows, producer_schedules, producer_runs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'paused')", name=op.f("ck_workflows_status")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_workflows_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
        sa.UniqueConstraint("name", name=op.f("uq_workflows_name")),
    )
    op.create_table(
        "producer_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("producer_name", sa.String(length=63), nullable=False),
        sa.Column("scheduled_for", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default="1", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'superseded', 'skipped')",
            name=op.f("ck_producer_runs_status"),
        ),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'manual')", name=op.f("ck_producer_runs_trigger")
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_producer_runs_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_producer_runs")),
        sa.UniqueConstraint(
            "workflow_id",
            "producer_name",
            "scheduled_for",
            name=op.f("uq_producer_runs_workflow_id_producer_name_scheduled_for"),
        ),
    )
    op.create_table(
        "producer_schedules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("producer_name", sa.String(length=63), nullable=False),
        sa.Column("run", sa.String(length=200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("schedule_type", sa.String(length=16), nullable=False),
        sa.Column("schedule_value", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("next_run_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.Column("last_run_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "schedule_type IN ('interval', 'cron', 'manual')",
            name=op.f("ck_producer_schedules_schedule_type"),
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_producer_schedules_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_producer_schedules")),
        sa.UniqueConstraint(
            "workflow_id",
            "producer_name",
            name=op.f("uq_producer_schedules_workflow_id_producer_name"),
        ),
    )
    op.create_index(
        "ix_producer_schedules_due",
        "producer_schedules",
        ["next_run_at"],
        postgresql_where=sa.text("NOT paused AND next_run_at IS NOT NULL"),
        # Written as the stores' queries render it, so SQLite's planner can match it.
        sqlite_where=sa.text("paused = 0 AND next_run_at IS NOT NULL"),
    )
    op.create_index(
        "ix_producer_schedules_claimed",
        "producer_schedules",
        ["claimed_until"],
        postgresql_where=sa.text("claimed_until IS NOT NULL"),
        sqlite_where=sa.text("claimed_until IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_producer_schedules_claimed", table_name="producer_schedules")
    op.drop_index("ix_producer_schedules_due", table_name="producer_schedules")
    op.drop_table("producer_schedules")
    op.drop_table("producer_runs")
    op.drop_table("workflows")
