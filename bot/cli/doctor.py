"""`keybot doctor`: checks the whole configuration before an incident does, one line per check.

Each check says ok, fail or skip and, when it is not ok, what to do. Unconfigured systems are skipped with
the variable to set. Nothing here prints a secret: only names, addresses (without passwords), error codes
and redacted messages. Exit status 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.text import Text

from bot.cli.context import out
from bot.secrets import redact

if TYPE_CHECKING:
    import hvac

    from bot.config import Settings

State = Literal["ok", "fail", "skip"]
STYLE = {"ok": "green", "fail": "red", "skip": "yellow"}
POLICY_FILE = "runbooks/vault-policy.hcl"
SIGNING_SECRET = re.compile(r"[0-9a-f]{32}")
MAX_VAULT_PATHS = 20


@dataclass(frozen=True)
class Check:
    name: str
    state: State
    detail: str


def _first_line(error: BaseException) -> str:
    """An error as one redacted line (the exception's type when it has no message)."""
    text = redact(str(error)).strip().splitlines()
    return text[0] if text else type(error).__name__


def _guard(name: str, check: Callable[[], Check], hint: str) -> Check:
    """A check that crashed is a failure with its reason, never a traceback."""
    try:
        return check()
    except Exception as error:
        return Check(name, "fail", f"{_first_line(error)}: {hint}")


# ---- database --------------------------------------------------------------------------------------
def check_database(settings: Settings) -> tuple[Check, list[str]]:
    """Reachable and at the newest migration; also returns the registry's Vault paths for the policy check."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.engine import make_url

    from bot.db.migrate import current_revision, head_revision

    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    file = url.database if url.get_backend_name() == "sqlite" and url.database != ":memory:" else None
    if file and not Path(file).exists():  # never create an empty database just to look at it
        return Check("database", "fail", f"no database at {shown}: run `keybot db upgrade`"), []
    engine = create_engine(url)
    try:
        try:
            current, head = current_revision(engine), head_revision(engine)
        except Exception as error:
            return Check(
                "database", "fail", f"cannot use {shown} ({_first_line(error)}): check DATABASE_URL"
            ), []
        if current is None:
            return Check("database", "fail", f"{shown} has no schema: run `keybot db upgrade`"), []
        if current != head:
            what = f"{shown} is at migration {current}, keybot needs {head}: run `keybot db upgrade`"
            return Check("database", "fail", what), []
        from bot.registry.models import Key

        with engine.connect() as conn:
            query = (
                select(Key.vault_path).distinct().where(Key.vault_path.is_not(None)).limit(MAX_VAULT_PATHS)
            )
            paths = [p for p in conn.scalars(query) if p]
        return Check("database", "ok", f"{shown} reachable, at migration head {head}"), paths
    finally:
        engine.dispose()


# ---- Slack -----------------------------------------------------------------------------------------
def check_slack_token(settings: Settings) -> Check:
    """`auth.test` with the bot token, against SLACK_API_URL."""
    if settings.slack_bot_token is None:
        return Check("slack bot token", "skip", "not configured: set SLACK_BOT_TOKEN to use Slack")
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=10
    )
    try:
        answer = client.auth_test()
    except SlackApiError as refused:
        code = refused.response.get("error", "error") if refused.response is not None else "error"
        return Check(
            "slack bot token",
            "fail",
            f"Slack refused SLACK_BOT_TOKEN ({code}): install the app and copy its Bot User OAuth Token",
        )
    except Exception as error:
        return Check("slack bot token", "fail", f"cannot reach SLACK_API_URL ({_first_line(error)})")
    bot, team = answer.get("user") or "?", answer.get("team") or answer.get("team_id") or "?"
    return Check("slack bot token", "ok", f"valid: @{bot} in workspace {team}")


def check_signing_secret(settings: Settings) -> Check:
    """Present and shaped like one (32 hex characters); Slack offers no call to check it otherwise."""
    where = "Basic Information → App Credentials → Signing Secret"
    if settings.slack_signing_secret is None:
        return Check(
            "slack signing secret",
            "skip",
            f"not configured: set SLACK_SIGNING_SECRET for `keybot serve` ({where})",
        )
    value = settings.slack_signing_secret.get_secret_value().strip()
    tokens = (settings.slack_bot_token, settings.slack_app_token)
    if any(t is not None and t.get_secret_value().strip() == value for t in tokens):
        return Check(
            "slack signing secret", "fail", f"SLACK_SIGNING_SECRET holds a token; copy it from {where}"
        )
    if not SIGNING_SECRET.fullmatch(value):
        return Check(
            "slack signing secret",
            "fail",
            f"SLACK_SIGNING_SECRET does not look like one (32 hexadecimal characters); copy it from {where}",
        )
    return Check("slack signing secret", "ok", "present, 32 hexadecimal characters")


# ---- Vault -----------------------------------------------------------------------------------------
def required_capabilities(mount: str, paths: Iterable[str]) -> dict[str, set[str]]:
    """What keybot needs on each KV v2 API path of the given secrets (runbooks/vault-policy.hcl)."""
    needs: dict[str, set[str]] = {"auth/token/lookup-self": {"read"}}
    for path in paths:
        parts = path.strip().strip("/").split("/")
        if len(parts) < 2 or parts[0] != mount:
            continue
        inside = "/".join(parts[1:])
        needs[f"{mount}/data/{inside}"] = {"create", "update", "read"}
        needs[f"{mount}/metadata/{inside}"] = {"read", "update"}
        needs[f"{mount}/delete/{inside}"] = {"update"}
        needs[f"{mount}/destroy/{inside}"] = {"update"}
    return needs


def missing_capabilities(needs: dict[str, set[str]], granted: dict[str, Any]) -> list[str]:
    """`path lacks a, b` for every path whose granted capabilities (from capabilities-self) fall short."""
    problems = []
    for path, wanted in needs.items():
        have = set(granted.get(path) or ())
        if "root" in have:
            continue
        if lacking := sorted(wanted - have):
            problems.append(f"{path} lacks {', '.join(lacking)}")
    return problems


def _vault_client(settings: Settings) -> hvac.Client:
    import hvac

    from bot.providers.vault_session import pin_environment

    token = settings.vault_token.get_secret_value() if settings.vault_token else None
    client = hvac.Client(url=settings.vault_addr, token=token, timeout=10)
    pin_environment(client)
    if settings.vault_role_id and settings.vault_secret_id:
        client.auth.approle.login(
            role_id=settings.vault_role_id, secret_id=settings.vault_secret_id.get_secret_value()
        )
    return client


def check_vault(settings: Settings, paths: list[str]) -> list[Check]:
    """Reachable, unsealed, the token valid; then its policy against what keybot needs (capabilities-self)."""
    if settings.vault_addr is None:
        return [Check("vault", "skip", "not configured: set VAULT_ADDR and VAULT_TOKEN (or AppRole)")]
    if settings.vault_token is None and not (settings.vault_role_id and settings.vault_secret_id):
        return [Check("vault", "fail", "no credentials: set VAULT_TOKEN, or VAULT_ROLE_ID + VAULT_SECRET_ID")]
    import hvac.exceptions

    try:
        client = _vault_client(settings)
        status = client.sys.read_health_status(method="GET")
        if not isinstance(status, dict) or status.get("sealed") or not status.get("initialized"):
            return [Check("vault", "fail", f"{settings.vault_addr} is sealed or not initialised: unseal it")]
        client.auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return [Check("vault", "fail", "Vault refused the token or AppRole login: issue a new one")]
    except Exception as error:
        return [Check("vault", "fail", f"cannot use {settings.vault_addr} ({_first_line(error)})")]
    reachable = Check("vault", "ok", f"{settings.vault_addr} reachable, unsealed, token valid")
    probe = [f"{settings.vault_mount}/keybot-doctor/probe"]
    needs = required_capabilities(settings.vault_mount, paths or probe)
    try:
        answer = client.sys.get_capabilities(paths=sorted(needs))
    except hvac.exceptions.Forbidden:
        why = "the token may not read its own capabilities: grant update on sys/capabilities-self"
        why += f" ({POLICY_FILE} has it)"
        return [reachable, Check("vault policy", "fail", why)]
    except Exception as error:
        return [reachable, Check("vault policy", "fail", f"capabilities check failed ({_first_line(error)})")]
    granted = answer.get("data", answer) if isinstance(answer, dict) else {}
    problems = missing_capabilities(needs, granted)
    where = f"{len(paths)} registry path(s)" if paths else f"a path under {settings.vault_mount}/"
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        return [reachable, Check("vault policy", "fail", f"too narrow: {shown}. Apply {POLICY_FILE}")]
    return [reachable, Check("vault policy", "ok", f"sufficient for {where}")]


# ---- OpenAI ----------------------------------------------------------------------------------------
def check_openai(settings: Settings) -> Check:
    """One cheap list call through the provider keybot revokes with, honouring OPENAI_ADMIN_BASE_URL."""
    if settings.openai_admin_key is None:
        return Check("openai admin key", "skip", "not configured: set OPENAI_ADMIN_KEY to revoke OpenAI keys")
    from bot.providers.base import ProviderError
    from bot.providers.openai_admin import OpenAIAdminProvider

    provider = OpenAIAdminProvider(
        settings.openai_admin_key, settings.openai_admin_base_url, timeout=10, max_retries=0
    )
    try:
        projects = provider._project_ids()  # the cheapest call that needs a valid admin key
    except ProviderError as refused:
        what = f"{_first_line(refused)}: check OPENAI_ADMIN_KEY (an Admin API key) and OPENAI_ADMIN_BASE_URL"
        return Check("openai admin key", "fail", what)
    finally:
        provider.close()
    return Check("openai admin key", "ok", f"accepted; {len(projects)} project(s) visible")


# ---- all of it -------------------------------------------------------------------------------------
def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order an operator fixes things."""
    paths: list[str] = []

    def database() -> Check:
        check, found = check_database(settings)
        paths.extend(found)
        return check

    checks = [_guard("database", database, "check DATABASE_URL")]
    checks.append(_guard("slack bot token", lambda: check_slack_token(settings), "check SLACK_BOT_TOKEN"))
    checks.append(_guard("slack signing secret", lambda: check_signing_secret(settings), "check it"))
    try:
        checks.extend(check_vault(settings, paths))
    except Exception as error:
        checks.append(Check("vault", "fail", f"{_first_line(error)}: check VAULT_ADDR"))
    checks.append(_guard("openai admin key", lambda: check_openai(settings), "check OPENAI_ADMIN_KEY"))
    return checks


def doctor_command() -> None:
    """Check the whole configuration: database, Slack, Vault and its policy, the OpenAI admin key."""
    from bot.cli.context import runtime
    from bot.config import ConfigError

    try:
        settings = runtime().settings
    except ConfigError as bad:
        checks = [Check("settings", "fail", redact(str(bad)))]
    else:
        checks = run_checks(settings)
    width = max(len(c.name) for c in checks)
    for check in checks:
        out.print(
            Text.assemble(
                (f"{check.state:<4}", STYLE[check.state]), f" {check.name:<{width}}  {check.detail}"
            )
        )
    if any(c.state == "fail" for c in checks):
        raise typer.Exit(1)
