"""The stand-ins work through the real clients: openai SDK, slack_sdk / slack_bolt, hvac + real OpenBao."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, TypeVar

import hvac
import openai
import pytest
from openai.types.admin.organization.usage_completions_response import (
    DataResultOrganizationUsageCompletionsResult as CompletionsResult,
)
from openai.types.admin.organization.usage_costs_response import (
    DataResultOrganizationCostsResult as CostsResult,
)
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import Clock, SignatureVerifier

from bot.sandbox import SandboxOpenBao
from tests.standins.bolt_server import BoltHTTPServer
from tests.standins.openai_api import OpenAIStandin
from tests.standins.openbao import OpenBaoServer
from tests.standins.slack_api import (
    SlackStandin,
    block_actions_body,
    event_callback_body,
    post_signed,
    sign_request,
    slash_command_body,
    view_submission_body,
)

# ------------------------------------------------------------------------------------------- OpenAI


@pytest.fixture
def project(openai_standin: OpenAIStandin) -> dict[str, Any]:
    return openai_standin.add_project("Payments prod")


def test_list_and_retrieve_keys(
    openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI, project: dict[str, Any]
) -> None:
    user_key = openai_standin.add_key(project["id"], "checkout-backend", last_used_at=1_700_000_100)
    sa_key = openai_standin.add_key(project["id"], "batch-worker", owner="service_account")
    keys = openai_admin_client.admin.organization.projects.api_keys
    listed = {k.id: k for k in keys.list(project["id"])}
    assert set(listed) == {user_key["id"], sa_key["id"]}
    assert listed[user_key["id"]].redacted_value == "sk-proj-..." + user_key["value"][-4:]
    assert listed[user_key["id"]].owner.type == "user"
    assert listed[sa_key["id"]].owner.type == "service_account"
    assert keys.retrieve(user_key["id"], project_id=project["id"]).last_used_at == 1_700_000_100
    assert [k.id for k in keys.list(project["id"], owner_project_access="any", limit=1)] == [
        user_key["id"],
        sa_key["id"],
    ]  # the SDK pages through with `after`
    assert user_key["value"] not in json.dumps([k.model_dump() for k in listed.values()])
    assert openai_standin.calls_to(r"/api_keys$")[0].query == {}


def test_delete_key_revokes_audits_and_stops_auth(
    openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI, project: dict[str, Any]
) -> None:
    leaked = openai_standin.add_key(project["id"], "leaked")
    as_leaked = openai.OpenAI(api_key=leaked["value"], base_url=openai_standin.base_url, max_retries=0)
    assert [m.id for m in as_leaked.models.list()]  # the leaked key works...
    assert as_leaked.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    started = int(time.time()) - 1

    org = openai_admin_client.admin.organization
    deleted = org.projects.api_keys.delete(leaked["id"], project_id=project["id"])
    assert deleted.deleted and deleted.id == leaked["id"]

    assert leaked["id"] not in [k.id for k in org.projects.api_keys.list(project["id"])]
    events = org.audit_logs.list(
        event_types=["api_key.deleted"], resource_ids=[leaked["id"]], effective_at={"gte": started}
    )
    assert [e.type for e in events.data] == ["api_key.deleted"]
    assert events.data[0].project is not None and events.data[0].project.id == project["id"]
    assert not org.audit_logs.list(effective_at={"lt": started}).data
    assert not openai_standin.authenticates(leaked["value"])
    with pytest.raises(openai.AuthenticationError) as err:  # ...and now it does not
        as_leaked.models.list()
    assert err.value.code == "invalid_api_key"
    assert leaked["value"] not in str(err.value)  # the stand-in never echoes a secret
    with pytest.raises(openai.NotFoundError):
        org.projects.api_keys.retrieve(leaked["id"], project_id=project["id"])


def test_service_account_key_is_returned_once(
    openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI, project: dict[str, Any]
) -> None:
    org = openai_admin_client.admin.organization
    created = org.projects.service_accounts.create(project["id"], name="checkout-backend-2025-06")
    assert created.api_key is not None and created.api_key.value.startswith("sk-svcacct-")
    secret = created.api_key.value
    assert openai_standin.authenticates(secret)

    again = org.projects.api_keys.retrieve(created.api_key.id, project_id=project["id"])
    assert again.owner.type == "service_account" and again.redacted_value.endswith(secret[-4:])
    assert secret not in json.dumps(again.model_dump())
    assert [s.id for s in org.projects.service_accounts.list(project["id"])] == [created.id]
    assert org.projects.service_accounts.retrieve(created.id, project_id=project["id"]).role == "member"
    types = [e.type for e in org.audit_logs.list(project_ids=[project["id"]]).data]
    assert types == ["api_key.created", "service_account.created"]  # newest first

    extra = org.projects.service_accounts.api_keys.create(created.id, project_id=project["id"], name="second")
    assert extra.value != secret and openai_standin.authenticates(extra.value)
    org.projects.service_accounts.delete(created.id, project_id=project["id"])
    assert not openai_standin.authenticates(secret) and not openai_standin.authenticates(extra.value)


R = TypeVar("R")


def _results(page: Any, kind: type[R]) -> list[tuple[int, R]]:
    out = []
    for bucket in page.data:
        for result in bucket.results:
            assert isinstance(result, kind)
            out.append((bucket.start_time, result))
    return out


def test_usage_and_costs_grouped_by_api_key(
    openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI, project: dict[str, Any]
) -> None:
    a = openai_standin.add_key(project["id"], "a")["id"]
    b = openai_standin.add_key(project["id"], "b")["id"]
    t0 = 1_750_000_000 - 1_750_000_000 % 3600
    openai_standin.add_usage(a, t0 + 60, 100, 10, 2)
    openai_standin.add_usage(a, t0 + 90, 50, 5, 1)  # same minute bucket as the one above
    openai_standin.add_usage(b, t0 + 180, 1000, 900, 7, model="gpt-4o")
    usage = openai_admin_client.admin.organization.usage
    page = usage.completions(start_time=t0, end_time=t0 + 300, bucket_width="1m", group_by=["api_key_id"])
    assert len(page.data) == 5 and not page.has_more
    per_minute = {
        (start, r.api_key_id): (r.input_tokens, r.output_tokens, r.num_model_requests)
        for start, r in _results(page, CompletionsResult)
    }
    assert per_minute == {(t0 + 60, a): (150, 15, 3), (t0 + 180, b): (1000, 900, 7)}

    hourly = usage.completions(start_time=t0, end_time=t0 + 3600, bucket_width="1h", api_key_ids=[b])
    hourly_results = [(r.api_key_id, r.num_model_requests) for _, r in _results(hourly, CompletionsResult)]
    assert hourly_results == [(None, 7)]  # not grouped: one total per bucket
    paged = usage.completions(start_time=t0, end_time=t0 + 300, bucket_width="1m", limit=2)
    assert paged.has_more and paged.next_page

    costs = usage.costs(start_time=t0 - t0 % 86400, group_by=["api_key_id"], end_time=t0 + 86400)
    by_key = {r.api_key_id: r.amount.value for _, r in _results(costs, CostsResult) if r.amount}
    assert by_key[b] == pytest.approx(1000 * 2.5e-6 + 900 * 10e-6)
    assert openai_standin.calls_to("/usage/completions")[0].query["group_by"] == ["api_key_id"]


def test_wrong_admin_key_is_rejected(openai_standin: OpenAIStandin, project: dict[str, Any]) -> None:
    client = openai.OpenAI(api_key="x", admin_api_key="sk-admin-wrong-0000", base_url=openai_standin.base_url)
    with pytest.raises(openai.AuthenticationError) as err:
        client.admin.organization.projects.api_keys.list(project["id"])
    assert err.value.status_code == 401
    body = err.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}


def test_injected_faults_are_honoured_by_sdk_retries(
    openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI, project: dict[str, Any]
) -> None:
    openai_standin.add_key(project["id"], "k")
    openai_standin.inject(r"/api_keys$", 429, times=1, retry_after=0.05)
    openai_standin.inject(r"/api_keys$", 500, times=1)
    assert len(openai_admin_client.admin.organization.projects.api_keys.list(project["id"]).data) == 1
    assert [c.status for c in openai_standin.calls_to(r"/api_keys$")] == [429, 500, 200]

    openai_standin.inject(r"/api_keys$", 429, times=None, retry_after=0.01)
    with pytest.raises(openai.RateLimitError):
        openai_admin_client.with_options(max_retries=1).admin.organization.projects.api_keys.list(
            project["id"]
        )
    openai_standin.faults.clear()

    openai_standin.inject("/models", status=None, delay=1.0)  # slow answer
    slow = openai.OpenAI(
        api_key=openai_standin.api_key, base_url=openai_standin.base_url, timeout=0.2, max_retries=0
    )
    with pytest.raises(openai.APITimeoutError):
        slow.models.list()


def test_spec_validation_catches_a_malformed_response(
    openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI, project: dict[str, Any]
) -> None:
    openai_standin.add_key(project["id"], "k")

    def drop_redacted_value(payload: dict[str, Any]) -> None:
        del payload["data"][0]["redacted_value"]
        payload["data"][0]["created_at"] = "yesterday"

    openai_standin.corrupt(r"/api_keys$", drop_redacted_value)
    openai_admin_client.admin.organization.projects.api_keys.list(project["id"])
    issues = openai_standin.take_validation_errors()
    assert len(issues) == 1 and issues[0].kind == "response"
    assert "redacted_value" in str(issues[0]) and "yesterday" in str(issues[0])
    with pytest.raises(AssertionError):
        openai_standin.corrupt(r"/api_keys$", lambda p: {"object": "list"})
        openai_admin_client.admin.organization.projects.api_keys.list(project["id"])
        openai_standin.assert_no_validation_errors()
    openai_standin.take_validation_errors()


def test_spec_validation_rejects_invalid_requests(
    openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI
) -> None:
    usage = openai_admin_client.admin.organization.usage
    with pytest.raises(openai.BadRequestError):  # the SDK allows api_source; the spec does not
        usage.completions(start_time=1, group_by=["api_source"])
    with pytest.raises(openai.BadRequestError):
        usage.completions(start_time=1, extra_query={"not_a_param": "1"})
    req = urllib.request.Request(openai_standin.base_url + "/organization/projects")  # no Authorization
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401
    kinds = [(i.kind, i.path) for i in openai_standin.take_validation_errors()]
    assert kinds == [("request", "/organization/usage/completions")] * 2 + [
        ("request", "/organization/projects")
    ]


def test_chat_completion_is_canned_and_recorded(
    openai_standin: OpenAIStandin, project: dict[str, Any]
) -> None:
    key = openai_standin.add_key(project["id"], "llm")
    openai_standin.chat_reply = lambda body: "Draft: " + body["messages"][-1]["content"]
    client = openai.OpenAI(api_key=key["value"], base_url=openai_standin.base_url)
    out = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Write a postmortem."},
            {"role": "user", "content": "key sk-...Xy9Q"},
        ],
    )
    assert out.choices[0].message.content == "Draft: key sk-...Xy9Q"
    assert openai_standin.calls_to("/chat/completions")[0].json["messages"][1]["content"] == "key sk-...Xy9Q"
    assert [u.api_key_id for u in openai_standin.usage] == [key["id"]]
    assert openai_standin.keys[key["id"]].last_used_at is not None


# -------------------------------------------------------------------------------------------- Slack

# Slack's published example (https://api.slack.com/authentication/verifying-requests-from-slack)
VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TS = 1531420618
VECTOR_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
    "channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
    "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgc"
    "ZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_signer_matches_slack_test_vector() -> None:
    headers = sign_request(VECTOR_SECRET, VECTOR_BODY, VECTOR_TS)
    assert headers == {"X-Slack-Request-Timestamp": str(VECTOR_TS), "X-Slack-Signature": VECTOR_SIGNATURE}

    class FixedClock(Clock):
        def now(self) -> float:
            return VECTOR_TS + 10.0

    verifier = SignatureVerifier(VECTOR_SECRET, clock=FixedClock())  # the real verifier
    assert verifier.is_valid_request(VECTOR_BODY, headers)
    assert not verifier.is_valid_request(VECTOR_BODY + "x", headers)
    fresh = sign_request("s3cret", "a=b")
    assert SignatureVerifier("s3cret").is_valid_request("a=b", fresh)


def test_post_and_update_message(slack_standin: SlackStandin, slack_client: WebClient) -> None:
    posted = slack_client.chat_postMessage(
        channel="C0INCIDENT",
        text="Revoking sk-...Xy9Q",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "1/10"}}],
    )
    ts = posted["ts"]
    slack_client.chat_update(
        channel="C0INCIDENT",
        ts=ts,
        text="Revoked",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "10/10"}}],
    )
    [message] = slack_standin.messages("C0INCIDENT")
    assert message["ts"] == ts and message["text"] == "Revoked" and "edited" in message
    assert message["blocks"][0]["text"]["text"] == "10/10"
    assert [c.method for c in slack_standin.calls] == ["chat.postMessage", "chat.update"]
    assert slack_standin.calls_to("chat.update")[0].args["ts"] == ts
    assert slack_standin.calls_to("chat.update")[0].token == slack_standin.bot_token
    dm = slack_client.chat_postMessage(channel="U0OWNER1", text="your key was rotated")
    assert dm["channel"] == slack_client.conversations_open(users="U0OWNER1")["channel"]["id"]
    assert slack_client.chat_getPermalink(channel=dm["channel"], message_ts=dm["ts"])["permalink"]


def test_rate_limit_is_retried_with_retry_after(slack_standin: SlackStandin) -> None:
    client = WebClient(
        token=slack_standin.bot_token,
        base_url=slack_standin.base_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    slack_standin.inject_rate_limit("chat.update", retry_after=0, times=1)
    posted = client.chat_postMessage(channel="C1", text="a")
    client.chat_update(channel="C1", ts=posted["ts"], text="b")
    calls = slack_standin.calls_to("chat.update")
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].response == {"ok": False, "error": "ratelimited"}
    assert slack_standin.messages("C1")[0]["text"] == "b"


def test_slack_errors(slack_standin: SlackStandin, slack_client: WebClient) -> None:
    slack_standin.inject("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError) as err:
        slack_client.chat_postMessage(channel="C404", text="x")
    assert err.value.response["error"] == "channel_not_found"
    assert slack_client.chat_postMessage(channel="C404", text="x")["ok"]  # times=1
    with pytest.raises(SlackApiError, match="invalid_auth"):
        WebClient(token="xoxb-wrong", base_url=slack_standin.base_url).auth_test()
    with pytest.raises(SlackApiError, match="unknown_method"):
        slack_client.api_call("chat.notAMethod")
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        slack_client.chat_postMessage(channel="C1", text="x", blocks=[{"type": "divider"}] * 51)
    opened = slack_client.views_open(
        trigger_id="1.2.3",
        view={"type": "modal", "title": {"type": "plain_text", "text": "Loading…"}, "blocks": []},
    )["view"]
    done = {"type": "modal", "title": {"type": "plain_text", "text": "Revoke key"}, "blocks": []}
    slack_client.views_update(view_id=opened["id"], hash=opened["hash"], view=done)
    with pytest.raises(SlackApiError, match="hash_conflict"):
        slack_client.views_update(view_id=opened["id"], hash=opened["hash"], view=done)


@pytest.fixture
def bolt_url(slack_standin: SlackStandin) -> Iterator[str]:
    """A real Bolt app served over HTTP (wsgiref), calling the stand-in."""
    app = App(
        token=slack_standin.bot_token,
        signing_secret="test-signing-secret",
        client=WebClient(token=slack_standin.bot_token, base_url=slack_standin.base_url),
    )

    @app.command("/revoke-key")
    def revoke(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        client.views_open(
            trigger_id=body["trigger_id"],
            view={
                "type": "modal",
                "callback_id": "revoke",
                "title": {"type": "plain_text", "text": "Revoke"},
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}],
            },
        )
        respond("opening")

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        client.chat_postMessage(channel=body["channel"]["id"], text=f"approved {body['actions'][0]['value']}")

    @app.view("revoke")
    def submitted(ack: Ack, view: dict[str, Any]) -> None:
        ack(response_action="errors", errors={"mode": view["state"]["values"]["mode"]["pick"]["value"]})

    @app.event("app_mention")
    def mention(event: dict[str, Any], say: Any) -> None:
        say(f"hi <@{event['user']}>")

    with BoltHTTPServer(app) as url:
        yield url


def test_signed_payloads_drive_a_real_bolt_app(bolt_url: str, slack_standin: SlackStandin) -> None:
    secret = "test-signing-secret"
    body = slash_command_body("/revoke-key", "sk-...Xy9Q", response_url=slack_standin.response_url("cmd"))
    assert post_signed(bolt_url, secret, body).status == 200
    assert slack_standin.wait_for("views.open")[0].args["view"]["blocks"][0]["text"]["text"] == "sk-...Xy9Q"
    assert slack_standin.wait_for("response_url")[0].args["text"] == "opening"

    assert post_signed(bolt_url, "wrong-secret", body).status == 401
    assert post_signed(bolt_url, secret, body, timestamp=int(time.time()) - 3600).status == 401

    assert post_signed(bolt_url, secret, block_actions_body("approve", "run:1:v1")).status == 200
    assert slack_standin.wait_for("chat.postMessage")[0].args["text"] == "approved run:1:v1"

    state = {"mode": {"pick": {"type": "plain_text_input", "value": "staged"}}}
    answer = post_signed(bolt_url, secret, view_submission_body("revoke", state))
    assert answer.status == 200 and answer.json() == {
        "response_action": "errors",
        "errors": {"mode": "staged"},
    }

    event = {
        "type": "app_mention",
        "user": "U0ONCALL1",
        "text": "<@U0KEYBOT> hi",
        "ts": "1700000000.000200",
        "channel": "C0INCIDENT",
        "event_ts": "1700000000.000200",
    }
    assert post_signed(bolt_url, secret, event_callback_body(event, "Ev0001")).status == 200
    assert slack_standin.wait_for("chat.postMessage", 2)[1].args["text"] == "hi <@U0ONCALL1>"


# ------------------------------------------------------------------------------------------ OpenBao


def test_openbao_kv_v2_with_cas_and_audit(openbao: OpenBaoServer, openbao_kv_prefix: str) -> None:
    client = openbao.client()
    assert client.is_authenticated()
    path = f"{openbao_kv_prefix}/openai/checkout"
    secret_value = "sk-proj-AUDITCANARY-" + "x" * 40
    kv = client.secrets.kv.v2
    v1 = kv.create_or_update_secret(path=path, secret={"api_key": secret_value}, cas=0)
    assert v1["data"]["version"] == 1
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
        kv.create_or_update_secret(path=path, secret={"api_key": "other"}, cas=0)
    kv.create_or_update_secret(path=path, secret={"api_key": "rotated"}, cas=1)
    kv.update_metadata(path=path, custom_metadata={"state": "pending", "key_id": "key_abc"})
    assert kv.read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"] == {
        "api_key": "rotated"
    }
    assert kv.read_secret_metadata(path=path)["data"]["custom_metadata"]["state"] == "pending"
    kv.destroy_secret_versions(path=path, versions=[1])
    assert kv.read_secret_metadata(path=path)["data"]["versions"]["1"]["destroyed"] is True

    assert openbao.audit_log_path.exists()
    entries = openbao.audit_entries()
    writes = [e for e in entries if e.get("request", {}).get("path") == f"secret/data/{path}"]
    assert writes, "KV writes must be audited"
    raw = openbao.audit_log_path.read_text()
    assert secret_value not in raw and "AUDITCANARY" not in raw  # values are HMAC'd
    assert "hmac-sha256:" in raw


def test_openbao_seal_unseal_and_clean_stop(openbao_isolated: OpenBaoServer) -> None:
    assert isinstance(openbao_isolated, SandboxOpenBao)  # the launcher keybot run uses, not a second one
    client = openbao_isolated.client()
    client.secrets.kv.v2.create_or_update_secret(path="a", secret={"v": "1"})
    openbao_isolated.seal()
    with pytest.raises(hvac.exceptions.VaultDown):
        client.secrets.kv.v2.read_secret_version(path="a", raise_on_deleted_version=True)
    openbao_isolated.unseal()
    assert client.secrets.kv.v2.read_secret_version(path="a", raise_on_deleted_version=True)["data"][
        "data"
    ] == {"v": "1"}
    pid = openbao_isolated.pid
    openbao_isolated.stop()
    assert pid is not None and not openbao_isolated.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
