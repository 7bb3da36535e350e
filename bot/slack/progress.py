"""The one live progress message per run: posted once under an incident header, then edited in place.

Updates are coalesced per run (at most one edit per `min_interval`), so a burst of step transitions
becomes one chat.update and stays far below Slack's rate limits; the final state is always sent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from bot.db.session import Database
from bot.incidents.models import Incident
from bot.log import get_logger
from bot.registry.models import Key
from bot.runbooks.models import Run
from bot.slack.api import SlackAPI, SlackError
from bot.slack.blocks.progress import incident_header, progress_message
from bot.slack.models import RunMessage
from bot.workspace import Workspace, bound

log = get_logger(__name__)


@dataclass
class ProgressPublisher:
    database: Database
    api: SlackAPI
    fallback_channel: str | None = None
    min_interval: float = 1.0
    _last_sent: dict[str, float] = field(default_factory=dict)
    _pending: dict[str, threading.Timer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sending: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, run_id: str) -> None:
        self.publish(run_id)

    def publish(self, run_id: str, *, force: bool = False) -> None:
        with self._lock:
            wait = self.min_interval - (time.monotonic() - self._last_sent.get(run_id, 0.0))
            if wait > 0 and not force:
                if run_id not in self._pending:
                    timer = threading.Timer(wait, self._deferred, args=(run_id,))
                    timer.daemon = True
                    self._pending[run_id] = timer
                    timer.start()
                return
            self._last_sent[run_id] = time.monotonic()
        self._send(run_id)

    def _deferred(self, run_id: str) -> None:
        with self._lock:
            self._pending.pop(run_id, None)
            self._last_sent[run_id] = time.monotonic()
        self._send(run_id)

    def flush(self, run_id: str) -> None:
        with self._lock:
            timer = self._pending.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        self.publish(run_id, force=True)

    def _send(self, run_id: str) -> None:
        """Serialised, so a deferred edit and a forced one can never both post the first message."""
        try:
            with self._sending:
                self._render_and_send(run_id)
        except SlackError as error:
            log.warning("progress message not updated", run_id=run_id, code=error.code, why=error.explanation)
        except Exception:
            log.exception("progress message failed", run_id=run_id)

    def _render_and_send(self, run_id: str) -> None:
        with self.database.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                return
            with bound(Workspace.of(run.slack_enterprise_id, run.slack_team_id)):  # even from a timer
                self._post(session, run)

    def _post(self, session: Session, run: Run) -> None:
        """Post or edit `run`'s progress message, in the workspace bound by the caller."""
        run_id = run.id
        key = session.get(Key, run.key_id)
        assert key is not None
        where = session.get(RunMessage, run_id)
        if where is None:
            channel = (key.team.slack_channel if key.team else None) or self.fallback_channel
            if channel is None:
                return
            where = RunMessage(run_id=run_id, channel=channel)
            incident = session.get(Incident, run.incident_id) if run.incident_id else None
            if incident is not None:
                text, blocks = incident_header(incident, key)
                where.header_ts = self.api.post_message(channel, text, blocks).ts
            session.add(where)
        text, blocks = progress_message(run, key)
        if where.progress_ts is None:
            posted = self.api.post_message(where.channel, text, blocks, thread_ts=where.header_ts)
            where.channel, where.progress_ts = posted.channel, posted.ts
        else:
            self.api.update_message(where.channel, where.progress_ts, text, blocks)

    def publish_header(self, run_id: str) -> None:
        """Re-render the incident header above the run's progress (its status, Resolve/False alarm)."""
        try:
            with self._sending, self.database.session() as session:
                run = session.get(Run, run_id)
                where = session.get(RunMessage, run_id)
                if run is None or run.incident_id is None or where is None or where.header_ts is None:
                    return
                incident = session.get(Incident, run.incident_id)
                key = session.get(Key, run.key_id)
                if incident is None or key is None:
                    return
                text, blocks = incident_header(incident, key)
                with bound(Workspace.of(run.slack_enterprise_id, run.slack_team_id)):
                    self.api.update_message(where.channel, where.header_ts, text, blocks)
        except SlackError as error:
            log.warning("incident header not updated", run_id=run_id, code=error.code, why=error.explanation)
        except Exception:
            log.exception("incident header failed", run_id=run_id)
