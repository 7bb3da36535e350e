"""Slack Web API methods as the shell's emulator answers them (the subset keybot calls).

Each handler takes the parsed arguments and returns Slack's JSON; errors are raised as
:class:`~bot.shell._state.SlackError` and answered as ``{"ok": false, "error": code}`` like Slack does.
Handlers run under the state's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.shell import _files
from bot.shell._blocks import check_view as _check_view
from bot.shell._model import Json, SlackError
from bot.shell._oauth import oauth_v2_access
from bot.shell._state import SlackState

Args = Mapping[str, Any]
Method = Callable[[SlackState, Args], Json]


def auth_test(st: SlackState, args: Args) -> Json:
    return {
        "ok": True,
        "url": "https://shell.slack.local/",
        "team": "Shell",
        "user": "keybot",
        "team_id": st.team_id,
        "user_id": st.bot_user_id,
        "bot_id": st.bot_id,
        "is_enterprise_install": False,
    }


def users_info(st: SlackState, args: Args) -> Json:
    user = st.user(str(args.get("user") or ""))
    if user is None:
        raise SlackError("user_not_found")
    return {"ok": True, "user": dict(user)}


def usergroups_users_list(st: SlackState, args: Args) -> Json:
    users = st.usergroups.get(str(args.get("usergroup") or ""))
    if users is None:
        raise SlackError("no_such_subteam")
    return {"ok": True, "users": list(users)}


def conversations_open(st: SlackState, args: Args) -> Json:
    if args.get("channel"):
        return {"ok": True, "channel": {"id": st.resolve_channel(args["channel"])}, "already_open": True}
    users = args.get("users")
    names = [u for u in users.split(",") if u] if isinstance(users, str) else list(users or [])
    if not names:
        raise SlackError("users_list_not_supplied")
    group = "G" + "".join(str(u)[-3:] for u in names)
    channel = st.dm_channel(str(names[0])) if len(names) == 1 else group
    st.channels.setdefault(channel, channel)
    return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": channel}}


def chat_post_message(st: SlackState, args: Args) -> Json:
    channel = st.resolve_channel(args.get("channel"))
    message = st.post(channel, args)
    return {"ok": True, "channel": channel, "ts": message["ts"], "message": dict(message)}


def chat_update(st: SlackState, args: Args) -> Json:
    channel = st.resolve_channel(args.get("channel"))
    message = st.update(channel, str(args.get("ts") or ""), args)
    return {
        "ok": True,
        "channel": channel,
        "ts": message["ts"],
        "text": message.get("text", ""),
        "message": dict(message),
    }


def chat_delete(st: SlackState, args: Args) -> Json:
    channel = st.resolve_channel(args.get("channel"))
    ts = str(args.get("ts") or "")
    st.delete(channel, ts)
    return {"ok": True, "channel": channel, "ts": ts}


def chat_post_ephemeral(st: SlackState, args: Args) -> Json:
    channel = st.resolve_channel(args.get("channel"))
    user = str(args.get("user") or "")
    if not user:
        raise SlackError("user_not_in_channel")
    eph = st.post_ephemeral(channel, user, args)
    return {"ok": True, "message_ts": eph["ts"]}


def chat_get_permalink(st: SlackState, args: Args) -> Json:
    channel = st.resolve_channel(args.get("channel"))
    ts = str(args.get("message_ts") or "")
    if st.find(channel, ts) is None:
        raise SlackError("message_not_found")
    link = f"https://shell.slack.local/archives/{channel}/p{ts.replace('.', '')}"
    return {"ok": True, "channel": channel, "permalink": link}


def reactions_add(st: SlackState, args: Args) -> Json:
    channel = st.resolve_channel(args.get("channel"))
    st.react(channel, str(args.get("timestamp") or ""), str(args.get("name") or "").strip(":"))
    return {"ok": True}


def views_open(st: SlackState, args: Args) -> Json:
    view = _check_view(args.get("view"))
    owner = st.use_trigger(args.get("trigger_id"))
    return {"ok": True, "view": dict(st.open_modal(view, owner=owner))}


def views_push(st: SlackState, args: Args) -> Json:
    view = _check_view(args.get("view"))
    owner = st.use_trigger(args.get("trigger_id"))
    return {"ok": True, "view": dict(st.open_modal(view, push=True, owner=owner))}


def views_update(st: SlackState, args: Args) -> Json:
    if not (args.get("view_id") or args.get("external_id")):
        raise SlackError("invalid_arguments", "[ERROR] view_id or external_id is required")
    current = st.find_view(args.get("view_id"), args.get("external_id"))
    if current is None:
        raise SlackError("not_found")
    view = _check_view(args.get("view"), kind=str(current.get("type")))
    if args.get("hash") and args["hash"] != current["hash"]:
        raise SlackError("hash_conflict")
    return {"ok": True, "view": dict(st.update_view(current, view))}


def views_publish(st: SlackState, args: Args) -> Json:
    user = str(args.get("user_id") or "")
    if not user:
        raise SlackError("invalid_arguments", "[ERROR] user_id is required")
    view = _check_view(args.get("view"), kind="home")
    current = st.homes.get(user)
    if current and args.get("hash") and args["hash"] != current["hash"]:
        raise SlackError("hash_conflict")
    return {"ok": True, "view": dict(st.publish_home(user, view))}


MAX_UPLOAD = 1_000_000_000  # Slack's file size limit: 1 GB


def files_get_upload_url_external(st: SlackState, args: Args) -> Json:
    """Step 1 of an upload: a file id and a URL (on this emulator) to POST the bytes to."""
    filename = str(args.get("filename") or "").strip()
    length = str(args.get("length") or "").strip()
    if not filename or not length:
        raise SlackError("invalid_arguments", "[ERROR] missing required field: filename or length")
    if not length.isdigit() or not 0 < int(length) <= MAX_UPLOAD:
        raise SlackError("invalid_arguments", "[ERROR] length must be a positive number of bytes")
    alt = args.get("alt_txt")
    file_id, token = _files.new_upload(st, filename[:255], int(length), str(alt)[:1000] if alt else None)
    return {"ok": True, "upload_url": f"{st.origin}/upload/v1/{token}", "file_id": file_id}


def files_complete_upload_external(st: SlackState, args: Args) -> Json:
    """Step 3: title the uploaded files; with ``channel_id`` (or ``channels``) share them there."""
    files = args.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
        raise SlackError("invalid_arguments", "[ERROR] files must be a JSON array of {id, title}")
    channels = [c for c in str(args.get("channels") or "").split(",") if c]
    target = args.get("channel_id") or (channels[0] if channels else None)
    thread_ts = str(args.get("thread_ts") or "") or None
    if thread_ts and len(channels) > 1:
        raise SlackError("invalid_arguments", "[ERROR] thread_ts needs exactly one channel")
    channel = st.resolve_channel(target) if target else None
    comment = str(args.get("initial_comment") or "") or None
    return {"ok": True, "files": _files.complete_uploads(st, files, channel, thread_ts, comment)}


METHODS: dict[str, Method] = {
    "oauth.v2.access": oauth_v2_access,
    "auth.test": auth_test,
    "users.info": users_info,
    "usergroups.users.list": usergroups_users_list,
    "conversations.open": conversations_open,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.getPermalink": chat_get_permalink,
    "reactions.add": reactions_add,
    "views.open": views_open,
    "views.push": views_push,
    "views.update": views_update,
    "views.publish": views_publish,
    "files.getUploadURLExternal": files_get_upload_url_external,
    "files.completeUploadExternal": files_complete_upload_external,
}
