"""Action items derived from what the incident left undone; each has an owner and a due date.

Due dates count from the day the incident was resolved (or from now while it is open), so regenerating a
draft of a closed incident always gives the same dates.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.incidents.models import Incident, TimelineEvent
from bot.postmortems.events import text
from bot.postmortems.types import ActionItem
from bot.registry.models import Key, OwnerRole
from bot.runbooks.models import Run, RunStatus, StepStatus

SOON, WEEK, FORTNIGHT = timedelta(days=2), timedelta(days=7), timedelta(days=14)


def _owner(key: Key | None, incident: Incident) -> str:
    if key is not None:
        owners = key.owner_ids(OwnerRole.OWNER) or key.owner_ids(OwnerRole.BACKUP)
        if owners:
            return owners[0]
        if key.team is not None and key.team.manager_slack_id:
            return key.team.manager_slack_id
    return incident.opened_by


def follow_ups(
    incident: Incident, key: Key | None, runs: list[Run], events: list[TimelineEvent], *, now: datetime
) -> tuple[ActionItem, ...]:
    start = (incident.resolved_at or now).date()
    owner = _owner(key, incident)
    items: list[ActionItem] = []

    def add(what: str, who: str | None, after: timedelta) -> None:
        items.append(ActionItem(text(what), text(who, 120) if who else None, start + after))

    for run in runs:
        for step in run.steps:
            if step.status is StepStatus.SKIPPED:
                add(f"Do or verify “{step.title}”, which was skipped", owner, SOON)
            elif step.status is StepStatus.SUCCEEDED and step.output.get("by_hand"):
                add(
                    f"Verify “{step.title}”, marked done by hand after it failed", step.done_by or owner, SOON
                )
            elif step.status is StepStatus.SUCCEEDED and step.output.get("attested_by"):
                add(f"Check “{step.title}”, confirmed by hand (keybot could not verify it)", owner, SOON)
        if run.status is RunStatus.ABORTED and not incident.status.closed:
            add(f"Finish the response: run {run.id} was aborted and the key may still be live", owner, SOON)
    for event in events:
        data = event.data or {}
        if event.kind == "cleanup.kept_leaked_version":
            add(
                f"Destroy the leaked Vault version {data.get('version', '?')} once revocation is verified",
                owner,
                SOON,
            )
        if event.kind == "distribute.revoke_now":
            for consumer in data.get("unconfirmed") or []:
                add(f"Check that consumer {consumer} redeployed with the replacement", owner, SOON)
    if key is None:
        if incident.status.value != "false_alarm":
            add("Find and record the leaked secret's owner in the registry", incident.opened_by, WEEK)
        return tuple(items)
    if not key.consumers:
        add(f"Record the consumers of {key.name} in the registry", owner, WEEK)
    for consumer in key.consumers:
        if not consumer.contact:
            add(f"Record a contact for consumer {consumer.name}", owner, WEEK)
    team_days = key.team.rotation_days if key.team is not None else None
    if key.rotation_days is None and team_days is None and incident.status.value != "false_alarm":
        add(f"Set a rotation policy for {key.name} (no rotation period is recorded)", owner, FORTNIGHT)
    return tuple(items)
