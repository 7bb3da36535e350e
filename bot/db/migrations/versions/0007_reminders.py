"""reminders: team schedules and rotation defaults, snoozes, the key timeline, one row per reminder day

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.base import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("rotation_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reminder_time", sa.String(5), nullable=True))
        batch.add_column(sa.Column("reminder_days", sa.String(32), nullable=True))
    op.create_table(
        "key_snoozes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("by", sa.String(120), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_key_snoozes"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.id"], name="fk_key_snoozes_key_id_keys", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_key_snoozes_key_id", "key_snoozes", ["key_id"])
    op.create_table(
        "key_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_key_events"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.id"], name="fk_key_events_key_id_keys", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_key_events_key_at", "key_events", ["key_id", "at"])
    op.create_table(
        "reminder_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(120), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("ts", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reminder_days"),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name="fk_reminder_days_notification_id_notifications",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("team", "local_date", name="uq_reminder_days_team"),
    )


def downgrade() -> None:
    op.drop_table("reminder_days")
    op.drop_index("ix_key_events_key_at", "key_events")
    op.drop_table("key_events")
    op.drop_index("ix_key_snoozes_key_id", "key_snoozes")
    op.drop_table("key_snoozes")
    with op.batch_alter_table("teams") as batch:
        for column in ("reminder_days", "reminder_time", "timezone", "rotation_days"):
            batch.drop_column(column)
