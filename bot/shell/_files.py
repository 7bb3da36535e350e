"""Slack's three-step file upload in the emulator, as ``slack_sdk``'s ``files_upload_v2`` drives it:
``files.getUploadURLExternal`` reserves a file id and an upload URL on the emulator itself, the client POSTs
the bytes there, and ``files.completeUploadExternal`` titles the files and shares them in a conversation
(one ``file_share`` message, in a thread when asked). Functions of the state, called under its lock.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from bot.shell._model import Change, Json, SlackError
from bot.shell._state import SlackState


def new_upload(st: SlackState, filename: str, length: int, alt_txt: str | None) -> tuple[str, str]:
    """Reserve a file id and a one-use upload token, like Slack's upload URL (``/upload/v1/<token>``)."""
    file_id = "F" + secrets.token_hex(5).upper()
    token = secrets.token_urlsafe(16)
    st.files[file_id] = {
        "id": file_id,
        "created": int(time.time()),
        "timestamp": int(time.time()),
        "name": filename,
        "title": filename,
        "mimetype": _MIMETYPES.get(filename.rsplit(".", 1)[-1].lower(), "application/octet-stream"),
        "filetype": filename.rsplit(".", 1)[-1].lower() if "." in filename else "binary",
        "user": st.bot_user_id,
        "size": length,
        "alt_txt": alt_txt,
        "is_public": False,
        "channels": [],
        "groups": [],
        "ims": [],
        "shares": {},
        "data": None,
    }
    st.uploads[token] = file_id
    return file_id, token


def receive_upload(st: SlackState, token: str, data: bytes) -> Json:
    """The bytes POSTed to an upload URL; a token works once, and the size must be the announced one."""
    file_id = st.uploads.pop(token, None)
    if file_id is None or file_id not in st.files:
        raise SlackError("invalid_upload_url")
    record = st.files[file_id]
    if len(data) != record["size"]:
        raise SlackError("invalid_length")
    record["data"] = bytes(data)
    return record


def complete_uploads(
    st: SlackState, files: list[Json], channel: str | None, thread_ts: str | None, comment: str | None
) -> list[Json]:
    """files.completeUploadExternal: title the uploaded files and, with a channel, share them there as
    one message (in ``thread_ts``'s thread), which the terminal shows as ``📎 name (size)``."""
    done = []
    for item in files:
        record = st.files.get(str(item.get("id") or ""))
        if record is None or record["data"] is None:
            raise SlackError("file_not_found")
        if item.get("title"):
            record["title"] = str(item["title"])
        done.append(record)
    if channel:
        if thread_ts and st.find(channel, thread_ts) is None:
            raise SlackError("invalid_thread_ts")
        _share(st, done, channel, thread_ts, comment)
    return [public_file(f) for f in done]


def _share(
    st: SlackState, files: list[Json], channel: str, thread_ts: str | None, comment: str | None
) -> None:
    message: Json = {
        "type": "message",
        "subtype": "file_share",
        "ts": st.next_ts(),
        "user": st.bot_user_id,
        "bot_id": st.bot_id,
        "team": st.team_id,
        "text": comment or "",
        "upload": True,
        "files": [public_file(f) for f in files],
    }
    if thread_ts:
        message["thread_ts"] = thread_ts
    for record in files:
        share = {"ts": message["ts"], "thread_ts": thread_ts} if thread_ts else {"ts": message["ts"]}
        kind = "ims" if channel.startswith("D") else "channels"
        record[kind].append(channel)
        record["shares"].setdefault("private" if kind == "ims" else "public", {})[channel] = [share]
    st.messages.setdefault(channel, []).append(message)
    lines = [comment] if comment else []
    lines += [f"📎 {f['name']} ({_size(f['size'])})" for f in files]
    st.emit(
        Change(
            "message",
            channel=channel,
            ts=message["ts"],
            thread_ts=thread_ts,
            user=st._dm_user(channel),
            text="\n".join(lines),
        )
    )


_MIMETYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "txt": "text/plain"}


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{round(size / 1024)} KB"


def public_file(record: Mapping[str, Any]) -> Json:
    """A file as Slack's API returns it: without the bytes, with lists copied."""
    out = {k: v for k, v in record.items() if k != "data"}
    for key in ("channels", "groups", "ims"):
        out[key] = list(record[key])
    out["shares"] = {k: dict(v) for k, v in record["shares"].items()}
    return out
