"""History entries about one producer: a nullable `producer` column on `workflow_changes`, the
actions `pause_producer`, `resume_producer` and `auto_pause`, and the one-entry-per-version key
narrowed to workflow-wide entries.

Pausing or resuming one producer, by hand or by `pause_after_failures`, changes no definition
and keeps the workflow's version. Its entry names the producer and carries the version it
applied to, so (workflow, version) stays unique only among workflow-wide entries (a partial
unique index): deploys, pauses, resumes, deletes and rollbacks keep their version fence. A
per-workflow `sequence` counter was the alternative, but auto-pause commits a run without the
workflow's lock: its entry would race a deploy for the next sequence number and a lost race
would fail the run's commit. The id orders a workflow's entries instead (newest first in
`drumline history`, and the newest N kept).

Downgrade drops the producer entries (the old schema has one entry per version and does not
know their actions); every workflow-wide entry is kept.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD_ACTIONS = "action IN ('deploy', 'pause', 'resume', 'delete', 'rollback')"
NEW_ACTIONS = (
    "action IN ('deploy', 'pause', 'resume', 'delete', 'rollback', 'pause_producer',"
    " 'resume_producer', 'auto_pause')"
)
UNIQUE_VERSION = "uq_workflow_changes_workflow_version"
BY_ID = "ix_workflow_changes_workflow_id"
WORKFLOW_WIDE = sa.text("producer IS NULL")


def upgrade() -> None:
    # SQLite cannot alter a constraint: batch mode copies the table.
    with op.batch_alter_table("workflow_changes") as batch:
        batch.drop_constraint(UNIQUE_VERSION, type_="unique")
        batch.drop_constraint(op.f("ck_workflow_changes_action"), type_="check")
        batch.create_check_constraint(op.f("ck_workflow_changes_action"), sa.text(NEW_ACTIONS))
        batch.add_column(sa.Column("producer", sa.String(length=63), nullable=True))
    op.create_index(
        UNIQUE_VERSION,
        "workflow_changes",
        ["workflow", "version"],
        unique=True,
        postgresql_where=WORKFLOW_WIDE,
        sqlite_where=WORKFLOW_WIDE,
    )
    op.create_index(BY_ID, "workflow_changes", ["workflow", "id"])


def downgrade() -> None:
    op.execute("DELETE FROM workflow_changes WHERE producer IS NOT NULL")
    op.drop_index(BY_ID, table_name="workflow_changes")
    op.drop_index(UNIQUE_VERSION, table_name="workflow_changes")
    with op.batch_alter_table("workflow_changes") as batch:
        batch.drop_column("producer")
        batch.drop_constraint(op.f("ck_workflow_changes_action"), type_="check")
        batch.create_check_constraint(op.f("ck_workflow_changes_action"), sa.text(OLD_ACTIONS))
        batch.create_unique_constraint(UNIQUE_VERSION, ["workflow", "version"])
