"""The demo works every time: `keybot run` twice on the same `keybot.db`, the README's examples, --reset.

Each test drives real `keybot run` processes through a pipe (see tests/test_keybot_run.py), in an empty
directory holding only the runbooks and the Slack manifest, like a newcomer's clone.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.test_keybot_run import REPO, Session


def _clone(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    shutil.copy(REPO / "slack-manifest.yaml", tmp_path)
    return tmp_path


def _staged_revoke(chat: Session, reason: str) -> None:
    """`/revoke-key payments-openai-staging`, staged, and wait for the run to succeed."""
    chat.seen = ""
    chat.type("/revoke-key payments-openai-staging")
    if chat.wait_for_any("Mode [1-2, Enter = 1]", "press Enter to fill in this form") != 0:
        chat.type("")
        chat.wait_for("Mode [1-2, Enter = 1]")
    chat.type("", reason, "", "")
    index = chat.wait_for_any("Succeeded", "Needs attention", "needs attention", "Failed")
    assert index == 0, chat.seen[-3000:]


def _quit(chat: Session) -> None:
    chat.type("quit")
    assert chat.proc.wait(timeout=60) == 0


def test_second_start_reseeds_the_sandbox_and_reset_starts_clean(tmp_path: Path) -> None:
    """Finding 7: a second `make run` kept keybot.db but started an empty sandbox, so mint failed (404)."""
    cwd = _clone(tmp_path)
    first = Session(cwd)
    try:
        first.wait_for("keybot shell chat")
        _staged_revoke(first, "pasted in a public gist")
        _quit(first)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    second = Session(cwd)
    try:
        second.wait_for("keybot shell chat")
        assert "their sandbox twin back" in second.seen
        _staged_revoke(second, "leaked again from the replacement")  # the rotated key, once more
        second.wait_for("Vault `secret/payments/openai-staging` version 2")  # recreated at start: v1
        second.seen = ""
        second.type("/key-owner sk-proj-...Xy9Q")
        second.wait_for("Fraud explanations in the checkout flow")
        _quit(second)
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    assert "Traceback" not in first.seen + second.seen
    third = Session(cwd, "--reset")
    try:
        third.wait_for("keybot shell chat")
        assert "--reset: deleting" in third.seen and "keybot.db" in third.seen
        assert "loaded the example registry" in third.seen
        _quit(third)
    finally:
        if third.proc.poll() is None:
            third.proc.kill()


def readme_examples() -> list[str]:
    """Every slash command in the README's "Try it in a minute" code blocks, without its comment."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Try it in a minute", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith("/"):
                commands.append(command)
    return commands


def test_every_readme_example_finds_its_key(tmp_path: Path) -> None:
    """Finding 7: the README's `/key-owner sk-proj-...Xy9Q` found nothing in the sandbox."""
    examples = readme_examples()
    assert "/key-owner sk-proj-...Xy9Q" in examples and len(examples) >= 4
    chat = Session(_clone(tmp_path))
    try:
        chat.wait_for("keybot shell chat")
        for command in examples:
            chat.seen = ""
            chat.type(command)
            if command.startswith("/key-owner"):
                chat.wait_for_any("Owners:", "No key in the registry", "⚠")
            else:  # a revoke opens its form on the key card; close it again
                chat.wait_for_any("Mode [1-2", "press Enter to fill in this form", "No key", "⚠")
                chat.type("cancel")
                chat.wait_for_any("(cancelled)", "you> ", "no window is open")
            for failure in ("No key in the registry", "did you mean", "⚠", "Traceback", "not found"):
                assert failure not in chat.seen, f"{command!r} answered {failure!r}:\n{chat.seen[-2000:]}"
        _quit(chat)
    finally:
        if chat.proc.poll() is None:
            chat.proc.kill()
