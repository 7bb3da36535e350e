"""Web API method handlers of :class:`tests.standins.slack_api.SlackStandin` (state under its lock)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

Args = dict[str, Any]
Result = dict[str, Any]


def _err(error: str, **extra: Any) -> Result:
    return {"ok": False, "error": error, **extra}


class SlackHandlers:
    """Mixin; the concrete class provides state and the ``_next_ts``/``_content_errors`` helpers."""

    HANDLERS: ClassVar[dict[str, Callable[[Any, Args], Result]]] = {}  # method -> handler(self, args)
    team_id: str
    team: str
    app_id: str
    bot_user_id: str
    bot_id: str
    bot_token: str
    channel_messages: dict[str, list[dict[str, Any]]]
    ephemerals: list[dict[str, Any]]
    views: dict[str, dict[str, Any]]
    home_views: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    usergroups: dict[str, list[str]]

    # provided by SlackStandin
    _next_ts: Callable[[], str]
    _content_errors: Callable[[Args], Result | None]
    _view_errors: Callable[[Any], Result | None]
    _new_view_id: Callable[[], str]
    dm_channel_id: Callable[[str], str]

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next(
            (m for m in self.channel_messages.get(self.dm_channel_id(channel), []) if m["ts"] == ts), None
        )

    # ---- auth / users ------------------------------------------------------------------------
    def auth_test(self, args: Args) -> Result:
        return {
            "ok": True,
            "url": "https://standin.slack.com/",
            "team": self.team,
            "user": "keybot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def users_info(self, args: Args) -> Result:
        user = self.users.get(str(args.get("user", "")))
        return {"ok": True, "user": user} if user else _err("user_not_found")

    def usergroups_users_list(self, args: Args) -> Result:
        users = self.usergroups.get(str(args.get("usergroup", "")))
        return {"ok": True, "users": users} if users is not None else _err("no_such_subteam")

    def conversations_open(self, args: Args) -> Result:
        users = args.get("users")
        if isinstance(users, str):
            users = [u for u in users.split(",") if u]
        if args.get("channel"):
            return {"ok": True, "channel": {"id": args["channel"]}, "already_open": True}
        if not users:
            return _err("users_list_not_supplied")
        channel_id = self.dm_channel_id(users[0]) if len(users) == 1 else "G" + "".join(u[-3:] for u in users)
        return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": channel_id}}

    # ---- messages ----------------------------------------------------------------------------
    def chat_post_message(self, args: Args) -> Result:
        channel = str(args.get("channel") or "")
        if not channel:
            return _err("channel_not_found")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return _err("no_text")
        if (problem := self._content_errors(args)) is not None:
            return problem
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "ts": ts,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": args.get("text") or "",
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if args.get(key) is not None:
                message[key] = args[key]
        channel_id = self.dm_channel_id(channel)
        self.channel_messages.setdefault(channel_id, []).append(message)
        return {"ok": True, "channel": channel_id, "ts": ts, "message": dict(message)}

    def chat_update(self, args: Args) -> Result:
        message = self._find(str(args.get("channel", "")), str(args.get("ts", "")))
        if message is None:
            return _err("message_not_found")
        if (problem := self._content_errors(args)) is not None:
            return problem
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in args:
                message[key] = args[key]
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": self.dm_channel_id(args["channel"]),
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": dict(message),
        }

    def chat_delete(self, args: Args) -> Result:
        channel = self.dm_channel_id(str(args.get("channel", "")))
        message = self._find(channel, str(args.get("ts", "")))
        if message is None:
            return _err("message_not_found")
        self.channel_messages[channel].remove(message)
        return {"ok": True, "channel": channel, "ts": message["ts"]}

    def chat_post_ephemeral(self, args: Args) -> Result:
        if not args.get("user"):
            return _err("user_not_in_channel")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return _err("no_text")
        if (problem := self._content_errors(args)) is not None:
            return problem
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": args.get("channel"),
                "user": args["user"],
                "ts": ts,
                "text": args.get("text") or "",
                "blocks": args.get("blocks"),
            }
        )
        return {"ok": True, "message_ts": ts}

    def chat_get_permalink(self, args: Args) -> Result:
        channel = self.dm_channel_id(str(args.get("channel", "")))
        ts = str(args.get("message_ts", ""))
        if self._find(channel, ts) is None:
            return _err("message_not_found")
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://standin.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def reactions_add(self, args: Args) -> Result:
        message = self._find(str(args.get("channel", "")), str(args.get("timestamp", "")))
        if message is None:
            return _err("message_not_found")
        name = str(args.get("name", ""))
        reactions = message.setdefault("reactions", [])
        if any(r["name"] == name for r in reactions):
            return _err("already_reacted")
        reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {"ok": True}

    # ---- views -------------------------------------------------------------------------------
    def _store_view(
        self,
        view: dict[str, Any],
        *,
        view_id: str | None = None,
        previous: str | None = None,
        root: str | None = None,
    ) -> dict[str, Any]:
        vid = view_id or self._new_view_id()
        stored = {
            "id": vid,
            "team_id": self.team_id,
            "type": view.get("type"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.{vid[-6:]}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": previous,
            "root_view_id": root or vid,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.views[vid] = stored
        return stored

    def views_open(self, args: Args) -> Result:
        if not args.get("trigger_id"):
            return _err("invalid_arguments", response_metadata={"messages": ["[ERROR] missing trigger_id"]})
        if (problem := self._view_errors(args.get("view"))) is not None:
            return problem
        return {"ok": True, "view": dict(self._store_view(args["view"]))}

    def views_push(self, args: Args) -> Result:
        return self.views_open(args)

    def views_update(self, args: Args) -> Result:
        vid = args.get("view_id")
        if not vid and args.get("external_id"):
            vid = next(
                (v["id"] for v in self.views.values() if v["external_id"] == args["external_id"]), None
            )
        current = self.views.get(str(vid)) if vid else None
        if current is None:
            return _err("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            return _err("hash_conflict")
        if (problem := self._view_errors(args.get("view"))) is not None:
            return problem
        stored = self._store_view(
            args["view"],
            view_id=current["id"],
            previous=current["previous_view_id"],
            root=current["root_view_id"],
        )
        return {"ok": True, "view": dict(stored)}

    def views_publish(self, args: Args) -> Result:
        user_id = str(args.get("user_id", ""))
        if not user_id:
            return _err("invalid_arguments")
        if (problem := self._view_errors(args.get("view"))) is not None:
            return problem
        current = self.home_views.get(user_id)
        if current and args.get("hash") and args["hash"] != current["hash"]:
            return _err("hash_conflict")
        stored = self._store_view(args["view"], view_id=current["id"] if current else None)
        self.home_views[user_id] = stored
        return {"ok": True, "view": dict(stored)}


SlackHandlers.HANDLERS.update(
    {
        "auth.test": SlackHandlers.auth_test,
        "users.info": SlackHandlers.users_info,
        "usergroups.users.list": SlackHandlers.usergroups_users_list,
        "conversations.open": SlackHandlers.conversations_open,
        "chat.postMessage": SlackHandlers.chat_post_message,
        "chat.update": SlackHandlers.chat_update,
        "chat.delete": SlackHandlers.chat_delete,
        "chat.postEphemeral": SlackHandlers.chat_post_ephemeral,
        "chat.getPermalink": SlackHandlers.chat_get_permalink,
        "reactions.add": SlackHandlers.reactions_add,
        "views.open": SlackHandlers.views_open,
        "views.push": SlackHandlers.views_push,
        "views.update": SlackHandlers.views_update,
        "views.publish": SlackHandlers.views_publish,
    }
)
