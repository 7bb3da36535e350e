"""Read a file (or a pipe) as text for secret scanning: never block, never skip silently, never load it whole.

A scan gate must not pass a file it did not read, so everything here either yields the file's text or
raises :class:`Unreadable` with a one-line reason. Decisions:

- Only regular files are opened (``os.stat`` first, then ``O_NONBLOCK`` and ``fstat`` again, so a file
  swapped for a FIFO in between cannot hang the scan). FIFOs, sockets and devices are "not a regular file".
- Text is streamed in chunks cut at a line end, so a file of any size up to ``max_bytes`` is scanned whole
  in bounded memory; past ``max_bytes`` the file is Unreadable (the caller reports what it already found).
- Encoding: a BOM selects UTF-8, UTF-16 or UTF-32; BOM-less UTF-16 is recognised by its NUL bytes falling
  on every other position; anything else is read as UTF-8 with invalid bytes replaced. Keys are ASCII, so a
  replaced byte or a NUL (binary files, a stray leading NUL) is just a separator: binary files are scanned
  for the text they hold, like ``strings``, rather than skipped. Nothing is therefore "undecodable".
"""

from __future__ import annotations

import codecs
import os
import stat
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["CHUNK_CHARS", "Chunk", "Unreadable", "detect_encoding", "open_regular", "text_chunks"]

#: Characters per chunk: at most 4 MB of UTF-8, under the leak finder's 5 MB limit per text.
CHUNK_CHARS = 1_000_000
_READ_BYTES = 1 << 20
_PROBE = 4096
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: Characters a secret is made of (bot.secrets.patterns.CHARSET); a chunk never ends inside a run of them.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "_-")


class Unreadable(Exception):
    """A file that was asked for and could not be scanned; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Chunk:
    """A piece of the text: ``first_line`` is the 1-based line it starts on, ``first_column`` the 0-based
    column of its first character (non-zero only when a line was too long to cut at its end)."""

    text: str
    first_line: int
    first_column: int


def open_regular(path: str, *, max_bytes: int) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file no larger than ``max_bytes``; else Unreadable."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise Unreadable(f"cannot read: {error.strerror or error}") from None
    _check(info, max_bytes)
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise Unreadable(f"cannot read: {error.strerror or error}") from None
    try:
        _check(os.fstat(fd), max_bytes)  # the path may have been swapped for a FIFO since the stat
    except Unreadable:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _check(info: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise Unreadable(f"not a regular file ({_kind(info.st_mode)}); not opened")
    if info.st_size > max_bytes:
        raise Unreadable(f"larger than {_megabytes(max_bytes)} ({_megabytes(info.st_size)})")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a file"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


def detect_encoding(head: bytes) -> tuple[str, int]:
    """The codec for a file starting with ``head`` and the length of its BOM."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    if b"\0" in head:
        pairs = len(head) // 2
        even = head[0 : 2 * pairs : 2].count(0)
        odd = head[1 : 2 * pairs : 2].count(0)
        if odd * 2 > pairs and even * 8 < pairs:  # "k\0e\0y\0": ASCII text in UTF-16 LE
            return "utf-16-le", 0
        if even * 2 > pairs and odd * 8 < pairs:
            return "utf-16-be", 0
    return "utf-8", 0


def text_chunks(handle: BinaryIO, *, max_bytes: int, chunk_chars: int = CHUNK_CHARS) -> Iterator[Chunk]:
    """The decoded text of ``handle`` in chunks of about ``chunk_chars``, each cut after a line end (or,
    in a line longer than a chunk, after a character no secret contains), so no secret is ever split.

    Raises Unreadable once more than ``max_bytes`` were read (chunks before that were already yielded).
    """
    head = _read(handle, _PROBE)
    codec, bom = detect_encoding(head)
    decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    pending = decoder.decode(head[bom:])
    total = len(head)
    line, column = 1, 0
    while True:
        data = _read(handle, _READ_BYTES)
        total += len(data)
        if total > max_bytes:
            raise Unreadable(f"larger than {_megabytes(max_bytes)} (read {_megabytes(total)} and stopped)")
        pending += decoder.decode(data, final=not data)
        while len(pending) >= chunk_chars or (not data and pending):
            cut = _cut(pending, chunk_chars) if data or len(pending) > chunk_chars else len(pending)
            piece, pending = pending[:cut], pending[cut:]
            yield Chunk(piece, line, column)
            newlines = piece.count("\n")
            line += newlines
            column = len(piece) - piece.rfind("\n") - 1 if newlines else column + len(piece)
        if not data:
            return


def _read(handle: BinaryIO, size: int) -> bytes:
    try:
        return handle.read(size) or b""
    except OSError as error:
        raise Unreadable(f"cannot read: {error.strerror or error}") from None


def _cut(text: str, limit: int) -> int:
    """Where to end a chunk of at most ``limit`` characters: after the last line end, else after the last
    separator; a run with no separator at all is longer than any secret and is cut anywhere."""
    window = text[:limit]
    newline = window.rfind("\n")
    if newline >= 0:
        return newline + 1
    for i in range(len(window) - 1, -1, -1):
        if window[i] not in _TOKEN_CHARS:
            return i + 1
    return limit
