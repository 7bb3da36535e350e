"""Pure renderings of runbooks and runs: the one-page runbook document and a run's progress rows."""

from __future__ import annotations

from dataclasses import dataclass

from bot.runbooks.definitions import RunbookDefinition
from bot.runbooks.models import Run, StepStatus

STATUS_MARK = {
    StepStatus.PENDING: "·",
    StepStatus.RUNNING: "▶",
    StepStatus.AWAITING_APPROVAL: "⏸",
    StepStatus.WAITING_MANUAL: "✋",
    StepStatus.WAITING: "⏳",
    StepStatus.NEEDS_ATTENTION: "⚠",
    StepStatus.SUCCEEDED: "✓",
    StepStatus.SKIPPED: "↷",
}


def runbook_document(definition: RunbookDefinition) -> str:
    """Markdown a security lead can hand to a new on-call engineer."""
    lines = [f"# {definition.title}", "", definition.description.strip(), ""]
    for mode, names in definition.modes.items():
        default = " (default)" if mode == definition.default_mode else ""
        lines += [f"## {mode.capitalize()} mode{default}", ""]
        for number, name in enumerate(names, 1):
            step = definition.steps[name]
            lines.append(f"{number}. **{step.title}** (`{step.action}`)")
            if step.approval and (step.approval.modes is None or mode in step.approval.modes):
                who = (
                    "a second person (not the one who started the run)"
                    if step.approval.two_person
                    else "anyone"
                )
                lines.append(f"   - Needs approval in {', '.join(step.approval.environments)} from {who}.")
            if step.manual:
                lines.append("   - Done by hand: " + (step.instructions or "follow the checklist") + ".")
            if step.optional:
                lines.append("   - Optional: skipped when the provider cannot do it.")
            if step.retries:
                lines.append(f"   - Retried up to {step.retries} times on transient errors.")
            if step.tells:
                lines.append(f"   - Who is told: {step.tells}")
        lines.append("")
    lines += [
        "## Rules that always hold",
        "",
        "- Staged mode never revokes before the replacement is verified.",
        "- The leaked Vault version is destroyed only after revocation is verified.",
        "- Every outside change is recorded on the incident timeline before and after it happens.",
        "- One run per key at a time; a second request is told who holds the key.",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ProgressRow:
    mark: str
    title: str
    status: str
    seconds: float | None
    note: str


def progress_rows(run: Run) -> list[ProgressRow]:
    rows = []
    for step in run.steps:
        note = ""
        if step.status is StepStatus.NEEDS_ATTENTION and step.last_error:
            note = step.last_error
        elif step.status is StepStatus.RUNNING and step.last_error:
            note = f"retrying: {step.last_error}"
        elif step.status is StepStatus.SKIPPED:
            note = f"skipped: {step.skip_reason}"
        elif step.output.get("by_hand"):
            note = f"marked done by hand by {step.done_by} after it failed, not verified by keybot"
        elif step.output.get("attested_by"):
            note = f"confirmed by {step.output['attested_by']}, not verified by keybot"
        elif step.status is StepStatus.WAITING:
            note = str(step.output.get("waiting", "waiting"))
        elif step.status is StepStatus.WAITING_MANUAL:
            note = str(step.output.get("instructions", ""))
        elif step.status is StepStatus.AWAITING_APPROVAL:
            note = "waiting for a second person to approve"
        elif step.approved_by:
            note = f"approved by {step.approved_by}"
        pending = step.output.get("pending")
        if isinstance(pending, dict) and not step.status.done:
            asked = str(pending.get("decision", "")).replace("_", " ")
            note = f"{pending.get('by')} asked to {asked} it; a second person must confirm"
        rows.append(
            ProgressRow(STATUS_MARK[step.status], step.title, step.status.value, step.duration_seconds, note)
        )
    return rows
