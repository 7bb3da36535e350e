"""Typed, versioned ids carried in button values, select options and ``private_metadata``.

Slack echoes these strings back verbatim in interaction payloads, so anyone who can craft a payload can put
anything in them: :meth:`ActionRef.decode` treats them as untrusted input, and :class:`ActionRef` refuses to
carry anything that looks like a secret, because Slack stores and logs these values.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.secrets import contains_secret

#: Slack's limit on a button ``value``; ``private_metadata`` allows 3,000, so one budget fits both.
MAX_ENCODED = 2000

RefKind = Literal["run", "key", "incident", "alert", "view"]

# --- action ids (buttons and selects in messages) -------------------------------------------------------
APPROVE = "run.approve"
RETRY = "run.retry"
SKIP = "run.skip"
ABORT = "run.abort"
MARK_DONE = "run.mark_done"
REVOKE_FROM_LEAK = "leak.revoke"
PICK_KEY = "revoke.pick_key"
# An anomaly page: each button carries ActionRef(kind="alert", id=<alert id>, extra={"v": <version>}).
ACK_ALERT = "alert.ack"
EXPECTED_ALERT = "alert.expected"  # "that was me / expected": a false positive, the baseline learns it
REVOKE_ALERT = "alert.revoke"  # the emergency runbook, permission-checked by the alerts domain
ROTATE_NOW = "key.rotate"
SNOOZE = "key.snooze"
OPEN_REVOKE = "key.revoke"
REVOKE_NOW = "run.revoke_now"
WAIT_LONGER = "run.wait_longer"
REDEPLOYED = "run.redeployed"  # a consumer's contact: "my service reads the new key"
RESOLVE_INCIDENT = "incident.resolve"
FALSE_ALARM = "incident.false_alarm"  # "Revoke & replace…" from a key card (opens the revoke modal)
# The daily rotation reminder: each button carries ActionRef(kind="key", id=<key id>, extra={"day": ...}).
REMINDER_ROTATE = "reminder.rotate"
REMINDER_SNOOZE = "reminder.snooze"
REMINDER_MARK_ROTATED = "reminder.mark_rotated"
# The postmortem draft in an incident's thread: ActionRef(kind="incident", id=<incident id>).
REGENERATE_POSTMORTEM = "postmortem.regenerate"
ADD_NOTE = "incident.note"  # opens the note modal; ActionRef(kind="incident", id=<incident id>)

# --- view callback ids ------------------------------------------------------------------------------------
LOADING_MODAL = "loading_modal"
REVOKE_MODAL = "revoke_modal"
PICK_KEY_MODAL = "pick_key_modal"
SEARCH_MODAL = "search_modal"
ERROR_MODAL = "error_modal"
SKIP_MODAL = "skip_modal"
ABORT_MODAL = "abort_modal"
DONE_MODAL = "done_modal"
INCIDENT_MODAL = "incident_modal"
SNOOZE_MODAL = "reminder_snooze_modal"
MARK_ROTATED_MODAL = "reminder_rotated_modal"
NOTE_MODAL = "incident_note_modal"

# --- modal inputs: handlers read view.state.values[<BLOCK>][<ACTION>] --------------------------------------
MODE_BLOCK, MODE_ACTION = "mode", "mode.choice"
REASON_BLOCK, REASON_ACTION = "reason", "reason.text"
SEVERITY_BLOCK, SEVERITY_ACTION = "severity", "severity.choice"
PICK_KEY_BLOCK = "pick_key"  # action id: PICK_KEY
SEARCH_BLOCK, SEARCH_ACTION = "search", "search.query"
SKIP_REASON_BLOCK, SKIP_REASON_ACTION = "skip_reason", "skip_reason.text"
ABORT_REASON_BLOCK, ABORT_REASON_ACTION = "abort_reason", "abort_reason.text"
ABORT_OUTCOME_BLOCK, ABORT_OUTCOME_ACTION = "abort_outcome", "abort_outcome.choice"
DONE_NOTE_BLOCK, DONE_NOTE_ACTION = "done_note", "done_note.text"
INCIDENT_REASON_BLOCK, INCIDENT_REASON_ACTION = "incident_reason", "incident_reason.text"
NOTE_BLOCK, NOTE_ACTION = "incident_note", "incident_note.text"
SNOOZE_DAYS_BLOCK, SNOOZE_DAYS_ACTION = "snooze_days", "snooze_days.choice"
SNOOZE_CUSTOM_BLOCK, SNOOZE_CUSTOM_ACTION = "snooze_custom", "snooze_custom.days"
SNOOZE_REASON_BLOCK, SNOOZE_REASON_ACTION = "snooze_reason", "snooze_reason.text"
ROTATED_ON_BLOCK, ROTATED_ON_ACTION = "rotated_on", "rotated_on.date"
ROTATED_NOTE_BLOCK, ROTATED_NOTE_ACTION = "rotated_note", "rotated_note.text"

MODES = ("staged", "emergency")
SEVERITIES = ("sev1", "sev2", "sev3", "sev4")


class BadActionRef(ValueError):
    """An interaction carried an id keybot did not write (tampered, garbled, too long or from the future).

    The message never repeats the input: a pasted secret must not reach logs through an error.
    """


class ActionRef(BaseModel):
    """What a button, option or modal refers to: ``kind`` + ``id`` (+ the run step, + small extras)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = 1
    kind: RefKind
    id: str = Field(min_length=1, max_length=200)
    step: str | None = Field(default=None, min_length=1, max_length=64)
    extra: dict[str, str] = Field(default_factory=dict, max_length=16)

    @model_validator(mode="after")
    def _no_secrets(self) -> ActionRef:
        values = [self.id, self.step or "", *self.extra.keys(), *self.extra.values()]
        if any(contains_secret(value) for value in values):
            raise ValueError("an ActionRef must never carry a secret")
        return self

    def encode(self) -> str:
        """Compact JSON with sorted keys, so equal refs encode to equal strings."""
        data: dict[str, object] = {"v": self.v, "kind": self.kind, "id": self.id}
        if self.step is not None:
            data["step"] = self.step
        if self.extra:
            data["extra"] = dict(sorted(self.extra.items()))
        text = json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        if len(text) > MAX_ENCODED:
            raise ValueError(f"encoded ActionRef is {len(text)} characters; Slack allows {MAX_ENCODED}")
        return text

    @classmethod
    def decode(cls, text: object) -> ActionRef:
        """Parse what Slack sent back; anything keybot could not have written raises :class:`BadActionRef`."""
        if not isinstance(text, str) or not text:
            raise BadActionRef("missing action reference")
        if len(text) > MAX_ENCODED:
            raise BadActionRef(f"action reference longer than {MAX_ENCODED} characters")
        try:
            data = json.loads(text)
        except ValueError:
            raise BadActionRef("action reference is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadActionRef("action reference is not a JSON object")
        version = data.get("v")
        if type(version) is not int or version != 1:
            raise BadActionRef("unsupported action reference version (a newer or older keybot wrote it)")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            fields = sorted({".".join(str(p) for p in e["loc"]) or "value" for e in error.errors()})
            raise BadActionRef(f"invalid action reference ({', '.join(fields)})") from None


VERSION = "ver"  # ActionRef.extra key: the run version the message showed


def run_ref(run_id: str, step: str | None, version: int | None) -> ActionRef:
    """A reference to a run as the person saw it: the step and the run's version."""
    extra = {VERSION: str(version)} if version is not None else {}
    return ActionRef(kind="run", id=run_id, step=step, extra=extra)


DAY = "day"  # ActionRef.extra key: the local date of the reminder message a button sat on


def reminder_ref(key_id: int, day: date | None = None) -> ActionRef:
    """A reminder button's value: the key, and the day's message it sits on (so that message is edited)."""
    return ActionRef(kind="key", id=str(key_id), extra={DAY: day.isoformat()} if day else {})


def reminder_day(ref: ActionRef) -> date | None:
    """The reminder day a button carried; None when absent or not a date keybot could have written."""
    value = ref.extra.get(DAY, "")
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


ALERT_VERSION = "v"  # ActionRef.extra key: the alert version the page showed


def alert_ref(alert_id: int, version: int) -> ActionRef:
    """An alert button's value: the alert and the version the page showed (a later state refuses it)."""
    return ActionRef(kind="alert", id=str(alert_id), extra={ALERT_VERSION: str(version)})


def alert_seen(ref: ActionRef) -> tuple[int, int] | None:
    """(alert id, version) from an alert button; None when it is not one keybot could have written."""
    version = ref.extra.get(ALERT_VERSION, "")
    if ref.kind != "alert" or not ref.id.isdigit() or len(ref.id) > 12:
        return None
    if not version.isdigit() or len(version) > 9:
        return None
    return int(ref.id), int(version)


def seen_version(ref: ActionRef) -> int | None:
    value = ref.extra.get(VERSION, "")
    return int(value) if value.isdigit() and len(value) < 10 else None
