"""Trigger requests: `producer_runs.trigger_token` and the `pending` run status.

`drumline trigger` records a pending run row with a random token before it sends the task; a
worker runs a manual slot only if its message carries that token, so a message nobody recorded
runs nothing.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('running', 'succeeded', 'failed', 'superseded', 'skipped')"
NEW_STATUSES = "status IN ('running', 'succeeded', 'failed', 'superseded', 'skipped', 'pending')"


def upgrade() -> None:
    # SQLite cannot alter a CHECK constraint: batch mode copies the table, keeping every row.
    with op.batch_alter_table("producer_runs") as batch:
        batch.add_column(sa.Column("trigger_token", sa.String(length=64), nullable=True))
        batch.drop_constraint(op.f("ck_producer_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_producer_runs_status"), sa.text(NEW_STATUSES))


def downgrade() -> None:
    # The old schema has no pending status: a request that never started is kept as skipped.
    op.execute(
        "UPDATE producer_runs SET status = 'skipped', "
        "error = 'trigger request dropped by a schema downgrade' WHERE status = 'pending'"
    )
    with op.batch_alter_table("producer_runs") as batch:
        batch.drop_constraint(op.f("ck_producer_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_producer_runs_status"), sa.text(OLD_STATUSES))
        batch.drop_column("trigger_token")
