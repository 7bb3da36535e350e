"""Which Slack workspace the current work belongs to, so the rows it writes remember it.

Slack sets it for a request (bot/slack/oauth.py) and keybot binds it again when it resumes work that
belongs to a workspace (a run, an outbox row). Domains read it without importing Slack: a new run and a
new outbox row store it (``runs.slack_team_id``, ``notifications.slack_team_id``), and background sends
then use that workspace's installation. Unset (token mode, the CLI, a clock job) means "no workspace in
particular". See docs/multi-workspace.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Workspace:
    """A Slack workspace (team id), and its Enterprise Grid organisation when it has one."""

    enterprise_id: str | None
    team_id: str | None

    @classmethod
    def of(cls, enterprise_id: str | None, team_id: str | None) -> Workspace | None:
        """The workspace a row names, or None when it names none."""
        return cls(enterprise_id, team_id) if team_id or enterprise_id else None

    def columns(self) -> dict[str, str | None]:
        return {"slack_team_id": self.team_id, "slack_enterprise_id": self.enterprise_id}


NO_WORKSPACE_COLUMNS: dict[str, str | None] = {"slack_team_id": None, "slack_enterprise_id": None}

_current: ContextVar[Workspace | None] = ContextVar("keybot_slack_workspace", default=None)


def current() -> Workspace | None:
    return _current.get()


def current_columns() -> dict[str, str | None]:
    """The columns a row written now stores: the current workspace's, or none."""
    found = _current.get()
    return found.columns() if found is not None else dict(NO_WORKSPACE_COLUMNS)


def set_current(workspace: Workspace | None) -> None:
    """For request middleware, which cannot wrap the rest of the request in a ``with``."""
    _current.set(workspace)


@contextmanager
def bound(workspace: Workspace | None) -> Iterator[None]:
    """Work inside belongs to `workspace`; None leaves whatever is current (a request's) in place."""
    if workspace is None:
        yield
        return
    token = _current.set(workspace)
    try:
        yield
    finally:
        _current.reset(token)
