"""Rotation policy: how many days a key may go between rotations, and from when it is counted.

The key's own `rotation_days` wins, then its team's, then the environment's default from
`KEYBOT_ROTATION_DAYS` (`default` for every environment not named). The same rule exists twice: as a
SQL expression, so the sweep over every key stays one query, and in Python, for one key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, func, literal

from bot.registry.models import Key, Team


def rotation_days_for(
    key_days: int | None, team_days: int | None, environment: str, defaults: dict[str, int]
) -> int:
    """The policy that applies to one key."""
    if key_days is not None:
        return key_days
    if team_days is not None:
        return team_days
    return defaults.get(environment, defaults.get("default", 60))


def rotation_days_sql(defaults: dict[str, int]) -> ColumnElement[Any]:
    """`rotation_days_for` as a column expression over `keys` joined (outer) with `teams`."""
    environment_default: ColumnElement[Any] = literal(defaults.get("default", 60), Integer)
    named = {env: days for env, days in defaults.items() if env != "default"}
    if named:
        environment_default = case(named, value=Key.environment, else_=environment_default)
    return func.coalesce(Key.rotation_days, Team.rotation_days, environment_default)


def counted_from_sql() -> ColumnElement[Any]:
    """The last rotation, or registration for a key never rotated."""
    return func.coalesce(Key.last_rotated_at, Key.created_at)


def counted_from(last_rotated_at: datetime | None, created_at: datetime) -> datetime:
    return last_rotated_at or created_at
