"""Prometheus metrics: process-local instruments plus gauges read from the database at scrape time.

Counters and histograms (step attempts, Slack/OpenAI/Vault calls) live in this process's own
:data:`REGISTRY`; each replica exposes its own and Prometheus sums them. Facts every replica shares (runs
by status, alerts, the outbox, time to contain) are read from the database when scraped
(:class:`DatabaseCollector`), so any replica answers the same. Labels are bounded: method and operation
names come from code or a fixed vocabulary, error codes from a closed set or a length-capped pattern.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bot.db.base import utcnow
from bot.db.session import Database
from bot.log import get_logger

log = get_logger(__name__)

REGISTRY = CollectorRegistry()
"""This process's instruments; never the library's global registry (no import-time surprises)."""

CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
CONTAIN_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 24 * 3600.0, 7 * 24 * 3600.0)
CONTAIN_WINDOW = timedelta(days=30)
CONTAIN_LIMIT = 5000

STEP_SECONDS = Histogram(
    "keybot_step_attempt_duration_seconds",
    "Time one attempt of a runbook step took in this process, by step name and the status it left.",
    ["step", "outcome"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
CALL_SECONDS = {
    system: Histogram(
        f"keybot_{system}_call_duration_seconds",
        f"Latency of {system} calls made by this process (each HTTP attempt for OpenAI and Vault).",
        ["operation"],
        buckets=CALL_BUCKETS,
        registry=REGISTRY,
    )
    for system in ("slack", "openai", "vault")
}
CALL_ERRORS = {
    system: Counter(
        f"keybot_{system}_call_errors",
        f"Failed {system} calls made by this process, by operation and error code.",
        ["operation", "code"],
        registry=REGISTRY,
    )
    for system in ("slack", "openai", "vault")
}

_CODE = re.compile(r"[a-z0-9_]{1,64}")


def bounded_code(code: str) -> str:
    """An error code fit for a label: Slack's own codes and ``http_<status>`` pass, anything else is
    ``other``, so a hostile or free-text error can never grow the label set."""
    return code if _CODE.fullmatch(code) else "other"


def observe_call(system: str, operation: str, seconds: float, error: str | None = None) -> None:
    CALL_SECONDS[system].labels(operation).observe(seconds)
    if error is not None:
        CALL_ERRORS[system].labels(operation, bounded_code(error)).inc()


@contextmanager
def timed_call(system: str, operation: str, code_of: Callable[[Exception], str]) -> Iterator[None]:
    """Time the block; an exception is counted with ``code_of(exc)`` and re-raised unchanged."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        observe_call(system, operation, time.perf_counter() - started, code_of(exc))
        raise
    observe_call(system, operation, time.perf_counter() - started)


def observe_step(step: str, outcome: str, seconds: float) -> None:
    STEP_SECONDS.labels(step, outcome).observe(seconds)


class _Forward(Collector):
    """Lets a per-endpoint registry expose the process-wide instruments too."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


class DatabaseCollector(Collector):
    """Shared facts read from the database at scrape time: a few grouped counts, each on an indexed column
    or a bounded window, so a scrape stays cheap however long keybot has run.

    Time to contain is computed here, not observed where containment is recorded: containment is recorded
    in three places (the run's transition on SQLite and PostgreSQL, and a person's decision), and a
    database answer is the same on every replica. It is a gauge histogram over incidents (drills
    excluded) contained in the last 30 days, at most the newest 5,000.
    """

    def __init__(self, database: Database, now: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.now = now

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "keybot_metrics_database_up", "1 when the database answered this scrape's queries, else 0."
        )
        try:
            families = list(self._read())
        except Exception as error:
            log.warning("metrics: database unreadable", error_type=type(error).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _read(self) -> Iterator[Metric]:
        from bot.alerts.models import Alert
        from bot.incidents.models import Incident
        from bot.notifications.models import Notification, NotificationStatus
        from bot.reminders.delivery import KIND as REMINDER_KIND
        from bot.runbooks.models import Run

        now = self.now()
        with self.database.session() as session:
            runs = GaugeMetricFamily("keybot_runs", "Runs by status (drills included).", labels=["status"])
            for run_status, n in session.execute(select(Run.status, func.count()).group_by(Run.status)):
                runs.add_metric([str(run_status.value)], n)
            yield runs

            alerts = GaugeMetricFamily("keybot_alerts", "Anomaly alerts by state.", labels=["state"])
            opened = 0
            for state, count in session.execute(select(Alert.state, func.count()).group_by(Alert.state)):
                alerts.add_metric([str(state.value)], count)
                opened += count
            yield alerts
            yield CounterMetricFamily(
                "keybot_alerts_opened", "Anomaly alerts ever opened (rows in the alerts table).", opened
            )

            pending = (NotificationStatus.PENDING, NotificationStatus.SENDING)
            depth = GaugeMetricFamily(
                "keybot_outbox_depth", "Notifications not yet delivered, by status.", labels=["status"]
            )
            age = GaugeMetricFamily(
                "keybot_outbox_oldest_pending_age_seconds",
                "Age of the oldest notification not yet delivered (0 when the outbox is empty).",
            )
            oldest: datetime | None = None
            query = (
                select(Notification.status, func.count(), func.min(Notification.created_at))
                .where(Notification.status.in_(pending))
                .group_by(Notification.status)
            )
            counts = {status: 0 for status in pending}
            for status, count, first in session.execute(query):
                counts[status] = count
                if first is not None and (oldest is None or _aware(first) < oldest):
                    oldest = _aware(first)
            for status, count in counts.items():
                depth.add_metric([status.value], count)
            age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
            yield depth
            yield age

            sent = session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.kind == REMINDER_KIND, Notification.status == NotificationStatus.SENT)
            )
            yield CounterMetricFamily(
                "keybot_reminders_sent", "Rotation reminders delivered (outbox rows sent).", sent or 0
            )

            contained = session.execute(
                select(Incident.opened_at, Incident.contained_at)
                .where(Incident.contained_at >= now - CONTAIN_WINDOW, Incident.drill.is_(False))
                .order_by(Incident.contained_at.desc())
                .limit(CONTAIN_LIMIT)
            ).all()
            yield _histogram(
                "keybot_time_to_contain_seconds",
                "From an incident's opening to its containment, over incidents contained in the last "
                "30 days (drills excluded).",
                [(_aware(c) - _aware(o)).total_seconds() for o, c in contained if c is not None],
                CONTAIN_BUCKETS,
            )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _histogram(name: str, doc: str, values: list[float], buckets: tuple[float, ...]) -> Metric:
    cumulative = [(str(b), float(sum(1 for v in values if v <= b))) for b in buckets]
    cumulative.append(("+Inf", float(len(values))))
    family = GaugeHistogramMetricFamily(name, doc)
    family.add_metric([], cumulative, gsum_value=float(sum(values)))
    return family


def exposition_registry(database: Database | None) -> CollectorRegistry:
    """The registry one `/metrics` endpoint renders: this process's instruments plus, given a database,
    the shared facts read from it."""
    registry = CollectorRegistry()
    registry.register(_Forward(REGISTRY))
    if database is not None:
        registry.register(DatabaseCollector(database))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
