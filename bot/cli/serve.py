"""`keybot serve` (HTTP) and `keybot run` (Socket Mode, or the shell chat when Slack is not configured)."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.access.policy import Policy, Roster
from bot.cli.context import CliError, err, out, runtime
from bot.config import Settings
from bot.registry.fingerprint import KEY_FILE_NAME
from bot.registry.importer import parse_file
from bot.registry.models import Key
from bot.registry.store import apply_import

if TYPE_CHECKING:
    from bot.shell import LocalSlack


def serve_command(
    host: str = typer.Option("0.0.0.0", help="interface to listen on"),  # noqa: S104 - a server process
    port: int | None = typer.Option(None, help="port (default: PORT or 3000)"),
    threads: int = typer.Option(16, min=1, max=256),
) -> None:
    """Serve Slack (POST /slack/events), GET /healthz and GET /metrics over HTTP."""
    from bot.slack.app import slack_app_from_runtime
    from bot.slack.serve import KeybotWSGI, serve

    rt = runtime()
    rt.warm_up()
    app, _ctx = slack_app_from_runtime(rt)
    listen = port or rt.settings.port
    out.print(f"keybot listening on http://{host}:{listen}/slack/events")
    serve(KeybotWSGI(app, rt.database, settings=rt.settings), host, listen, threads)


def load_examples() -> bool:
    """Import the example registry into an empty database (the zero-configuration demo); True if done."""
    rt = runtime()
    example = rt.settings.runbooks_dir / "examples" / "registry.yaml"
    with rt.database.session() as session:
        if session.scalar(select(func.count(Key.id))) or not example.exists():
            return False
        apply_import(session, parse_file(example), rt.fingerprinter)
    return True


def run_command(
    reset: bool = typer.Option(
        False, "--reset", help="delete the local demo database and state first, and start clean"
    ),
) -> None:
    """Run keybot locally: Socket Mode with SLACK_APP_TOKEN, else the shell chat on the sandbox."""
    rt = runtime()
    settings = rt.settings
    if reset:
        _reset_demo(settings)
    if settings.slack_app_token is not None and settings.slack_bot_token is not None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        from bot.slack.app import slack_app_from_runtime

        rt.warm_up()
        app, ctx = slack_app_from_runtime(rt)
        ctx.worker.wake_waiting(settings.clock_tick_seconds)  # one process, no separate `keybot clock`
        from bot.slack.serve import freeze_startup_heap

        freeze_startup_heap()
        out.print("keybot connected through Socket Mode")
        SocketModeHandler(app, settings.slack_app_token.get_secret_value()).start()  # type: ignore[no-untyped-call]
        return
    _run_shell()


def _reset_demo(settings: Settings) -> None:
    """`keybot run --reset`: delete the local SQLite demo database and keybot's own state files."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        raise CliError("--reset deletes only a local SQLite demo database; DATABASE_URL names another one")
    doomed: list[Path] = []
    if url.database and url.database != ":memory:":
        db_file = Path(url.database)
        doomed += [db_file.with_name(db_file.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    state = settings.state_dir
    doomed += [state / KEY_FILE_NAME, *state.glob("keybot.log*")]
    present = [path for path in doomed if path.exists()]
    if not present:
        err.print("--reset: nothing to delete; starting clean")
        return
    err.print("--reset: deleting " + ", ".join(str(path) for path in present))
    for path in present:
        path.unlink()
    with contextlib.suppress(OSError):
        state.rmdir()  # only when nothing else lives there


def _register_team_channels(emulator: LocalSlack) -> None:
    """Team channels named `#name` in the registry exist in the local Slack, so their posts show up."""
    import hashlib

    from bot.registry.models import Team

    with runtime().database.session() as session:
        for channel in session.scalars(select(Team.slack_channel).where(Team.slack_channel.is_not(None))):
            if channel and channel.startswith("#"):
                emulator.add_channel("C0" + hashlib.sha256(channel.encode()).hexdigest()[:8].upper(), channel)


def _people() -> set[str]:
    """Whom `as <user>` accepts in the shell: everyone the registry names, the on-calls and the admins."""
    from bot.registry.people import known_people

    rt = runtime()
    with rt.database.session() as session:
        people = known_people(session)
    roster = rt.policy.roster
    return people | set(roster.admins) | {p for p in roster.revokers if not p.startswith("cli:")}


def _run_shell() -> None:
    from bot.log import configure_logging
    from bot.runbooks.pending import waiting_runs
    from bot.shell import LocalSlack, ShellChat, commands_from_manifest
    from bot.slack.api import SlackAPI
    from bot.slack.app import build_app, build_context

    rt = runtime()
    settings = rt.settings
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir / "keybot.log"
    configure_logging("json", settings.log_level, log_path.open("a", encoding="utf-8"))
    loaded = load_examples()
    if settings.openai_admin_key is None and settings.vault_addr is None:
        err.print(
            "no OPENAI_ADMIN_KEY or VAULT_ADDR: using the local sandbox (fake provider + OpenBao dev server)"
        )
        if not settings.admins and not settings.revokers and not settings.revoker_group:
            rt.policy = Policy(Roster(revokers=frozenset(SANDBOX_ON_CALLS)))
            err.print(
                "sandbox: you (U0SHELL01) and U0BOB00001 are on the revokers list; type `as U0BOB00001` "
                "to approve as the second on-call"
            )
        seeded = rt.start_sandbox()
        if not loaded and seeded.keys:
            err.print(
                f"sandbox: gave {seeded.keys} key(s) from the database their sandbox twin back "
                "(`keybot run --reset` starts clean)"
            )
    if loaded:
        err.print(
            f"loaded the example registry from {rt.settings.runbooks_dir / 'examples' / 'registry.yaml'}"
        )
    err.print(f"keybot shell chat; logs go to {log_path}. Type help, or /revoke-key payments-openai-staging")
    with LocalSlack() as emulator:
        _register_team_channels(emulator)
        api = SlackAPI(emulator.bot_token, base_url=emulator.base_url)
        ctx = build_context(rt, api, min_interval=0.2)
        signing_secret = secrets.token_hex(16)
        app = build_app(ctx, signing_secret)
        manifest = Path("slack-manifest.yaml")
        commands = commands_from_manifest(str(manifest)) if manifest.exists() else []
        waker = ctx.worker.wake_waiting(min(settings.clock_tick_seconds, 5.0))  # no separate clock here
        try:
            ShellChat(
                app,
                emulator,
                signing_secret=signing_secret,
                commands=commands,
                settle=1.0,
                waiting=lambda: waiting_runs(rt.database),
                people=_people,
            ).run()
        finally:
            waker.set()
            ctx.settle(timeout=10.0)
            ctx.worker.shutdown()
            if rt.sandbox_started:
                rt.sandbox.stop()


SANDBOX_ON_CALLS = ("U0SHELL01", "U0BOB00001")
"""In the zero-configuration sandbox, the shell user and the second on-call the help suggests may act."""


def clock_command(
    once: bool = typer.Option(False, "--once", help="run every job once, as leader, then exit (for cron)"),
) -> None:
    """Run the periodic jobs (stale-run recovery, notification delivery); only one clock leads at a time."""
    from bot.scheduling.clock import Clock

    rt = runtime()
    rt.warm_up()
    sender = None
    progress = None
    if rt.settings.slack_bot_token is not None or rt.settings.slack_client_id is not None:
        from bot.slack.blocks.messages import notification_blocks
        from bot.slack.oauth import background_api
        from bot.slack.postmortems import PostmortemSender
        from bot.slack.progress import ProgressPublisher

        api = background_api(rt.settings, rt.database.engine)
        if api is not None:
            sender = PostmortemSender(
                api, rt.database, render=notification_blocks, fallback_channel=rt.settings.security_channel
            )
            progress = ProgressPublisher(rt.database, api, rt.settings.security_channel)
    clock = Clock(rt, sender, progress)
    if once:
        results = clock.run_once()
        if results is None:
            err.print("keybot clock: another clock is leading; nothing ran")
            return
        for job_id, result in results.items():
            out.print(f"{job_id}: {result}", markup=False)
        return
    out.print("keybot clock started")
    clock.run()
