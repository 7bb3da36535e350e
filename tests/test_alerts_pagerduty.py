"""PagerDuty Events API v2 over loopback HTTP against the stand-in: trigger on open, acknowledge and
resolve after, retries on 429/5xx, a refused event is not retried forever, and nothing blocks paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx2
import pytest

from bot.access.policy import Actor
from bot.alerts import service
from bot.alerts.models import Alert
from bot.alerts.opening import raise_alerts
from bot.alerts.pagerduty import PagerDutyClient, PagerDutyError, actions_needed, sync_pagerduty
from bot.alerts.types import AlertState
from bot.db.session import Database
from tests.alerts_helpers import NOW, OWNER, add_key, add_team, finding, pages, settings
from tests.standins.pagerduty import PagerDutyStandin

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"


@pytest.fixture(scope="module")
def _server() -> Iterator[PagerDutyStandin]:
    standin = PagerDutyStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def pagerduty(_server: PagerDutyStandin) -> PagerDutyStandin:
    _server.reset()
    return _server


def _client(standin: PagerDutyStandin, key: str = ROUTING_KEY) -> PagerDutyClient:
    return PagerDutyClient(standin.url, key, sleep=lambda _s: None)


def test_the_standin_validates_like_the_real_api(pagerduty: PagerDutyStandin) -> None:
    with httpx2.Client() as http:
        bad = http.post(
            f"{pagerduty.url}/v2/enqueue", json={"routing_key": "short", "event_action": "trigger"}
        )
        assert bad.status_code == 400 and bad.json()["status"] == "invalid event"
        assert any("routing_key" in e for e in bad.json()["errors"])
        assert any("payload" in e for e in bad.json()["errors"])
        no_key = http.post(
            f"{pagerduty.url}/v2/enqueue", json={"routing_key": ROUTING_KEY, "event_action": "resolve"}
        )
        assert no_key.status_code == 400 and "dedup_key" in no_key.text
        good = http.post(
            f"{pagerduty.url}/v2/enqueue",
            json={"routing_key": ROUTING_KEY, "event_action": "trigger",
                  "payload": {"summary": "s", "source": "keybot", "severity": "critical"}},
        )  # fmt: skip
        assert good.status_code == 202 and good.json()["status"] == "success" and good.json()["dedup_key"]


def test_the_alert_lifecycle_reaches_pagerduty_with_a_stable_dedup_key(
    database: Database, pagerduty: PagerDutyStandin
) -> None:
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    client = _client(pagerduty)
    assert sync_pagerduty(database, client, NOW) == [f"{alert_id}:trigger"]
    assert sync_pagerduty(database, client, NOW) == []
    service.acknowledge(database, alert_id, 1, Actor(OWNER))
    assert sync_pagerduty(database, client, NOW) == [f"{alert_id}:acknowledge"]
    service.resolve(database, alert_id, 2, Actor(OWNER))
    assert sync_pagerduty(database, client, NOW) == [f"{alert_id}:resolve"]
    dedup = {e["dedup_key"] for e in pagerduty.events}
    assert len(dedup) == 1 and pagerduty.incidents == {dedup.pop(): "resolved"}
    trigger = pagerduty.events[0]
    assert trigger["payload"]["severity"] == "critical" and "pay-prod" in trigger["payload"]["summary"]


def test_429_and_5xx_are_retried_with_backoff(pagerduty: PagerDutyStandin) -> None:
    waits: list[float] = []
    client = PagerDutyClient(pagerduty.url, ROUTING_KEY, sleep=waits.append, backoff=0.5)
    pagerduty.fail_next(429, 502)
    client.send("trigger", "k1", {"summary": "s", "source": "keybot", "severity": "info"})
    assert waits == [0.5, 1.0] and pagerduty.incidents == {"k1": "triggered"}


def test_a_failing_pagerduty_is_retried_on_a_later_tick_and_never_blocks_the_page(
    database: Database, pagerduty: PagerDutyStandin
) -> None:
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    assert len(pages(database)) == 1  # the Slack page is enqueued whatever PagerDuty does
    pagerduty.fail_next(500, 500, 500)
    assert sync_pagerduty(database, _client(pagerduty), NOW) == []
    with database.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.pagerduty_attempts == 1 and alert.pagerduty_retry_at is not None
        retry_at = alert.pagerduty_retry_at
    assert sync_pagerduty(database, _client(pagerduty), NOW + timedelta(seconds=1)) == []
    assert sync_pagerduty(database, _client(pagerduty), retry_at) == [f"{alert_id}:trigger"]


def test_a_refused_event_is_logged_without_the_routing_key_and_not_retried(
    database: Database, pagerduty: PagerDutyStandin, capsys: pytest.CaptureFixture[str]
) -> None:
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    wrong = "x" * 31
    with pytest.raises(PagerDutyError, match="HTTP 400") as refused:
        _client(pagerduty, wrong).send("trigger", "k", {"summary": "s", "source": "k", "severity": "info"})
    assert refused.value.permanent
    assert sync_pagerduty(database, _client(pagerduty, wrong), NOW) == []
    with database.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.pagerduty_sent == "rejected"
    assert sync_pagerduty(database, _client(pagerduty), NOW + timedelta(days=1)) == []
    captured = capsys.readouterr()
    assert wrong not in captured.out + captured.err


def test_the_events_each_state_needs() -> None:
    assert actions_needed(AlertState.OPEN, None) == ["trigger"]
    assert actions_needed(AlertState.ACKNOWLEDGED, None) == ["trigger", "acknowledge"]
    assert actions_needed(AlertState.FALSE_POSITIVE, "acknowledge") == ["resolve"]
    assert actions_needed(AlertState.RESOLVED, None) == []
    assert actions_needed(AlertState.OPEN, "rejected") == []
