"""The history of lifecycle changes: `workflow_changes`, one entry per workflow version.

Keyed by the workflow's name without a foreign key, so a deleted workflow's history stays
readable. Each existing workflow gets one entry for the version it stands at, so its history
(and a rollback) starts from what is deployed now.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIONS = "action IN ('deploy', 'pause', 'resume', 'delete', 'rollback')"
BACKFILL_NOTE = "recorded by schema migration 0004: the workflow as it stood"


def upgrade() -> None:
    op.create_table(
        "workflow_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("changed_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(ACTIONS, name=op.f("ck_workflow_changes_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_changes")),
        sa.UniqueConstraint(
            "workflow", "version", name=op.f("uq_workflow_changes_workflow_version")
        ),
    )
    op.execute(
        sa.text(
            "INSERT INTO workflow_changes"
            " (workflow, version, action, definition, diff, actor, note, changed_at)"
            " SELECT name, version, 'deploy', definition, '{}', 'drumline migrate', :note,"
            " updated_at FROM workflows"
        ).bindparams(note=BACKFILL_NOTE)
    )


def downgrade() -> None:
    op.drop_table("workflow_changes")
