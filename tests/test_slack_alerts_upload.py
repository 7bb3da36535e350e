"""The emulator's file upload as slack_sdk's real ``files_upload_v2`` drives it: files.getUploadURLExternal,
the POST of the bytes to the URL it gave, files.completeUploadExternal sharing the file into a thread; the
shell shows the share as ``📎 chart.png (12 KB)``. Bad uploads get Slack's errors, not a crash."""

from __future__ import annotations

import json
import urllib.request
from urllib.error import HTTPError

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.shell._model import Change
from bot.slack.api import SlackAPI
from tests.standins.slack_api import SlackStandin

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 48  # 12,296 bytes


def test_files_upload_v2_round_trip_into_a_thread(
    slack_standin: SlackStandin, slack_client: WebClient
) -> None:
    seen: list[Change] = []
    unsubscribe = slack_standin.subscribe(seen.append)
    try:
        page = slack_client.chat_postMessage(channel="U0OWNER1", text="🚨 page")
        done = slack_client.files_upload_v2(
            channel=page["channel"], thread_ts=page["ts"], content=PNG, filename="chart.png", title="Traffic"
        )
        assert slack_standin.settle(quiet=0.05)
    finally:
        unsubscribe()
    shared = done["file"]
    assert (shared["name"], shared["title"], shared["size"], shared["mimetype"]) == (
        "chart.png", "Traffic", len(PNG), "image/png",
    )  # fmt: skip
    (share,) = shared["shares"]["private"][page["channel"]]
    assert share["thread_ts"] == page["ts"]
    (stored,) = slack_standin.files()
    assert stored["data"] == PNG and "data" not in shared
    reply = slack_standin.messages(page["channel"])[-1]
    assert (reply["subtype"], reply["thread_ts"], reply["files"][0]["id"]) == (
        "file_share",
        page["ts"],
        shared["id"],
    )
    assert [c.method for c in slack_standin.calls] == [
        "chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal",
    ]  # fmt: skip
    assert any(c.kind == "message" and c.text == "📎 chart.png (12 KB)" for c in seen)


def test_the_wrapper_uploads_and_returns_the_file_id(slack_standin: SlackStandin) -> None:
    api = SlackAPI(slack_standin.bot_token, base_url=slack_standin.base_url)
    posted = api.post_message("C0PAYMENTS", "page")
    file_id = api.upload_file(posted.channel, PNG, "chart.png", title="t", alt_text="a", thread_ts=posted.ts)
    assert file_id.startswith("F") and slack_standin.files()[0]["alt_txt"] == "a"


def test_bad_uploads_get_slacks_errors(slack_standin: SlackStandin, slack_client: WebClient) -> None:
    with pytest.raises(SlackApiError) as missing:
        slack_client.api_call("files.getUploadURLExternal", params={"filename": "x.png"})
    assert missing.value.response["error"] == "invalid_arguments"
    got = slack_client.files_getUploadURLExternal(filename="x.png", length=10)
    short = urllib.request.Request(got["upload_url"], data=b"123", method="POST")
    with pytest.raises(HTTPError) as wrong_size:
        urllib.request.urlopen(short, timeout=5)
    assert wrong_size.value.code == 400
    with pytest.raises(SlackApiError) as not_uploaded:
        slack_client.files_completeUploadExternal(files=[{"id": got["file_id"]}], channel_id="C0X")
    assert not_uploaded.value.response["error"] == "file_not_found"
    with pytest.raises(SlackApiError) as garbled:
        slack_client.api_call("files.completeUploadExternal", params={"files": json.dumps({"id": 1})})
    assert garbled.value.response["error"] == "invalid_arguments"
    with pytest.raises(HTTPError) as unknown:
        urllib.request.urlopen(urllib.request.Request(f"{slack_standin.origin}/upload/v1/nope", data=b"1"))
    assert unknown.value.code == 404
    assert slack_standin.messages("C0X") == []
