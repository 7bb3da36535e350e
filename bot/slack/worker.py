"""Runs are executed off the request thread, after Slack got its ack, by a bounded pool.

After each pass the notification outbox is delivered, so owners hear about a run as soon as it pauses or
ends; a failed delivery stays queued and never blocks the run.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from bot.log import get_logger
from bot.notifications.service import deliver_pending
from bot.runbooks.engine import RunBusy
from bot.runbooks.models import RunStatus
from bot.runbooks.waits import wake_due
from bot.runtime import Runtime
from bot.slack.delivery import SlackSender
from bot.slack.oauth import ContextExecutor
from bot.slack.progress import ProgressPublisher

log = get_logger(__name__)


@dataclass
class RunWorker:
    runtime: Runtime
    publisher: ProgressPublisher
    sender: SlackSender
    max_workers: int = 4
    _pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self._pool = ContextExecutor(max_workers=self.max_workers, thread_name_prefix="keybot-run")

    def submit(self, run_id: str) -> Future[RunStatus | None]:
        return self._pool.submit(self._execute, run_id)

    def _execute(self, run_id: str) -> RunStatus | None:
        engine = self.runtime.engine(durable_retries=True)
        engine.on_change = self.publisher
        status: RunStatus | None = None
        try:
            status = engine.execute(run_id)
        except RunBusy:
            log.info("run already executing elsewhere", run_id=run_id)
        except Exception:
            log.exception("run execution failed", run_id=run_id)
        finally:
            self.publisher.flush(run_id)
            self.deliver()
        return status

    def deliver(self) -> None:
        try:
            deliver_pending(self.runtime.database, self.sender)
        except Exception:
            log.exception("notification delivery pass failed")

    def wake_waiting(self, every_seconds: float) -> threading.Event:
        """For a single process without `keybot clock` (`keybot run`): hand runs whose durable wait is over
        back to this pool every `every_seconds`. Set the returned event to stop."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every_seconds):
                try:
                    for run_id in wake_due(self.runtime.database):
                        self.submit(run_id)
                except Exception:
                    log.exception("waking waiting runs failed")

        threading.Thread(target=loop, name="keybot-waker", daemon=True).start()
        return stop

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
