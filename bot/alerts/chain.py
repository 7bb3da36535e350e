"""The escalation chain: who is paged after how many minutes without an acknowledgement.

Written as `backup:15,channel:30,manager:60` (minutes after the owner's page), per team or as the global
default. The owner is always paged first, at once. Parsing is pure so the registry validates with it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.alerts.types import PageStep

MAX_MINUTES = 7 * 24 * 60
DEFAULT_ESCALATION = "backup:15,channel:30,manager:60"


@dataclass(frozen=True)
class Chain:
    """Steps after the owner, each with its delay from the opening page, strictly increasing."""

    steps: tuple[tuple[PageStep, int], ...]

    def after(self, step: PageStep) -> list[tuple[PageStep, int]]:
        """The steps that come after `step`, in order."""
        if step is PageStep.OWNER:
            return list(self.steps)
        names = [s for s, _ in self.steps]
        return list(self.steps[names.index(step) + 1 :]) if step in names else []

    def deadline(self, opened_at: datetime, step: PageStep) -> datetime | None:
        """When the step after `step` is due, or None at the end of the chain."""
        rest = self.after(step)
        return opened_at + timedelta(minutes=rest[0][1]) if rest else None

    def text(self) -> str:
        return ",".join(f"{s.value}:{m}" for s, m in self.steps)


def parse_chain(value: str) -> Chain:
    """`backup:15,channel:30,manager:60` → a Chain; "" or "none" pages the owner only. ValueError if bad."""
    text = value.strip().lower()
    if text in ("", "none", "owner"):
        return Chain(())
    steps: list[tuple[PageStep, int]] = []
    allowed = {s.value for s in PageStep if s is not PageStep.OWNER}
    for part in text.split(","):
        name, sep, minutes = part.strip().partition(":")
        name, minutes = name.strip(), minutes.strip()
        if not sep or name not in allowed or not minutes.isdigit() or len(minutes) > 6:
            raise ValueError(
                f"expected step:minutes pairs like {DEFAULT_ESCALATION} (steps: backup, channel, manager); "
                f"got {part.strip()[:40]!r}"
            )
        step, delay = PageStep(name), int(minutes)
        if not 1 <= delay <= MAX_MINUTES:
            raise ValueError(f"{name}: minutes must be between 1 and {MAX_MINUTES}")
        if any(s is step for s, _ in steps):
            raise ValueError(f"{name} appears twice in the escalation chain")
        if steps and delay <= steps[-1][1]:
            raise ValueError(f"{name}:{delay} must come later than {steps[-1][0].value}:{steps[-1][1]}")
        steps.append((step, delay))
    return Chain(tuple(steps))


def check_chain(value: str | None) -> str | None:
    """Validate and normalise a stored chain (None stays None: the global default applies)."""
    if value is None:
        return None
    return parse_chain(value).text() or "none"
