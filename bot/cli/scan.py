"""`keybot scan`: find leaked keys in files, directories or a diff, for pre-commit hooks and CI.

A gate must never pass what it did not read. Exit status: 1 when any secret is found (a hit always wins, so a
leak is never masked by another problem); else 2 when anything asked for could not be scanned (a missing
path, a file over the size cap, permission denied, a FIFO, socket or device, a non-diff given to --diff,
a terminal on stdin); else 0. ``--skip-unreadable`` turns unreadable files (not missing paths or usage
errors) into notes, so they no longer fail the run. Only the redacted form of a secret is ever printed.

The scan never creates a file: the registry is consulted only when the configured database already exists
(read-only), and the fingerprint key only when it is configured or already saved in the state directory.
"""

from __future__ import annotations

import hmac
import io
import json
import os
import sqlite3
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import typer
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bot.cli.context import CliError, err, runtime
from bot.config import Settings
from bot.db.migrate import current_revision, head_revision
from bot.detection.leaks import LeakHit, find_leaks, leaks_in_diff
from bot.registry.fingerprint import CHECK_SETTING, KEY_FILE_NAME, Fingerprinter, FingerprintKeyMismatch
from bot.registry.models import Setting
from bot.secrets import redact, redact_obj
from bot.secrets.textfiles import Unreadable, open_regular, text_chunks

STDIN = "-"
STDIN_NAME = "<stdin>"
#: Directories never descended into: VCS metadata and vendored dependencies, not the project's own files.
SKIP_DIRS = frozenset({".git", "node_modules", ".venv"})
#: Largest file (or standard input) scanned; larger ones are read in chunks up to this, then unreadable.
MAX_FILE_BYTES = 200_000_000
#: The leak finder's own limit on a diff's added lines per file.
DIFF_FILE_BYTES = 5_000_000


@dataclass
class _Scan:
    """Everything one `keybot scan` run found, in the order it was found."""

    session: Session | None
    fingerprinter: Fingerprinter | None
    as_diff: bool
    skip_unreadable: bool = False
    hits: list[tuple[str, LeakHit]] = field(default_factory=list)
    problems: int = 0
    skipped: int = 0
    scanned: int = 0
    stdin_used: bool = False

    def problem(self, message: str) -> None:
        self.problems += 1
        err.print(f"keybot: {redact(message)}", markup=False)

    def unreadable(self, path: str, reason: str) -> None:
        """A file asked for and not scanned: a failure, unless --skip-unreadable made it a note."""
        if self.skip_unreadable:
            self.skipped += 1
            self.note(f"skipped {path}: {reason} (--skip-unreadable)")
        else:
            self.problem(f"cannot scan {path}: {reason}")

    def note(self, message: str) -> None:
        err.print(f"keybot: note: {redact(message)}", markup=False)


def scan_command(
    paths: list[str] | None = typer.Argument(
        None, help="files or directories to scan; '-' reads standard input", show_default=False
    ),
    diff: bool = typer.Option(
        False, "--diff", help="inputs are unified diffs (stdin if no PATH): scan only the added lines"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the hits as a JSON list"),
    no_registry: bool = typer.Option(
        False, "--no-registry", help="only recognise secrets; do not open the registry database"
    ),
    skip_unreadable: bool = typer.Option(
        False,
        "--skip-unreadable",
        help="report files that cannot be scanned (too large, unreadable, not a regular file) as skipped"
        " instead of failing with exit 2",
    ),
) -> None:
    """Scan files, directories or a diff for leaked API keys; exit 1 if any is found, 2 if an input could
    not be scanned."""
    if not paths and not diff:
        raise CliError("nothing to scan: give PATH... ('-' for standard input) or --diff to read a diff")
    _replace_unprintable_output()
    with _registry(no_registry) as (session, fingerprinter, why_not):
        scan = _Scan(session, fingerprinter, diff, skip_unreadable)
        _scan_all(scan, paths or [STDIN])
    _report(scan, as_json, not_consulted=why_not)
    if scan.hits:
        raise typer.Exit(1)
    if scan.problems:
        raise typer.Exit(2)


@contextmanager
def _registry(no_registry: bool) -> Iterator[tuple[Session | None, Fingerprinter | None, str | None]]:
    """A read-only session on the registry, or why it is not consulted; never creates a database or file."""
    if no_registry:
        yield None, None, "--no-registry"
        return
    settings = runtime().settings
    fingerprinter = _existing_fingerprinter(settings)
    engine = _existing_database(settings)
    if engine is None:
        err.print(
            f"keybot: note: no registry database at {settings.database_url}; hits are not attributed"
            " (set DATABASE_URL, or --no-registry)",
            markup=False,
        )
        yield None, None, "no registry database"
        return
    try:
        revision, head = current_revision(engine), head_revision(engine)
        if fingerprinter is None or revision is None or revision != head:
            if fingerprinter is None:
                why = "no fingerprint key: set KEYBOT_FINGERPRINT_KEY"
            elif revision is None:
                why = "the database holds no keybot registry"
            else:
                why = f"the registry schema is at {revision}, not {head}: run `keybot db upgrade`"
            err.print(f"keybot: note: registry not consulted ({why})", markup=False)
            yield None, None, "registry not available"
            return
        with Session(engine) as session:
            _check_fingerprint_key(session, fingerprinter)
            yield session, fingerprinter, None
            session.rollback()
    finally:
        engine.dispose()


def _existing_fingerprinter(settings: Settings) -> Fingerprinter | None:
    """The configured key, else the one already saved in the state directory; never generates one."""
    if settings.fingerprint_key is not None:
        return Fingerprinter(settings.fingerprint_key.get_secret_value().encode())
    saved = settings.state_dir / KEY_FILE_NAME
    try:
        return Fingerprinter(saved.read_text().strip().encode()) if saved.is_file() else None
    except (OSError, ValueError):
        return None


def _existing_database(settings: Settings) -> Engine | None:
    """A read-only engine on the configured database if it exists: a SQLite file that is already there
    (opened with mode=rw so it can never be created, and query_only), or a PostgreSQL server (read-only
    transactions). None for a SQLite file that does not exist."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(
            url, poolclass=NullPool, connect_args={"options": "-c default_transaction_read_only=on"}
        )
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file:") or not Path(name).is_file():
        return None
    uri = Path(name).resolve().as_uri().replace("file://", "file:", 1)

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=10, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)
    event.listen(engine, "connect", _query_only)
    return engine


def _query_only(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.execute("PRAGMA query_only = ON")


def _check_fingerprint_key(session: Session, fingerprinter: Fingerprinter) -> None:
    """Refuse a fingerprint key other than the registry's: every hit would wrongly be "not in the registry".

    Read-only, unlike ``Fingerprinter.verify_against``: a scan must not pin a key into a fresh database.
    """
    stored = session.get(Setting, CHECK_SETTING)
    if stored is not None and not hmac.compare_digest(stored.value, fingerprinter.check_value):
        raise FingerprintKeyMismatch(
            "KEYBOT_FINGERPRINT_KEY differs from the key this registry's fingerprints were made with; "
            "set the registry's key, or use --no-registry to only recognise secrets"
        )


def _replace_unprintable_output() -> None:
    """Never crash mid-report on an odd terminal encoding or a non-UTF-8 file name."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")


def _scan_all(scan: _Scan, paths: Iterable[str]) -> None:
    for path in paths:
        if path == STDIN:
            _scan_stdin(scan)
            continue
        try:
            info = os.stat(path)
        except OSError as error:  # a missing path is a mistake in the hook or CI config: never skipped
            scan.problem(f"cannot read {path}: {error.strerror or error}")
            continue
        if stat.S_ISDIR(info.st_mode):
            if scan.as_diff:
                scan.problem(f"{path} is a directory; --diff reads diff files")
            else:
                _scan_directory(scan, path)
        else:
            _scan_file(scan, path)


def _scan_stdin(scan: _Scan) -> None:
    if scan.stdin_used:
        return
    scan.stdin_used = True
    if sys.stdin is None or sys.stdin.isatty():
        what = "`git diff --cached | keybot scan --diff`" if scan.as_diff else "text into `keybot scan -`"
        scan.problem(f"standard input is a terminal; pipe something in, e.g. {what}")
        return
    _scan_handle(scan, STDIN_NAME, sys.stdin.buffer)


def _scan_directory(scan: _Scan, top: str) -> None:
    """Walk in sorted order (stable output); symlinked directories are not followed, so no loops. FIFOs,
    sockets and devices inside a tree hold no stored content and are passed over with a note."""

    def unreadable(error: OSError) -> None:
        scan.unreadable(str(error.filename), error.strerror or str(error))

    for root, dirs, files in os.walk(top, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            path = os.path.normpath(os.path.join(root, name))  # "./.env" reads as ".env", like git
            try:
                info = os.stat(path)
            except FileNotFoundError:  # a dangling symlink, or deleted meanwhile: nothing to scan
                continue
            except OSError as error:
                scan.unreadable(path, error.strerror or str(error))
                continue
            if stat.S_ISREG(info.st_mode):
                _scan_file(scan, path)
            else:
                scan.note(f"passed over {path}: not a regular file")


def _scan_file(scan: _Scan, path: str) -> None:
    try:
        with open_regular(path, max_bytes=MAX_FILE_BYTES) as handle:
            _scan_handle(scan, path, handle)
    except Unreadable as reason:
        scan.unreadable(path, str(reason))
    except OSError as error:
        scan.unreadable(path, error.strerror or str(error))


def _scan_handle(scan: _Scan, name: str, handle: BinaryIO) -> None:
    """Scan one input in chunks (bounded memory, any size up to the cap); a secret repeated in a later
    chunk of the same input is not reported again."""
    if scan.as_diff:
        text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="\n")
        _record_diff(scan, text, name)
        text.detach()
        return
    reported: set[tuple[str, str, int | None]] = set()  # by earlier chunks (find_leaks dedupes within one)
    try:
        for chunk in text_chunks(handle, max_bytes=MAX_FILE_BYTES):
            hits = find_leaks(scan.session, chunk.text, scan.fingerprinter)
            for hit in hits:
                if (hit.kind, hit.redacted, hit.key_id) not in reported:
                    scan.hits.append((name, _shifted(hit, chunk.first_line, chunk.first_column)))
            reported.update((hit.kind, hit.redacted, hit.key_id) for hit in hits)
    except Unreadable as reason:
        scan.unreadable(name, str(reason))
        return
    scan.scanned += 1


def _shifted(hit: LeakHit, first_line: int, first_column: int) -> LeakHit:
    """A hit's position in the whole input rather than in its chunk."""
    if hit.line is None:
        return hit
    column = hit.column + first_column if hit.line == 1 and hit.column is not None else hit.column
    return replace(hit, line=hit.line + first_line - 1, column=column)


def _record_diff(scan: _Scan, lines: Iterable[str], name: str) -> None:
    found = leaks_in_diff(scan.session, lines, scan.fingerprinter, source=name, max_bytes=DIFF_FILE_BYTES)
    if not found.is_diff and not found.empty:
        scan.problem(f"{name} is not a unified diff (no ---/+++ or @@ lines); scan it without --diff")
        return
    scan.scanned += 1
    scan.hits.extend(found.hits)
    for path in found.too_large:
        scan.unreadable(f"{path} in {name}", f"added lines exceed {_megabytes(DIFF_FILE_BYTES)}")


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


def _report(scan: _Scan, as_json: bool, *, not_consulted: str | None) -> None:
    if as_json:
        rows = [{"path": path, **asdict(hit)} for path, hit in scan.hits]
        sys.stdout.write(json.dumps(redact_obj(rows), indent=2, ensure_ascii=False) + "\n")
    else:
        for path, hit in scan.hits:
            sys.stdout.write(format_hit(path, hit, not_consulted=not_consulted) + "\n")
    sys.stdout.flush()
    if scan.hits:
        known = sum(1 for _, hit in scan.hits if hit.key_id is not None)
        err.print(
            f"keybot: {len(scan.hits)} leaked secret(s) found, {known} of them registered keys;"
            " revoke and replace them (removing them from the file is not enough)",
            markup=False,
        )
    elif scan.problems:
        err.print(
            f"keybot: {scan.problems} input(s) could not be scanned: failing (exit 2); unreadable files can"
            " be allowed with --skip-unreadable",
            markup=False,
        )
    else:
        skipped = f", {scan.skipped} skipped" if scan.skipped else ""
        err.print(f"keybot: no secrets found ({scan.scanned} input(s) scanned{skipped})", markup=False)


def format_hit(path: str, hit: LeakHit, *, not_consulted: str | None = None) -> str:
    """``path:line:col: <kind> <redacted> — <attribution>``; redacted again as a last line of defence."""
    where = path if hit.line is None else f"{path}:{hit.line}:{hit.column}"
    if not_consulted is not None:
        attribution = f"registry not consulted ({not_consulted})"
    elif hit.key_id is None:
        attribution = "not in the registry"
    else:
        owners = ", ".join(f"<@{owner}>" for owner in hit.owners) or "none on record"
        attribution = f"registered key {hit.key_name} (owners {owners})"
    return redact(f"{where}: {hit.kind} {hit.redacted} — {attribution}")
