"""alerts: one row per anomalous key episode, detector states, team escalation chain and on-call group

Revision ID: 0009_alerts
Revises: 0008_usage
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.base import UTCDateTime

revision: str = "0009_alerts"
down_revision: str | None = "0008_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_SQL = "state IN ('open', 'acknowledged')"


def upgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("escalation", sa.String(200), nullable=True))
        batch.add_column(sa.Column("oncall_group", sa.String(64), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.Enum("open", "acknowledged", "resolved", "false_positive", name="alertstate",
                                   native_enum=False, length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("observed", sa.JSON(), nullable=False),
        sa.Column("baseline", sa.JSON(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("last_signal_at", UTCDateTime(), nullable=False),
        sa.Column("acked_at", UTCDateTime(), nullable=True),
        sa.Column("acked_by", sa.String(120), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("closed_by", sa.String(120), nullable=True),
        sa.Column("step", sa.Enum("owner", "backup", "channel", "manager", name="pagestep",
                                  native_enum=False, length=16), nullable=False),
        sa.Column("next_step_at", UTCDateTime(), nullable=True),
        sa.Column("paged", sa.JSON(), nullable=False),
        sa.Column("pattern", sa.JSON(), nullable=True),
        sa.Column("run_id", sa.String(40), nullable=True),
        sa.Column("pagerduty_key", sa.String(64), nullable=False),
        sa.Column("pagerduty_sent", sa.String(16), nullable=True),
        sa.Column("pagerduty_attempts", sa.Integer(), nullable=False),
        sa.Column("pagerduty_retry_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.ForeignKeyConstraint(["key_id"], ["keys.id"], name="fk_alerts_key_id_keys", ondelete="CASCADE"),
    )  # fmt: skip
    op.create_index(
        "uq_alerts_active_key",
        "alerts",
        ["key_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_SQL),
        postgresql_where=sa.text(ACTIVE_SQL),
    )
    op.create_index("ix_alerts_key_opened", "alerts", ["key_id", "opened_at"])
    op.create_index("ix_alerts_next_step_at", "alerts", ["next_step_at"])
    op.create_table(
        "detector_states",
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.Column("last_minute", UTCDateTime(), nullable=True),
        sa.Column("absorb_pending", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "metric", name="pk_detector_states"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.id"], name="fk_detector_states_key_id_keys", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("detector_states")
    op.drop_index("ix_alerts_next_step_at", "alerts")
    op.drop_index("ix_alerts_key_opened", "alerts")
    op.drop_index("uq_alerts_active_key", "alerts")
    op.drop_table("alerts")
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("oncall_group")
        batch.drop_column("escalation")
