"""Timeline events as postmortem lines: who acted (a person or keybot) and one plain sentence each.

The engine records its own steps under the run starter's name (`Journal.event`), so the actor column of
those kinds is keybot, not the person: a postmortem must never say someone did what the machine did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.secrets import redact

KEYBOT = "keybot"

KEYBOT_KINDS = frozenset(
    {
        "step.started",
        "step.attempt",
        "step.succeeded",
        "step.needs_attention",
        "step.retrying",
        "step.waiting",
        "step.waiting_manual",
        "step.waiting_decision",
        "step.awaiting_approval",
        "effect.intent",
        "effect.done",
        "effect.cancelled",
        "assess.result",
        "audit.exposure",
        "cleanup.kept_leaked_version",
        "run.succeeded",
        "run.finished_with_exceptions",
        "incident.contained",
        "leak.detected",
        "leak.registered",
    }
)
"""Kinds keybot records about its own work, whatever the stored actor says."""

HIDDEN_KINDS = frozenset({"step.started", "step.attempt", "effect.intent", "effect.done", "effect.cancelled"})
"""Bookkeeping that a step's outcome line already tells."""

NOTE_KINDS = frozenset({"note.added", "incident.note", "timeline.note", "note"})
"""What people add to the timeline by hand (any of these names; the text is data)."""

MAX_TEXT = 500
MENTION = re.compile(r"<@([UW][A-Z0-9]{2,20})>")


def text(value: object, limit: int = MAX_TEXT) -> str:
    """Redacted, one line, bounded; Slack mention markup in stored text becomes a plain @id."""
    flat = " ".join(str(value).split())
    flat = MENTION.sub(r"@\1", redact(flat))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def by_keybot(kind: str, data: Mapping[str, Any]) -> bool:
    if kind == "incident.resolved":
        return "reason" not in data  # the run resolved it (every guarantee held); a person gives a reason
    return kind in KEYBOT_KINDS


def note_of(kind: str, data: Mapping[str, Any]) -> str | None:
    if kind not in NOTE_KINDS:
        return None
    value = data.get("text") or data.get("note")
    return text(value) if value else None


def _usage(data: Mapping[str, Any]) -> str:
    cost = data.get("cost_usd")
    cost_part = "cost unknown" if cost is None else f"cost {cost} USD"
    return f"{data.get('requests', '?')} requests, {data.get('tokens', '?')} tokens, {cost_part}"


def describe(kind: str, data: Mapping[str, Any], title: str | None) -> str:
    """One sentence for an event; human-typed parts (reasons, notes) are quoted as data."""
    step = title or "a step"
    say = _SENTENCES.get(kind)
    if say is not None:
        sentence = say(data, step)
    elif kind.startswith("provider.restore_scopes."):
        sentence = f"Restoring the key's scopes: {kind.rsplit('.', 1)[-1]}"
    elif kind in NOTE_KINDS:
        sentence = f"Note: {note_of(kind, data) or ''}"
    else:
        sentence = kind.replace("_", " ").replace(".", " ")
    if data.get("break_glass"):
        sentence += " (break-glass)"
    return text(sentence)


def _quoted(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    return f": “{text(value, 300)}”" if value else ""


def _succeeded(data: Mapping[str, Any], step: str) -> str:
    if data.get("skipped"):
        return f"{step}: nothing to do ({text(data['skipped'], 200)})"
    seconds = data.get("seconds")
    took = f" in {seconds:.0f} s" if isinstance(seconds, int | float) else ""
    return f"{step} succeeded{took}"


def _detected(data: Mapping[str, Any], step: str) -> str:
    found = ", ".join(str(r) for r in data.get("redacted") or []) or "a secret"
    return f"Leak watcher found {found} in {data.get('where', 'a message')}"


_SENTENCES: dict[str, Any] = {
    "incident.opened": lambda d, s: f"Incident opened{_quoted(d, 'reason')}",
    "run.started": lambda d, s: (
        f"{d.get('mode', '?')} run of {d.get('runbook', '?')} started"
        + (" (drill)" if d.get("drill") else "")
    ),
    "leak.detected": _detected,
    "leak.registered": lambda d, s: f"Leaked secret {d.get('redacted', '?')} matched key {d.get('key', '?')}",
    "step.succeeded": _succeeded,
    "step.needs_attention": lambda d, s: f"{s} needs attention{_quoted(d, 'reason')}",
    "step.retrying": lambda d, s: (
        f"{s} failed (attempt {d.get('attempt', '?')} of {d.get('of', '?')}), retrying{_quoted(d, 'error')}"
    ),
    "step.waiting": lambda d, s: f"{s} is waiting{_quoted(d, 'why')}",
    "step.waiting_manual": lambda d, s: f"{s} waits for a person to do it by hand",
    "step.waiting_decision": lambda d, s: f"{s} asks for a decision",
    "step.awaiting_approval": lambda d, s: f"{s} awaits approval ({d.get('environment', '?')})",
    "step.approved": lambda d, s: f"{s} approved",
    "step.skipped": lambda d, s: f"{s} skipped{_quoted(d, 'reason')}",
    "step.skip_requested": lambda d, s: f"Asked to skip {s}{_quoted(d, 'reason')}",
    "step.mark_done_requested": lambda d, s: f"Asked to mark {s} done by hand{_quoted(d, 'reason')}",
    "step.retry_requested": lambda d, s: f"Retry of {s} requested",
    "step.attested": lambda d, s: f"{s} confirmed done by hand, not verified by keybot{_quoted(d, 'note')}",
    "step.marked_done_after_failure": lambda d, s: (
        f"{s} marked done by hand after it failed{_quoted(d, 'note')}"
    ),
    "consumer.redeployed": lambda d, s: f"Consumer {d.get('consumer', '?')} confirmed it redeployed",
    "distribute.revoke_now": lambda d, s: (
        "Chose to revoke now"
        + (
            f" ({len(d.get('unconfirmed') or [])} consumer(s) had not confirmed)"
            if d.get("unconfirmed")
            else ""
        )
    ),
    "distribute.wait_longer": lambda d, s: "Chose to wait longer for consumers",
    "assess.result": lambda d, s: (
        f"Exposure assessed: key {'live' if d.get('live') else 'not live'}, " + _usage(d)
    ),
    "audit.exposure": lambda d, s: f"Exposure window audited: {_usage(d)}",
    "cleanup.kept_leaked_version": lambda d, s: (
        f"Leaked Vault version {d.get('version', '?')} kept{_quoted(d, 'why')}"
    ),
    "incident.contained": lambda d, s: "Incident contained",
    "incident.resolved": lambda d, s: (
        f"Incident resolved{_quoted(d, 'reason')}"
        if d.get("reason")
        else "Incident resolved: every step verified"
    ),
    "incident.false_alarm": lambda d, s: f"Called a false alarm{_quoted(d, 'reason')}",
    "run.succeeded": lambda d, s: "Run succeeded: every guarantee held",
    "run.finished_with_exceptions": lambda d, s: (
        f"Run finished with exceptions ({len(d.get('missing') or [])} missing guarantee(s))"
    ),
    "run.aborted": lambda d, s: f"Run aborted{_quoted(d, 'reason')}",
    "containment.restore_unknown": lambda d, s: "Could not tell which scopes to restore",
    "registry.import.forced": lambda d, s: "Registry import forced during the incident",
}
