"""Recognise leaked secrets in text or in a unified diff, and attribute them to registered keys.

Attribution is by keyed fingerprint ONLY. A redacted-form match (same family and last 4 characters) is not
proof: with thousands of keys, unrelated keys share a tail, and naming the wrong owner -- or revoking the
wrong key -- is worse than saying "not in the registry". Hits carry only the redacted form, never the
secret, so they can be logged, posted and printed as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.registry.fingerprint import Fingerprinter
from bot.registry.models import Key
from bot.secrets import SecretMatch, find_secrets

__all__ = [
    "MAX_BYTES", "DiffLeaks", "FoundLeak", "LeakHit", "TextTooLarge", "find_leaks",
    "find_leaks_with_fingerprints", "leaks_in_diff",
]  # fmt: skip

#: Default size limit: large enough for any config file or Slack snippet, small enough to stay fast.
MAX_BYTES = 5_000_000
# Fingerprints per IN (...) query: well under SQLite's and PostgreSQL's bound-parameter limits.
_LOOKUP_CHUNK = 500
_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_ESCAPE = re.compile(rb'\\([0-7]{3}|[abtnvfr"\\])')
_GIT_ESCAPES = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13, b'"': 34, b"\\": 92}


class TextTooLarge(ValueError):
    """The text exceeds ``max_bytes``; the caller decides whether to skip it or fail (never silently cut)."""


@dataclass(frozen=True)
class LeakHit:
    """One recognised secret. Deliberately has no secret field: it is safe to log, post and print.

    ``line``/``column`` are 1-based (column in characters); ``line`` is None only for a ``+`` line found
    outside any hunk of a malformed diff. ``key_*``, ``owners`` and ``environment`` are set only when the
    secret's keyed fingerprint matches a registered key.
    """

    kind: str
    provider: str
    redacted: str
    line: int | None
    column: int | None
    key_id: int | None
    key_name: str | None
    owners: list[str]
    environment: str | None


@dataclass
class DiffLeaks:
    """What :func:`leaks_in_diff` found.

    ``hits`` pairs each hit with the new-file path it was added to, in diff order. ``too_large`` lists files
    whose added lines exceed ``max_bytes`` (not scanned). ``is_diff`` is False when no diff header or hunk
    was seen, and ``empty`` when the input was blank: non-blank input that is not a diff was NOT scanned,
    so callers must not report it as clean.
    """

    hits: list[tuple[str, LeakHit]] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    is_diff: bool = False
    empty: bool = True


def find_leaks(
    session: Session | None,
    text: str,
    fingerprinter: Fingerprinter | None,
    *,
    max_bytes: int = MAX_BYTES,
) -> list[LeakHit]:
    """Every distinct secret in ``text`` (first position of each), matched against the registry.

    Repeats of one secret (same value, hence same fingerprint) collapse into one hit. Pass
    ``session=None`` to recognise secrets without consulting a registry (every hit then has
    ``key_id=None``). Raises :class:`TextTooLarge` when ``text`` is over ``max_bytes`` UTF-8 bytes.
    """
    if len(text) > max_bytes or _utf8_size(text) > max_bytes:
        raise TextTooLarge(f"text is larger than {max_bytes} bytes")
    return _scan(session, text, fingerprinter)


@dataclass(frozen=True)
class FoundLeak:
    """A hit with its keyed fingerprint and family: what the leak watcher needs to open an incident and to
    find the key again later (at the provider, or in the registry once it is registered)."""

    hit: LeakHit
    fingerprint: str
    family: str
    last4: str


def find_leaks_with_fingerprints(
    session: Session | None, text: str, fingerprinter: Fingerprinter, *, max_bytes: int = MAX_BYTES
) -> list[FoundLeak]:
    """:func:`find_leaks`, each hit paired with its fingerprint (never the value)."""
    if len(text) > max_bytes or _utf8_size(text) > max_bytes:
        raise TextTooLarge(f"text is larger than {max_bytes} bytes")
    return [
        FoundLeak(hit, fingerprinter.fingerprint(match.value), match.family, match.last4)
        for hit, match in _scan_matches(session, text, fingerprinter)
    ]


def leaks_in_diff(
    session: Session | None,
    diff: str | Iterable[str],
    fingerprinter: Fingerprinter | None,
    *,
    max_bytes: int = MAX_BYTES,
    source: str = "<diff>",
) -> DiffLeaks:
    """Secrets on the ADDED lines of a unified diff (e.g. ``git diff --cached``), per new file.

    Removed and context lines are ignored: a commit that deletes a key must not be blocked. Hunks are
    followed by their ``@@ -a,b +c,d @@`` counts, so an added line that itself starts with ``++`` is still
    scanned, and line numbers refer to the new file. The path comes from ``+++ b/path`` (``source`` before
    any header). ``diff`` may be a whole string or an iterable of lines (e.g. a file object), so a large
    diff is streamed: at most ``max_bytes`` of one file's added lines are held at a time; a file with more is
    listed in ``too_large`` instead. Repeats of one secret within a file collapse into one hit.
    """
    result = DiffLeaks()
    lines: Iterable[str] = diff.split("\n") if isinstance(diff, str) else diff
    added = _Added(source, max_bytes)
    old_left = new_left = new_line = 0
    for raw in lines:
        line = raw.rstrip("\r\n")
        if result.empty and line.strip():
            result.empty = False
        if old_left > 0 or new_left > 0:
            tag = line[:1]
            if tag == "+":
                added.add(new_line, line[1:])
                new_line, new_left = new_line + 1, new_left - 1
                continue
            if tag == "-":
                old_left -= 1
                continue
            if tag in (" ", ""):  # an empty line is a context line whose space an editor trimmed
                old_left, new_left, new_line = old_left - 1, new_left - 1, new_line + 1
                continue
            if tag == "\\":  # "\ No newline at end of file"
                continue
            old_left = new_left = 0  # malformed hunk: read this line as a header instead
        hunk = _HUNK.match(line)
        if hunk is not None:
            result.is_diff = True
            old_left = int(hunk.group(2) or 1)
            new_line = int(hunk.group(3))
            new_left = int(hunk.group(4) or 1)
        elif line.startswith("+++ "):
            result.is_diff = True
            added = _flush(session, fingerprinter, added, result, _diff_path(line[4:]) or source)
        elif line.startswith(("diff ", "--- ")):
            result.is_diff = True
        elif line.startswith("+"):  # outside any hunk: scan it anyway, position unknown
            added.add(None, line[1:])
    _flush(session, fingerprinter, added, result, source)
    return result


class _Added:
    """One file's added lines, joined later into one text so a secret repeated in the file is one hit."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.numbers: list[int | None] = []
        self.lines: list[str] = []
        self.size = 0
        self.too_large = False

    def add(self, number: int | None, content: str) -> None:
        if self.too_large:
            return
        self.size += _utf8_size(content) + 1
        if self.size > self.max_bytes + 1:  # +1: the last line's newline is not part of the text
            self.too_large = True
            self.numbers, self.lines = [], []
            return
        self.numbers.append(number)
        self.lines.append(content)


def _flush(
    session: Session | None, fingerprinter: Fingerprinter | None, added: _Added, result: DiffLeaks, path: str
) -> _Added:
    """Scan the finished file's added lines into ``result``; return a fresh buffer for ``path``."""
    if added.too_large:
        result.too_large.append(added.path)
    elif added.lines:
        for hit in _scan(session, "\n".join(added.lines), fingerprinter):
            number = added.numbers[hit.line - 1] if hit.line is not None else None
            result.hits.append((added.path, replace(hit, line=number)))
    return _Added(path, added.max_bytes)


def _scan(session: Session | None, text: str, fingerprinter: Fingerprinter | None) -> list[LeakHit]:
    return [hit for hit, _ in _scan_matches(session, text, fingerprinter)]


def _scan_matches(
    session: Session | None, text: str, fingerprinter: Fingerprinter | None
) -> list[tuple[LeakHit, SecretMatch]]:
    found = list(_first_occurrences(text))
    registered = _registered(session, fingerprinter, [m.value for m, _, _ in found]) if found else {}
    hits = []
    for match, line, column in found:
        key = registered.get(match.value)
        hit = (
            LeakHit(
                kind=match.kind,
                provider=match.provider,
                redacted=match.redacted,
                line=line,
                column=column,
                key_id=key.id if key else None,
                key_name=key.name if key else None,
                owners=key.owner_ids() if key else [],
                environment=key.environment if key else None,
            ),
            match,
        )
        hits.append(hit)
    return hits


def _first_occurrences(text: str) -> Iterator[tuple[SecretMatch, int, int]]:
    """Each distinct secret once, with its 1-based line and column; one linear pass over the text.

    Equal values have equal fingerprints (the fingerprint is an HMAC of the value), so deduplicating on the
    value held in memory for this call is the same as deduplicating on the fingerprint.
    """
    seen: set[str] = set()
    line, line_start, pos = 1, 0, 0
    for match in find_secrets(text):
        newlines = text.count("\n", pos, match.start)
        if newlines:
            line += newlines
            line_start = text.rindex("\n", pos, match.start) + 1
        pos = match.start
        if match.value in seen:
            continue
        seen.add(match.value)
        yield match, line, match.start - line_start + 1


def _registered(
    session: Session | None, fingerprinter: Fingerprinter | None, values: list[str]
) -> dict[str, Key]:
    """Registered keys by secret value, found by keyed fingerprint in a few batched queries."""
    if session is None:
        return {}
    if fingerprinter is None:
        raise ValueError("a fingerprinter is needed to look secrets up in the registry")
    by_fingerprint = {fingerprinter.fingerprint(v): v for v in values}
    wanted = list(by_fingerprint)
    keys: dict[str, Key] = {}
    for i in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[i : i + _LOOKUP_CHUNK]
        for key in session.scalars(select(Key).where(Key.fingerprint.in_(chunk))).unique():
            if key.fingerprint is not None:
                keys[by_fingerprint[key.fingerprint]] = key
    return keys


def _utf8_size(text: str) -> int:
    """UTF-8 size of ``text``; ASCII (nearly all config and code) is measured without encoding."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _diff_path(header: str) -> str | None:
    """The path in a ``+++`` header: drops a timestamp after a tab, git's quoting and the ``b/`` prefix."""
    name = header.split("\t", 1)[0]
    if name == "/dev/null":
        return None
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        raw = _GIT_ESCAPE.sub(_git_unescape, name[1:-1].encode("utf-8", "surrogateescape"))
        name = raw.decode("utf-8", "replace")
    return name[2:] if name.startswith("b/") else name


def _git_unescape(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    return bytes([int(code, 8) & 0xFF if len(code) == 3 else _GIT_ESCAPES[code]])
