"""What a run can promise, and what it must admit it did not do.

A run ends `succeeded` only when every step keybot performs itself succeeded by keybot's own hand. A
skipped step, or one marked done by hand after it failed, is an exception: the run ends
`finished_with_exceptions`, the key stays compromised and the incident open. A manual-vendor step (no API)
marked done is an attestation: it is allowed, and always worded as "confirmed by …, not verified by keybot".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from bot.runbooks.models import StepStatus

MISSING = {
    "identify": "the key was NOT identified and locked by keybot",
    "assess": "the exposure was NOT assessed",
    "contain": "the key was NOT contained",
    "mint": "NO replacement was minted",
    "distribute": "consumers were NOT asked to redeploy",
    "verify_new": "the replacement was NOT verified to work",
    "revoke_old": "the leaked key was NOT revoked by keybot",
    "verify_revoked": "the leaked key was NOT verified revoked",
    "audit": "the exposure window was NOT audited",
    "cleanup": "the leaked Vault version was NOT destroyed",
    "notify": "owners and managers were NOT notified by keybot",
}


class StepLike(Protocol):
    name: str
    action: str
    title: str
    status: StepStatus
    skip_reason: str | None
    done_by: str | None
    output: dict[str, Any]


def missing_guarantee(action: str) -> str:
    return MISSING.get(action, f"step {action} was NOT done by keybot")


def exceptions(steps: list[StepLike]) -> list[str]:
    """One line per missing guarantee, in run order (empty: the run may claim success)."""
    lines = []
    for step in steps:
        if step.status is StepStatus.SKIPPED:
            by = step.output.get("skipped_by")
            who = f" by {_name(by)}" if by else ""
            lines.append(
                f"{missing_guarantee(step.action)}: {step.title} was skipped{who}"
                f" ({step.skip_reason or 'no reason recorded'})"
            )
        elif step.status is StepStatus.SUCCEEDED and step.output.get("by_hand"):
            lines.append(
                f"{missing_guarantee(step.action)}: {step.title} was marked done by hand by "
                f"{_name(step.done_by or '?')} after it failed"
            )
    return lines


def attestations(steps: list[StepLike]) -> list[str]:
    """Manual-vendor steps a person confirmed: never worded as verified."""
    lines = []
    for step in steps:
        attested = step.output.get("attested_by")
        if step.status is StepStatus.SUCCEEDED and attested:
            at = step.output.get("attested_at") or ""
            when = f" at {_time(at)}" if at else ""
            lines.append(f"{step.title}: confirmed by {_name(attested)}{when}, not verified by keybot")
    return lines


def _name(identity: str) -> str:
    return identity if identity.startswith("cli:") else f"<@{identity}>"


def _time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso
