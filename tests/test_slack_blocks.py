"""Golden-file tests for the Slack Block Kit layer, plus the limits, escaping and secrecy it promises.

Domain objects are built in memory (no database): fixed ids and datetimes make every rendering exact.
Regenerate the goldens after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_slack_blocks.py``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.incidents.models import Incident, IncidentStatus
from bot.notifications.models import Notification, NotificationStatus
from bot.notifications.render import (
    channel_message,
    consumer_messages,
    emergency_warning,
    manager_summary,
    owner_messages,
)
from bot.notifications.service import Message
from bot.registry.models import Consumer, Key, KeyOwner, KeyStatus, OwnerRole, Team
from bot.runbooks.models import Run, RunStatus, RunStep, StepStatus
from bot.slack import ids, limits
from bot.slack.blocks.home import app_home
from bot.slack.blocks.key_card import is_drill, key_card_blocks, key_owner_reply
from bot.slack.blocks.messages import LeakHit, leak_warning, notification_blocks
from bot.slack.blocks.progress import current_step, incident_header, progress_message
from bot.slack.blocks.revoke_modal import (
    abort_modal,
    error_modal,
    loading_modal,
    pick_key_modal,
    revoke_modal,
    search_modal,
    skip_reason_modal,
)
from bot.slack.blocks.text import TextButton, blocks_to_text, view_to_text
from bot.slack.ids import ActionRef, BadActionRef

GOLDEN = Path(__file__).parent / "golden" / "slack"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
RUN_ID = "run_0a1b2c3d4e5f"
STAGED = [
    ("identify", "Identify & lock"),
    ("assess", "Assess exposure"),
    ("contain", "Contain (reversible)"),
    ("mint", "Mint replacement"),
    ("distribute", "Distribute to consumers"),
    ("verify_new", "Verify replacement"),
    ("revoke_old", "Revoke leaked key"),
    ("verify_revoked", "Verify revocation"),
    ("audit", "Audit exposure window"),
    ("cleanup", "Clean up Vault"),
    ("notify", "Notify owners & managers"),
]
INJECTIONS = ("<!channel>", "<!here>", "<@U123>", "<https://evil|click>", "<https://evil")


# --- domain objects, built without a database ------------------------------------------------------------


def make_team() -> Team:
    return Team(id=3, name="payments", slack_channel="C0PAYMENTS", manager_slack_id="U0MANAGER")


def make_key(
    key_id: int = 12,
    name: str = "payments-openai-prod",
    *,
    environment: str = "production",
    last4: str = "Xy9Q",
    description: str | None = "Checkout service's OpenAI project key.",
    tags: list[str] | None = None,
    status: KeyStatus = KeyStatus.ACTIVE,
) -> Key:
    key = Key(
        id=key_id,
        name=name,
        provider="openai",
        provider_key_id=f"key_{key_id:04d}abc",
        project="proj_payments",
        environment=environment,
        vault_path=f"kv/payments/{name}",
        secret_family="sk-proj-",
        secret_last4=last4,
        fingerprint=None,
        status=status,
        created_at=datetime(2024, 6, 1, tzinfo=UTC),
        last_rotated_at=datetime(2025, 1, 10, tzinfo=UTC),
        rotation_days=90,
        tags=["pci", "checkout"] if tags is None else tags,
        description=description,
        team_id=3,
    )
    key.team = make_team()
    key.owners = [
        KeyOwner(id=key_id * 10 + 1, key_id=key_id, slack_user_id="U0OWNER1", role=OwnerRole.OWNER),
        KeyOwner(id=key_id * 10 + 2, key_id=key_id, slack_user_id="U0OWNER2", role=OwnerRole.OWNER),
        KeyOwner(id=key_id * 10 + 3, key_id=key_id, slack_user_id="U0BACKUP", role=OwnerRole.BACKUP),
    ]
    key.consumers = [
        Consumer(
            id=key_id * 10 + 1, key_id=key_id, name="checkout-api", contact="U0DEV1", redeploy_hook=None
        ),
        Consumer(id=key_id * 10 + 2, key_id=key_id, name="refund-worker", contact=None, redeploy_hook=None),
    ]
    return key


def sandbox_key() -> Key:
    return make_key(40, "payments-openai-sandbox", environment="sandbox", last4="Sb0x", tags=["drill"])


def make_incident(reason: str = "Key pasted in #general by a contractor at 08:55.") -> Incident:
    return Incident(
        id=7,
        key_id=12,
        title="Leaked key payments-openai-prod (production)",
        severity="sev1",
        status=IncidentStatus.OPEN,
        opened_by="U0ONCALL1",
        reason=reason,
        drill=False,
        opened_at=T0,
        contained_at=None,
        resolved_at=None,
    )


def make_run(
    status: RunStatus,
    states: dict[str, StepStatus],
    *,
    reason: str = "Key pasted in #general by a contractor at 08:55.",
    attention: str | None = None,
    finished: bool = False,
) -> Run:
    """A staged run whose steps are in ``states`` (others pending), 20 s apart, with realistic details."""
    run = Run(
        id=RUN_ID,
        runbook="revoke-replace-audit-notify",
        mode="staged",
        key_id=12,
        incident_id=7,
        status=status,
        initiated_by="U0ONCALL1",
        reason=reason,
        drill=False,
        attention=attention,
        context={},
        version=3,
        lease_owner=None,
        lease_expires_at=None,
        created_at=T0,
        updated_at=T0,
        finished_at=T0 + timedelta(minutes=14, seconds=5) if finished else None,
    )
    steps = []
    for position, (name, title) in enumerate(STAGED):
        state = states.get(name, StepStatus.PENDING)
        started = T0 + timedelta(seconds=20 * position) if state is not StepStatus.PENDING else None
        done = state in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)
        step = RunStep(
            id=100 + position,
            run_id=RUN_ID,
            position=position,
            name=name,
            action=name,
            title=title,
            status=state,
            attempts=1 if started else 0,
            started_at=started,
            finished_at=started + timedelta(seconds=3 + position * 1.5) if started and done else None,
            last_error=None,
            skip_reason=None,
            approved_by=None,
            done_by=None,
            output={},
        )
        steps.append(step)
    run.steps = steps
    return run


def ok(*names: str) -> dict[str, StepStatus]:
    return {name: StepStatus.SUCCEEDED for name in names}


BEFORE_REVOKE = ("identify", "assess", "mint", "distribute", "verify_new")


def run_running() -> Run:
    run = make_run(RunStatus.RUNNING, {**ok("identify", "assess"), "contain": StepStatus.SKIPPED})
    run.step("contain").skip_reason = "provider cannot narrow scopes for this project"
    run.step("mint").status = StepStatus.RUNNING
    run.step("mint").started_at = NOW - timedelta(seconds=42)
    run.step("mint").last_error = "Vault answered 503, attempt 2 of 5"
    return run


def run_awaiting_approval() -> Run:
    run = make_run(RunStatus.AWAITING_APPROVAL, {**ok(*BEFORE_REVOKE), "contain": StepStatus.SKIPPED})
    run.step("contain").skip_reason = "provider cannot narrow scopes for this project"
    run.step("revoke_old").status = StepStatus.AWAITING_APPROVAL
    return run


def run_needs_attention() -> Run:
    error = "Vault check-and-set failed: version 7 exists, expected 6 (someone else wrote the secret)"
    run = make_run(RunStatus.NEEDS_ATTENTION, ok("identify", "assess", "contain"), attention=error)
    mint = run.step("mint")
    mint.status, mint.last_error, mint.attempts = StepStatus.NEEDS_ATTENTION, error, 5
    mint.started_at = T0 + timedelta(seconds=60)
    return run


def run_waiting_manual() -> Run:
    run = make_run(RunStatus.WAITING_MANUAL, {**ok(*BEFORE_REVOKE), "contain": StepStatus.SKIPPED})
    run.step("contain").skip_reason = "provider cannot narrow scopes for this project"
    revoke = run.step("revoke_old")
    revoke.status, revoke.approved_by = StepStatus.WAITING_MANUAL, "U0ONCALL2"
    revoke.output = {"instructions": "Delete the leaked key in the vendor's console, then press Mark done."}
    return run


def run_succeeded() -> Run:
    run = make_run(
        RunStatus.SUCCEEDED,
        {**ok(*(name for name, _ in STAGED)), "contain": StepStatus.SKIPPED},
        finished=True,
    )
    run.step("contain").skip_reason = "provider cannot narrow scopes for this project"
    run.step("revoke_old").approved_by = "U0ONCALL2"
    return run


def run_aborted() -> Run:
    run = make_run(
        RunStatus.ABORTED,
        ok("identify", "assess", "contain", "mint"),
        attention="aborted by U0ONCALL1: false alarm, the pasted key was a revoked test key",
        finished=True,
    )
    distribute = run.step("distribute")
    distribute.status, distribute.last_error = StepStatus.NEEDS_ATTENTION, "redeploy hook timed out"
    return run


def facts(reason: str = "Key pasted in #general by a contractor at 08:55.") -> dict[str, Any]:
    """The facts dict the runbook's notify step builds (see bot.runbooks.actions.message_facts)."""
    return {
        "key_name": "payments-openai-prod",
        "redacted": "sk-proj-...Xy9Q",
        "environment": "production",
        "actor": "U0ONCALL1",
        "mode": "staged",
        "runbook": "revoke-replace-audit-notify",
        "reason": reason,
        "drill": False,
        "vault_path": "kv/payments/payments-openai-prod",
        "new_version": 8,
        "new_key_id": "key_0099new",
        "owners": ["U0OWNER1", "U0OWNER2"],
        "backups": ["U0BACKUP"],
        "team_channel": "C0PAYMENTS",
        "manager": "U0MANAGER",
        "consumers": ["checkout-api", "refund-worker"],
        "incident": "INC-00007",
        "exposure": {"requests": 1204, "tokens": 385112, "cost_usd": "4.17"},
        "time_to_contain": "14m 05s",
        "run_id": RUN_ID,
    }


def notification(message: Message, number: int = 1) -> Notification:
    return Notification(
        id=number,
        dedupe_key=f"{RUN_ID}:{message.kind}:{message.recipient}",
        incident_id=7,
        run_id=RUN_ID,
        kind=message.kind,
        recipient=message.recipient,
        subject=message.subject,
        body=message.body,
        facts=message.facts,
        status=NotificationStatus.PENDING,
        attempts=0,
        last_error=None,
        created_at=NOW,
        next_attempt_at=NOW,
        sent_at=None,
    )


def alert_notification() -> Notification:
    data = {
        "key_name": "payments-openai-prod",
        "redacted": "sk-proj-...Xy9Q",
        "environment": "production",
        "alert_id": "alert_42",
        "metric": "requests",
    }
    message = Message(
        "alert_dm",
        "U0OWNER1",
        "Unusual traffic on payments-openai-prod",
        "Requests jumped from ~40/min to 2,100/min at 09:12 UTC from 3 new source IPs. Was this you?",
        data,
    )
    return notification(message, 9)


def leak_hits() -> list[LeakHit | tuple[str, str, str | None, list[str]]]:
    return [
        LeakHit("openai_project", "sk-proj-...Xy9Q", "payments-openai-prod", ["U0OWNER1", "U0OWNER2"], 12),
        ("aws_access_key", "AKIA...7QXZ", None, []),
    ]


def home_view(empty: bool = False) -> dict[str, Any]:
    if empty:
        return app_home("U0OWNER1", [], [], [], [], NOW)
    key, other = make_key(), make_key(13, "payments-openai-staging", environment="staging", last4="St4g")
    return app_home(
        "U0OWNER1",
        [key, other],
        [(other, "overdue by 3 day(s)")],
        [run_awaiting_approval()],
        [make_incident()],
        NOW,
    )


# --- every rendering, by golden name ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    surface: str  # "message" | "modal" | "home"
    build: Callable[[], Any]


def message(build: Callable[[], tuple[str, list[dict[str, Any]]]]) -> Case:
    def wrapped() -> dict[str, Any]:
        text, blocks = build()
        return {"text": text, "blocks": blocks}

    return Case("message", wrapped)


def modal(build: Callable[[], dict[str, Any]]) -> Case:
    return Case("modal", build)


TRAFFIC = "1,204 requests · 385k tokens · 0 × 401 · 2 source IPs (baseline ~40 requests/min)"
VIEW_REF = ActionRef(kind="view", id="revoke", extra={"channel": "C0INCIDENT"})
APPROVERS = "anyone in #secops-oncall except the person who started the run"

CASES: dict[str, Case] = {
    "key_card": message(lambda: ("card", key_card_blocks(make_key(), NOW, TRAFFIC))),
    "key_card_sandbox": message(lambda: ("card", key_card_blocks(sandbox_key(), NOW))),
    "key_owner_single": message(lambda: key_owner_reply([make_key()], NOW)),
    "key_owner_pasted_secret": message(lambda: key_owner_reply([make_key()], NOW, query_was_secret=True)),
    "key_owner_ambiguous": message(
        lambda: key_owner_reply(
            [make_key(), make_key(13, "payments-openai-staging", environment="staging")], NOW
        )
    ),
    "key_owner_miss": message(
        lambda: key_owner_reply([], NOW, suggestions=["payments-openai-prod", "payments-openai-staging"])
    ),
    "key_owner_miss_secret": message(lambda: key_owner_reply([], NOW, query_was_secret=True)),
    "modal_loading": modal(loading_modal),
    "modal_revoke": modal(lambda: revoke_modal(make_key(), NOW, TRAFFIC, VIEW_REF)),
    "modal_revoke_drill": modal(lambda: revoke_modal(sandbox_key(), NOW, None, VIEW_REF)),
    "modal_pick_key": modal(
        lambda: pick_key_modal(
            [make_key(), make_key(13, "payments-openai-staging", environment="staging")], VIEW_REF
        )
    ),
    "modal_search": modal(
        lambda: search_modal(["payments-openai-prod"], "No key in the registry matches that.", VIEW_REF)
    ),
    "modal_search_empty": modal(lambda: search_modal([], None)),
    "modal_error": modal(
        lambda: error_modal(
            "Key is busy",
            "Run run_9f8e7d6c5b4a (started by U0ONCALL2) already holds this key; join its thread.",
        )
    ),
    "modal_skip": modal(lambda: skip_reason_modal(RUN_ID, "mint", "Mint replacement")),
    "modal_abort": modal(lambda: abort_modal(RUN_ID)),
    "incident_header": message(lambda: incident_header(make_incident(), make_key())),
    "progress_running": message(lambda: progress_message(run_running(), make_key(), now=NOW)),
    "progress_awaiting_approval": message(
        lambda: progress_message(run_awaiting_approval(), make_key(), approvers_hint=APPROVERS)
    ),
    "progress_needs_attention": message(lambda: progress_message(run_needs_attention(), make_key())),
    "progress_waiting_manual": message(lambda: progress_message(run_waiting_manual(), make_key())),
    "progress_succeeded": message(lambda: progress_message(run_succeeded(), make_key())),
    "progress_aborted": message(lambda: progress_message(run_aborted(), make_key())),
    "notification_owner_dm": message(lambda: notification_blocks(notification(owner_messages(facts())[0]))),
    "notification_backup_dm": message(lambda: notification_blocks(notification(owner_messages(facts())[-1]))),
    "notification_channel": message(lambda: notification_blocks(notification(channel_message(facts())[0]))),
    "notification_manager_summary": message(
        lambda: notification_blocks(notification(manager_summary(facts())[0]))
    ),
    "notification_consumer": message(
        lambda: notification_blocks(notification(consumer_messages(facts(), [("checkout-api", "U0DEV1")])[0]))
    ),
    "notification_emergency_dm": message(
        lambda: notification_blocks(notification(emergency_warning({**facts(), "mode": "emergency"})[0]))
    ),
    "notification_alert": message(lambda: notification_blocks(alert_notification())),
    "leak_warning": message(
        lambda: leak_warning("U0POSTER", leak_hits(), offer_revoke=True, ask_delete=True)
    ),
    "leak_warning_unregistered": message(
        lambda: leak_warning(
            "U0POSTER", [("github_token", "ghp_...a1B2", None, [])], offer_revoke=False, ask_delete=False
        )
    ),
    "home": Case("home", home_view),
    "home_empty": Case("home", lambda: home_view(empty=True)),
}

TEXT_CASES = (
    "progress_awaiting_approval",
    "progress_waiting_manual",
    "progress_needs_attention",
    "modal_revoke",
    "modal_pick_key",
    "leak_warning",
    "notification_owner_dm",
    "home",
)


def dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def check_golden(name: str, text: str) -> None:
    """Compare with ``tests/golden/slack/<name>``; ``UPDATE_GOLDEN=1`` rewrites it instead."""
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"missing golden {path}; run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; UPDATE_GOLDEN=1 if intended"


def render_text(case: Case) -> tuple[str, list[TextButton]]:
    data = case.build()
    if case.surface == "message":
        return blocks_to_text(data["blocks"])
    return view_to_text(data)


# --- the validator: Slack's documented limits over the produced JSON --------------------------------------


def _text_of(obj: Any) -> str:
    return str(obj["text"]) if isinstance(obj, dict) else str(obj)


def _check_text(obj: Any, limit: int, where: str, problems: list[str]) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        problems.append(f"{where}: not a text object")
        return
    text = _text_of(obj)
    if not 1 <= len(text) <= limit:
        problems.append(f"{where}: {len(text)} chars (limit {limit})")


def _check_option(option: dict[str, Any], where: str, problems: list[str]) -> None:
    _check_text(option["text"], limits.OPTION_TEXT, f"{where}.text", problems)
    if len(option["value"]) > limits.OPTION_VALUE:
        problems.append(f"{where}.value: {len(option['value'])} chars")
    if "description" in option:
        _check_text(option["description"], limits.OPTION_DESCRIPTION, f"{where}.description", problems)


def _check_element(element: dict[str, Any], where: str, problems: list[str]) -> None:
    if len(element.get("action_id", "")) > limits.ACTION_ID:
        problems.append(f"{where}: action_id too long")
    kind = element["type"]
    if kind == "button":
        _check_text(element["text"], limits.BUTTON_TEXT, f"{where}.text", problems)
        if len(element.get("value", "")) > limits.BUTTON_VALUE:
            problems.append(f"{where}: value {len(element['value'])} chars")
        ActionRef.decode(element["value"])  # every button value is one of ours
        if "confirm" in element:
            c = element["confirm"]
            _check_text(c["title"], limits.CONFIRM_TITLE, f"{where}.confirm.title", problems)
            _check_text(c["text"], limits.CONFIRM_TEXT, f"{where}.confirm.text", problems)
            _check_text(c["confirm"], limits.CONFIRM_BUTTON, f"{where}.confirm.confirm", problems)
            _check_text(c["deny"], limits.CONFIRM_BUTTON, f"{where}.confirm.deny", problems)
    elif kind in ("static_select", "radio_buttons"):
        cap = limits.SELECT_OPTIONS if kind == "static_select" else limits.RADIO_OPTIONS
        if not 1 <= len(element["options"]) <= cap:
            problems.append(f"{where}: {len(element['options'])} options")
        for i, option in enumerate(element["options"]):
            _check_option(option, f"{where}.options[{i}]", problems)
        if "placeholder" in element:
            _check_text(element["placeholder"], limits.PLACEHOLDER, f"{where}.placeholder", problems)
    elif kind == "plain_text_input":
        if "placeholder" in element:
            _check_text(element["placeholder"], limits.PLACEHOLDER, f"{where}.placeholder", problems)
    else:
        problems.append(f"{where}: unexpected element {kind}")


def validate_blocks(blocks: list[dict[str, Any]], max_blocks: int) -> list[str]:
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"{len(blocks)} blocks (limit {max_blocks})")
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    if len(block_ids) != len(set(block_ids)):
        problems.append(f"duplicate block_ids: {sorted(block_ids)}")
    for n, block in enumerate(blocks):
        where = f"blocks[{n}]({block['type']})"
        if len(block.get("block_id", "")) > limits.BLOCK_ID:
            problems.append(f"{where}: block_id too long")
        kind = block["type"]
        if kind == "header":
            _check_text(block["text"], limits.HEADER_TEXT, where, problems)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: neither text nor fields")
            if "text" in block:
                _check_text(block["text"], limits.SECTION_TEXT, where, problems)
            if len(block.get("fields", [])) > limits.SECTION_FIELDS:
                problems.append(f"{where}: {len(block['fields'])} fields")
            for i, field in enumerate(block.get("fields", [])):
                _check_text(field, limits.FIELD_TEXT, f"{where}.fields[{i}]", problems)
            if "accessory" in block:
                _check_element(block["accessory"], f"{where}.accessory", problems)
        elif kind == "context":
            if not 1 <= len(block["elements"]) <= limits.CONTEXT_ELEMENTS:
                problems.append(f"{where}: {len(block['elements'])} elements")
            for i, element in enumerate(block["elements"]):
                _check_text(element, limits.TEXT, f"{where}.elements[{i}]", problems)
        elif kind == "actions":
            if not 1 <= len(block["elements"]) <= limits.ACTIONS_ELEMENTS:
                problems.append(f"{where}: {len(block['elements'])} elements")
            action_ids = [e["action_id"] for e in block["elements"]]
            if len(action_ids) != len(set(action_ids)):
                problems.append(f"{where}: duplicate action_ids {action_ids}")
            for i, element in enumerate(block["elements"]):
                _check_element(element, f"{where}.elements[{i}]", problems)
        elif kind == "input":
            _check_text(block["label"], limits.INPUT_LABEL, f"{where}.label", problems)
            if "hint" in block:
                _check_text(block["hint"], limits.INPUT_HINT, f"{where}.hint", problems)
            if "block_id" not in block:
                problems.append(f"{where}: inputs need a stable block_id")
            _check_element(block["element"], f"{where}.element", problems)
        elif kind != "divider":
            problems.append(f"{where}: unexpected block type")
    return problems


_OUR_MARKUP = re.compile(r"<@[UW][A-Z0-9]+>|<#[CG][A-Z0-9]+>|&(?:amp|lt|gt);|^>", re.MULTILINE)


def check_markup(texts: Iterator[str] | list[str], problems: list[str]) -> None:
    """In mrkdwn, ``<``, ``>`` and ``&`` may only come from keybot's own mentions, entities and quotes."""
    for text in texts:
        rest = _OUR_MARKUP.sub("", text)
        if any(c in rest for c in "<>&"):
            problems.append(f"unescaped markup in mrkdwn: {text[:120]!r}")


def validate(surface: str, data: dict[str, Any]) -> list[str]:
    """Problems Slack would reject (``invalid_blocks``) or silently truncate; empty when all is well."""
    if surface == "message":
        problems = validate_blocks(data["blocks"], limits.MESSAGE_BLOCKS)
        if not 1 <= len(data["text"]) <= limits.FALLBACK_TEXT:
            problems.append(f"fallback text: {len(data['text'])} chars")
        check_markup([data["text"], *walk_texts(data["blocks"], "mrkdwn")], problems)
        return problems
    problems = validate_blocks(
        data["blocks"], limits.MODAL_BLOCKS if surface == "modal" else limits.HOME_BLOCKS
    )
    check_markup(walk_texts(data["blocks"], "mrkdwn"), problems)
    if surface == "modal":
        _check_text(data["title"], limits.MODAL_TITLE, "title", problems)
        for button_name in ("submit", "close"):
            if button_name in data:
                _check_text(data[button_name], limits.MODAL_BUTTON, button_name, problems)
        if len(data.get("callback_id", "")) > limits.CALLBACK_ID:
            problems.append("callback_id too long")
        if "private_metadata" in data:
            if len(data["private_metadata"]) > limits.PRIVATE_METADATA:
                problems.append("private_metadata too long")
            ActionRef.decode(data["private_metadata"])
        has_inputs = any(b["type"] == "input" for b in data["blocks"])
        if has_inputs and "submit" not in data:
            problems.append("a modal with inputs needs a submit button")
    return problems


def walk_texts(obj: Any, kind: str) -> Iterator[str]:
    """Every text of the given object type (``mrkdwn`` / ``plain_text``) anywhere in a payload."""
    if isinstance(obj, dict):
        if obj.get("type") == kind and isinstance(obj.get("text"), str):
            yield obj["text"]
        for value in obj.values():
            yield from walk_texts(value, kind)
    elif isinstance(obj, list):
        for value in obj:
            yield from walk_texts(value, kind)


# --- golden files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_json(name: str) -> None:
    check_golden(f"{name}.json", dump(CASES[name].build()))


@pytest.mark.parametrize("name", TEXT_CASES)
def test_golden_text(name: str) -> None:
    text, buttons = render_text(CASES[name])
    listing = "".join(f"[{b.number}] {b.action_id} {b.value} {b.label}\n" for b in buttons)
    check_golden(f"{name}.txt", text + ("\nbuttons:\n" + listing if buttons else ""))


def test_no_stray_golden_files() -> None:
    expected = {f"{n}.json" for n in CASES} | {f"{n}.txt" for n in TEXT_CASES}
    present = {p.name for p in GOLDEN.glob("*")} if GOLDEN.exists() else set()
    assert present - expected == set(), "golden files without a test; delete them"


# --- limits -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_rendering_is_within_slack_limits(name: str) -> None:
    case = CASES[name]
    assert validate(case.surface, case.build()) == []


def test_progress_buttons_per_state() -> None:
    def buttons(run: Run) -> list[str]:
        _, blocks = progress_message(run, make_key())
        return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]

    assert buttons(run_running()) == [ids.ABORT]
    assert buttons(run_awaiting_approval()) == [ids.APPROVE, ids.ABORT]
    assert buttons(run_needs_attention()) == [ids.RETRY, ids.MARK_DONE, ids.SKIP, ids.ABORT]
    assert buttons(run_waiting_manual()) == [ids.MARK_DONE, ids.SKIP, ids.ABORT]
    assert buttons(run_succeeded()) == []
    assert buttons(run_aborted()) == []


def test_progress_buttons_carry_the_run_and_current_step() -> None:
    run = run_awaiting_approval()
    _, blocks = progress_message(run, make_key())
    (approve, abort) = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert ActionRef.decode(approve["value"]) == ActionRef(
        kind="run", id=RUN_ID, step="revoke_old", extra={ids.VERSION: "3"}
    )
    assert "a second on-call, not <@U0ONCALL1>" in approve["confirm"]["text"]["text"]
    assert abort["style"] == "danger" and "confirm" in abort
    assert current_step(run_succeeded()) is None


def test_identify_cannot_be_skipped_so_no_skip_button() -> None:
    run = make_run(RunStatus.NEEDS_ATTENTION, {})
    run.step("identify").status, run.step("identify").last_error = StepStatus.NEEDS_ATTENTION, "registry down"
    _, blocks = progress_message(run, make_key())
    actions = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert actions == [ids.RETRY, ids.ABORT]


def long_run(steps: int, note_chars: int) -> Run:
    run = make_run(RunStatus.NEEDS_ATTENTION, {}, reason="r" * 5000, attention="x" * 10_000)
    run.steps = [
        RunStep(
            id=i,
            run_id=RUN_ID,
            position=i,
            name=f"step_{i}",
            action="audit",
            title=f"Step number {i} " + "t" * 100,
            status=StepStatus.SKIPPED if i < steps - 1 else StepStatus.NEEDS_ATTENTION,
            attempts=1,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=i),
            last_error="boom " * (note_chars // 5),
            skip_reason="because " * (note_chars // 8),
            approved_by=None,
            done_by=None,
            output={},
        )
        for i in range(steps)
    ]
    return run


def test_long_notes_and_200_steps_are_clipped_with_a_note() -> None:
    text, blocks = progress_message(long_run(200, 20_000), make_key())
    data = {"text": text, "blocks": blocks}
    assert validate("message", data) == []
    rendered = json.dumps(data)
    assert "[clipped, " in rendered  # long notes say they were cut
    assert blocks[-2]["type"] == "actions"  # buttons survive whatever was cut
    assert blocks[-1]["block_id"] == "run_footer"


def test_thousands_of_steps_collapse_into_a_more_note() -> None:
    _, blocks = progress_message(long_run(3000, 20_000), make_key())
    assert validate("message", {"text": "x", "blocks": blocks}) == []
    assert len(blocks) == limits.MESSAGE_BLOCKS
    note = blocks[-4]["elements"][0]["text"]
    assert "more items not shown" in note and f"keybot runs show {RUN_ID}" in note
    assert [b["type"] for b in blocks[-3:]] == ["section", "actions", "context"]


def test_huge_inputs_stay_within_limits_everywhere() -> None:
    big = "W" * 50_000
    key = make_key(name="k" * 200, description=big, tags=["t" * 100] * 50)
    many = [make_key(i, f"key-{i}-" + "n" * 150) for i in range(300)]
    incident = make_incident(reason=big)
    incident.title = "T" * 300
    payloads: list[tuple[str, Any]] = [
        (
            "message",
            dict(zip(("text", "blocks"), key_owner_reply(many, NOW, suggestions=[big] * 50), strict=True)),
        ),
        ("message", dict(zip(("text", "blocks"), incident_header(incident, key), strict=True))),
        ("modal", revoke_modal(key, NOW, big, VIEW_REF)),
        ("modal", pick_key_modal(many, VIEW_REF)),
        ("modal", search_modal([big] * 30, big)),
        ("modal", error_modal(big, big)),
        ("modal", skip_reason_modal(RUN_ID, "mint", big)),
        (
            "home",
            app_home("U0OWNER1", many, [(k, big) for k in many], [run_running()] * 40, [incident] * 40, NOW),
        ),
    ]
    hits = [LeakHit("openai_project", "sk-proj-...Xy9Q", "n" * 300, ["U0OWNER1"] * 100, i) for i in range(60)]
    text, blocks = leak_warning("U0POSTER", hits, offer_revoke=True, ask_delete=True)
    payloads.append(("message", {"text": text, "blocks": blocks}))
    big_note = Message("owner_dm", "U0OWNER1", big, big, {**facts(big), "key_name": big})
    text, blocks = notification_blocks(notification(big_note))
    payloads.append(("message", {"text": text, "blocks": blocks}))
    for surface, data in payloads:
        assert validate(surface, data) == []


def test_clip_fit_blocks_and_more_note() -> None:
    assert limits.clip("short", 10) == "short"
    clipped = limits.clip("a" * 5000, 3000)
    assert len(clipped) == 3000 and clipped.endswith("… [clipped, 5,000 chars in full]")
    assert limits.clip("abcdefghijklmnop", 5) == "abcd…"
    assert limits.clip("x" * 100 + "&amp;" + "y" * 100, 152).count("&am") in (0, 1)
    assert "&am…" not in limits.clip("x" * 10 + "&amp;", 14)
    assert limits.clip("x" * 10 + "<@U0OWNER1>", 16) == "x" * 10 + "…"
    blocks = [{"type": "divider", "block_id": str(i)} for i in range(60)]
    fitted = limits.fit_blocks(blocks, 50, see="keybot runs show run_x", keep_tail=2)
    assert len(fitted) == 50
    assert [b.get("block_id") for b in fitted[-2:]] == ["58", "59"]
    assert fitted[-3]["elements"][0]["text"] == "… 11 more items not shown — see `keybot runs show run_x`"
    assert limits.fit_blocks(blocks[:3]) == blocks[:3]


# --- escaping and secrecy -----------------------------------------------------------------------------------


def test_escape_neutralises_mentions_and_links() -> None:
    hostile = "hi <!channel> <!here> <@U123> <https://evil|click> & more"
    assert limits.escape(hostile) == (
        "hi &lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;https://evil|click&gt; &amp; more"
    )
    assert limits.mention("U0OWNER1") == "<@U0OWNER1>"
    assert limits.mention("<!channel>") == "&lt;!channel&gt;"
    assert limits.channel("C0PAYMENTS") == "<#C0PAYMENTS>"
    assert limits.channel("#payments") == "#payments"


def everything(
    text: str,
) -> list[tuple[str, Any]]:
    """Every builder fed ``text`` through every user-controlled field it shows."""
    key = make_key(name=f"key {text}", description=text, tags=[text])
    key.vault_path = f"kv/{text}"
    assert key.team is not None
    key.team.name = text
    incident = make_incident(reason=text)
    incident.title = f"Leaked {text}"
    runs = [run_running(), run_awaiting_approval(), run_needs_attention(), run_waiting_manual()]
    runs += [run_succeeded(), run_aborted()]
    for run in runs:
        run.reason, run.initiated_by = text, text
        if run.attention:
            run.attention = text
        for step in run.steps:
            step.last_error = step.last_error and text
            step.skip_reason = step.skip_reason and text
            step.approved_by = step.approved_by and text
            if step.output:
                step.output = {"instructions": text}
    data = facts(reason=text)
    data["key_name"], data["actor"], data["consumers"] = text, text, [text]
    messages = [*owner_messages(data), *channel_message(data), *manager_summary(data)]
    messages += [*consumer_messages(data, [(text, "U0DEV1")]), *emergency_warning(data)]
    out: list[tuple[str, Any]] = [
        ("message", key_card_blocks(key, NOW, text)),
        ("message", key_owner_reply([key], NOW, query_was_secret=True)),
        ("message", key_owner_reply([key, make_key(13)], NOW)),
        ("message", key_owner_reply([], NOW, suggestions=[text])),
        ("modal", revoke_modal(key, NOW, text, VIEW_REF)),
        ("modal", pick_key_modal([key, key], VIEW_REF)),
        ("modal", search_modal([text], text)),
        ("modal", error_modal(text, text)),
        ("modal", skip_reason_modal(RUN_ID, "mint", text)),
        ("message", incident_header(incident, key)),
        (
            "message",
            leak_warning(
                text, [("openai_project", text, text, [text], 12)], offer_revoke=True, ask_delete=True
            ),
        ),
        ("home", app_home(text, [key], [(key, text)], runs, [incident], NOW)),
    ]
    out += [("message", progress_message(run, key, approvers_hint=text)) for run in runs]
    for m in messages:
        raw = Notification(kind=m.kind, recipient=m.recipient, subject=m.subject, body=m.body, facts=m.facts)
        out.append(("message", notification_blocks(raw)))
    out.append(("message", notification_blocks(notification(Message("alert_dm", "U0", text, text, data)))))
    return out


def test_user_text_cannot_ping_or_hide_links() -> None:
    hostile = "oops <!channel> <!here> <@U123> <https://evil|click> <https://evil>"
    for surface, payload in everything(hostile):
        mrkdwn = list(walk_texts(payload, "mrkdwn"))
        if isinstance(payload, tuple):  # (fallback text, blocks): the fallback text is mrkdwn too
            mrkdwn.append(payload[0])
        assert mrkdwn, surface
        for text in mrkdwn:
            for needle in INJECTIONS:
                assert needle not in text, (needle, text)


def canary_secret() -> str:
    alphabet = string.ascii_letters + string.digits
    body = "".join(secrets.choice(alphabet) for _ in range(74))
    tail = "".join(secrets.choice(alphabet) for _ in range(74))
    return f"sk-proj-{body}T3BlbkFJ{tail}"


def test_a_planted_secret_never_appears_in_any_rendering() -> None:
    canary = canary_secret()
    rendered = []
    for _surface, payload in everything(f"pasted {canary} here"):
        rendered.append(json.dumps(payload, ensure_ascii=False))
        blocks = payload[1] if isinstance(payload, tuple) else payload
        if isinstance(payload, tuple):
            rendered.append(blocks_to_text(blocks)[0])
        elif isinstance(blocks, dict):
            rendered.append(view_to_text(blocks)[0])
    everything_text = "\n".join(rendered)
    assert canary not in everything_text
    assert canary[8:40] not in everything_text and canary[-40:] not in everything_text
    assert f"[REDACTED sk-proj-...{canary[-4:]}]" in everything_text  # it was seen, and shown redacted


def test_action_refs_refuse_secrets() -> None:
    with pytest.raises(ValueError, match="never carry a secret"):
        ActionRef(kind="key", id=canary_secret())
    with pytest.raises(ValueError, match="never carry a secret"):
        ActionRef(kind="key", id="12", extra={"note": canary_secret()})


# --- ActionRef ----------------------------------------------------------------------------------------------


def test_action_ref_round_trips() -> None:
    ref = ActionRef(kind="run", id=RUN_ID, step="revoke_old", extra={"b": "2", "a": "1"})
    encoded = ref.encode()
    assert (
        encoded
        == '{"extra":{"a":"1","b":"2"},"id":"run_0a1b2c3d4e5f","kind":"run","step":"revoke_old","v":1}'
    )
    assert ActionRef.decode(encoded) == ref
    assert ActionRef.decode(ActionRef(kind="key", id="12").encode()) == ActionRef(kind="key", id="12")
    assert (
        len(ActionRef(kind="view", id="x" * 200, extra={f"k{i}": "v" * 100 for i in range(16)}).encode())
        < 2000
    )


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '"a string"',
        '{"kind":"run","id":"run_1"}',  # no version
        '{"v":2,"kind":"run","id":"run_1"}',  # from the future
        '{"v":true,"kind":"run","id":"run_1"}',
        '{"v":"1","kind":"run","id":"run_1"}',
        '{"v":1,"kind":"wallet","id":"run_1"}',  # unknown kind
        '{"v":1,"kind":"run","id":""}',
        '{"v":1,"kind":"run","id":7}',  # wrong type
        '{"v":1,"kind":"run","id":"run_1","admin":true}',  # smuggled field
        '{"v":1,"kind":"run","id":"run_1","extra":{"a":1}}',
        '{"v":1,"kind":"run","id":"run_1"',  # truncated
        '{"v":1,"kind":"run","id":"' + "x" * 3000 + '"}',  # oversized
    ],
)
def test_action_ref_rejects_garbage(garbage: str) -> None:
    with pytest.raises(BadActionRef):
        ActionRef.decode(garbage)


def test_bad_action_ref_never_repeats_its_input() -> None:
    secret = canary_secret()
    with pytest.raises(BadActionRef) as caught:
        ActionRef.decode(json.dumps({"v": 1, "kind": "key", "id": secret}))
    assert secret not in str(caught.value)
    with pytest.raises(BadActionRef):
        ActionRef.decode(None)


def test_modal_inputs_have_the_named_ids() -> None:
    def inputs(view: dict[str, Any]) -> set[tuple[str, str]]:
        return {(b["block_id"], b["element"]["action_id"]) for b in view["blocks"] if b["type"] == "input"}

    revoke = revoke_modal(make_key(), NOW, None, VIEW_REF)
    assert revoke["callback_id"] == ids.REVOKE_MODAL
    assert inputs(revoke) == {
        (ids.MODE_BLOCK, ids.MODE_ACTION),
        (ids.REASON_BLOCK, ids.REASON_ACTION),
        (ids.SEVERITY_BLOCK, ids.SEVERITY_ACTION),
    }
    assert ActionRef.decode(revoke["private_metadata"]) == VIEW_REF
    mode = next(b for b in revoke["blocks"] if b.get("block_id") == ids.MODE_BLOCK)["element"]
    assert mode["initial_option"]["value"] == "staged"
    assert {o["value"] for o in mode["options"]} == set(ids.MODES)
    reason = next(b for b in revoke["blocks"] if b.get("block_id") == ids.REASON_BLOCK)
    assert reason["element"]["max_length"] == 500 and reason["element"]["multiline"] is True
    assert "optional" not in reason
    pick = pick_key_modal([make_key(), make_key(13)], VIEW_REF)
    assert inputs(pick) == {(ids.PICK_KEY_BLOCK, ids.PICK_KEY)}
    options = pick["blocks"][1]["element"]["options"]
    assert [ActionRef.decode(o["value"]).id for o in options] == ["12", "13"]
    assert inputs(search_modal([], None)) == {(ids.SEARCH_BLOCK, ids.SEARCH_ACTION)}
    skip = skip_reason_modal(RUN_ID, "mint")
    assert inputs(skip) == {(ids.SKIP_REASON_BLOCK, ids.SKIP_REASON_ACTION)}
    assert ActionRef.decode(skip["private_metadata"]) == ActionRef(kind="run", id=RUN_ID, step="mint")
    abort = abort_modal(RUN_ID)
    assert (abort["callback_id"], inputs(abort)) == (
        ids.ABORT_MODAL,
        {
            (ids.ABORT_REASON_BLOCK, ids.ABORT_REASON_ACTION),
            (ids.ABORT_OUTCOME_BLOCK, ids.ABORT_OUTCOME_ACTION),
        },
    )
    assert inputs(abort_modal(RUN_ID, incident=False)) == {(ids.ABORT_REASON_BLOCK, ids.ABORT_REASON_ACTION)}


def test_drill_keys_are_flagged() -> None:
    assert is_drill(sandbox_key()) and not is_drill(make_key())
    assert is_drill(make_key(tags=["Drill"]))
    drill_modal = revoke_modal(sandbox_key(), NOW, None, VIEW_REF)
    assert [b["block_id"] for b in drill_modal["blocks"][:2]] == ["drill_notice", "drill"]
    assert (drill_modal["title"]["text"], drill_modal["submit"]["text"]) == (
        "DRILL: revoke a key",
        "Start drill",
    )


def test_text_rendering_numbers_buttons_and_strips_terminal_controls() -> None:
    text, buttons = blocks_to_text(progress_message(run_needs_attention(), make_key())[1])
    assert [(b.number, b.action_id) for b in buttons] == [
        (1, ids.RETRY), (2, ids.MARK_DONE), (3, ids.SKIP), (4, ids.ABORT)
    ]  # fmt: skip
    assert "[1] Retry step  [2] Done by hand…  [3] Skip…  [4] Abort (!)" in text
    evil = [{"type": "section", "text": {"type": "mrkdwn", "text": "a\x1b[31mred\x07 &lt;!here&gt; <@U1>"}}]
    rendered, _ = blocks_to_text(evil)
    assert rendered == "a[31mred <!here> @U1\n"


# --- properties ---------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escape_never_leaves_a_mention_or_special(text: str) -> None:
    escaped = limits.escape(text)
    assert "<!" not in escaped and "<@" not in escaped and "<" not in escaped and ">" not in escaped


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=4000))
def test_clip_always_fits(text: str, limit: int) -> None:
    clipped = limits.clip(text, limit)
    assert len(clipped) <= limit
    assert clipped == text or clipped.endswith("…") or clipped.endswith("chars in full]")


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["run", "key", "incident", "alert", "view"]),
    st.text(min_size=1, max_size=200),
    st.none() | st.text(min_size=1, max_size=64),
    st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=5),
)
def test_action_ref_round_trip_property(
    kind: Any, ident: str, step: str | None, extra: dict[str, str]
) -> None:
    ref = ActionRef(kind=kind, id=ident, step=step, extra=extra)
    assert ActionRef.decode(ref.encode()) == ref
