"""workspace routing: the Slack workspace each run and outbox row belongs to

Nullable ``slack_team_id`` and ``slack_enterprise_id`` on ``runs`` and ``notifications``. With OAuth,
background sends use that workspace's installation (docs/multi-workspace.md). Rows written before this
migration keep NULL and fall back to SLACK_DEFAULT_TEAM_ID, else the newest installation.

Revision ID: 0011_workspace_routing
Revises: 0010_slack_installations
Create Date: 2026-11-28 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_workspace_routing"
down_revision: str | None = "0010_slack_installations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("runs", "notifications")
COLUMNS = ("slack_team_id", "slack_enterprise_id")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in COLUMNS:
                batch.add_column(sa.Column(column, sa.String(32), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in reversed(COLUMNS):
                batch.drop_column(column)
