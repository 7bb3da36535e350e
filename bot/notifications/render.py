"""Pure renderings of the messages a run sends; Slack turns the same facts into Block Kit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.notifications.service import Message


def _where(facts: dict[str, Any]) -> str:
    if facts.get("new_version") is None:
        return "no replacement was minted"
    return f"Vault `{facts['vault_path']}` version {facts['new_version']}"


def cost_text(cost: object) -> str:
    """`None` means the provider could not say: "unknown", never "None USD" or a made-up 0."""
    return "unknown" if cost is None else f"{cost} USD"


def _caveats(facts: dict[str, Any]) -> str:
    """Exactly which guarantees are missing and which steps a person vouched for (never "verified")."""
    lines = [f"⚠ {line}" for line in facts.get("exceptions") or []]
    lines += [f"☑ {line}" for line in facts.get("attestations") or []]
    return "".join(f"\n{line}" for line in lines)


def outcome_verb(facts: dict[str, Any]) -> str:
    """What the run may claim: "revoked and replaced" only when nothing was skipped or hand-marked."""
    if facts.get("exceptions"):
        return "handled WITH EXCEPTIONS (see below; the incident stays open)"
    return "rotated" if facts.get("runbook") == "rotate" else "revoked and replaced"


def for_drill(facts: dict[str, Any], messages: list[Message]) -> list[Message]:
    """In a drill only its starter hears anything: each message goes to them instead, labelled with
    whom it would have gone to (owners, backups, consumers, the manager, the team channel)."""
    starter = facts.get("actor")
    if not facts.get("drill") or not starter:
        return messages
    return [
        replace(
            m,
            recipient=starter,
            body=f"(drill: would have gone to {_addressee(m)})\n{m.body}",
            facts={**m.facts, "drill_for": m.recipient},
        )
        for m in messages
    ]


def _addressee(message: Message) -> str:
    return f"#{message.recipient}" if message.kind == "channel" else f"@{message.recipient}"


def owner_messages(facts: dict[str, Any]) -> list[Message]:
    """Owners and backups: what happened, who did it and why, where the replacement is, what to do."""
    drill = "[DRILL] " if facts.get("drill") else ""
    verb = outcome_verb(facts)
    subject = f"{drill}{facts['key_name']} was {verb.split(' (')[0]}"
    consumers = ", ".join(facts.get("consumers") or []) or "none recorded"
    body = (
        f"{drill}Your key *{facts['key_name']}* ({facts.get('redacted') or 'redacted form unknown'}, "
        f"{facts['environment']}) was {verb} by {facts['actor']} (mode: {facts['mode']}).\n"
        f"Reason: {facts.get('reason') or 'not given'}\n"
        f"Replacement: {_where(facts)}; new key id {facts.get('new_key_id') or '-'}.\n"
        f"What you must do: redeploy every consumer ({consumers}) "
        "so it reads the current Vault version." + _caveats(facts)
    )
    messages = [Message("owner_dm", owner, subject, body, facts) for owner in facts.get("owners", [])]
    messages += [Message("backup_dm", backup, subject, body, facts) for backup in facts.get("backups", [])]
    return for_drill(facts, messages)


def channel_message(facts: dict[str, Any]) -> list[Message]:
    if not facts.get("team_channel"):
        return []
    drill = "[DRILL] " if facts.get("drill") else ""
    body = (
        f"{drill}{facts['key_name']} ({facts['environment']}) finished {facts['runbook']} "
        f"in {facts['mode']} mode{' WITH EXCEPTIONS' if facts.get('exceptions') else ''}; "
        f"replacement in {_where(facts)}. Incident {facts.get('incident') or '-'}." + _caveats(facts)
    )
    return for_drill(
        facts, [Message("channel", facts["team_channel"], f"{drill}{facts['key_name']}: done", body, facts)]
    )


def manager_summary(facts: dict[str, Any]) -> list[Message]:
    if not facts.get("manager") or not facts.get("incident"):
        return []
    drill = "[DRILL] " if facts.get("drill") else ""
    usage = facts.get("exposure") or {}
    body = (
        f"{drill}Incident {facts['incident']}: {facts['key_name']} ({facts['environment']}).\n"
        f"Time to contain: {facts.get('time_to_contain') or 'unknown'}.\n"
        f"Usage while exposed: {usage.get('requests', 'unknown')} requests, "
        f"{usage.get('tokens', 'unknown')} tokens, cost {cost_text(usage.get('cost_usd'))}.\n"
        f"Actions: {facts['mode']} {facts['runbook']} started by {facts['actor']}." + _caveats(facts)
    )
    subject = f"{drill}Incident summary {facts['incident']}"
    return for_drill(facts, [Message("manager_summary", facts["manager"], subject, body, facts)])


def consumer_messages(facts: dict[str, Any], consumers: list[tuple[str, str | None]]) -> list[Message]:
    drill = "[DRILL] " if facts.get("drill") else ""
    return for_drill(
        facts,
        [
            Message(
                "consumer",
                contact,
                f"{drill}Redeploy {name}: {facts['key_name']} was replaced",
                f"{drill}{name} uses {facts['key_name']}. Redeploy it so it reads {_where(facts)}, "
                "then confirm in the incident thread.",
                {**facts, "consumer": name},
            )
            for name, contact in consumers
            if contact
        ],
    )


def emergency_warning(facts: dict[str, Any]) -> list[Message]:
    """Emergency mode revokes first: owners must know production is broken until redeploy."""
    drill = "[DRILL] " if facts.get("drill") else ""
    body = (
        f"{drill}EMERGENCY: {facts['key_name']} ({facts['environment']}) was revoked "
        "before a replacement exists. "
        "Anything using it fails until the replacement is distributed; watch the incident thread."
    )
    subject = f"{drill}{facts['key_name']} revoked: expect errors"
    return for_drill(
        facts, [Message("emergency_dm", o, subject, body, facts) for o in facts.get("owners", [])]
    )
