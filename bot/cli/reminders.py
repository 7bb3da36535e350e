"""`keybot reminders preview|send|snooze|rotated`: rotation reminders from a terminal.

`preview` prints exactly what Slack would post, through the same renderer (`reminder_blocks`) shown as
text; `send` is an admin action; `snooze` and `rotated` are the reminder's buttons, for break-glass.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import typer

from bot.cli.context import CliError, out, print_json, runtime

app = typer.Typer(help="Rotation reminders: preview, send, snooze, rotated.", no_args_is_help=True)

TEAM_HELP = "a team name, or * for keys without a team"


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise CliError(f"{option} expects a date like 2026-03-04 (got {value[:40]!r})") from None


def _team(value: str | None) -> str | None:
    return None if value is None or value.strip() == "*" else value.strip()


def _key_id(reference: str) -> int:
    from sqlalchemy import select

    from bot.registry.models import Key

    text = reference.strip()
    with runtime().database.session() as session:
        if text.startswith("#") and text[1:].isdigit() and len(text) < 14:
            found = session.get(Key, int(text[1:]))
            key_id = found.id if found is not None and not found.drill else None
        else:
            key_id = session.scalars(select(Key.id).where(Key.name == text, Key.drill.is_(False))).first()
    if key_id is None:
        raise CliError(f"no key named {text[:80]!r} (give its name or #id)")
    return key_id


def _refused(action: Any) -> Any:
    from bot.runbooks.refusals import RunRefused

    try:
        return action()
    except RunRefused as refused:
        raise CliError(str(refused)) from None


@app.command("preview")
def preview_command(
    team: str | None = typer.Option(None, "--team", help=f"{TEAM_HELP} (default: every team)"),
    day: str | None = typer.Option(
        None, "--date", help="the local date (default: today in each team's zone)"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Print exactly what would be posted; nothing is sent or recorded."""
    from bot.db.base import utcnow
    from bot.reminders.codec import reminder_json
    from bot.reminders.delivery import reminder_for
    from bot.reminders.due import load_schedules
    from bot.reminders.settings import reminder_settings
    from bot.slack.blocks.reminders import reminder_blocks
    from bot.slack.blocks.text import blocks_to_text

    settings, database, now, chosen = reminder_settings(), runtime().database, utcnow(), _date(day, "--date")
    with database.session() as session:
        schedules = load_schedules(session, settings)
    if team is not None and _team(team) not in schedules:
        raise CliError(f"unknown team {team[:80]!r}")
    selected = [schedules[_team(team)]] if team is not None else list(schedules.values())
    reminders = []
    for schedule in selected:
        local = chosen or schedule.local_date(now)
        reminder = _refused(
            lambda s=schedule, d=local: reminder_for(database, s.team, d, now, settings=settings)
        )
        if reminder is not None:
            reminders.append(reminder)
    if as_json:
        print_json([reminder_json(r) for r in reminders])
        return
    if not reminders:
        out.print("Nothing due: no reminder would be posted.", markup=False)
        return
    for reminder in reminders:
        text, _buttons = blocks_to_text(reminder_blocks(reminder))
        out.print(f"── to {reminder.channel or '(no channel configured)'} ──", markup=False)
        out.print(text, markup=False)


@app.command("send")
def send_command(team: str = typer.Option(..., "--team", help=TEAM_HELP)) -> None:
    """Send one team's reminder for today now (admins only); a day is never sent twice."""
    from bot.access.policy import Decision, Subject
    from bot.cli.identity import cli_actor
    from bot.db.base import utcnow
    from bot.reminders.delivery import schedule_of, send_reminder
    from bot.reminders.settings import reminder_settings

    rt, settings, name = runtime(), reminder_settings(), _team(team)
    label = f"the rotation reminder of {name or 'keys without a team'}"
    _refused(lambda: rt.policy.check(Decision.SEND_REMINDERS, cli_actor(), Subject(label, "any")))
    now = utcnow()
    schedule = _refused(lambda: schedule_of(rt.database, name, settings))
    local = schedule.local_date(now)
    result = _refused(lambda: send_reminder(rt.database, name, local, now, settings=settings))
    if result is None:
        raise CliError(f"{label} for {local} was already sent (or handled) today; nothing sent")
    if result == 0:
        out.print(f"Nothing due for {name or 'keys without a team'} on {local}: no message.", markup=False)
        return
    out.print(f"Enqueued {label} for {local}; `keybot clock` delivers it.", markup=False)


@app.command("snooze")
def snooze_command(
    key: str = typer.Argument(..., help="the key's name or #id"),
    days: int = typer.Option(..., "--days", help="how many days to hide it from reminders"),
    reason: str = typer.Option(..., "--reason", help="why (goes on the key's timeline)"),
) -> None:
    """Hide a key from rotation reminders for a while (owners, backups, revokers, admins)."""
    from bot.cli.identity import cli_actor
    from bot.reminders.service import snooze

    rt, key_id = runtime(), _key_id(key)
    state = _refused(
        lambda: snooze(rt.database, key_id, cli_actor(), days=days, reason=reason, policy=rt.policy)
    )
    until = state.snoozed_until.isoformat() if isinstance(state.snoozed_until, datetime) else "?"
    out.print(f"{state.name} snoozed until {until}.", markup=False)


@app.command("rotated")
def rotated_command(
    key: str = typer.Argument(..., help="the key's name or #id"),
    on: str = typer.Option(..., "--on", help="the date it was rotated outside keybot, like 2026-03-04"),
    note: str = typer.Option("", "--note", help="how it was rotated (goes on the key's timeline)"),
) -> None:
    """Record a rotation done outside keybot (owners, backups, revokers, admins)."""
    from bot.cli.identity import cli_actor
    from bot.reminders.service import mark_rotated

    rt, key_id, rotated_on = runtime(), _key_id(key), _date(on, "--on")
    assert rotated_on is not None
    state = _refused(
        lambda: mark_rotated(
            rt.database, key_id, cli_actor(), rotated_on=rotated_on, note=note, policy=rt.policy
        )
    )
    out.print(f"{state.name} marked rotated on {rotated_on}; next due {state.due_at.date()}.", markup=False)
