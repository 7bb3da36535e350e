"""The local workspace behind :class:`~bot.shell.emulator.LocalSlack`: channels, messages, modals, App Home.

Every mutation happens under one lock and is reported as a :class:`Change` in the order it happened, so the
terminal shows what a person in Slack would see, even when Bolt handlers post from background threads.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.shell._blocks import check_content
from bot.shell._model import MAX_STACK, Change, Json, ResponseTarget, SlackError, with_block_ids


class SlackState:
    """All workspace state, guarded by ``lock``; ``emit`` receives every :class:`Change` in order."""

    def __init__(
        self,
        *,
        team_id: str,
        bot_user_id: str,
        bot_id: str,
        app_id: str,
        auto_users: bool,
        trigger_ttl: float | None,
        emit: Callable[[Change], None],
        strict_triggers: bool = True,
    ) -> None:
        self.team_id, self.bot_user_id, self.bot_id, self.app_id = team_id, bot_user_id, bot_id, app_id
        self.auto_users = auto_users
        self.trigger_ttl = trigger_ttl
        self.strict_triggers = strict_triggers  # False: any trigger_id works once (signed test payloads)
        self.emit = emit
        self.lock = threading.RLock()
        self._seq = 0
        self.origin = ""  # where the emulator listens; upload URLs point there
        self.clear()

    def clear(self) -> None:
        """Forget the workspace: channels, messages, modals, homes, users, groups and triggers."""
        self.channels: dict[str, str] = {}  # id -> name
        self.messages: dict[str, list[Json]] = {}  # channel id -> messages, oldest first
        self.ephemerals: list[Json] = []
        self.stacks: dict[str, list[Json]] = {}  # a trigger's owner -> open modals, root first
        self.homes: dict[str, Json] = {}  # user id -> App Home view
        self.users: dict[str, Json] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.triggers: dict[str, tuple[float, str]] = {}  # trigger id -> (issued at, owner)
        self.used_triggers: set[str] = set()
        self.files: dict[str, Json] = {}  # file id -> Slack's file object, plus the uploaded bytes
        self.uploads: dict[str, str] = {}  # upload token -> file id (the URL files.getUploadURLExternal gave)
        self.oauth_grants: dict[str, Json] = {}  # OAuth code -> the client it was issued to, and the install
        self.installed_tokens: set[str] = set()  # bot tokens oauth.v2.access handed out

    # ---- ids -----------------------------------------------------------------------------------
    def next_ts(self) -> str:
        self._seq += 1
        return f"{int(time.time())}.{self._seq:06d}"

    @property
    def stack(self) -> list[Json]:
        """The terminal person's modals (triggers issued without an owner), root first."""
        return self.stacks.setdefault("", [])

    def new_trigger_id(self, owner: str = "") -> str:
        """A trigger for ``owner``'s click: the modals it opens stack on that person's other modals."""
        trigger = f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**11)}.{secrets.token_hex(16)}"
        self.triggers[trigger] = (time.monotonic(), owner)
        return trigger

    def use_trigger(self, trigger: Any) -> str:
        """A trigger opens one view, within ``trigger_ttl`` seconds (Slack: 3 s) of the click; returns
        whose modal stack it opens on (an unknown trigger, when not strict: a stack of its own)."""
        if not trigger:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: trigger_id")
        key = str(trigger)
        issued = self.triggers.get(key)
        if issued is None and self.strict_triggers:
            raise SlackError("invalid_trigger_id")
        if key in self.used_triggers:
            raise SlackError("exchanged_trigger_id")
        if issued and self.trigger_ttl is not None and time.monotonic() - issued[0] > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        self.used_triggers.add(key)
        return issued[1] if issued else f"trigger:{key}"

    @staticmethod
    def dm_channel(user: str) -> str:
        return "D" + user[1:]

    def resolve_channel(self, channel: Any) -> str:
        """A conversation id; a user id means the bot's DM with them, ``#name`` a known channel's name."""
        name = str(channel or "").strip()
        if not name:
            raise SlackError("channel_not_found")
        if name[0] in "UW" and name[1:].isalnum():
            return self.dm_channel(name)
        if name[0] in "CGD" and name.isalnum() and name.isupper():
            self.channels.setdefault(name, name)
            return name
        for cid, cname in self.channels.items():
            if cname == name.removeprefix("#"):
                return cid
        raise SlackError("channel_not_found")

    # ---- users -------------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, real_name: str | None = None, **extra: Any) -> Json:
        real = real_name or name.title()
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real,
            "deleted": False,
            "is_bot": False,
            "is_admin": False,
            "tz": "UTC",
            "tz_label": "Coordinated Universal Time",
            "tz_offset": 0,
            "profile": {"real_name": real, "display_name": name, "email": f"{name}@example.com"},
            **extra,
        }
        self.users[user_id] = user
        return user

    def user(self, user_id: str) -> Json | None:
        if user_id not in self.users and self.auto_users and user_id[:1] in ("U", "W") and user_id.isalnum():
            self.add_user(user_id, user_id.lower())
        return self.users.get(user_id)

    # ---- messages ----------------------------------------------------------------------------
    def find(self, channel: str, ts: str) -> Json | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    def _dm_user(self, channel: str) -> str | None:
        return "U" + channel[1:] if channel.startswith("D") else None

    def _message_change(self, channel: str, message: Json, updated: bool) -> Change:
        return Change(
            "message",
            updated=updated,
            channel=channel,
            ts=message["ts"],
            thread_ts=message.get("thread_ts"),
            user=self._dm_user(channel),
            text=str(message.get("text") or ""),
            blocks=list(message.get("blocks") or []),
            attachments=list(message.get("attachments") or []),
        )

    def post(self, channel: str, args: Mapping[str, Any]) -> Json:
        """A bot message (chat.postMessage, or an ``in_channel`` response)."""
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise SlackError("no_text")
        check_content(args.get("text"), args.get("blocks"))
        message: Json = {
            "type": "message",
            "ts": self.next_ts(),
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": str(args.get("text") or ""),
            "blocks": with_block_ids(args.get("blocks")),
        }
        for key in ("attachments", "thread_ts", "metadata"):
            if args.get(key):
                message[key] = args[key]
        self.messages.setdefault(channel, []).append(message)
        self.emit(self._message_change(channel, message, updated=False))
        return message

    def post_user_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> str:
        """What a person typed: stored (so reactions and permalinks work) but never reported as a Change,
        so the terminal does not print it back (it may hold a secret)."""
        message: Json = {"type": "message", "ts": self.next_ts(), "user": user, "text": text}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages.setdefault(channel, []).append(message)
        return str(message["ts"])

    def update(self, channel: str, ts: str, args: Mapping[str, Any]) -> Json:
        message = self.find(channel, ts)
        if message is None:
            raise SlackError("message_not_found")
        if message.get("user") != self.bot_user_id:
            raise SlackError("cant_update_message")
        check_content(args.get("text"), args.get("blocks"))
        if "text" in args:
            message["text"] = str(args.get("text") or "")
        if "blocks" in args:
            message["blocks"] = with_block_ids(args.get("blocks"))
        for key in ("attachments", "metadata"):
            if key in args:
                message[key] = args[key]
        message["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
        self.emit(self._message_change(channel, message, updated=True))
        return message

    def delete(self, channel: str, ts: str) -> None:
        message = self.find(channel, ts)
        if message is None:
            raise SlackError("message_not_found")
        if message.get("user") != self.bot_user_id:
            raise SlackError("cant_delete_message")
        self.messages[channel].remove(message)
        self.emit(Change("deleted", channel=channel, ts=ts))

    def react(self, channel: str, ts: str, name: str) -> None:
        message = self.find(channel, ts)
        if message is None:
            raise SlackError("message_not_found")
        reactions = message.setdefault("reactions", [])
        if any(r["name"] == name for r in reactions):
            raise SlackError("already_reacted")
        reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        self.emit(Change("reaction", channel=channel, ts=ts, user=str(message.get("user")), name=name))

    # ---- ephemeral messages ------------------------------------------------------------------
    def find_ephemeral(self, ts: str) -> Json | None:
        return next((e for e in self.ephemerals if e["ts"] == ts), None)

    def _ephemeral_change(self, eph: Json, updated: bool) -> Change:
        return Change(
            "ephemeral",
            updated=updated,
            channel=eph["channel"],
            ts=eph["ts"],
            thread_ts=eph.get("thread_ts"),
            user=eph["user"],
            text=eph["text"],
            blocks=list(eph["blocks"]),
            attachments=list(eph.get("attachments") or []),
        )

    def post_ephemeral(self, channel: str, user: str, args: Mapping[str, Any]) -> Json:
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise SlackError("no_text")
        check_content(args.get("text"), args.get("blocks"))
        eph: Json = {
            "type": "message",
            "ts": self.next_ts(),
            "channel": channel,
            "user": user,
            "text": str(args.get("text") or ""),
            "blocks": with_block_ids(args.get("blocks")),
        }
        for key in ("attachments", "thread_ts"):
            if args.get(key):
                eph[key] = args[key]
        self.ephemerals.append(eph)
        self.emit(self._ephemeral_change(eph, updated=False))
        return eph

    def apply_response(self, target: ResponseTarget, payload: Mapping[str, Any]) -> None:
        """A ``response_url`` POST (or a slash command's ack body): delete / replace the original message,
        post in the channel (``response_type: in_channel``), or answer only the user (the default)."""
        original_ts = target.message_ts
        if payload.get("delete_original") and original_ts:
            if target.ephemeral:
                eph = self.find_ephemeral(original_ts)
                if eph is not None:
                    self.ephemerals.remove(eph)
                    self.emit(Change("deleted", channel=target.channel, ts=original_ts, user=target.user))
            else:
                self.delete(target.channel, original_ts)
            return
        if payload.get("replace_original") and original_ts:
            if not (payload.get("text") or payload.get("blocks")):
                raise SlackError("no_text")
            check_content(payload.get("text"), payload.get("blocks"))
            eph = self.find_ephemeral(original_ts) if target.ephemeral else None
            if eph is None:
                self.update(target.channel, original_ts, payload)
                return
            eph["text"] = str(payload.get("text") or "")
            eph["blocks"] = with_block_ids(payload.get("blocks"))
            self.emit(self._ephemeral_change(eph, updated=True))
            return
        if payload.get("response_type") == "in_channel":
            self.post(target.channel, payload)
        else:
            self.post_ephemeral(target.channel, target.user, payload)

    # ---- views -------------------------------------------------------------------------------
    def store_view(self, view: Mapping[str, Any], *, like: Json | None = None) -> Json:
        """Slack's stored form of a view: ids, hash, empty state; ``like`` keeps an updated view's ids."""
        vid = like["id"] if like else "V" + secrets.token_hex(5).upper()
        return {
            "id": vid,
            "team_id": self.team_id,
            "type": view.get("type"),
            "blocks": with_block_ids(view.get("blocks")),
            "private_metadata": view.get("private_metadata") or "",
            "callback_id": view.get("callback_id") or "",
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": like.get("previous_view_id") if like else None,
            "root_view_id": like.get("root_view_id") if like else vid,
            "app_id": self.app_id,
            "external_id": view.get("external_id") or "",
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def open_modal(self, view: Mapping[str, Any], *, push: bool = False, owner: str = "") -> Json:
        """views.open starts ``owner``'s new stack (closing their open modals); views.push adds to it."""
        stack = self.stacks.setdefault(owner, [])
        if push and not stack:
            return self.open_modal(view, owner=owner)
        if push and len(stack) >= MAX_STACK:
            raise SlackError("push_limit_reached")
        stored = self.store_view(view)
        if push:
            stored["previous_view_id"] = stack[-1]["id"]
            stored["root_view_id"] = stack[0]["id"]
        else:
            while stack:
                self.emit(Change("view_closed", view=stack.pop()))
        stack.append(stored)
        self.emit(Change("view", view=dict(stored)))
        return stored

    def find_view(self, view_id: Any = None, external_id: Any = None) -> Json | None:
        for view in [*(v for stack in self.stacks.values() for v in stack), *self.homes.values()]:
            if (view_id and view["id"] == view_id) or (external_id and view["external_id"] == external_id):
                return view
        return None

    def update_view(self, current: Json, view: Mapping[str, Any]) -> Json:
        """Replace an open modal (or a home tab) in place: same id, new hash."""
        stored = self.store_view(view, like=current)
        for stack in self.stacks.values():
            if current in stack:
                stack[stack.index(current)] = stored
                self.emit(Change("view", updated=True, view=dict(stored)))
                return stored
        for user, home in list(self.homes.items()):
            if home is current:
                self.homes[user] = stored
                self.emit(Change("home", updated=True, user=user, view=dict(stored)))
        return stored

    def publish_home(self, user: str, view: Mapping[str, Any]) -> Json:
        current = self.homes.get(user)
        stored = self.store_view(view, like=current)
        self.homes[user] = stored
        self.emit(Change("home", updated=current is not None, user=user, view=dict(stored)))
        return stored

    def close_modal(self, *, clear: bool = False) -> Json | None:
        """What the person's client does on submit/Close: pop the top view (``clear``: the whole stack)."""
        closed = None
        while self.stack:
            closed = self.stack.pop()
            self.emit(Change("view_closed", view=dict(closed)))
            if not clear:
                break
        return closed
