"""The emulator's side of installing keybot with OAuth: codes a test grants, and ``oauth.v2.access``
exchanging one (once, by the client it was granted to) for a bot token the emulator then accepts."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

from bot.shell._model import Json, SlackError
from bot.shell._state import SlackState


def grant(
    st: SlackState,
    code: str,
    client_id: str,
    client_secret: str,
    team_id: str | None,
    enterprise_id: str | None,
    scope: str,
) -> str:
    """Store the installation ``code`` stands for (see :meth:`LocalSlack.grant`); returns its bot token."""
    token = f"xoxb-{team_id or enterprise_id}-{secrets.token_hex(8)}"
    org_wide = team_id is None
    org = {"id": enterprise_id, "name": f"Org {enterprise_id}"} if enterprise_id else None
    st.oauth_grants[code] = {
        "ok": True,
        "client_id": client_id,
        "client_secret": client_secret,
        "access_token": token,
        "token_type": "bot",
        "scope": scope,
        "bot_user_id": st.bot_user_id,
        "app_id": st.app_id,
        "team": None if org_wide else {"id": team_id, "name": f"Team {team_id}"},
        "enterprise": org,
        "is_enterprise_install": org_wide,
        "authed_user": {"id": "U0INSTALLER"},
    }
    return token


def client_credentials(headers: Mapping[str, str], args: Json) -> Json:
    """``oauth.v2.access`` authenticates the app (HTTP Basic or form fields), not a token."""
    basic = headers.get("authorization", "")
    if basic.startswith("Basic "):
        client_id, _, secret = base64.b64decode(basic.removeprefix("Basic ")).decode().partition(":")
        return {**args, "client_id": client_id, "client_secret": secret}
    return args


def oauth_v2_access(st: SlackState, args: Mapping[str, Any]) -> Json:
    """Exchange a code granted with :meth:`LocalSlack.grant` (once) for its installation."""
    grant = st.oauth_grants.get(str(args.get("code") or ""))
    if grant is None:
        raise SlackError("invalid_code")
    if args.get("client_id") != grant["client_id"]:
        raise SlackError("invalid_client_id")
    if args.get("client_secret") != grant["client_secret"]:
        raise SlackError("bad_client_secret")
    del st.oauth_grants[str(args["code"])]
    st.installed_tokens.add(str(grant["access_token"]))
    return {k: v for k, v in grant.items() if k not in ("client_id", "client_secret")}
