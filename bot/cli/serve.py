"""`keybot serve` (HTTP) and `keybot run` (Socket Mode, or the shell chat when Slack is not configured)."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer
from sqlalchemy import func, select

from bot.cli.context import err, out, runtime
from bot.registry.importer import parse_file
from bot.registry.models import Key
from bot.registry.store import apply_import

EXAMPLE_REGISTRY = Path("runbooks/examples/registry.yaml")


def serve_command(
    host: str = typer.Option("0.0.0.0", help="interface to listen on"),  # noqa: S104 - a server process
    port: int | None = typer.Option(None, help="port (default: PORT or 3000)"),
    threads: int = typer.Option(16, min=1, max=256),
) -> None:
    """Serve Slack (POST /slack/events), GET /healthz and GET /metrics over HTTP."""
    from bot.slack.app import slack_app_from_runtime
    from bot.slack.serve import KeybotWSGI, serve

    rt = runtime()
    app, _ctx = slack_app_from_runtime(rt)
    listen = port or rt.settings.port
    out.print(f"keybot listening on http://{host}:{listen}/slack/events")
    serve(KeybotWSGI(app, rt.database), host, listen, threads)


def _load_examples() -> bool:
    rt = runtime()
    with rt.database.session() as session:
        if session.scalar(select(func.count(Key.id))) or not EXAMPLE_REGISTRY.exists():
            return False
        apply_import(session, parse_file(EXAMPLE_REGISTRY), rt.fingerprinter)
    return True


def run_command() -> None:
    """Run keybot locally: Socket Mode with SLACK_APP_TOKEN, else the shell chat on the sandbox."""
    rt = runtime()
    settings = rt.settings
    if settings.slack_app_token is not None and settings.slack_bot_token is not None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        from bot.slack.app import slack_app_from_runtime

        app, _ctx = slack_app_from_runtime(rt)
        out.print("keybot connected through Socket Mode")
        SocketModeHandler(app, settings.slack_app_token.get_secret_value()).start()  # type: ignore[no-untyped-call]
        return
    _run_shell()


def _run_shell() -> None:
    from bot.shell.adapter import ShellChat
    from bot.shell.emulator import LocalSlack
    from bot.slack.api import SlackAPI
    from bot.slack.app import build_app, build_context

    rt = runtime()
    loaded = _load_examples()
    if rt.settings.openai_admin_key is None and rt.settings.vault_addr is None:
        err.print(
            "no OPENAI_ADMIN_KEY / VAULT_ADDR: using the local sandbox (fake provider + OpenBao dev server)"
        )
        rt.use_sandbox()
        if loaded:
            with rt.database.session() as session:
                rt.sandbox.seed_examples(session)
    if loaded:
        err.print(f"loaded the example registry from {EXAMPLE_REGISTRY}")
    emulator = LocalSlack().start()
    api = SlackAPI("xoxb-local-shell", base_url=emulator.base_url)
    ctx = build_context(rt, api, min_interval=0.2)
    signing_secret = secrets.token_hex(16)
    app = build_app(ctx, signing_secret)
    try:
        ShellChat(app, emulator, signing_secret=signing_secret).run()
    finally:
        ctx.worker.shutdown()
        emulator.stop()
        if rt.sandbox_started:
            rt.sandbox.stop()
