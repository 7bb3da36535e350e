"""drills: drill copies are marked on the key, and drill incidents have their own numbers (DRILL-n)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DRILL_NUMBERS = "drill_incident_numbers"


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        batch.add_column(sa.Column("drill", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Copies made by earlier drills were recognisable only by their name and environment.
    op.execute(
        "UPDATE keys SET drill = true WHERE environment = 'sandbox' AND name LIKE 'drill-%'"
        if op.get_bind().dialect.name == "postgresql"
        else "UPDATE keys SET drill = 1 WHERE environment = 'sandbox' AND name LIKE 'drill-%'"
    )
    if op.get_bind().dialect.name == "postgresql":
        # Owned by incidents.drill (not incidents.id, whose serial sequence must stay the only one there),
        # so TRUNCATE ... RESTART IDENTITY restarts drill numbers too.
        op.execute(f"CREATE SEQUENCE {DRILL_NUMBERS} OWNED BY incidents.drill")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP SEQUENCE IF EXISTS {DRILL_NUMBERS}")
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("drill")
