"""A PagerDuty Events API v2 stand-in: ``POST /v2/enqueue`` as documented by PagerDuty.

Validates like the real endpoint (a 32-character ``routing_key``; ``event_action`` trigger, acknowledge or
resolve; a ``payload`` with ``summary`` (at most 1024 characters), ``source`` and ``severity`` for a
trigger; a ``dedup_key`` of at most 255 characters, required to acknowledge or resolve) and answers 202
``{"status": "success", "message": "Event processed", "dedup_key": ...}``, 400 ``invalid event`` with
``errors``, and injected 429 / 5xx faults. Incidents are tracked per dedup key, as PagerDuty does.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from ._http import BackgroundServer, HttpRequest, Reply

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
THROTTLED = "Requests for this service are arriving too quickly."


@dataclass
class PagerDutyStandin:
    events: list[dict[str, Any]] = field(default_factory=list)  # accepted events, in order
    incidents: dict[str, str] = field(default_factory=dict)  # dedup_key -> triggered|acknowledged|resolved
    requests: int = 0
    faults: list[int] = field(default_factory=list)  # statuses answered to the next requests
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: BackgroundServer | None = None

    def start(self) -> PagerDutyStandin:
        self._server = BackgroundServer(self.handle)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.origin

    def reset(self) -> None:
        with self._lock:
            self.events.clear()
            self.incidents.clear()
            self.faults.clear()
            self.requests = 0

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (429, 500, 502, ...), then normally again."""
        with self._lock:
            self.faults.extend(statuses)

    def handle(self, request: HttpRequest) -> Reply:
        with self._lock:
            self.requests += 1
            if request.method != "POST" or request.path != "/v2/enqueue":
                return Reply.json({"status": "not found", "message": "Not Found"}, status=404)
            if self.faults:
                status = self.faults.pop(0)
                if status == 429:
                    return Reply.json({"status": "throttle event", "message": THROTTLED}, status=429)
                return Reply(status, b"internal error", {"Content-Type": "text/plain"})
            try:
                event = json.loads(request.body)
            except (ValueError, UnicodeDecodeError):
                return _invalid("Event object is invalid", "Malformed JSON")
            errors = validate(event)
            if errors:
                return _invalid("Event object is invalid", *errors)
            dedup_key = event.get("dedup_key") or uuid.uuid4().hex
            action = event["event_action"]
            if action == "trigger":
                if self.incidents.get(dedup_key) != "acknowledged":
                    self.incidents[dedup_key] = "triggered"
            elif dedup_key in self.incidents and self.incidents[dedup_key] != "resolved":
                self.incidents[dedup_key] = "acknowledged" if action == "acknowledge" else "resolved"
            self.events.append({**event, "dedup_key": dedup_key})
            return Reply.json(
                {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status=202
            )


def validate(event: Any) -> list[str]:
    """The errors the real API would list for this body (empty when valid)."""
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    errors = []
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or len(routing_key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not 0 < len(dedup_key) <= 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append("'dedup_key' is required for acknowledge and resolve events")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or invalid")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                errors.append("'payload.summary' is missing or longer than 1024 characters")
            if not isinstance(payload.get("source"), str) or not payload.get("source"):
                errors.append("'payload.source' is missing")
            if payload.get("severity") not in SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                )
    return errors


def _invalid(message: str, *errors: str) -> Reply:
    return Reply.json({"status": "invalid event", "message": message, "errors": list(errors)}, status=400)
