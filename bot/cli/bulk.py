"""`keybot bulk-revoke`: break-glass for a leak of many keys at once (a dumped .env, a CI secret store).

Every reference is resolved before anything starts, so a typo cannot leave half a batch revoked; each key
then gets its own run through `bot.runbooks.bulk`, under the same runbook and approval rules as
`keybot revoke`. References may be live secrets: only redacted forms are ever printed.
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import and_, or_, select

from bot.cli.context import CliError, add_plain_row, err, out, runtime
from bot.cli.identity import cli_identity
from bot.cli.registry import describe_miss
from bot.cli.runs import EXIT_PAUSED
from bot.db.base import utcnow
from bot.registry.service import Lookup, MatchedBy, lookup
from bot.runbooks.bulk import BulkRequest, Outcome, revoke_many
from bot.runbooks.engine import Engine
from bot.runbooks.models import Run
from bot.runbooks.names import REVOKE
from bot.secrets import find_secrets, parse_redacted, redact, redacted_form

STDIN = "-"
MAX_BYTES = 5 * 1024 * 1024
MAX_REFERENCES = 20_000
PREVIEW = 20
KEY_ID_LINE = re.compile(r"#\d{1,12}")
# Tokens shown as typed: worded names and ids. Anything else long enough to be a secret is redacted.
NAME_LIKE = re.compile(r"[A-Za-z0-9]+(?:[_.-][A-Za-z0-9]+)*")
RANDOM_RUN = re.compile(r"[A-Za-z0-9]{20,}")
TOKEN_EDGES = re.compile(r"([\s=:'\"`,;]+)")
NEXT_STEP = {
    "awaiting_approval": "keybot runs approve {}",
    "waiting_manual": "keybot runs done {}",
    "needs_attention": "keybot runs retry {}",
    "running": "keybot runs resume {}",
}


@dataclass(frozen=True)
class Reference:
    line: int
    query: str  # what is looked up; may be a live secret
    shown: str  # safe to print
    secret: bool = False


@dataclass(frozen=True)
class Target:
    name: str
    environment: str
    owners: str


def safe_text(text: str, limit: int = 80) -> str:
    """A reference as it may be printed: secret-looking tokens redacted, even in formats nobody catalogued."""
    pieces = [
        p
        if len(p) < 12 or parse_redacted(p) or (NAME_LIKE.fullmatch(p) and not RANDOM_RUN.search(p))
        else redacted_form(p)
        for p in TOKEN_EDGES.split(redact(text))
    ]
    shown = "".join(pieces)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def read_source(source: str) -> str:
    """The whole SOURCE as text, refusing what cannot be a list of keys before anything is looked up."""
    name = "standard input" if source == STDIN else source
    try:
        if source == STDIN:
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read(MAX_BYTES + 1) if stream else sys.stdin.read(MAX_BYTES + 1).encode()
        else:
            with open(source, "rb") as file:
                data = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise CliError(f"{name}: no such file") from None
    except OSError as error:
        raise CliError(f"cannot read {name}: {error.strerror or error}") from None
    if len(data) > MAX_BYTES:
        raise CliError(f"{name} is over {MAX_BYTES // (1024 * 1024)} MB; split it into smaller batches")
    if b"\x00" in data:
        raise CliError(f"{name} is not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliError(f"{name} is not UTF-8 text") from None


def parse_references(text: str) -> list[Reference]:
    """One reference per line, or each secret on the line (a pasted `.env` line holds one inside noise)."""
    references: list[Reference] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        found = find_secrets(line)
        if line.startswith("#") and not KEY_ID_LINE.fullmatch(line):
            for secret in found:
                err.print(
                    f"note: line {number}: {secret.redacted} is in a comment and is NOT revoked; "
                    "uncomment the line to include it",
                    markup=False,
                )
            continue
        if not line:
            continue
        if found:
            references.extend(Reference(number, s.value, s.redacted, True) for s in found)
        else:
            references.append(Reference(number, line, safe_text(line)))
        if len(references) > MAX_REFERENCES:
            raise CliError(f"over {MAX_REFERENCES:,} key references; split them into smaller batches")
    if not references:
        raise CliError("no key references in the input (blank lines and # comments are skipped)")
    return references


def _unresolved(reference: Reference, result: Lookup) -> str | None:
    """Why a reference names no single key; a secret must match its own fingerprint, never just a last 4."""
    if (reference.secret or result.query_was_secret) and result.matched_by is not MatchedBy.FINGERPRINT:
        if result.matches:
            return (
                "that secret is not in the registry (a key with the same last 4 characters is; "
                "list that key by name if it is the one that leaked)"
            )
        return describe_miss(result)
    if not result.matches:
        return describe_miss(result)
    if result.ambiguous:
        names = ", ".join(f"#{k.id} {k.name}" for k in result.matches[:5])
        return f"ambiguous ({names}); list it by #id or name"
    return None


def resolve(references: list[Reference]) -> tuple[dict[int, Target], list[str]]:
    """Each distinct key, in first-mention order, and one line per reference that names none."""
    rt = runtime()
    targets: dict[int, Target] = {}
    problems: list[str] = []
    with rt.database.session() as session:
        for reference in references:
            result = lookup(session, reference.query, rt.fingerprinter)
            why = _unresolved(reference, result)
            if why is not None:
                problems.append(f"line {reference.line}: {reference.shown}: {why}")
                continue
            key = result.matches[0]
            if key.id not in targets:
                owners = (",".join(key.owner_ids()) or "-") if len(targets) < PREVIEW else ""
                targets[key.id] = Target(key.name, key.environment, owners)
    return targets, problems


_WORKER_LOCK = threading.Lock()


def worker_engine() -> Engine:
    """The `revoke_many` engine factory: module-level so spawned workers can unpickle it, and each worker
    process builds its runtime from the environment the operator set (which also configures its logging,
    redacted, to stderr and the log file); the lock is there because Runtime's cached properties are not
    safe to build from several threads at once."""
    with _WORKER_LOCK:
        rt = runtime()
        _ = (rt.database, rt.toolkit)
        return rt.engine()


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.most_common())


class _Tally:
    """`on_outcome` callback: live progress on stderr, with a count per status."""

    def __init__(self, total: int) -> None:
        self.counts: Counter[str] = Counter()
        self.progress = Progress(
            TextColumn("revoking"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=err,
        )
        self.task = self.progress.add_task("", total=total)

    def __call__(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        self.progress.update(self.task, advance=1, description=_counts(self.counts))


def _runs_behind(failed: list[Outcome], started: datetime) -> dict[int, Run]:
    """The run behind each outcome; a lost worker never reported its run id, so that run is found by key.
    One query: MAX_REFERENCES keeps its parameters under every database's limit."""
    ids = [o.run_id for o in failed if o.run_id]
    orphans = {o.key_id for o in failed if o.run_id is None and o.status in ("lost", "error")}
    with runtime().database.session() as session:
        rows = session.scalars(
            select(Run)
            .where(or_(Run.id.in_(ids), and_(Run.key_id.in_(orphans), Run.created_at >= started)))
            .order_by(Run.created_at)
        ).all()
    by_id = {r.id: r for r in rows}
    by_key = {r.key_id: r for r in rows if r.key_id in orphans}
    found = {o.key_id: by_id.get(o.run_id) if o.run_id else by_key.get(o.key_id) for o in failed}
    return {key_id: run for key_id, run in found.items() if run is not None}


def _next_step(outcome: Outcome, run: Run | None) -> str:
    if run is None:
        return "keybot runs list"
    if outcome.status == "refused":
        return f"keybot runs show {run.id}"
    return NEXT_STEP.get(run.status.value, "keybot runs show {}").format(run.id)


def summarise(outcomes: list[Outcome], targets: dict[int, Target], started: datetime) -> int:
    """Counts, then every key that still needs someone, with the command that carries it on."""
    out.print(f"{len(outcomes)} key(s): {_counts(Counter(o.status for o in outcomes))}")
    failed = sorted((o for o in outcomes if not o.succeeded), key=lambda o: targets[o.key_id].name)
    if not failed:
        out.print("[green]every key was revoked and replaced[/green]")
        return 0
    runs = _runs_behind(failed, started)
    table = Table("key", "run", "status", "attention", title="not finished", title_justify="left")
    table.columns[1].no_wrap = True
    steps: list[str] = []
    for o in failed:
        run, name = runs.get(o.key_id), targets[o.key_id].name
        note = (run.attention if run is not None and o.status != "refused" else None) or o.detail
        add_plain_row(table, name, run.id if run else "-", o.status, redact(note or ""))
        steps.append(f"  {_next_step(o, run)}  # {name}")
    out.print(table)
    waiting = any(o.status == "awaiting_approval" for o in failed)
    out.print("next (an approval must come from a second person):" if waiting else "next:")
    out.print("\n".join(steps), markup=False)
    return EXIT_PAUSED


def _preview(targets: dict[int, Target]) -> None:
    table = Table("key", "environment", "owners")
    for target in list(targets.values())[:PREVIEW]:
        add_plain_row(table, target.name, target.environment, target.owners)
    out.print(table)
    if len(targets) > PREVIEW:
        out.print(f"… and {len(targets) - PREVIEW} more")


MAX_CONCURRENCY = 32
"""Each run in flight holds a database connection while it runs (its writer); 32 stays well inside
PostgreSQL's default 100 connections and OpenAI's admin API rate limits."""


def _check_options(mode: str, severity: str, concurrency: int, processes: int | None, reason: str) -> None:
    if mode not in ("staged", "emergency"):
        raise CliError("--mode must be staged or emergency")
    if severity not in ("sev1", "sev2", "sev3", "sev4"):
        raise CliError("--severity must be one of sev1, sev2, sev3, sev4")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise CliError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
    if processes is not None and processes < 1:
        raise CliError("--processes must be at least 1")
    if not reason.strip():
        raise CliError("--reason must say what happened (it goes on every incident's timeline)")


def bulk_revoke_command(
    source: str = typer.Argument(..., help="file with one key reference per line, or '-' for stdin"),
    reason: str = typer.Option(..., "--reason", "-r", help="what happened (goes on every incident timeline)"),
    mode: str = typer.Option("staged", "--mode", "-m", help="staged (replace, then revoke) or emergency"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    severity: str = typer.Option("sev2", help="sev1..sev4"),
    concurrency: int = typer.Option(8, help="runs in flight at once"),
    processes: int | None = typer.Option(None, help="worker processes (default: CPUs)"),
    skip_unresolved: bool = typer.Option(False, "--skip-unresolved", help="revoke the rest of the keys"),
) -> None:
    """Break-glass: revoke and replace every key in a file (names, #ids, redacted forms or leaked secrets)."""
    _check_options(mode, severity, concurrency, processes, reason)
    targets, problems = resolve(parse_references(read_source(source)))
    for problem in problems:
        err.print(problem, markup=False)
    if problems and not skip_unresolved:
        raise CliError(
            f"{len(problems)} reference(s) name no single key; nothing was started "
            "(fix them, or pass --skip-unresolved to revoke the rest)"
        )
    if problems:
        err.print(f"skipping {len(problems)} unresolved reference(s) (--skip-unresolved)")
    if not targets:
        raise CliError("no key to revoke")
    out.print(f"{len(targets)} key(s) will be revoked and replaced ({mode}):")
    _preview(targets)
    if not yes:
        if source == STDIN or not sys.stdin.isatty():
            raise CliError(
                "refusing to revoke without confirmation: pass --yes when not on a terminal "
                "or when the keys come from standard input"
            )
        typer.confirm(f"Run {mode} revoke → replace → audit → notify on these keys?", abort=True)
    workers = min(processes or os.cpu_count() or 1, concurrency)
    threads = math.ceil(concurrency / workers)
    worker_engine()  # a provider or Vault misconfiguration fails here, once, before any run starts
    request = BulkRequest(REVOKE, mode, cli_identity(), reason, severity)
    started, tally = utcnow(), _Tally(len(targets))
    with tally.progress:
        outcomes = revoke_many(
            list(targets), request, worker_engine, processes=workers, threads=threads, on_outcome=tally
        )
    status = summarise(outcomes, targets, started)
    if status:
        raise typer.Exit(status)
