"""Structured logging with secret redaction as the last processor before anything is rendered.

JSON for production (machines read it), coloured key=value for terminals (people read it).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from bot.secrets import redact, redact_obj


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every string anywhere in the event is passed through the redactor."""
    redacted = redact_obj(dict(event_dict))
    event_dict.clear()
    event_dict.update(redacted)
    return event_dict


class _RedactingFormatter(logging.Formatter):
    """For records from libraries (httpx, hvac, slack_sdk) that bypass structlog's processors."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _SafePrintLogger:
    """structlog's print logger, except that a closed or broken stream drops the line instead of raising:
    a log call must never turn a handled request into a crash."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        with contextlib.suppress(ValueError, OSError):
            print(message, file=self._stream, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _SafePrintLogger(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
