"""Notes on an incident's timeline: what people add after the fact (context, what they saw, follow-ups).

The postmortem draft is rebuilt from the timeline, so a note is how a person corrects or completes it
before pressing Regenerate. Allowed to the incident's people (`Decision.ADD_NOTE`, the same people who may
regenerate the draft), checked here for every surface; a refusal changes nothing. Notes are redacted and
bounded like every reason keybot stores, and stay data: templates escape them, the LLM sees them quoted.
"""

from __future__ import annotations

from bot.access.policy import Actor, Decision, Policy
from bot.db.session import Database
from bot.incidents.models import Incident, reference_for
from bot.incidents.service import append_event
from bot.postmortems.regenerate import incident_subject
from bot.runbooks.decisions import clean
from bot.runbooks.refusals import RunRefused

NOTE_KIND = "note.added"
MAX_NOTE = 2000


def add_note(database: Database, incident_id: int, actor: Actor | str, text: str, *, policy: Policy) -> str:
    """Append `text` to the incident's timeline as `actor`; returns the incident's reference."""
    who = actor if isinstance(actor, Actor) else Actor(actor)
    note = clean(text)[:MAX_NOTE].strip()
    if not note:
        raise RunRefused("a note needs some text; nothing was added")
    with database.session() as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        if incident is None:
            raise RunRefused(f"no incident {reference_for(incident_id)}; nothing was added")
        policy.check(Decision.ADD_NOTE, who, incident_subject(session, incident))
        append_event(session, incident.id, NOTE_KIND, who.id, {"text": note})
        return incident.reference
