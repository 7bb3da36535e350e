"""run versions and wake times: decisions are bound to the version the person saw; waits are durable

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("wake_at", bot.db.base.UTCDateTime(timezone=True), nullable=True))
        batch.create_index(batch.f("ix_runs_wake_at"), ["wake_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index(batch.f("ix_runs_wake_at"))
        batch.drop_column("wake_at")
        batch.drop_column("plan")
        batch.drop_column("version")
