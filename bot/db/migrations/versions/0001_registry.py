"""registry

Revision ID: 0001
Revises:
Create Date: 2026-11-27 04:00:23.450209
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "keybot_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_keybot_settings")),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("slack_channel", sa.String(length=64), nullable=True),
        sa.Column("manager_slack_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    op.create_table(
        "keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_key_id", sa.String(length=200), nullable=True),
        sa.Column("project", sa.String(length=200), nullable=True),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("vault_path", sa.String(length=500), nullable=True),
        sa.Column("secret_family", sa.String(length=32), nullable=True),
        sa.Column("secret_last4", sa.String(length=8), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active", "rotating", "compromised", "revoked", name="keystatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("created_at", bot.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_rotated_at", bot.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rotation_days", sa.Integer(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_keys_team_id_teams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keys")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_keys_fingerprint")),
        sa.UniqueConstraint("name", name=op.f("uq_keys_name")),
    )
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.create_index("ix_keys_last4_family", ["secret_last4", "secret_family"], unique=False)
        batch_op.create_index("ix_keys_provider_key_id", ["provider_key_id"], unique=False)
        batch_op.create_index("ix_keys_team_env", ["team_id", "environment"], unique=False)
        batch_op.create_index("ix_keys_name_lower", [sa.text("lower(name)")], unique=False)

    op.create_table(
        "consumers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=64), nullable=True),
        sa.Column("redeploy_hook", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.id"], name=op.f("fk_consumers_key_id_keys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consumers")),
        sa.UniqueConstraint("key_id", "name", name=op.f("uq_consumers_key_id")),
    )
    with op.batch_alter_table("consumers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consumers_key_id"), ["key_id"], unique=False)

    op.create_table(
        "key_owners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("slack_user_id", sa.String(length=64), nullable=False),
        sa.Column(
            "role", sa.Enum("owner", "backup", name="ownerrole", native_enum=False, length=16), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.id"], name=op.f("fk_key_owners_key_id_keys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_owners")),
        sa.UniqueConstraint("key_id", "slack_user_id", "role", name=op.f("uq_key_owners_key_id")),
    )
    with op.batch_alter_table("key_owners", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_key_owners_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_key_owners_slack_user_id"), ["slack_user_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("key_owners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_key_owners_slack_user_id"))
        batch_op.drop_index(batch_op.f("ix_key_owners_key_id"))

    op.drop_table("key_owners")
    with op.batch_alter_table("consumers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consumers_key_id"))

    op.drop_table("consumers")
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.drop_index("ix_keys_name_lower")
        batch_op.drop_index("ix_keys_team_env")
        batch_op.drop_index("ix_keys_provider_key_id")
        batch_op.drop_index("ix_keys_last4_family")

    op.drop_table("keys")
    op.drop_table("teams")
    op.drop_table("keybot_settings")
