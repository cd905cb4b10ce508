"""Beat heartbeats: one row per beat process, its last tick and the slots it sent.

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "beat_heartbeats",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_tick_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("slots_sent", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_beat_heartbeats")),
    )
    op.create_index(op.f("ix_beat_heartbeats_last_tick_at"), "beat_heartbeats", ["last_tick_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_beat_heartbeats_last_tick_at"), table_name="beat_heartbeats")
    op.drop_table("beat_heartbeats")
