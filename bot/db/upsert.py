"""INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL alike (same syntax, same semantics).

One statement instead of a savepoint around an insert that may collide: it never aborts the surrounding
transaction, and with RETURNING it says which rows it actually inserted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_unless_present(dialect: str, table: Table, index_elements: list[str]) -> Any:
    """The statement for `dialect` (keybot's two databases)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    raise ValueError(f"keybot runs on SQLite or PostgreSQL, not {dialect}")
