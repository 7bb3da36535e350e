"""The runbooks keybot's own surfaces start by name, and the one function that starts a planned rotation.

Slack buttons, slash commands and the CLI all start the same two runbooks; naming them once here keeps a
renamed YAML file from silently breaking one surface, and keeps "start a rotation" one service call.
"""

from __future__ import annotations

from bot.access.policy import Actor, Policy
from bot.db.session import Database
from bot.runbooks.definitions import RunbookDefinition
from bot.runbooks.service import start_run

REVOKE = "revoke-replace-audit-notify"
ROTATE = "rotate"


def start_rotation(
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    *,
    policy: Policy,
    key_id: int,
    actor: Actor,
) -> str:
    """Open a planned rotation of one key for ``actor``; raises ``RunRefused`` with the reason."""
    return start_run(
        database,
        runbooks,
        policy=policy,
        key_id=key_id,
        runbook=ROTATE,
        mode=None,
        actor=actor.id,
        in_revoker_group=actor.in_revoker_group,
        reason=f"planned rotation requested by <@{actor.id}>",
    )
