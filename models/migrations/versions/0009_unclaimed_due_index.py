"""The due index holds unclaimed rows only: `ix_producer_schedules_due` becomes
`ix_producer_schedules_unclaimed_due` (`... AND claimed_until IS NULL`).

A claimed row keeps its `next_run_at` until its run commits, so in the old index beat's claim
and next wakeup walked past every in-flight row before they reached an unclaimed one: during a
burst of 100k claimed slots an idle tick cost ~50 ms instead of ~1 ms. Rows whose lease ran out
are found through `ix_producer_schedules_claimed` instead (see `models.claims`).

Only an index changes; no row is touched either way.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_producer_schedules_unclaimed_due",
        "producer_schedules",
        ["next_run_at"],
        postgresql_where=sa.text(
            "NOT paused AND next_run_at IS NOT NULL AND claimed_until IS NULL"
        ),
        # Written as the stores' queries render it, so SQLite's planner can match it.
        sqlite_where=sa.text("paused = 0 AND next_run_at IS NOT NULL AND claimed_until IS NULL"),
    )
    op.drop_index("ix_producer_schedules_due", table_name="producer_schedules")


def downgrade() -> None:
    op.create_index(
        "ix_producer_schedules_due",
        "producer_schedules",
        ["next_run_at"],
        postgresql_where=sa.text("NOT paused AND next_run_at IS NOT NULL"),
        sqlite_where=sa.text("paused = 0 AND next_run_at IS NOT NULL"),
    )
    op.drop_index("ix_producer_schedules_unclaimed_due", table_name="producer_schedules")
