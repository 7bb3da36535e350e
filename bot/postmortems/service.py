"""Drafting a postmortem and the manager summary: facts → optional LLM narrative → template → checks.

There is always a draft. Without an LLM, or when it fails, the template-only draft is produced; a broken
user template falls back to the built-in one. Both are said in `warnings`, never silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.config import get_settings
from bot.db.base import utcnow
from bot.db.session import Database
from bot.log import get_logger
from bot.postmortems.blame import blaming_phrases
from bot.postmortems.facts import build_facts, facts_as_data
from bot.postmortems.settings import postmortem_settings
from bot.postmortems.templating import Rendered, render
from bot.postmortems.types import Narrative, PostmortemFacts

log = get_logger(__name__)

TIMING_LABELS = {
    "detect": "Detect (incident opened)",
    "acknowledge": "Acknowledge (first person acted)",
    "contain": "Contain (old key revoked or narrowed)",
    "replace": "Replace (replacement verified)",
    "revoke": "Revoke (revocation verified)",
    "verify": "Verify (every guarantee held)",
}


@dataclass(frozen=True)
class Draft:
    reference: str
    markdown: str
    warnings: tuple[str, ...]
    path: Path | None
    used_llm: bool


def context_of(facts: PostmortemFacts, *, generated_at: datetime | None = None) -> dict[str, Any]:
    """What the postmortem and manager summary templates see (documented in docs/postmortems.md)."""
    return {
        **facts_as_data(facts),
        "timing_labels": dict(TIMING_LABELS),
        "generated_at": generated_at.isoformat() if generated_at else None,
    }


def _llm_wanted(llm: bool | None) -> bool:
    if llm is not None:
        return llm
    return postmortem_settings().llm and get_settings().openai_api_key is not None


def _narrate(facts: PostmortemFacts) -> tuple[Narrative | None, list[str]]:
    """L's narrative and what to warn about; never raises (a draft must come out whatever the LLM does)."""
    try:
        from bot.postmortems.narrative import narrate
    except ImportError:
        return None, ["the LLM narrative is not available in this build; drafted from the template only"]
    try:
        result = narrate(facts)
    except Exception as error:  # narrate promises not to raise; a draft must come out even if it does
        log.warning("postmortem narrative failed", error=type(error).__name__)
        return None, [f"the LLM narrative failed ({type(error).__name__}); drafted from the template only"]
    warnings = [str(w) for w in getattr(result, "warnings", ())]
    if result.narrative is None:
        problem = result.problem or "no answer"
        return None, [*warnings, f"no LLM narrative ({problem}); drafted from the template only"]
    return result.narrative, warnings


def _narrative_blame(narrative: Narrative) -> list[str]:
    found: list[str] = []
    for name in ("summary", "impact", "root_cause", "trigger", "went_well", "went_wrong", "got_lucky"):
        value = getattr(narrative, name)
        for phrase in blaming_phrases(" ".join(value) if isinstance(value, tuple) else value):
            found.append(f"blaming language in the LLM's {name.replace('_', ' ')}: {phrase!r}")
    return found


def draft_dir() -> Path:
    configured = postmortem_settings().postmortem_dir
    return configured if configured is not None else get_settings().state_dir / "postmortems"


def draft_postmortem(
    database: Database,
    incident_id: int,
    *,
    llm: bool | None = None,
    save: bool = True,
    now: datetime | None = None,
) -> Draft:
    """The incident's postmortem draft, saved as `<reference>.md` unless `save` is False.

    Raises UnknownIncident (a RunRefused) when there is no such incident; otherwise always returns a draft.
    """
    now = now or utcnow()
    with database.session() as session:
        facts = build_facts(session, incident_id, now=now)
    warnings = list(facts.warnings)
    used_llm = False
    if _llm_wanted(llm):
        narrative, said = _narrate(facts)
        warnings += said
        if narrative is not None:
            used_llm = True
            warnings += [w for w in _narrative_blame(narrative) if w not in warnings]
            facts = dataclasses.replace(facts, narrative=narrative)
    facts = dataclasses.replace(facts, warnings=tuple(warnings))
    rendered = render("postmortem.md.j2", context_of(facts, generated_at=now))
    warnings += rendered.warnings
    path = _save(facts.reference, rendered.text, warnings) if save else None
    return Draft(facts.reference, rendered.text, tuple(warnings), path, used_llm)


def _save(reference: str, text: str, warnings: list[str]) -> Path | None:
    """Written atomically (no reader sees half a draft); a failed write is a warning, not a lost draft."""
    folder = draft_dir()
    path = folder / f"{reference}.md"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".md.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as error:
        warnings.append(f"could not save the draft to {path}: {error.strerror or type(error).__name__}")
        return None
    return path


def manager_summary(database: Database, incident_id: int, *, now: datetime | None = None) -> Rendered:
    """The manager DM's body (Slack mrkdwn) from manager_summary.md.j2: what happened, impact, time to
    contain, who approved, any exception, status. Drafts of drills are labelled; S never sends them to
    managers."""
    with database.session() as session:
        facts = build_facts(session, incident_id, now=now)
    return render("manager_summary.md.j2", context_of(facts))
