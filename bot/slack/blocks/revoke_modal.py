"""The ``/revoke-key`` modal in each of its states, plus the small reason modals for Skip and Abort.

Every input has a named ``block_id`` / ``action_id`` from :mod:`bot.slack.ids`, so a submission handler reads
``view["state"]["values"][REASON_BLOCK][REASON_ACTION]["value"]`` and never guesses.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from slack_sdk.models.blocks import (
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)

from bot.incidents.models import reference_for
from bot.registry.models import Key, KeyStatus
from bot.slack import ids, limits
from bot.slack.blocks.common import Block, chunk_lines, context, divider, plain_text, section
from bot.slack.blocks.key_card import candidate_lines, is_drill, key_card_blocks

REASON_MAX = 500
DRILL_TITLE = "DRILL: revoke a key"
DRILL_NOTICE = "Drill: rehearsal on a sandbox copy; nothing real is touched"

MODE_OPTIONS = {
    "staged": Option(
        value="staged",
        text="Staged: replace first, then revoke (no outage)",
        description="Default. Consumers move to the new key before the old one dies.",
    ),
    "emergency": Option(
        value="emergency",
        text="Emergency: revoke now, replace right after (outage until redeploy)",
        description="The key is being abused right now. Owners are told to expect errors.",
    ),
}

SEVERITY_OPTIONS = {
    "sev1": Option(value="sev1", text="SEV1: active abuse or customer impact"),
    "sev2": Option(value="sev2", text="SEV2: leaked, no sign of abuse yet"),
    "sev3": Option(value="sev3", text="SEV3: possible exposure, low risk"),
    "sev4": Option(value="sev4", text="SEV4: routine / precautionary"),
}
_MODE_DICTS = {name: option.to_dict() for name, option in MODE_OPTIONS.items()}
_SEVERITY_DICTS = {name: option.to_dict() for name, option in SEVERITY_OPTIONS.items()}


def _view(
    callback_id: str,
    title: str,
    blocks: Sequence[Block],
    *,
    submit: str | None = None,
    close: str = "Cancel",
    private_metadata: ids.ActionRef | None = None,
) -> dict[str, Any]:
    """The modal as the plain dict slack_sdk's ``View`` serialises to (see ``common``: built per request)."""
    view: dict[str, Any] = {
        "blocks": limits.fit_blocks(blocks, limits.MODAL_BLOCKS),
        "callback_id": callback_id,
        "close": plain_text(limits.plain(close, limits.MODAL_BUTTON)),
    }
    if private_metadata:
        view["private_metadata"] = private_metadata.encode()
    if submit:
        view["submit"] = plain_text(limits.plain(submit, limits.MODAL_BUTTON))
    view["title"] = plain_text(limits.plain(title, limits.MODAL_TITLE))
    view["type"] = "modal"
    return view


def _input(block_id: str, label: str, element: dict[str, Any], hint: str | None = None) -> Block:
    block: Block = {"block_id": block_id, "element": element}
    if hint:
        block["hint"] = plain_text(hint)
    block["label"] = plain_text(label)
    block["type"] = "input"
    return block


def _reason_input(block_id: str, action_id: str, label: str, placeholder: str, hint: str) -> Block:
    element = {
        "action_id": action_id,
        "max_length": REASON_MAX,
        "multiline": True,
        "placeholder": plain_text(limits.plain(placeholder, limits.PLACEHOLDER)),
        "type": "plain_text_input",
    }
    return _input(block_id, label, element, hint)


def _choice(kind: str, action_id: str, options: dict[str, dict[str, Any]], initial: str) -> dict[str, Any]:
    """A radio or select element over constant options (serialised once, at import)."""
    return {
        "action_id": action_id,
        "initial_option": copy.deepcopy(options[initial]),
        "options": copy.deepcopy(list(options.values())),
        "type": kind,
    }


def loading_modal(title: str = "Revoke a key") -> dict[str, Any]:
    """Opened at once with the slash command's trigger_id (it dies in 3 s), then replaced via views.update."""
    return _view(
        ids.LOADING_MODAL,
        title,
        [
            section("⏳ *Loading…*", block_id="loading"),
            context("Looking up the key, its owners, consumers and last hour of traffic."),
        ],
    )


def revoke_modal(
    key: Key,
    now: datetime,
    traffic: str | None,
    private_metadata: ids.ActionRef,
    *,
    default_mode: Literal["staged", "emergency"] = "staged",
) -> dict[str, Any]:
    """The key's card and the form that starts a run: mode, reason, severity.

    A drill (`--drill`, or a sandbox key) says so from its title on, so nobody mistakes it for the real thing.
    """
    drill = private_metadata.extra.get("drill") == "1" or is_drill(key) or key.drill
    blocks: list[Block] = []
    if drill:
        blocks.append(context(f"🧪 {DRILL_NOTICE}", block_id="drill_notice"))
        blocks.append(
            section(
                "🧪 *[DRILL]* The run, its incident (`DRILL-n`) and every message are marked as a drill. "
                "Messages go to you only, labelled with whom they would have gone to.",
                block_id="drill",
            )
        )
    if key.status is KeyStatus.REVOKED:
        blocks.append(
            section(
                "⚠️ The registry says this key is *already revoked*. Starting a run re-checks it at the "
                "provider and replaces it if needed.",
                block_id="already_revoked",
            )
        )
    blocks += key_card_blocks(key, now, traffic)
    blocks.append(divider())
    blocks.append(
        _input(ids.MODE_BLOCK, "Mode", _choice("radio_buttons", ids.MODE_ACTION, _MODE_DICTS, default_mode))
    )
    blocks.append(
        _reason_input(
            ids.REASON_BLOCK,
            ids.REASON_ACTION,
            "Reason",
            "What happened and where did the key leak? Don't paste the key itself.",
            "Shown to the owners and kept on the incident timeline. Secrets are redacted.",
        )
    )
    blocks.append(
        _input(
            ids.SEVERITY_BLOCK,
            "Severity",
            _choice("static_select", ids.SEVERITY_ACTION, _SEVERITY_DICTS, "sev2"),
        )
    )
    blocks.append(
        context(
            "Production keys need a second on-call to approve the revoke step (two-person rule). "
            "Progress is posted as one message you can Retry, Skip or Abort from."
        )
    )
    if drill:
        return _view(
            ids.REVOKE_MODAL, DRILL_TITLE, blocks, submit="Start drill", private_metadata=private_metadata
        )
    return _view(
        ids.REVOKE_MODAL, "Revoke & replace key", blocks, submit="Start", private_metadata=private_metadata
    )


def _candidate_option(key: Key) -> Option:
    label = f"#{key.id} {key.name} · {key.environment}" + (f" · {key.redacted}" if key.redacted else "")
    return Option(
        value=ids.ActionRef(kind="key", id=str(key.id)).encode(),
        text=limits.plain(label, limits.OPTION_TEXT),
    )


def pick_key_modal(candidates: Sequence[Key], private_metadata: ids.ActionRef) -> dict[str, Any]:
    """More than one key matched: choose one (option values are ``ActionRef(kind="key")``)."""
    shown = list(candidates[: limits.SELECT_OPTIONS])
    blocks = [
        section(
            f"*{len(candidates)} keys match what you typed.* Pick the one that leaked:", block_id="pick_intro"
        ),
        InputBlock(
            block_id=ids.PICK_KEY_BLOCK,
            label=PlainTextObject(text="Key"),
            element=StaticSelectElement(
                action_id=ids.PICK_KEY,
                placeholder=PlainTextObject(text="Choose a key"),
                options=[_candidate_option(k) for k in shown],
            ),
        ).to_dict(),
    ]
    blocks += [section(text) for text in chunk_lines(candidate_lines(candidates))]
    return _view(
        ids.PICK_KEY_MODAL, "Which key?", blocks, submit="Continue", private_metadata=private_metadata
    )


def search_modal(
    suggestions: Sequence[str],
    message: str | None,
    private_metadata: ids.ActionRef | None = None,
) -> dict[str, Any]:
    """No argument, or nothing matched: ask for the key again (a pasted secret is fine, it is never shown)."""
    blocks: list[Block] = []
    if message:
        blocks.append(section(limits.mrkdwn(message, 1000), block_id="search_message"))
    blocks.append(
        InputBlock(
            block_id=ids.SEARCH_BLOCK,
            label=PlainTextObject(text="Which key leaked?"),
            element=PlainTextInputElement(
                action_id=ids.SEARCH_ACTION,
                max_length=1000,
                placeholder=PlainTextObject(text="Key name, #id, provider key id, or sk-...Xy9Q"),
            ),
            hint=PlainTextObject(
                text="Pasting the secret itself works too: it is fingerprinted, never stored or shown."
            ),
        ).to_dict()
    )
    if suggestions:
        names = ", ".join(limits.code(s, 100) for s in suggestions[:10])
        blocks.append(section(f"Did you mean {names}?", block_id="suggestions"))
    return _view(
        ids.SEARCH_MODAL, "Revoke a key", blocks, submit="Find key", private_metadata=private_metadata
    )


def error_modal(title: str, message: str) -> dict[str, Any]:
    """Something went wrong or was refused: say why and what to do, with only a Close button."""
    return _view(
        ids.ERROR_MODAL,
        title,
        [section(f"⚠️ {limits.mrkdwn(message, 2900)}", block_id="error")],
        close="Close",
    )


def skip_reason_modal(
    run_id: str, step: str, step_title: str | None = None, version: int | None = None
) -> dict[str, Any]:
    """Skipping a step needs a reason; it goes on the incident timeline with the skipper's name."""
    what = limits.mrkdwn(step_title or step, 200)
    blocks = [
        section(f"Skip *{what}* in run `{limits.mrkdwn(run_id, 60)}`?", block_id="skip_intro"),
        _reason_input(
            ids.SKIP_REASON_BLOCK,
            ids.SKIP_REASON_ACTION,
            "Why skip it?",
            "e.g. done by hand in the vendor console",
            "Recorded on the incident timeline with your name.",
        ),
    ]
    ref = ids.run_ref(run_id, step, version)
    return _view(ids.SKIP_MODAL, "Skip step", blocks, submit="Skip step", private_metadata=ref)


def abort_modal(run_id: str, incident: bool = True) -> dict[str, Any]:
    """Aborting stops the run where it is; nothing already done is undone, so say so before asking why."""
    blocks = [
        section(
            f"Abort run `{limits.mrkdwn(run_id, 60)}`? It stops where it is. Steps already done are *not* "
            "undone, and the key is unlocked for a new run.",
            block_id="abort_intro",
        ),
        _reason_input(
            ids.ABORT_REASON_BLOCK,
            ids.ABORT_REASON_ACTION,
            "Why abort?",
            "e.g. false alarm: the key in the screenshot was already revoked",
            "Recorded on the incident timeline with your name.",
        ),
    ]
    if incident:
        blocks.append(_incident_outcome_input())
    ref = ids.ActionRef(kind="run", id=run_id)
    return _view(ids.ABORT_MODAL, "Abort run", blocks, submit="Abort run", private_metadata=ref)


INCIDENT_OUTCOMES = (
    ("keep_open", "Keep the incident open (the key stays compromised)"),
    ("resolve", "Resolve the incident"),
    ("false_alarm", "False alarm: restore the key's previous status"),
)


def _incident_outcome_input() -> dict[str, Any]:
    options = [
        {"text": {"type": "plain_text", "text": label}, "value": value} for value, label in INCIDENT_OUTCOMES
    ]
    element = {
        "action_id": ids.ABORT_OUTCOME_ACTION,
        "initial_option": copy.deepcopy(options[0]),
        "options": options,
        "type": "radio_buttons",
    }
    return _input(ids.ABORT_OUTCOME_BLOCK, "And the incident?", element)


def mark_done_modal(run_id: str, step: str, step_title: str, version: int | None) -> dict[str, Any]:
    """Marking a step done by hand is an attestation: say what was done, where, and by whom."""
    what = limits.mrkdwn(step_title, 200)
    blocks = [
        section(
            f"Mark *{what}* done in run `{limits.mrkdwn(run_id, 60)}`? You confirm you did it by hand; "
            "keybot records it as confirmed by you, not verified by keybot.",
            block_id="done_intro",
        ),
        _reason_input(
            ids.DONE_NOTE_BLOCK,
            ids.DONE_NOTE_ACTION,
            "What did you do?",
            "e.g. deleted the key in the vendor console at 03:12",
            "Recorded on the incident timeline with your name.",
        ),
    ]
    ref = ids.run_ref(run_id, step, version)
    return _view(ids.DONE_MODAL, "Mark step done", blocks, submit="Mark done", private_metadata=ref)


def resolve_incident_modal(incident_id: int, false_alarm: bool) -> dict[str, Any]:
    """Resolving or calling a false alarm needs a reason; a false alarm also restores the key's status."""
    what = "a false alarm" if false_alarm else "resolved"
    blocks = [
        section(
            f"Mark {reference_for(incident_id)} as {what}?"
            + (" The key's status before the incident is restored." if false_alarm else ""),
            block_id="incident_intro",
        ),
        _reason_input(
            ids.INCIDENT_REASON_BLOCK,
            ids.INCIDENT_REASON_ACTION,
            "Why?",
            "e.g. the leaked string was a revoked test key"
            if false_alarm
            else "e.g. key revoked and replaced",
            "Recorded on the incident timeline with your name.",
        ),
    ]
    ref = ids.ActionRef(
        kind="incident", id=str(incident_id), extra={"as": "false_alarm" if false_alarm else "resolve"}
    )
    title = "False alarm" if false_alarm else "Resolve incident"
    return _view(ids.INCIDENT_MODAL, title, blocks, submit=title, private_metadata=ref)


def note_modal(incident_id: int) -> dict[str, Any]:
    """A note for the incident's timeline; the postmortem draft is redrawn from the timeline."""
    blocks = [
        section(f"Add a note to {reference_for(incident_id)}'s timeline.", block_id="note_intro"),
        _reason_input(
            ids.NOTE_BLOCK,
            ids.NOTE_ACTION,
            "Note",
            "e.g. the key was also in the staging .env on the shared drive",
            "Recorded on the incident timeline with your name; press Regenerate to redraw the draft.",
        ),
    ]
    ref = ids.ActionRef(kind="incident", id=str(incident_id))
    return _view(ids.NOTE_MODAL, "Add a note", blocks, submit="Add note", private_metadata=ref)
