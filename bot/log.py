"""Structured logging with secret redaction as the last processor before anything is rendered.

JSON for production and for the log file (machines read it), coloured key=value for terminals (people
read it). Ids bound with structlog's contextvars (`request_id` per HTTP request, `run_id` while a run
executes: bot/observability/logcontext.py) are merged into every line, ours and the libraries', and
redacted like any other field. structlog events and library records (httpx, hvac, slack_sdk) go through
the same stdlib handlers, so every sink (the stream and `KEYBOT_STATE_DIR/keybot.log`) gets every line,
redacted.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from bot.secrets import redact, redact_obj

EVENTS_LOGGER = "keybot"
"""The stdlib logger structlog events go through; it lets every level through (structlog filtered already),
while libraries stay at WARNING."""


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every string anywhere in the event is passed through the redactor."""
    redacted = redact_obj(dict(event_dict))
    event_dict.clear()
    event_dict.update(redacted)
    return event_dict


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders an event (ours or a library's) and redacts the finished line once more, as a last guard."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _QuietStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A closed or broken stream drops the line instead of printing a traceback: a log call must never
    turn a handled request into a crash or noise."""

    def handleError(self, record: logging.LogRecord) -> None:
        return


class _StateFileHandler(logging.FileHandler):
    """Appends to the log file, creating it (and its directory) only when the first line is written, so
    a command that logs nothing leaves no file behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:
        return


def _formatter(renderer: Any) -> _RedactingFormatter:
    return _RedactingFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,  # library lines carry the request and run ids too
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
    )


def configure_logging(
    fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None, *, file: Path | None = None
) -> None:
    """Log to `stream` (stderr by default) and, given `file`, also append JSON lines to it."""
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
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: logging.getLogger(EVENTS_LOGGER),
        cache_logger_on_first_use=False,
    )
    events = logging.getLogger(EVENTS_LOGGER)
    events.setLevel(logging.DEBUG)
    events.propagate = True
    handlers: list[logging.Handler] = [_QuietStreamHandler(stream)]
    handlers[0].setFormatter(_formatter(renderer))
    if file is not None:
        to_file = _StateFileHandler(file)
        to_file.setFormatter(_formatter(structlog.processors.JSONRenderer()))
        handlers.append(to_file)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, _QuietStreamHandler | _StateFileHandler):
            old.close()  # ours: release the file; other handlers (a test's capture) are not ours to close
    root.handlers[:] = handlers
    root.setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
