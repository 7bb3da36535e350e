"""Template rendering: the sandbox stops templates reaching Python; data never becomes markup or template
code; a broken user template falls back to the built-in one with a warning naming file and line."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.postmortems.facts import facts_as_data
from bot.postmortems.service import context_of
from bot.postmortems.templating import (
    TEMPLATE_NAMES,
    duration,
    escape_markdown,
    escape_slack,
    local,
    render,
)
from bot.postmortems.types import ActionItem, Exposure, Narrative, PostmortemFacts, TimelineLine

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
HOSTILE = "<!channel> <@U0EVIL01> [click](http://evil.example) {{ 7*7 }} {% raw %} `rm -rf` *b* _i_ ~s~ | x"


def facts(**changes: Any) -> PostmortemFacts:
    base: dict[str, Any] = {
        "reference": "INC-00042",
        "incident_id": 42,
        "title": "Leaked key pay-prod (production)",
        "key_name": "pay-prod",
        "environment": "production",
        "team": "payments",
        "timezone": "Europe/Paris",
        "severity": "sev2",
        "status": "resolved",
        "drill": False,
        "mode": "staged",
        "reason": HOSTILE,
        "opened_at": T0,
        "resolved_at": T0.replace(hour=10),
        "first_seen_at": T0,
        "timeline": (TimelineLine(T0, "U0ONCALL1", "on-call", f"Incident opened: “{HOSTILE}”"),),
        "timings": {
            "detect": 0.0,
            "acknowledge": 0.0,
            "contain": 65.0,
            "replace": None,
            "revoke": None,
            "verify": None,
        },
        "exposure": Exposure(T0, T0, 10, 20, 1.5),
        "people": (("on-call", "U0ONCALL1"), ("keybot", "keybot")),
        "approver": "U0SECOND1",
        "exceptions": ("the exposure window was NOT audited",),
        "follow_ups": (ActionItem(HOSTILE, "U0OWNER01", date(2026, 3, 6)),),
        "notes": (HOSTILE,),
    }
    return PostmortemFacts(**{**base, **changes})


def digest_context() -> dict[str, Any]:
    return {
        "week": "2026-W10",
        "timezone": "Europe/Paris",
        "incidents": [
            {
                "reference": "INC-00042",
                "key_name": HOSTILE,
                "team": "payments",
                "severity": "sev2",
                "status": "resolved",
                "time_to_contain_minutes": 23.1,
            },
            {
                "reference": "INC-00043",
                "key_name": None,
                "team": None,
                "severity": "sev1",
                "status": "open",
                "time_to_contain_minutes": None,
            },
        ],
        "median_contain_minutes": 23.1,
        "overdue": [{"team": "payments", "count": 3, "oldest_days": 12}],
        "alerts": {"opened": 5, "false_positives": 2, "acknowledged": 4},
        "drills": 1,
    }


@pytest.fixture
def overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    monkeypatch.setenv("KEYBOT_TEMPLATES_DIR", str(folder))
    return folder


def test_data_with_markdown_and_slack_control_text_comes_out_inert() -> None:
    text = render("postmortem.md.j2", context_of(facts())).text
    assert "<!channel>" not in text and "<@U0EVIL01>" not in text and "&lt;!channel&gt;" in text
    assert "[click](" not in text and r"\[click\]" in text and "http://evil" not in text
    assert "{{ 7\\*7 }}" in text and "49" not in text and "{% raw %}" in text
    assert "`rm -rf`" not in text and r"\`rm \-rf\`" not in text and r"\`rm -rf\`" in text
    slack = render("manager_summary.md.j2", context_of(facts())).text
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack and "http://evil" not in slack
    assert "`" not in slack.split("“", 1)[1].split("”", 1)[0]
    assert "<@U0SECOND1>" in slack  # the approver: a mention the template asked for, with a checked id


def test_escapers_neutralise_each_control_sequence() -> None:
    assert escape_markdown("# title") == r"\# title" and escape_markdown("> quote") == "&gt; quote"
    assert escape_markdown("- item") == r"\- item" and escape_markdown("1. item") == r"1\. item"
    assert escape_markdown("a\n# b") == "a # b"  # no new line, so no new block
    assert escape_markdown("<b>&amp;") == "&lt;b&gt;&amp;amp;" and escape_markdown("a | b") == r"a \| b"
    assert escape_slack("*bold* _it_ ~s~ `c` <!here> &") == "∗bold∗ ＿it＿ ∼s∼ ˋcˋ &lt;!here&gt; &amp;"
    assert "://" not in escape_slack("see https://evil.example")


def test_filters_format_durations_and_local_times() -> None:
    assert [duration(s) for s in (45, 750, 3900, 90000, None)] == [
        "45 s",
        "12 min 30 s",
        "1 h 05 min",
        "1 d 01 h",
        "—",
    ]
    assert local("2026-07-01T12:00:00+00:00", "Europe/Paris") == "2026-07-01 14:00 CEST"
    assert local(T0, "Not/AZone") == "2026-03-04 09:00 UTC"


def test_a_narrative_is_labelled_as_a_draft_to_verify_and_escaped() -> None:
    narrative = Narrative(
        "It leaked.",
        "Small.",
        "A .env in git.",
        "A push.",
        ("Fast revoke",),
        (HOSTILE,),
        ("No traffic",),
        "llm:gpt-4o-mini",
    )
    text = render("postmortem.md.j2", context_of(facts(narrative=narrative))).text
    assert text.count("Draft by llm:gpt-4o-mini — verify before sharing") >= 5
    assert "It leaked." in text and "<!channel>" not in text
    plain = render("postmortem.md.j2", context_of(facts())).text
    assert "Draft by" not in plain and "_Author:" in plain


def test_the_weekly_digest_renders_its_documented_context() -> None:
    rendered = render("weekly_digest.md.j2", digest_context())
    assert rendered.warnings == ()
    text = rendered.text
    assert (
        "week 2026-W10" in text and "2 incident(s)" in text and "median time to contain 23 min 06 s" in text
    )
    assert "payments: 3 key(s), the oldest 12 day(s) overdue" in text
    assert "5 opened, 4 acknowledged, 2 false positive(s)" in text and "1 run this week" in text
    assert "<!channel>" not in text and "unregistered key" in text


@pytest.mark.parametrize(
    ("source", "line", "says"),
    [
        ("# {{ reference }}\n\n{% for x in %}\n", 3, "Expected an expression"),
        ("# ok\n{{ reference }}\n{{ no_such_thing }}\n", 3, "no_such_thing"),
        ("# ok\n\n\n{{ reference }}{{ 1 // 0 }}\n", 4, "division"),
        ("{% extends 'nope.md.j2' %}", 1, "'nope.md.j2' not found"),
    ],
    ids=["syntax", "undefined", "runtime", "missing-include"],
)
def test_a_broken_user_template_warns_with_file_and_line_and_the_builtin_is_used(
    overrides: Path, source: str, line: int | None, says: str
) -> None:
    (overrides / "postmortem.md.j2").write_text(source)
    rendered = render("postmortem.md.j2", context_of(facts()))
    assert rendered.text == render_builtin(overrides)
    (warning,) = rendered.warnings
    where = f"{overrides / 'postmortem.md.j2'}" + (f" line {line}:" if line else ":")
    assert where in warning and says in warning and warning.endswith("used the built-in template")


def render_builtin(overrides: Path) -> str:
    (overrides / "postmortem.md.j2").unlink()
    return render("postmortem.md.j2", context_of(facts())).text


def test_a_working_user_template_is_used_and_still_escapes_data(overrides: Path) -> None:
    (overrides / "manager_summary.md.j2").write_text(
        "Custom {{ reference }}: {{ reason }} {{ approver | mention }}\n"
    )
    rendered = render("manager_summary.md.j2", context_of(facts()))
    assert rendered.warnings == ()
    assert rendered.text.startswith("Custom INC-00042: &lt;!channel&gt;") and "<@U0SECOND1>" in rendered.text


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ joiner.__init__.__globals__.os.system('touch PWNED') }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ timings.__class__.__init__ }}",
        "{{ timeline.append(1) }}",
        "{{ reason.__class__.__base__.__subclasses__() }}",
        "{% for i in range(100000000) %}x{% endfor %}",
        "{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}",
        "{{ 'x' * 1000000000 }}",
        "{{ 2 ** 99999999 }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    ],
)
def test_a_template_reaching_for_python_internals_or_unbounded_work_is_stopped(
    overrides: Path, attack: str
) -> None:
    (overrides / "postmortem.md.j2").write_text("# mine\n" + attack + "\n")
    rendered = render("postmortem.md.j2", context_of(facts()))
    assert len(rendered.warnings) == 1 and "used the built-in template" in rendered.warnings[0]
    assert rendered.text.startswith("# Postmortem INC-00042")
    assert not Path("PWNED").exists() and "<class" not in rendered.text and "mine" not in rendered.text


def test_every_builtin_template_renders_without_warnings() -> None:
    contexts = {"weekly_digest.md.j2": digest_context()}
    for name in TEMPLATE_NAMES:
        rendered = render(name, contexts.get(name, context_of(facts())))
        assert rendered.warnings == () and rendered.text.strip(), name


def test_an_unknown_template_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown template"):
        render("../../etc/passwd", {})


def test_facts_as_data_is_json_safe() -> None:
    import json

    data = facts_as_data(facts())
    assert json.loads(json.dumps(data))["timeline"][0]["at"] == "2026-03-04T09:00:00+00:00"
    assert data["follow_ups"][0]["due"] == "2026-03-06" and data["people"][0] == {
        "role": "on-call",
        "who": "U0ONCALL1",
    }


def test_an_override_can_extend_the_builtin_template(overrides: Path) -> None:
    (overrides / "manager_summary.md.j2").write_text("{% extends 'builtin/manager_summary.md.j2' %}")
    rendered = render("manager_summary.md.j2", context_of(facts()))
    assert rendered.warnings == () and "*Incident summary INC-00042*" in rendered.text


def test_an_oversized_timeline_is_cut_not_crashed() -> None:
    line = TimelineLine(T0, "U0ONCALL1", "on-call", "x" * 400)
    text = render("postmortem.md.j2", context_of(facts(timeline=(line,) * 3000))).text
    assert len(text) < 520_000 and text.endswith("… (truncated)\n")


def test_an_override_can_replace_one_block_of_the_postmortem(overrides: Path) -> None:
    (overrides / "postmortem.md.j2").write_text(
        '{% extends "builtin/postmortem.md.j2" %}{% block lessons %}## Lessons\n\nOurs: {{ reason }}\n\n'
        "{% endblock %}"
    )
    rendered = render("postmortem.md.j2", context_of(facts()))
    assert rendered.warnings == () and "## Lessons\n\nOurs: &lt;!channel&gt;" in rendered.text
    assert "## What went well" not in rendered.text and "## Timeline" in rendered.text
