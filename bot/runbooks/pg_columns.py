"""Column lists of the PostgreSQL single statements, derived from the models, so a column added to a model
cannot be forgotten by the statements that write it (tests/test_pg_statements.py checks both paths agree)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def pg_type(table: Table, column: str) -> str:
    """The column's type as PostgreSQL spells it (a JSON column is `json` for json_to_recordset)."""
    return str(table.c[column].type.compile(dialect=_DIALECT)).lower()


def recordset(table: Table, columns: Sequence[str], alias: dict[str, str] | None = None) -> str:
    """`name type, ...` for `json_to_recordset(...) AS x(...)`; `alias` maps a JSON key to its column."""
    alias = alias or {}
    return ", ".join(f"{name} {pg_type(table, alias.get(name, name))}" for name in columns)


def names(columns: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{name}" for name in columns)


def assignments(columns: Sequence[str], source: str) -> str:
    return ", ".join(f"{name} = {source}.{name}" for name in columns)
