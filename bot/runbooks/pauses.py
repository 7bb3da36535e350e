"""How a step pauses a run: for a person (a failure to look at, a checklist, a decision) or for time (a
durable wait the clock ends). Each records the step's state and its timeline event in the run's journal;
the engine commits them with the next write.
"""

from __future__ import annotations

from bot.log import get_logger
from bot.runbooks import journal
from bot.runbooks.context import WaitFor
from bot.runbooks.journal import StepState
from bot.runbooks.models import RunStatus, StepStatus
from bot.secrets import redact

log = get_logger("bot.runbooks.engine")  # the engine's own logger, as before these moved here


def needs_attention(book: journal.Journal, step: StepState, reason: str) -> None:
    """Stop for a person: the step failed in a way retrying will not fix (the reason is redacted)."""
    reason = redact(reason)[:1000]
    run = book.run
    step.status = StepStatus.NEEDS_ATTENTION
    step.last_error = reason
    run.status = RunStatus.NEEDS_ATTENTION
    run.attention = f"{step.title}: {reason}"
    book.changed(step)
    book.event("step.needs_attention", {"reason": reason}, step=step.name)
    log.warning("step needs attention", run_id=run.id, step=step.name, reason=reason)  # to keybot.log


def wait_for_human(
    book: journal.Journal, step: StepState, instructions: str, *, decide: bool = False
) -> None:
    """Pause for a person: a checklist to do and mark done, or (`decide`) a choice to make."""
    step.status = StepStatus.WAITING_MANUAL
    step.output = {"instructions": instructions, **({"decide": True} if decide else {})}
    book.run.status = RunStatus.WAITING_MANUAL
    book.run.wake_at = None
    book.changed(step)
    kind = "step.waiting_decision" if decide else "step.waiting_manual"
    book.event(kind, {"instructions": instructions}, step=step.name)


def durable_wait(book: journal.Journal, step: StepState, wait: WaitFor) -> None:
    """A durable wait: the run gives its lease back at once and the clock wakes it at `wake_at`."""
    first = step.status is not StepStatus.WAITING and "waiting" not in step.output
    step.status = StepStatus.WAITING
    step.output = {**step.output, "waiting": str(wait)}
    step.attempts = 0  # waiting is not failing: a wake-up is never counted against the retries
    book.run.status = RunStatus.WAITING
    book.run.wake_at = wait.until
    book.changed(step)
    if first:
        book.event("step.waiting", {"why": str(wait), "until": wait.until.isoformat()}, step=step.name)
