"""Who is paged at each step of the chain, what the page says, and how it enters the outbox.

Pages are outbox rows (`bot/notifications`) with the dedupe key `alert:<id>:<step>:<recipient>`, so a
step retried after a crash or claimed by a second clock never reaches anyone twice. Planning is pure:
`plan` says which steps are paged now and when the next one is due; callers apply it in their transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.alerts.chain import Chain
from bot.alerts.models import Alert
from bot.alerts.types import PageStep
from bot.notifications.service import Message, insert_outbox_rows, outbox_rows
from bot.registry.models import Key, KeyStatus, OwnerRole
from bot.reminders.models import KeyEvent


@dataclass(frozen=True)
class Page:
    step: PageStep
    recipients: tuple[str, ...]
    mention: str | None = None


@dataclass
class Plan:
    """The outcome of moving an alert along its chain at `now`."""

    step: PageStep
    next_step_at: datetime | None
    pages: list[Page] = field(default_factory=list)


def pageable(key: Key) -> bool:
    """Drill copies and revoked keys are never paged."""
    return not key.drill and key.status is not KeyStatus.REVOKED


def recipients(key: Key, step: PageStep) -> Page:
    """The people (or channel) one step reaches; empty when nobody is configured for it."""
    team = key.team
    if step is PageStep.OWNER:
        return Page(step, tuple(key.owner_ids()))
    if step is PageStep.BACKUP:
        return Page(step, tuple(key.owner_ids(OwnerRole.BACKUP)))
    if step is PageStep.CHANNEL:
        if team is None or not team.slack_channel:
            return Page(step, ())
        mention = f"<!subteam^{team.oncall_group}>" if team.oncall_group else None
        return Page(step, (team.slack_channel,), mention)
    manager = team.manager_slack_id if team is not None else None
    return Page(step, (manager,) if manager else ())


def plan(
    key: Key, chain: Chain, *, step: PageStep, opened_at: datetime, now: datetime, at_open: bool
) -> Plan:
    """Page every step that is due (the owner too when `at_open`); a step with nobody to page is skipped
    and the next one is paged at once, so somebody always hears within the step's time."""
    result = Plan(step, None)
    if not pageable(key):
        return result
    skipping = False
    if at_open:
        owner = recipients(key, PageStep.OWNER)
        if owner.recipients:
            result.pages.append(owner)
        else:
            skipping = True
    for next_step, delay in chain.after(step):
        due = opened_at + timedelta(minutes=delay)
        if due > now and not skipping:
            result.next_step_at = due
            return result
        result.step = next_step
        page = recipients(key, next_step)
        skipping = not page.recipients
        if page.recipients:
            result.pages.append(page)
    return result


def page_facts(alert: Alert, key: Key, step: PageStep, mention: str | None) -> dict[str, Any]:
    """The `alert_page` facts of the contract: everything the Slack renderer needs, never a secret."""
    facts: dict[str, Any] = {
        "alert_id": alert.id,
        "alert_version": alert.version,
        "key_id": key.id,
        "key_name": key.name,
        "environment": key.environment,
        "step": step.value,
        "signals": list(alert.signals),
        "observed": dict(alert.observed),
        "baseline": dict(alert.baseline),
        "score": round(float(alert.score), 4),
        "opened_at": alert.opened_at.isoformat(),
    }
    if mention:
        facts["mention"] = mention
    return facts


def enqueue_pages(session: Session, alert: Alert, key: Key, pages: list[Page], now: datetime) -> int:
    """Outbox rows for `pages` plus an `alert.escalated` timeline entry per step after the owner's."""
    rows: list[dict[str, Any]] = []
    for page in pages:
        subject = f"Unusual traffic on {key.name} ({key.environment})"
        body = f"{subject}: {', '.join(alert.signals) or 'anomalous usage'}"
        for recipient in page.recipients:
            message = Message(
                "alert_page", recipient, subject, body, page_facts(alert, key, page.step, page.mention)
            )
            for row in outbox_rows([message], dedupe_prefix="alert", incident_id=None, run_id=None):
                row["dedupe_key"] = f"alert:{alert.id}:{page.step.value}:{recipient}"[:200]
                rows.append(row)
        if page.step is not PageStep.OWNER:
            data = {"alert_id": alert.id, "step": page.step.value, "recipients": list(page.recipients)}
            session.add(KeyEvent(key_id=key.id, at=now, actor="keybot", kind="alert.escalated", data=data))
    return insert_outbox_rows(session, rows)


def paged_after(already: list[str], pages: list[Page]) -> list[str]:
    """Everyone paged so far, in order, once each (they are told about the acknowledgement)."""
    seen = list(already)
    for page in pages:
        seen.extend(r for r in page.recipients if r not in seen)
    return seen


def enqueue_update(session: Session, alert: Alert, key: Key, by: str) -> int:
    """Tell everyone already paged that the alert was acknowledged, resolved or marked expected."""
    facts = {
        "alert_id": alert.id,
        "alert_version": alert.version,
        "key_id": key.id,
        "key_name": key.name,
        "environment": key.environment,
        "state": alert.state.value,
        "by": by,
    }
    subject = f"Alert on {key.name}: {alert.state.value.replace('_', ' ')}"
    rows = []
    for recipient in alert.paged:
        message = Message("alert_update", recipient, subject, f"{subject} by {by}", facts)
        for row in outbox_rows([message], dedupe_prefix="alert", incident_id=None, run_id=None):
            row["dedupe_key"] = f"alert:{alert.id}:update:{alert.version}:{recipient}"[:200]
            rows.append(row)
    return insert_outbox_rows(session, rows)
