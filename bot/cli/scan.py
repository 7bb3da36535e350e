"""`keybot scan`: find leaked keys in files, directories or a diff, for pre-commit hooks and CI.

Exit status: 1 when any secret is found, else 2 when a path could not be scanned (unreadable, not a diff...),
else 0. A hit wins over a problem so that CI always fails loudly on a leak, whatever else went wrong; every
problem is still printed. Only the redacted form of a secret is ever printed.
"""

from __future__ import annotations

import hmac
import io
import json
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import typer
from sqlalchemy.orm import Session

from bot.cli.context import CliError, err, runtime
from bot.detection.leaks import MAX_BYTES, LeakHit, find_leaks, leaks_in_diff
from bot.registry.fingerprint import CHECK_SETTING, Fingerprinter, FingerprintKeyMismatch
from bot.registry.models import Setting
from bot.secrets import redact, redact_obj

STDIN = "-"
STDIN_NAME = "<stdin>"
#: Directories never descended into: VCS metadata and vendored dependencies, not the project's own files.
SKIP_DIRS = frozenset({".git", "node_modules", ".venv"})
#: Like git: a NUL byte in the first 8 KB means binary.
BINARY_PROBE = 8192


@dataclass
class _Scan:
    """Everything one `keybot scan` run found, in the order it was found."""

    session: Session | None
    fingerprinter: Fingerprinter | None
    as_diff: bool
    hits: list[tuple[str, LeakHit]] = field(default_factory=list)
    problems: int = 0
    scanned: int = 0
    stdin_used: bool = False

    def problem(self, message: str) -> None:
        self.problems += 1
        err.print(f"keybot: {redact(message)}", markup=False)

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
) -> None:
    """Scan files, directories or a diff for leaked API keys; exit 1 if any is found."""
    if not paths and not diff:
        raise CliError("nothing to scan: give PATH... ('-' for standard input) or --diff to read a diff")
    _replace_unprintable_output()
    if no_registry:
        scan = _Scan(None, None, diff)
        _scan_all(scan, paths or [STDIN])
    else:
        rt = runtime()
        with rt.database.session() as session:
            _check_fingerprint_key(session, rt.fingerprinter)
            scan = _Scan(session, rt.fingerprinter, diff)
            _scan_all(scan, paths or [STDIN])
    _report(scan, as_json, registry=not no_registry)
    if scan.hits:
        raise typer.Exit(1)
    if scan.problems:
        raise typer.Exit(2)


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
        except OSError as error:
            scan.problem(f"cannot read {path}: {error.strerror or error}")
            continue
        if stat.S_ISDIR(info.st_mode):
            if scan.as_diff:
                scan.problem(f"{path} is a directory; --diff reads diff files")
            else:
                _scan_directory(scan, path)
        elif scan.as_diff:
            _scan_diff_file(scan, path)
        else:
            _scan_file(scan, path, info)


def _scan_stdin(scan: _Scan) -> None:
    if scan.stdin_used:
        return
    scan.stdin_used = True
    if sys.stdin is None or sys.stdin.isatty():
        what = "`git diff --cached | keybot scan --diff`" if scan.as_diff else "text into `keybot scan -`"
        scan.problem(f"standard input is a terminal; pipe something in, e.g. {what}")
        return
    if scan.as_diff:
        if isinstance(sys.stdin, io.TextIOWrapper):  # split on "\n" only, like git; never fail on bad UTF-8
            sys.stdin.reconfigure(encoding="utf-8", errors="replace", newline="\n")
        _record_diff(scan, sys.stdin, STDIN_NAME)
        return
    _scan_bytes(scan, STDIN_NAME, sys.stdin.buffer.read(MAX_BYTES + 1))


def _scan_directory(scan: _Scan, top: str) -> None:
    """Walk in sorted order (stable output); symlinked directories are not followed, so no loops."""

    def unreadable(error: OSError) -> None:
        scan.problem(f"cannot read {error.filename}: {error.strerror or error}")

    for root, dirs, files in os.walk(top, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            path = os.path.normpath(os.path.join(root, name))  # "./.env" reads as ".env", like git
            try:
                info = os.stat(path)
            except FileNotFoundError:  # a dangling symlink, or deleted meanwhile: nothing to scan
                continue
            except OSError as error:
                scan.problem(f"cannot read {path}: {error.strerror or error}")
                continue
            if stat.S_ISREG(info.st_mode):  # FIFOs and devices inside a tree could block or never end
                _scan_file(scan, path, info)


def _scan_file(scan: _Scan, path: str, info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode) and info.st_size > MAX_BYTES:
        scan.note(f"skipped {path}: larger than {_megabytes(MAX_BYTES)} (not scanned)")
        return
    try:
        with open(path, "rb") as handle:
            head = handle.read(BINARY_PROBE)
            if b"\0" in head:
                scan.note(f"skipped {path}: binary file")
                return
            data = head + _read_up_to(handle, MAX_BYTES + 1 - len(head))
    except OSError as error:
        scan.problem(f"cannot read {path}: {error.strerror or error}")
        return
    _scan_bytes(scan, path, data)


def _read_up_to(handle: BinaryIO, limit: int) -> bytes:
    return handle.read(limit) if limit > 0 else b""


def _scan_bytes(scan: _Scan, path: str, data: bytes) -> None:
    if len(data) > MAX_BYTES:
        scan.note(f"skipped {path}: larger than {_megabytes(MAX_BYTES)} (not scanned)")
        return
    scan.scanned += 1
    text = data.decode("utf-8", "replace")
    scan.hits.extend((path, hit) for hit in find_leaks(scan.session, text, scan.fingerprinter))


def _scan_diff_file(scan: _Scan, path: str) -> None:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="\n") as handle:
            _record_diff(scan, handle, path)
    except OSError as error:
        scan.problem(f"cannot read {path}: {error.strerror or error}")


def _record_diff(scan: _Scan, lines: Iterable[str], name: str) -> None:
    found = leaks_in_diff(scan.session, lines, scan.fingerprinter, source=name)
    if not found.is_diff and not found.empty:
        scan.problem(f"{name} is not a unified diff (no ---/+++ or @@ lines); scan it without --diff")
        return
    scan.scanned += 1
    scan.hits.extend(found.hits)
    for path in found.too_large:
        scan.note(f"skipped {path} in {name}: added lines exceed {_megabytes(MAX_BYTES)} (not scanned)")


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


def _report(scan: _Scan, as_json: bool, *, registry: bool) -> None:
    if as_json:
        rows = [{"path": path, **asdict(hit)} for path, hit in scan.hits]
        sys.stdout.write(json.dumps(redact_obj(rows), indent=2, ensure_ascii=False) + "\n")
    else:
        for path, hit in scan.hits:
            sys.stdout.write(format_hit(path, hit, registry=registry) + "\n")
    sys.stdout.flush()
    if scan.hits:
        known = sum(1 for _, hit in scan.hits if hit.key_id is not None)
        err.print(
            f"keybot: {len(scan.hits)} leaked secret(s) found, {known} of them registered keys;"
            " revoke and replace them (removing them from the file is not enough)",
            markup=False,
        )
    elif not scan.problems:
        err.print(f"keybot: no secrets found ({scan.scanned} input(s) scanned)", markup=False)


def format_hit(path: str, hit: LeakHit, *, registry: bool = True) -> str:
    """``path:line:col: <kind> <redacted> — <attribution>``; redacted again as a last line of defence."""
    where = path if hit.line is None else f"{path}:{hit.line}:{hit.column}"
    if not registry:
        attribution = "registry not consulted (--no-registry)"
    elif hit.key_id is None:
        attribution = "not in the registry"
    else:
        owners = ", ".join(f"<@{owner}>" for owner in hit.owners) or "none on record"
        attribution = f"registered key {hit.key_name} (owners {owners})"
    return redact(f"{where}: {hit.kind} {hit.redacted} — {attribution}")
