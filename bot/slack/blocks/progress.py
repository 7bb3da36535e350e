"""The incident thread: its parent message and the one live progress message that is updated in place.

The progress message carries only the buttons that make sense in the run's current state, each valued with
``ActionRef(kind="run", id=run.id, step=<current step>)`` so a stale click (the run moved on) is detectable.
"""

from __future__ import annotations

import re
from datetime import datetime

from slack_sdk.models.blocks import ButtonElement

from bot.incidents.models import Incident, reference_for
from bot.registry.models import Key, OwnerRole
from bot.runbooks import guarantees
from bot.runbooks.models import Run, RunStatus, RunStep, StepStatus
from bot.runbooks.render import progress_rows
from bot.slack import ids, limits
from bot.slack.blocks.common import (
    Block,
    actions,
    button,
    chunk_lines,
    confirm,
    context,
    duration,
    fields,
    header,
    section,
    when,
)

NOTE_LIMIT = 400
# bot.runbooks.service.abort writes "aborted by <actor>: <reason>"; the actor becomes a mention.
_ABORTED_BY = re.compile(r"^aborted by (\S+): (.*)$", re.DOTALL)
REASON_LIMIT = 500

RUN_MARK = {
    RunStatus.RUNNING: "▶",
    RunStatus.AWAITING_APPROVAL: "⏸",
    RunStatus.WAITING_MANUAL: "✋",
    RunStatus.WAITING: "⏳",
    RunStatus.NEEDS_ATTENTION: "⚠",
    RunStatus.SUCCEEDED: "✅",
    RunStatus.FINISHED_WITH_EXCEPTIONS: "⚠️",
    RunStatus.ABORTED: "⛔",
}
STEP_WORDS = {
    StepStatus.PENDING.value: "pending",
    StepStatus.RUNNING.value: "running",
    StepStatus.AWAITING_APPROVAL.value: "awaiting approval",
    StepStatus.WAITING_MANUAL.value: "waiting for a person",
    StepStatus.WAITING.value: "waiting",
    StepStatus.NEEDS_ATTENTION.value: "needs attention",
    StepStatus.SUCCEEDED.value: "done",
    StepStatus.SKIPPED.value: "skipped",
}
_CURRENT = {
    RunStatus.AWAITING_APPROVAL: (StepStatus.AWAITING_APPROVAL,),
    RunStatus.NEEDS_ATTENTION: (StepStatus.NEEDS_ATTENTION,),
    RunStatus.WAITING_MANUAL: (StepStatus.WAITING_MANUAL,),
    RunStatus.WAITING: (StepStatus.WAITING,),
    RunStatus.RUNNING: (StepStatus.RUNNING, StepStatus.PENDING),
}


def incident_reference(incident_id: int | None) -> str:
    return reference_for(incident_id) if incident_id is not None else "no incident"


def incident_header(incident: Incident, key: Key) -> tuple[str, list[Block]]:
    """The thread parent: what leaked, how bad, who opened it and why. Progress follows in the thread."""
    mark = "🧪" if incident.drill else "🚨"
    owners = ", ".join(limits.mention(u) for u in key.owner_ids(OwnerRole.OWNER)) or "nobody (unowned)"
    facts = [
        ("Severity", limits.mrkdwn(incident.severity.upper(), 20)),
        ("Status", limits.mrkdwn(incident.status.value, 40)),
        ("Key", f"{limits.code(key.name)} (#{key.id})"),
        ("Environment", limits.mrkdwn(key.environment, 40)),
        ("Owners", owners),
        ("Team", limits.mrkdwn(key.team.name, 100) if key.team else "none"),
        ("Opened by", limits.mention(incident.opened_by)),
        ("Opened", when(incident.opened_at)),
    ]
    if incident.contained_at:
        facts.append(("Contained", when(incident.contained_at)))
    if incident.resolved_at:
        facts.append(("Resolved", when(incident.resolved_at)))
    blocks = [
        header(f"{mark} {incident.reference} · {incident.title}", block_id="incident_header"),
        *fields(facts, block_id="incident_facts"),
    ]
    if incident.reason:
        blocks.append(
            section(f"*Reason*\n{limits.mrkdwn(incident.reason, REASON_LIMIT)}", block_id="incident_reason")
        )
    if not incident.status.closed:
        ref = ids.ActionRef(kind="incident", id=str(incident.id))
        blocks.append(
            actions(
                [
                    button("Resolve…", ids.RESOLVE_INCIDENT, ref),
                    button("False alarm…", ids.FALSE_ALARM, ref),
                    button("Add a note…", ids.ADD_NOTE, ref),
                ],
                block_id="incident_actions",
            )
        )
    blocks.append(
        context(
            "Progress, approvals and decisions follow in this thread; the incident timeline is the record.",
            block_id="incident_footer",
        )
    )
    text = limits.mrkdwn(
        f"{incident.reference} {incident.title} ({incident.severity}, opened by {incident.opened_by})",
        limits.FALLBACK_TEXT,
    )
    return text, blocks


def current_step(run: Run) -> RunStep | None:
    """The step the run's status is about (None once the run has finished)."""
    for status in _CURRENT.get(run.status, ()):
        step = next((s for s in run.steps if s.status is status), None)
        if step is not None:
            return step
    return None


def _step_lines(run: Run, current: RunStep | None, now: datetime | None) -> list[str]:
    lines = []
    for step, row in zip(run.steps, progress_rows(run), strict=True):
        title = limits.mrkdwn(row.title, 80)
        title = f"*{title}*" if step is current else title
        line = f"{row.mark} {title} — {STEP_WORDS.get(row.status, row.status)}"
        seconds = row.seconds
        if seconds is None and now is not None and step.status is StepStatus.RUNNING and step.started_at:
            seconds = (now - step.started_at).total_seconds()
        if seconds is not None and step.status is not StepStatus.SKIPPED:
            line += f" ({duration(seconds)})"
        note = limits.mrkdwn(row.note, NOTE_LIMIT)
        if step.status is StepStatus.SKIPPED:
            note = limits.mrkdwn(row.note.removeprefix("skipped: "), NOTE_LIMIT)
        elif step.approved_by and row.note == f"approved by {step.approved_by}":
            note = f"approved by {limits.mention(step.approved_by)}"
        if note and step.status is not StepStatus.WAITING_MANUAL:  # the checklist is shown below
            line += f": {note}"
        lines.append(line)
    return lines


def _ref(run: Run, step: RunStep | None) -> ids.ActionRef:
    return ids.run_ref(run.id, step.name if step else None, run.version)


def _abort_button(run: Run, step: RunStep | None, key: Key) -> ButtonElement:
    return button(
        "Abort",
        ids.ABORT,
        _ref(run, step),
        style="danger",
        confirm_with=confirm(
            "Abort this run?",
            f"Stop run `{limits.mrkdwn(run.id, 60)}` on *{limits.mrkdwn(key.name, 80)}* where it is? "
            "Steps already done are not undone; the key is unlocked for a new run.",
            "Abort run",
            style="danger",
        ),
    )


def _state(
    run: Run, key: Key, step: RunStep | None, approvers_hint: str | None
) -> tuple[str, list[ButtonElement]]:
    """The status paragraph and the buttons that apply right now."""
    initiator = limits.mention(run.initiated_by)
    title = limits.mrkdwn(step.title, 80) if step else ""
    if run.status is RunStatus.AWAITING_APPROVAL and step is not None:
        who = f"a second on-call, not {initiator}"
        text = f"⏸ *Waiting for approval* of *{title}*. Approver: {who} (two-person rule)."
        if run.drill:  # rehearsed like the real thing, and nobody may take it for the real thing
            text = f"🧪 *[DRILL] Drill approval*: rehearsing the two-person rule.\n{text}"
        if approvers_hint:
            text += f"\nWho can approve: {limits.mrkdwn(approvers_hint, 300)}"
        approve = button(
            "Approve",
            ids.APPROVE,
            _ref(run, step),
            style="primary",
            confirm_with=confirm(
                "Approve this step?",
                f"Approve *{title}* on *{limits.mrkdwn(key.name, 80)}* "
                f"({limits.mrkdwn(key.environment, 20)})? "
                f"Two-person rule: the approver must be {who}.",
                "Approve",
                style="primary",
            ),
        )
        return text, [approve, _abort_button(run, step, key)]
    if run.status is RunStatus.NEEDS_ATTENTION and step is not None:
        problem = run.attention or step.last_error or "the step failed"
        text = f"⚠ *Needs attention* at *{title}*: {limits.mrkdwn(problem, 1500)}"
        buttons = [button("Retry step", ids.RETRY, _ref(run, step), style="primary")]
        if step.action != "identify":
            buttons.append(button("Done by hand…", ids.MARK_DONE, _ref(run, step)))
            buttons.append(button("Skip…", ids.SKIP, _ref(run, step)))
        return text, [*buttons, _abort_button(run, step, key)]
    if run.status is RunStatus.WAITING and step is not None:
        why = limits.mrkdwn(str(step.output.get("waiting") or "waiting"), 1500)
        return f"⏳ *Waiting* at *{title}*: {why}", [_abort_button(run, step, key)]
    if run.status is RunStatus.WAITING_MANUAL and step is not None and step.output.get("decide"):
        question = limits.mrkdwn(str(step.output.get("instructions") or ""), 2000)
        buttons = [
            button(
                "Revoke now",
                ids.REVOKE_NOW,
                _ref(run, step),
                style="danger",
                confirm_with=confirm(
                    "Revoke the old key now?",
                    "Consumers that have not redeployed will fail until they read the new Vault version.",
                    "Revoke now",
                    style="danger",
                ),
            ),
            button("Wait 30 min longer", ids.WAIT_LONGER, _ref(run, step)),
        ]
        return f"❓ *Decide* at *{title}*: {question}", [*buttons, _abort_button(run, step, key)]
    if run.status is RunStatus.WAITING_MANUAL and step is not None:
        checklist = str(step.output.get("instructions") or f"Do '{step.title}' by hand.")
        text = f"✋ *Waiting for a person* at *{title}*. Checklist:\n>" + limits.mrkdwn(
            checklist, 2000
        ).replace("\n", "\n>")
        done = button("Mark done…", ids.MARK_DONE, _ref(run, step), style="primary")
        buttons = [done]
        if step.action != "identify":
            buttons.append(button("Skip…", ids.SKIP, _ref(run, step)))
        return text, [*buttons, _abort_button(run, step, key)]
    if run.status is RunStatus.FINISHED_WITH_EXCEPTIONS:
        missing = guarantees.exceptions(list(run.steps))
        lines = "\n".join(f"• {limits.mrkdwn(line, 300)}" for line in missing[:10])
        text = (
            f"⚠️ *Finished with exceptions* {when(run.finished_at)}. Not everything was done by keybot:\n"
            f"{lines}\nThe key stays *compromised* and the incident open until someone resolves it."
        )
        return text, []
    if run.status is RunStatus.SUCCEEDED:
        took = ""
        if run.finished_at is not None:
            took = f" in {duration((run.finished_at - run.created_at).total_seconds())}"
        skipped = sum(1 for s in run.steps if s.status is StepStatus.SKIPPED)
        text = f"✅ *Succeeded*{took}; finished {when(run.finished_at)}."
        if skipped:
            text += f" {skipped} step(s) skipped, see the reasons above."
        for line in guarantees.attestations(list(run.steps))[:10]:
            text += f"\n☑ {limits.mrkdwn(line, 300)}"
        return text, []
    if run.status is RunStatus.ABORTED:
        attention = run.attention or "no reason recorded"
        by = _ABORTED_BY.match(attention)
        if by is not None:
            who, why = limits.mention(by.group(1)), limits.mrkdwn(by.group(2), 1500)
            return f"⛔ *Aborted* by {who} at {when(run.finished_at)}: {why}", []
        return f"⛔ *Aborted* at {when(run.finished_at)}: {limits.mrkdwn(attention, 1500)}", []
    doing = f" *{title}*" if title else ""
    return f"▶ *Running*{doing}…", [_abort_button(run, step, key)]


def progress_message(
    run: Run, key: Key, *, approvers_hint: str | None = None, now: datetime | None = None
) -> tuple[str, list[Block]]:
    """One message with every step's state; ``now`` (optional) adds the running step's elapsed time."""
    step = current_step(run)
    drill = " · *[DRILL]*" if run.drill else ""
    head = [
        section(
            f"{RUN_MARK[run.status]} *{limits.mrkdwn(key.name, 200)}* "
            f"({limits.mrkdwn(key.environment, 40)}) · "
            f"`{limits.mrkdwn(run.runbook, 64)}` · {limits.mrkdwn(run.mode, 32)} mode{drill}",
            block_id="run_title",
        ),
        context(
            f"Started by {limits.mention(run.initiated_by)} · {when(run.created_at)}",
            f"Reason: {limits.mrkdwn(run.reason or 'not given', REASON_LIMIT)}",
            block_id="run_meta",
        ),
    ]
    for index, text in enumerate(chunk_lines(_step_lines(run, step, now))):
        head.append(section(text, block_id=f"run_steps_{index}"))
    status_text, buttons = _state(run, key, step, approvers_hint)
    tail = [section(status_text, block_id="run_status")]
    if buttons:
        tail.append(actions(buttons, block_id="run_actions"))
    tail.append(
        context(
            f"run `{limits.mrkdwn(run.id, 60)}` · {incident_reference(run.incident_id)} · "
            f"full history: `keybot runs show {limits.mrkdwn(run.id, 60)}`",
            block_id="run_footer",
        )
    )
    blocks = limits.fit_blocks(
        [*head, *tail], limits.MESSAGE_BLOCKS, see=f"keybot runs show {run.id}", keep_tail=len(tail)
    )
    where = f" at {step.title}" if step else ""
    text = limits.mrkdwn(
        f"{RUN_MARK[run.status]} {key.name}: {run.status.value.replace('_', ' ')}{where}",
        limits.FALLBACK_TEXT,
    )
    return text, blocks
