"""Find and redact secrets in free text and nested data.

This sits on the hot path (every log line, Slack message and LLM prompt), so it does a single linear scan:
a cheap regex cuts the text into maximal runs of secret characters at least as long as the shortest secret,
and only those runs (rare in ordinary prose) are full-matched against the combined catalogue regex.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.secrets.patterns import (
    CHARSET,
    COMBINED,
    DOTTED,
    DOTTED_HINTS,
    FIRST_CHARS,
    GLUED_PREFIXES,
    format_for,
)
from bot.secrets.placeholders import is_placeholder

__all__ = [
    "SecretMatch",
    "contains_secret",
    "find_secrets",
    "parse_redacted",
    "redact",
    "redact_obj",
    "redacted_form",
]

# Shortest recognised secret is an AWS access key id (20 chars); shorter runs cannot be secrets.
_MIN_SECRET_LEN = 20
_RUNS = re.compile(f"(?<![{CHARSET}])[{CHARSET}]{{{_MIN_SECRET_LEN},}}")

# Escape sequences whose trailing letters/digits would otherwise glue onto a secret and hide it, e.g. a JSON
# dump or repr containing ``\nsk-proj-...`` or a URL-encoded ``%22sk-proj-...%22``. Only consulted when a run
# does not match as a whole.
_ESCAPE = re.compile(r"\\(?:[nrtfvb0]|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4})|%[0-9A-Fa-f]{2}")

_ELLIPSIS = r"(?:\.{2,}|…+|\*{2,})"
_REDACTED_INPUT = re.compile(rf"(?P<prefix>[{CHARSET}]+){_ELLIPSIS}(?P<suffix>[{CHARSET}]{{4,}})")
_REDACTED_WRAPPER = re.compile(r"\[REDACTED\s+(?P<inner>[^\]]*)\]")


@dataclass(frozen=True)
class SecretMatch:
    """A secret found in some text.

    ``value`` is kept out of ``repr()`` so that logging a match by accident does not leak the secret.
    """

    kind: str
    provider: str
    family: str
    start: int
    end: int
    value: str = field(repr=False)

    @property
    def last4(self) -> str:
        """Last four characters: what provider consoles show, so humans can tell keys apart."""
        return self.value[-4:]

    @property
    def redacted(self) -> str:
        """Safe-to-show form, e.g. ``sk-proj-...Xy9Q``."""
        return f"{self.family}...{self.last4}"


def _full(text: str, start: int, end: int) -> SecretMatch | None:
    if text[start] not in FIRST_CHARS:
        return None
    m = COMBINED.fullmatch(text, start, end)
    if m is None:
        return None
    fmt = format_for(m)
    return SecretMatch(fmt.kind, fmt.provider, fmt.family, start, end, text[start:end])


def _match_run(text: str, start: int, end: int, glued: bool) -> SecretMatch | None:
    """Full-match one run; else retry after an escape sequence glued to its front; else look for a
    distinctive prefix glued to a preceding word (``tokengithub_pat_...``) and full-match from there."""
    first = start
    while end - start >= _MIN_SECRET_LEN:
        found = _full(text, start, end)
        if found is not None:
            return found
        esc = _ESCAPE.match(text, start - 1) if start > 0 else None
        if esc is None or esc.end() <= start:
            break
        start = esc.end()
    prefix = GLUED_PREFIXES.search(text, first + 1, end) if glued else None
    while prefix is not None:
        found = _full(text, prefix.start(), end)
        if found is not None:
            return found
        prefix = GLUED_PREFIXES.search(text, prefix.start() + 1, end)
    return None


def _iter_runs(text: str) -> Iterator[SecretMatch]:
    glued = GLUED_PREFIXES.search(text) is not None  # once per text: most texts hold no such prefix
    for run in _RUNS.finditer(text):
        found = _match_run(text, run.start(), run.end(), glued)
        if found is not None:
            yield found


def _iter_secrets(text: str) -> Iterator[SecretMatch]:
    """Run matches, plus the rare formats holding a dot (searched only when a cheap hint is present)."""
    if not any(hint in text for hint in DOTTED_HINTS):
        yield from _iter_runs(text)
        return
    dotted = []
    for m in DOTTED.finditer(text):
        fmt = format_for(m)
        dotted.append(SecretMatch(fmt.kind, fmt.provider, fmt.family, m.start(), m.end(), m.group()))
    if not dotted:
        yield from _iter_runs(text)
        return
    runs = [r for r in _iter_runs(text) if not any(d.start < r.end and r.start < d.end for d in dotted)]
    yield from sorted(dotted + runs, key=lambda found: found.start)


def find_secrets(text: str, *, placeholders: bool = False) -> list[SecretMatch]:
    """All secrets in ``text``, non-overlapping and sorted by start.

    A secret must not touch ``[A-Za-z0-9_-]`` on either side, so it always spans a whole run of those
    characters (except a distinctive prefix glued to a word, and the formats holding a dot); the first (most
    specific) catalogue format that matches wins. Placeholders and documentation examples
    (``ghp_xxxx...``, ``AKIA...EXAMPLE``) are not secrets and are left out unless ``placeholders``.
    """
    found = _iter_secrets(text)
    if placeholders:
        return list(found)
    return [m for m in found if not is_placeholder(m.value, m.family)]


def contains_secret(text: str) -> bool:
    """True if ``text`` holds anything secret-shaped, placeholders included (stops at the first one).

    Used as a guard (never store or echo this text), where erring on a placeholder costs nothing.
    """
    return next(_iter_secrets(text), None) is not None


def redact(text: str) -> str:
    """Replace every secret with ``[REDACTED <family>...<last4>]``; returns ``text`` itself if none.

    Placeholders are redacted too: judging randomness wrongly here would print a live key, while
    redacting an example costs nothing.
    """
    pieces: list[str] = []
    pos = 0
    for found in _iter_secrets(text):
        pieces.append(text[pos : found.start])
        pieces.append(f"[REDACTED {found.redacted}]")
        pos = found.end
    if not pieces:
        return text
    pieces.append(text[pos:])
    return "".join(pieces)


def redacted_form(secret: str) -> str:
    """Safe form of one whole secret value, for messages about a specific key.

    Known formats give ``family...last4``; unknown ones ``abc...last4``, or ``[REDACTED]`` when the value is
    so short that showing 7 characters would reveal most of it.
    """
    value = secret.strip()
    m = COMBINED.fullmatch(value) or DOTTED.fullmatch(value)
    if m is not None:
        return f"{format_for(m).family}...{value[-4:]}"
    if len(value) < 12:
        return "[REDACTED]"
    return f"{value[:3]}...{value[-4:]}"


def parse_redacted(text: str) -> tuple[str, str] | None:
    """Parse a human-typed redacted key such as ``sk-proj-...Xy9Q`` into ``(prefix, suffix)``.

    Accepts ``...``, ``…`` and ``****`` as the elided part, surrounding quotes/backticks, and keybot's own
    ``[REDACTED sk-...Xy9Q]`` output, so users can paste what the bot showed them. Returns None otherwise.
    """
    value = text.strip()
    wrapped = _REDACTED_WRAPPER.fullmatch(value)
    if wrapped is not None:
        value = wrapped.group("inner").strip()
    value = value.strip("`'\"").strip()
    m = _REDACTED_INPUT.fullmatch(value)
    if m is None:
        return None
    return m.group("prefix"), m.group("suffix")


def redact_obj(obj: Any) -> Any:
    """Recursively redact strings inside dicts, lists, tuples, sets and bytes; other objects pass through.

    Used on structlog event dicts, Slack payloads and LLM prompts. Containers are copied (the input is never
    mutated); reference cycles are replaced by ``"[cycle]"`` rather than recursing forever.

    Nearly every payload holds no secret, so its strings are first scanned as one text joined by NULs; only
    if that text may hold one is each string redacted on its own. A NUL is outside the secret alphabet, so
    every candidate run in a string is a candidate run of the joined text (and a dotted format's hint is a
    substring of it): the joined scan misses nothing the per-string one would find.
    """
    texts: list[str] = []
    _gather(obj, texts, set())
    scrub = redact if _may_hold_secret("\x00".join(texts)) else _unchanged
    return _redact_obj(obj, set(), scrub)


_SCALARS = frozenset({int, float, bool, type(None)})


def _unchanged(text: str) -> str:
    return text


def _may_hold_secret(text: str) -> bool:
    if any(hint in text for hint in DOTTED_HINTS):
        return True
    return next(_iter_runs(text), None) is not None


def _gather(obj: Any, texts: list[str], active: set[int]) -> None:
    """Every string :func:`_redact_obj` would redact, in any order (plain types first: this is hot)."""
    kind = type(obj)
    if kind is str:
        texts.append(obj)
    elif kind is dict or kind is list or kind is tuple:
        if id(obj) in active:
            return
        active.add(id(obj))
        for item in obj.items() if kind is dict else obj:
            if type(item) is str:
                texts.append(item)
            else:
                _gather(item, texts, active)
        active.discard(id(obj))
    elif isinstance(obj, bytes | bytearray):
        texts.append(bytes(obj).decode("utf-8", "surrogateescape"))
    elif isinstance(obj, str):
        texts.append(obj)
    elif isinstance(obj, dict | list | tuple | set | frozenset) and id(obj) not in active:
        active.add(id(obj))
        for item in obj.items() if isinstance(obj, dict) else obj:
            _gather(item, texts, active)
        active.discard(id(obj))


def _redact_obj(obj: Any, active: set[int], scrub: Callable[[str], str]) -> Any:
    kind = type(obj)
    if kind is str:
        return scrub(obj)
    if kind is dict and id(obj) not in active:  # the common case, without the general path's checks
        active.add(id(obj))
        copied = {
            (scrub(k) if type(k) is str else _redact_obj(k, active, scrub)): (
                scrub(v) if type(v) is str else _redact_obj(v, active, scrub)
            )
            for k, v in obj.items()
        }
        active.discard(id(obj))
        return copied
    if kind is list and id(obj) not in active:
        active.add(id(obj))
        elements = [scrub(v) if type(v) is str else _redact_obj(v, active, scrub) for v in obj]
        active.discard(id(obj))
        return elements
    if kind in _SCALARS:
        return obj
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, bytes | bytearray):
        # surrogateescape round-trips arbitrary bytes, so non-UTF-8 payloads come back unchanged.
        out = scrub(bytes(obj).decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        return type(obj)(out)
    if not isinstance(obj, dict | list | tuple | set | frozenset):
        return obj
    if id(obj) in active:
        return "[cycle]"
    active.add(id(obj))
    try:
        if isinstance(obj, dict):
            items = {_redact_obj(k, active, scrub): _redact_obj(v, active, scrub) for k, v in obj.items()}
            if type(obj) is dict:
                return items
            clone = copy.copy(obj)  # keeps OrderedDict / defaultdict behaviour
            clone.clear()
            clone.update(items)
            return clone
        values = [_redact_obj(v, active, scrub) for v in obj]
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
            return type(obj)(*values)
        if type(obj) in (list, tuple, set, frozenset):
            return type(obj)(values)
        try:
            return type(obj)(values)
        except TypeError:
            return list(values) if isinstance(obj, list) else tuple(values)
    finally:
        active.discard(id(obj))
