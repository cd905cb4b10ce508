"""Rule schedules: the `rules` schedule type, room for its JSON in `schedule_value`, and an
index of pending trigger requests (beat sends those of `drumline trigger --at` when due).

A producer with several schedules, an RRULE, a one-off `at`, exclusions or jitter stores its
rules as canonical JSON (models/schedule_rules.py), longer than the 200 characters a cron needs.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD_TYPES = "schedule_type IN ('interval', 'cron', 'manual')"
NEW_TYPES = "schedule_type IN ('interval', 'cron', 'manual', 'rules')"


def upgrade() -> None:
    # SQLite cannot alter a column or a CHECK constraint: batch mode copies the table.
    with op.batch_alter_table("producer_schedules") as batch:
        batch.alter_column("schedule_value", existing_type=sa.String(length=200), type_=sa.Text())
        batch.drop_constraint(op.f("ck_producer_schedules_schedule_type"), type_="check")
        batch.create_check_constraint(
            op.f("ck_producer_schedules_schedule_type"), sa.text(NEW_TYPES)
        )
    op.create_index(
        "ix_producer_runs_pending",
        "producer_runs",
        ["scheduled_for"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_producer_runs_pending", table_name="producer_runs")
    # The old schema cannot hold rules: such producers are kept, as manual-only (never due),
    # so no row is lost; redeploying their definition on the new schema restores them.
    op.execute(
        "UPDATE producer_schedules SET schedule_type = 'manual', schedule_value = '', "
        "timezone = 'UTC', next_run_at = NULL, claimed_until = NULL, claim_token = NULL "
        "WHERE schedule_type = 'rules'"
    )
    with op.batch_alter_table("producer_schedules") as batch:
        batch.drop_constraint(op.f("ck_producer_schedules_schedule_type"), type_="check")
        batch.create_check_constraint(
            op.f("ck_producer_schedules_schedule_type"), sa.text(OLD_TYPES)
        )
        batch.alter_column("schedule_value", existing_type=sa.Text(), type_=sa.String(length=200))
