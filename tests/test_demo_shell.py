"""The shell chat does not quit too easily (issue 10, finding 8), driven programmatically like test_shell.

Ctrl-C is simulated by a stdin whose readline raises KeyboardInterrupt, which is what Python raises in
the REPL's blocking read when the terminal sends SIGINT.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from slack_bolt import App

from bot.db.session import Database
from bot.runbooks import service
from bot.runbooks.models import RunStatus
from bot.runbooks.pending import waiting_runs
from bot.shell import LocalSlack, ShellChat
from tests.test_shell import SECRET, app, emulator, seen  # noqa: F401 - fixtures
from tests.world import POLICY, RUNBOOKS, World

CTRL_C = object()


class ScriptedStdin(io.StringIO):
    """Lines to type, where CTRL_C stands for pressing Ctrl-C at that prompt; then end of input."""

    def __init__(self, script: Sequence[object]) -> None:
        super().__init__()
        self._script = list(script)

    def readline(self, size: int | None = -1, /) -> str:
        if not self._script:
            return ""
        item = self._script.pop(0)
        if item is CTRL_C:
            raise KeyboardInterrupt
        return f"{item}\n"


def run_chat(
    slack_app: App, workspace: LocalSlack, script: Sequence[object], **kwargs: Any
) -> tuple[ShellChat, str]:
    out = io.StringIO()
    chat = ShellChat(
        slack_app,
        workspace,
        signing_secret=SECRET,
        stdin=ScriptedStdin(script),
        stdout=out,
        settle=0.1,
        **kwargs,
    )
    chat.run()  # returns: a KeyboardInterrupt escaping it would fail the test
    return chat, out.getvalue()


def test_ctrl_c_cancels_the_form_and_the_prompt_not_the_app(app: App, emulator: LocalSlack) -> None:  # noqa: F811
    chat, text = run_chat(app, emulator, ["/demo", CTRL_C, CTRL_C, "help", "quit"])
    assert "Color [1-2, Enter = 1]:" in text
    assert "(Ctrl-C: the form was cancelled and its window closed)" in text
    assert "[modal] closed: Demo" in text and emulator.modals() == []
    assert "type quit or press Ctrl-D to leave" in text  # Ctrl-C at the chat prompt
    assert "press button N" in text  # the app was still there to answer `help`
    assert chat.closed


def test_ctrl_c_at_a_confirm_dialog_answers_no(app: App, emulator: LocalSlack) -> None:  # noqa: F811
    script = ["/demo", "", "1", "note", "", "", "2", CTRL_C, "help", "quit"]
    _, text = run_chat(app, emulator, script)
    assert "Are you sure? [y/N]" in text and "(cancelled)" in text and "press button N" in text


def test_quitting_with_waiting_runs_lists_them_and_asks(app: App, emulator: LocalSlack) -> None:  # noqa: F811
    waiting = ["payments-openai-prod: run run_1 (INC-00001) waits for a second person's approval"]
    chat, text = run_chat(app, emulator, ["quit", "n", "help", "quit", "y"], waiting=lambda: waiting)
    start = text.index("Runs waiting since the last time")
    asked = text.index("These runs are still waiting:")
    assert start < asked and text.count(waiting[0]) == 3  # at start, and at each quit
    assert "Quit anyway? They stay waiting and are listed at the next start [y/N]" in text
    assert "(staying)" in text and text.index("(staying)") < text.index("press button N")
    assert chat.closed


def test_ctrl_d_with_waiting_runs_asks_and_a_closed_input_leaves(app: App, emulator: LocalSlack) -> None:  # noqa: F811
    _, text = run_chat(app, emulator, [], waiting=lambda: ["k: run r waits for a step done by hand"])
    assert "These runs are still waiting:" in text  # asked, then input ended: nobody to answer, it leaves
    _, quiet = run_chat(app, emulator, ["quit"], waiting=lambda: [])
    assert "waiting" not in quiet


def test_as_refuses_unknown_people_and_names_the_known_ones(app: App, emulator: LocalSlack) -> None:  # noqa: F811
    out = io.StringIO()
    chat = ShellChat(app, emulator, signing_secret=SECRET, stdout=out, people=lambda: ["U0BOB00001"])
    chat.handle_line("as bob")
    chat.handle_line("as U0NOBODY1")
    text = out.getvalue()
    assert text.count("(no such person:") == 2 and "`as` takes one of: U0BOB00001, U0SHELL01" in text
    assert emulator.messages("C0SHELL") == []  # `as bob` is not posted in the channel
    chat.handle_line("as u0bob00001")
    assert "(you are now <@U0BOB00001>)" in out.getvalue()
    chat.close()

    free = ShellChat(app, emulator, signing_secret=SECRET, stdout=(loose := io.StringIO()))
    free.handle_line("as bob")  # without a people list any well-formed id goes, but never a name
    assert "(no such person: BOB; `as` takes one of: a Slack user id such as U0BOB00001)" in loose.getvalue()
    free.handle_line("as expected, it worked")  # a sentence starting with "as" is a message
    assert "(no such person" not in loose.getvalue().split("BOB00001)", 1)[1]
    free.close()


def test_waiting_runs_lists_a_production_run_waiting_for_approval(world: World, database: Database) -> None:
    key_id = world.add_key("pending-prod", "production", consumers=[])
    run_id = service.start_run(
        database,
        RUNBOOKS,
        policy=POLICY,
        key_id=key_id,
        runbook="revoke-replace-audit-notify",
        mode="emergency",
        actor="U0OWNER01",
        reason="leaked in a gist",
    )
    assert world.engine().execute(run_id) is RunStatus.AWAITING_APPROVAL
    [line] = waiting_runs(database)
    assert line.startswith(f"pending-prod: run {run_id} (INC-") and "second person's approval" in line
