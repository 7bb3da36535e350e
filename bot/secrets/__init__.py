"""Recognise and redact leaked API keys.

Everything keybot logs, posts to Slack or sends to an LLM goes through :func:`redact` / :func:`redact_obj`
first, so a key that is being handled as an incident is never re-leaked by the bot itself. Recognition
(:func:`find_secrets`) leaves placeholders and documentation examples out; redaction does not.
"""

from bot.secrets.patterns import FORMATS, SecretFormat
from bot.secrets.placeholders import is_placeholder
from bot.secrets.redact import (
    SecretMatch,
    contains_secret,
    find_secrets,
    parse_redacted,
    redact,
    redact_obj,
    redacted_form,
)

__all__ = [
    "FORMATS",
    "SecretFormat",
    "SecretMatch",
    "contains_secret",
    "find_secrets",
    "is_placeholder",
    "parse_redacted",
    "redact",
    "redact_obj",
    "redacted_form",
]
