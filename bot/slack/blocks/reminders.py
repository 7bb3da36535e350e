"""The rotation reminder surfaces: the daily team message, the manager's weekly DM and the two modals.

Pure functions of the domain's frozen data (bot/reminders/types.py), so the CLI's preview and Slack show
the same thing and golden files can pin them exactly. Buttons carry the key id and the reminder day only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.models.blocks import (
    DatePickerElement,
    InputBlock,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
)
from slack_sdk.models.views import View

from bot.reminders.types import DueKey, DueState, Escalation, Reminder
from bot.slack import ids, limits
from bot.slack.blocks.common import Block, actions, button, chunk_lines, context, divider, header, section

MAX_KEYS_WITH_BUTTONS = 20  # two blocks each: 40 of Slack's 50, leaving room for header, notes and footer
MAX_ESCALATION_LINES = 60
DEFAULT_MAX_SNOOZE_DAYS = 30
REASON_MAX = 500
SNOOZE_CHOICES = (("1", "1 day"), ("7", "1 week"), ("14", "2 weeks"), ("custom", "Custom…"))
CUSTOM = "custom"
DEFAULT_SNOOZE = "7"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _day(moment: datetime, timezone: str = "UTC") -> str:
    """A date as the team reads it: in the team's timezone, since reminders go out on local days."""
    return moment.astimezone(_zone(timezone)).date().isoformat()


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def _ordinal(count: int) -> str:
    suffix = "th" if 10 <= count % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(count % 10, "th")
    return f"{count}{suffix}"


def _owners(key: DueKey) -> str:
    """``owners @a, @b`` (they are pinged: the reminder is for them), or a nudge to add one."""
    if not key.owners:
        return "no owner: ask the team lead to add one"
    return "owners " + ", ".join(limits.mention(o) for o in key.owners[:10])


def state_text(key: DueKey, timezone: str = "UTC") -> str:
    """Where the key stands: overdue, due, snoozed until when, or fine. Used by App Home and the key card."""
    due = _day(key.due_at, timezone)
    if key.state is DueState.SNOOZED and key.snoozed_until is not None:
        text = f"💤 snoozed until {_day(key.snoozed_until, timezone)}"
        if key.snooze_count > 1:
            text += f" ({_ordinal(key.snooze_count)} snooze in a row)"
        lag = f"overdue by {_days(key.days_overdue)}" if key.days_overdue > 0 else f"due {due}"
        return f"{text}; {lag}"
    if key.days_overdue > 0:
        return f"🔴 overdue by {_days(key.days_overdue)} (due {due})"
    if key.days_overdue == 0:
        return f"🟠 due today ({due})"
    if key.state is DueState.DUE_SOON:
        return f"🟡 due in {_days(-key.days_overdue)} ({due})"
    return f"✅ due in {_days(-key.days_overdue)} ({due})"


def history_text(key: DueKey, timezone: str = "UTC") -> str:
    """The policy and what it counts from; a never-rotated key counts from its registration."""
    since = _day(key.counted_from, timezone)
    counted = f"never rotated (registered {since})" if key.never_rotated else f"last rotated {since}"
    return f"every {_days(key.rotation_days)} · {counted}"


def next_reminder_text(key: DueKey) -> str:
    return f"next reminder {key.next_reminder.isoformat()}" if key.next_reminder else "no reminder scheduled"


def rotation_line(key: DueKey) -> str:
    """State, policy and the next reminder day in one line: the key card's and App Home's rotation text."""
    return f"{state_text(key)} · every {_days(key.rotation_days)} · {next_reminder_text(key)}"


def _key_title(key: DueKey) -> str:
    return f"*{limits.mrkdwn(key.name, 200)}* ({limits.mrkdwn(key.environment, 40)})"


def _key_blocks(key: DueKey, reminder: Reminder) -> list[Block]:
    block_id = f"reminder_key_{key.key_id}"
    if key.key_id in reminder.done_key_ids:
        return [section(f"✅ ~{limits.mrkdwn(key.name, 200)}~ rotated · thanks!", block_id=block_id)]
    text = (
        f"{_key_title(key)} · {state_text(key, reminder.timezone)}\n"
        f"{history_text(key, reminder.timezone)} · {_owners(key)}"
    )
    blocks = [section(text, block_id=block_id)]
    if key.state is DueState.SNOOZED:
        return blocks  # snoozed after the message went out: nothing to press until the snooze ends
    ref = ids.reminder_ref(key.key_id, reminder.local_date)
    buttons = [
        button("Rotate now", ids.REMINDER_ROTATE, ref, style="primary"),
        button("Snooze…", ids.REMINDER_SNOOZE, ref),
        button("Mark rotated…", ids.REMINDER_MARK_ROTATED, ref),
    ]
    return [*blocks, actions(buttons, block_id=f"reminder_actions_{key.key_id}")]


def _summary_line(key: DueKey, reminder: Reminder) -> str:
    if key.key_id in reminder.done_key_ids:
        return f"• ✅ ~{limits.mrkdwn(key.name, 200)}~ rotated"
    return f"• {_key_title(key)} · {state_text(key, reminder.timezone)} · {_owners(key)}"


def reminder_title(reminder: Reminder) -> str:
    who = reminder.team if reminder.team is not None else "keys without a team"
    return f"Rotation reminder: {who}"


def reminder_text(reminder: Reminder) -> str:
    """The notification preview; it names how many keys, never a secret."""
    open_keys = [k for k in reminder.keys if k.key_id not in reminder.done_key_ids]
    overdue = sum(1 for k in open_keys if k.days_overdue > 0)
    return (
        f"{reminder_title(reminder)}: {len(open_keys)} key(s) to rotate, {overdue} overdue "
        f"({reminder.local_date.isoformat()})"
    )


def reminder_blocks(reminder: Reminder) -> list[Block]:
    """One team's message for one local day: every listed key with its owners and three buttons.

    Past 20 keys the rest are listed as lines (still naming owners) so the message stays within Slack's 50
    blocks; done keys show struck through once the message is edited after their rotation.
    """
    done = sum(1 for k in reminder.keys if k.key_id in reminder.done_key_ids)
    counts = f"{len(reminder.keys)} key(s) listed" + (f", {done} done" if done else "")
    intro = [reminder.local_date.strftime("%A %Y-%m-%d"), reminder.timezone, counts]
    blocks: list[Block] = [
        header(f"🔁 {reminder_title(reminder)}", block_id="reminder_header"),
        context(" · ".join(limits.mrkdwn(part, 200) for part in intro), block_id="reminder_intro"),
    ]
    if reminder.late_note:
        blocks.append(section(f"⏰ {limits.mrkdwn(reminder.late_note, 500)}", block_id="reminder_late"))
    if reminder.team is None:
        blocks.append(
            context(
                "These keys belong to no team, so they are listed here. Give each a team in the registry.",
                block_id="reminder_teamless",
            )
        )
    blocks.append(divider())
    shown, rest = reminder.keys[:MAX_KEYS_WITH_BUTTONS], reminder.keys[MAX_KEYS_WITH_BUTTONS:]
    for key in shown:
        blocks += _key_blocks(key, reminder)
    if rest:
        lines = [f"*{limits.ELLIPSIS} and {len(rest)} more* (buttons on the first {len(shown)} only):"]
        lines += [_summary_line(k, reminder) for k in rest]
        chunks = chunk_lines(lines)
        blocks.append(section(chunks[0], block_id="reminder_more"))
        if len(chunks) > 1:
            blocks.append(limits.more_note(len(chunks) - 1, _preview_command(reminder), "sections"))
    blocks.append(
        context(
            "Rotate now runs the planned rotation · Snooze hides a key for a while (a reason is recorded) · "
            f"Mark rotated is for keys rotated outside keybot · all keys: `{_preview_command(reminder)}`",
            block_id="reminder_footer",
        )
    )
    return limits.fit_blocks(blocks, keep_tail=1)


def _preview_command(reminder: Reminder) -> str:
    team = f" --team {limits.escape(reminder.team)}" if reminder.team is not None else ""
    return f"keybot reminders preview{team} --date {reminder.local_date.isoformat()}"


def _escalation_lines(keys: Sequence[DueKey], line: Any) -> list[str]:
    lines = [line(k) for k in keys[:MAX_ESCALATION_LINES]]
    if len(keys) > MAX_ESCALATION_LINES:
        lines.append(f"{limits.ELLIPSIS} and {len(keys) - MAX_ESCALATION_LINES} more")
    return lines


def escalation_text(escalation: Escalation) -> str:
    return f"{len(escalation.overdue)} key(s) of {escalation.team} are long overdue for rotation" + (
        f"; {len(escalation.snoozed_often)} snoozed repeatedly" if escalation.snoozed_often else ""
    )


def escalation_blocks(escalation: Escalation) -> list[Block]:
    """The weekly DM to a team's manager: who owns each long-overdue key, and keys snoozed again and again."""
    team = limits.mrkdwn(escalation.team, 150)
    blocks: list[Block] = [
        header(f"⚠️ Overdue key rotations: {escalation.team}", block_id="escalation_header"),
        section(
            f"Hi {limits.mention(escalation.manager)}. Keys of *{team}* are well past their rotation date; "
            "their owners have been reminded every day in the team channel. Please nudge them.",
            block_id="escalation_intro",
        ),
    ]

    def overdue(key: DueKey) -> str:
        return (
            f"• {_key_title(key)} · overdue by *{_days(key.days_overdue)}* · "
            f"{history_text(key)} · {_owners(key)}"
        )

    def snoozed(key: DueKey) -> str:
        until = f" until {_day(key.snoozed_until)}" if key.snoozed_until else ""
        return (
            f"• {_key_title(key)} · snoozed {key.snooze_count} times in a row{until} · "
            f"{state_text(key).split('; ')[-1]} · {_owners(key)}"
        )

    if escalation.overdue:
        blocks.append(section(f"*Overdue* ({len(escalation.overdue)})", block_id="escalation_overdue"))
        for index, text in enumerate(chunk_lines(_escalation_lines(escalation.overdue, overdue))):
            blocks.append(section(text, block_id=f"escalation_overdue_{index}"))
    if escalation.snoozed_often:
        title = f"*Snoozed more than twice in a row* ({len(escalation.snoozed_often)})"
        blocks.append(section(title, block_id="escalation_snoozed"))
        for index, text in enumerate(chunk_lines(_escalation_lines(escalation.snoozed_often, snoozed))):
            blocks.append(section(text, block_id=f"escalation_snoozed_{index}"))
    blocks.append(
        context(
            f"Week {limits.mrkdwn(escalation.week, 20)} · sent once a week while keys stay overdue · "
            f"`keybot reminders preview --team {team}`",
            block_id="escalation_footer",
        )
    )
    return limits.fit_blocks(blocks, keep_tail=1)


def _modal(
    callback_id: str, title: str, submit: str, blocks: list[Block], ref: ids.ActionRef
) -> dict[str, Any]:
    return View(
        type="modal",
        callback_id=callback_id,
        title=PlainTextObject(text=limits.plain(title, limits.MODAL_TITLE)),
        submit=PlainTextObject(text=limits.plain(submit, limits.MODAL_BUTTON)),
        close=PlainTextObject(text="Cancel"),
        blocks=limits.fit_blocks(blocks, limits.MODAL_BLOCKS),
        private_metadata=ref.encode(),
    ).to_dict()


def _text_input(block_id: str, action_id: str, label: str, placeholder: str, hint: str) -> Block:
    return InputBlock(
        block_id=block_id,
        label=PlainTextObject(text=label),
        element=PlainTextInputElement(
            action_id=action_id,
            multiline=True,
            max_length=REASON_MAX,
            placeholder=PlainTextObject(text=limits.plain(placeholder, limits.PLACEHOLDER)),
        ),
        hint=PlainTextObject(text=hint),
    ).to_dict()


def snooze_modal(
    key: DueKey, *, max_days: int = DEFAULT_MAX_SNOOZE_DAYS, day: date | None = None
) -> dict[str, Any]:
    """How long to hide a key from reminders, and why: the reason goes on the key's timeline."""
    options = {value: Option(value=value, text=label) for value, label in SNOOZE_CHOICES}
    intro = (
        f"Snooze {_key_title(key)}? It is {state_text(key)}. It leaves the team's reminders until the "
        "snooze ends; the snooze and your reason go on the key's timeline."
    )
    blocks: list[Block] = [section(intro, block_id="snooze_intro")]
    if key.snooze_count >= 2:
        blocks.append(
            context(
                f"Already snoozed {key.snooze_count} times in a row: the team's manager sees keys snoozed "
                "more than twice in the weekly overdue summary.",
                block_id="snooze_warning",
            )
        )
    blocks += [
        InputBlock(
            block_id=ids.SNOOZE_DAYS_BLOCK,
            label=PlainTextObject(text="For how long?"),
            element=RadioButtonsElement(
                action_id=ids.SNOOZE_DAYS_ACTION,
                options=list(options.values()),
                initial_option=options[DEFAULT_SNOOZE],
            ),
        ).to_dict(),
        InputBlock(
            block_id=ids.SNOOZE_CUSTOM_BLOCK,
            label=PlainTextObject(text="Custom: number of days"),
            element=NumberInputElement(
                action_id=ids.SNOOZE_CUSTOM_ACTION,
                is_decimal_allowed=False,
                min_value=1,
                max_value=max_days,
            ),
            optional=True,
            hint=PlainTextObject(text=f"Only with “Custom…”; at most {_days(max_days)}."),
        ).to_dict(),
        _text_input(
            ids.SNOOZE_REASON_BLOCK,
            ids.SNOOZE_REASON_ACTION,
            "Why snooze it?",
            "e.g. rotating with the vendor migration next week",
            "Recorded on the key's timeline with your name.",
        ),
    ]
    ref = ids.reminder_ref(key.key_id, day)
    return _modal(ids.SNOOZE_MODAL, "Snooze reminder", "Snooze", blocks, ref)


def mark_rotated_modal(key: DueKey, today: date, *, day: date | None = None) -> dict[str, Any]:
    """For keys rotated outside keybot: when, and how; keybot records who said so, it verified nothing."""
    intro = (
        f"Mark {_key_title(key)} as rotated outside keybot? It is {state_text(key)}; "
        f"{history_text(key)}. keybot records that *you* said so; it did not verify the rotation."
    )
    blocks: list[Block] = [
        section(intro, block_id="rotated_intro"),
        InputBlock(
            block_id=ids.ROTATED_ON_BLOCK,
            label=PlainTextObject(text="Rotated on"),
            element=DatePickerElement(action_id=ids.ROTATED_ON_ACTION, initial_date=today.isoformat()),
            hint=PlainTextObject(text="The next due date counts from this day."),
        ).to_dict(),
        _text_input(
            ids.ROTATED_NOTE_BLOCK,
            ids.ROTATED_NOTE_ACTION,
            "How was it rotated?",
            "e.g. new key minted in the vendor console, deployed with ticket OPS-1234",
            "Recorded on the key's timeline with your name.",
        ),
    ]
    ref = ids.reminder_ref(key.key_id, day)
    return _modal(ids.MARK_ROTATED_MODAL, "Mark rotated", "Mark rotated", blocks, ref)
