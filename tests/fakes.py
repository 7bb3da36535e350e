"""Fake secrets of realistic shape for tests. None of these are real keys."""

from __future__ import annotations

import secrets
import string

URLSAFE = string.ascii_letters + string.digits + "_-"
MARKER = "T3BlbkFJ"


def _random(n: int, alphabet: str = URLSAFE) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def openai_project_key() -> str:
    """164 characters like current `sk-proj-` keys, with the `T3BlbkFJ` marker in the middle."""
    return "sk-proj-" + _random(74) + MARKER + _random(74)


def openai_service_account_key() -> str:
    return "sk-svcacct-" + _random(74) + MARKER + _random(74)


def openai_legacy_key() -> str:
    alnum = string.ascii_letters + string.digits
    return "sk-" + _random(20, alnum) + MARKER + _random(20, alnum)


def canary_key() -> str:
    """A project key whose middle is a recognisable marker, so any leak of it is easy to grep for."""
    return "sk-proj-CANARY" + _random(68) + MARKER + _random(74)
