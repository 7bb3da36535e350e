"""A postmortem drafted from a real staged run (OpenAI stand-in, OpenBao, the engine): the facts read what
runs really write, and the leaked secret appears nowhere in the draft or the manager summary."""

from __future__ import annotations

from bot.postmortems.facts import build_facts
from bot.postmortems.service import draft_postmortem, manager_summary
from bot.runbooks import service
from bot.runbooks.models import RunStatus
from bot.secrets import redacted_form
from tests.world import POLICY, RUNBOOKS, World, unique_name


def test_a_real_staged_run_gives_a_complete_draft_without_the_secret(world: World) -> None:
    name = unique_name()
    key_id = world.add_key(name, "production")
    old = world.keys[name]
    run_id = service.start_run(
        world.database, RUNBOOKS, key_id=key_id, runbook="revoke-replace-audit-notify", mode="staged",
        actor="U0ONCALL1", reason=f"pasted in a gist: {old['value']}", policy=POLICY,
    )  # fmt: skip
    engine = world.engine()
    assert engine.execute(run_id) is RunStatus.AWAITING_APPROVAL
    service.approve(world.database, run_id, "U0SECOND1", policy=POLICY)
    assert engine.execute(run_id) is RunStatus.SUCCEEDED
    incident_id = service_incident(world, run_id)
    with world.database.session() as session:
        facts = build_facts(session, incident_id)
    timings = facts.timings
    assert all(timings[name] is not None for name in timings), timings
    assert timings["detect"] == 0.0 and timings["replace"] <= timings["revoke"] <= timings["verify"]  # type: ignore[operator]
    assert facts.approver == "U0SECOND1" and ("approver", "U0SECOND1") in facts.people
    assert facts.exposure is not None and facts.exposure.start is not None and facts.exceptions == ()
    whats = " ".join(line.what for line in facts.timeline)
    assert "Revoke leaked key succeeded" in whats and "Verify revocation succeeded" in whats
    assert "Exposure window audited" in whats and "Revoke leaked key approved" in whats
    draft = draft_postmortem(world.database, incident_id, llm=False, save=False)
    summary = manager_summary(world.database, incident_id).text
    for text in (draft.markdown, summary):
        assert old["value"] not in text
    assert redacted_form(old["value"]).split("...")[-1] in draft.markdown  # the redacted form stands in
    assert "<@U0SECOND1>" in summary and "Time to contain:* " in summary


def service_incident(world: World, run_id: str) -> int:
    from bot.runbooks.models import Run

    with world.database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.incident_id is not None
        return run.incident_id
