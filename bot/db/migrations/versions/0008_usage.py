"""usage: per-key, per-minute traffic, its hourly roll-up, source address and model sightings, poll cursors

Revision ID: 0008_usage
Revises: 0007
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.base import UTCDateTime

revision: str = "0008_usage"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "status_2xx",
    "status_401",
    "status_403",
    "status_429",
    "status_4xx",
    "status_5xx",
    "status_other",
)


def _counters() -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS]
    columns.insert(3, sa.Column("cost_usd", sa.Float(), nullable=False))
    columns.append(sa.Column("distinct_ips", sa.Integer(), nullable=False))
    columns.append(sa.Column("distinct_models", sa.Integer(), nullable=False))
    return columns


def _series_table(name: str, slot: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column(slot, UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        *_counters(),
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sa.ForeignKeyConstraint(["key_id"], ["keys.id"], name=f"fk_{name}_key_id_keys", ondelete="CASCADE"),
        sa.UniqueConstraint("key_id", slot, "source", name=f"uq_{name}_key_id"),
    )
    op.create_index(f"ix_{name}_{slot}", name, [slot])


def upgrade() -> None:
    _series_table("usage_minutes", "minute")
    _series_table("usage_hours", "hour")
    op.create_table(
        "usage_sightings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("baseline", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage_sightings"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.id"], name="fk_usage_sightings_key_id_keys", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("key_id", "kind", "value", name="uq_usage_sightings_key_id"),
    )
    op.create_index("ix_usage_sightings_first_seen", "usage_sightings", ["first_seen"])
    op.create_table(
        "usage_cursors",
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("position", UTCDateTime(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_usage_cursors"),
    )


def downgrade() -> None:
    op.drop_table("usage_cursors")
    op.drop_index("ix_usage_sightings_first_seen", "usage_sightings")
    op.drop_table("usage_sightings")
    op.drop_index("ix_usage_hours_hour", "usage_hours")
    op.drop_table("usage_hours")
    op.drop_index("ix_usage_minutes_minute", "usage_minutes")
    op.drop_table("usage_minutes")
