"""Rendering the postmortem, manager summary and digest templates: sandboxed, escaped, with a fallback.

- Templates run in Jinja's `ImmutableSandboxedEnvironment`: no attribute starting with `_`, no Python
  internals, no mutating data; `range` and string/list repetition are capped, and output is capped, so a
  template always terminates in bounded memory.
- Every `{{ }}` output passes through an escaper (`finalize`) chosen by flavour, so data (a reason typed in
  Slack, a key name) never becomes markup, links, mentions or template code. Only filters that mean to
  produce markup (`mention`) return `Markup`, which is passed through as is.
- A user's override (KEYBOT_TEMPLATES_DIR, same file names) that fails to compile or render gives one
  warning naming the file and line, and the built-in template is used. A broken built-in is a bug: raised.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from bot.config import BUILTIN_RUNBOOKS
from bot.postmortems.settings import postmortem_settings
from bot.secrets import redact

TEMPLATE_NAMES = ("postmortem.md.j2", "manager_summary.md.j2", "weekly_digest.md.j2")
BUILTIN_TEMPLATES = BUILTIN_RUNBOOKS / "templates"
SLACK_TEMPLATES = frozenset({"manager_summary.md.j2", "weekly_digest.md.j2"})
"""Rendered for Slack (mrkdwn); the others are Markdown files."""

MAX_OUTPUT = 500_000
MAX_RANGE = 10_000
RANGE_BUDGET = 200_000
MAX_REPEAT = 100_000
SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


@dataclass(frozen=True)
class Rendered:
    text: str
    warnings: tuple[str, ...] = ()


class RenderLimit(SecurityError):
    """The template asked for more than a render may use (range, repetition, output size)."""


# --- escaping -------------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_MD_ANYWHERE = re.compile(r"([\\`*_~\[\]|])")
_MD_LEADING = re.compile(r"^(?:[#+-]|\d+[.)](?=\s|$))")
_MD_ENTITY = re.compile(r"&(?=#?\w+;)")
_SLACK_LOOKALIKES = str.maketrans({"*": "∗", "_": "＿", "~": "∼", "`": "ˋ"})


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _leading(match: re.Match[str]) -> str:
    marker = match.group(0)
    return "\\" + marker if marker[0] in "#+-" else marker[:-1] + "\\" + marker[-1]


def escape_markdown(value: object) -> str:
    """One line of inert Markdown: `<`, `>` (HTML, Slack's `<!channel>`) and entity-like `&` are escaped,
    emphasis, code, link and table characters are backslash-escaped, so is a leading heading, quote or list
    marker, and URLs are broken so they are not linked."""
    text = _SPACE.sub(" ", str(value))
    text = _MD_ANYWHERE.sub(r"\\\1", text)
    text = _MD_LEADING.sub(_leading, text)
    text = text.replace("://", r":\/\/").replace("www.", r"www\.")
    return _MD_ENTITY.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def escape_slack(value: object) -> str:
    """One line of inert Slack mrkdwn: `&<>` as Slack asks, formatting characters as look-alikes (Slack has
    no backslash escapes), and URLs broken so they are not linked or unfurled."""
    text = _SPACE.sub(" ", str(value)).translate(_SLACK_LOOKALIKES)
    text = text.replace("://", ":\u200b//").replace("www.", "www\u200b.")
    return _entities(text)


ESCAPERS: dict[str, Callable[[object], str]] = {"markdown": escape_markdown, "slack": escape_slack}


# --- filters --------------------------------------------------------------------------------------------


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def duration(seconds: object) -> str:
    """`1 h 05 min`, `12 min 30 s`, `45 s`; `—` when it did not happen."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "—"
    total = round(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def utc(value: object, fmt: str = "%Y-%m-%d %H:%M") -> str:
    moment = _moment(value)
    if moment is None:
        return "—"
    return moment.astimezone(ZoneInfo("UTC")).strftime(fmt[:40]) + " UTC"


def local(value: object, tz: object = "UTC", fmt: str = "%Y-%m-%d %H:%M") -> str:
    """The moment in an IANA timezone, with its abbreviation (`2026-03-04 13:00 CET`)."""
    moment = _moment(value)
    if moment is None:
        return "—"
    try:
        zone = ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    shown = moment.astimezone(zone)
    return f"{shown.strftime(fmt[:40])} {shown.tzname() or zone.key}"


def day(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    moment = _moment(value)
    return moment.date().isoformat() if moment else (str(value)[:10] if value else "—")


def cost(value: object) -> str:
    """`12.3456 USD`, or `unknown` (never a made-up 0)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "unknown"
    return f"{value:.2f} USD" if value >= 1 else f"{value:.4f} USD"


def _trusted(text: str) -> Markup:
    """Text this module escaped or built itself (a mention of a checked id): passed through `finalize`."""
    return Markup(text)  # noqa: S704 - escaped above, or a fixed `<@U...>` of a checked id


def _mention(flavor: str) -> Callable[[object], Markup]:
    def mention(value: object) -> Markup:
        """A Slack mention only for a user id and only in Slack output; anything else as plain text."""
        text = str(value)
        if flavor == "slack" and SLACK_ID.match(text):
            return _trusted(f"<@{text}>")
        return _trusted(ESCAPERS[flavor](text))

    return mention


# --- the sandbox ----------------------------------------------------------------------------------------


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `range` and `*`/`**` bounded per render."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, flavor: str, loader: BaseLoader) -> None:
        escaper = ESCAPERS[flavor]
        super().__init__(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            finalize=lambda v: "—" if v is None else v if isinstance(v, Markup) else escaper(v),
        )
        self.range_left = RANGE_BUDGET
        self.globals.pop("lipsum", None)
        self.globals["range"] = self._range
        self.filters.update(
            duration=duration,
            utc=utc,
            local=local,
            day=day,
            cost=cost,
            mention=_mention(flavor),
            escape=lambda v: _trusted(escaper(v)),
            e=lambda v: _trusted(escaper(v)),
        )

    def _range(self, *args: int) -> range:
        made = range(*args)
        if len(made) > MAX_RANGE or len(made) > self.range_left:
            raise RenderLimit(f"range of {len(made)} items is more than a template may loop over")
        self.range_left -= len(made)
        return made

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise RenderLimit("exponent too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_REPEAT:
                    raise RenderLimit("repetition too large")
        return super().call_binop(context, operator, left, right)


def _generate(template: Template, context: Mapping[str, Any], *, truncate: bool) -> str:
    parts: list[str] = []
    size = 0
    for chunk in template.generate(dict(context)):
        size += len(chunk)
        if size > MAX_OUTPUT:
            if not truncate:
                raise RenderLimit(f"output longer than {MAX_OUTPUT} characters")
            parts.append("\n\n… (truncated)\n")
            break
        parts.append(chunk)
    return "".join(parts)


def _line(error: BaseException, filename: str | None, tb: TracebackType | None) -> int | None:
    if isinstance(error, TemplateSyntaxError):
        return error.lineno
    line = None
    while tb is not None:
        if filename and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _warning(path: Path, error: BaseException, tb: TracebackType | None) -> str:
    line = _line(error, str(path), tb)
    where = f" line {line}" if line else ""
    if isinstance(error, TemplateNotFound):
        message = f"template {error.name!r} not found"
    else:
        message = redact(" ".join(str(error).split()))[:200] or type(error).__name__
    kind = "blocked by the sandbox: " if isinstance(error, SecurityError) else ""
    return f"template override {path}{where}: {kind}{message}; used the built-in template"


def builtin_dir() -> Path:
    return BUILTIN_TEMPLATES


def _override_loader(user_dir: Path) -> BaseLoader:
    """The user's folder first, then the built-ins, also reachable as `builtin/<name>` (so an override can
    `{% extends "builtin/postmortem.md.j2" %}` and change one block)."""
    builtin = FileSystemLoader(str(builtin_dir()))
    return ChoiceLoader([FileSystemLoader(str(user_dir)), PrefixLoader({"builtin": builtin}), builtin])


def render(name: str, context: Mapping[str, Any], *, flavor: str | None = None) -> Rendered:
    """Render `name` with `context`: the user's override when there is a working one, else the built-in."""
    if name not in TEMPLATE_NAMES:
        raise ValueError(f"unknown template {name!r}; expected one of {', '.join(TEMPLATE_NAMES)}")
    flavor = flavor or ("slack" if name in SLACK_TEMPLATES else "markdown")
    warnings: list[str] = []
    user_dir = postmortem_settings().templates_dir
    if user_dir is not None and (user_dir / name).is_file():
        path = (user_dir / name).resolve()
        env = Sandbox(flavor, _override_loader(user_dir))
        try:
            return Rendered(_generate(env.get_template(name), context, truncate=False))
        except (TemplateError, RecursionError, ArithmeticError, ValueError, TypeError, LookupError,
                AttributeError, OSError, UnicodeError) as error:  # fmt: skip
            warnings.append(_warning(path, error, sys.exc_info()[2]))
    env = Sandbox(flavor, FileSystemLoader(str(builtin_dir())))
    return Rendered(_generate(env.get_template(name), context, truncate=True), tuple(warnings))
