"""TEST HOOK ONLY (never imported by keybot): a real `keybot clock` process on accelerated time.

Started by tests/test_reminders_two_clocks.py as `python tests/reminder_clock_hook.py`. It changes three
things in this process before running the real CLI: the reminder jobs read a shared fake clock
(`TEST_FAKE_START` + real seconds since `TEST_FAKE_EPOCH` × `TEST_FAKE_SPEED`), they run every 0.1 s,
and the leader lease lasts `TEST_LEASE_SECONDS`, so several days and a failover fit in a minute.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = datetime.fromisoformat(os.environ["TEST_FAKE_START"])
EPOCH = float(os.environ["TEST_FAKE_EPOCH"])
SPEED = float(os.environ["TEST_FAKE_SPEED"])


def fake_now() -> datetime:
    return START + timedelta(seconds=(time.time() - EPOCH) * SPEED)


def main() -> None:
    import bot.reminders.jobs as reminder_jobs
    from bot.scheduling import clock
    from bot.scheduling import jobs as registry

    reminder_jobs.utcnow = fake_now  # type: ignore[attr-defined]
    clock.LEASE = timedelta(seconds=float(os.environ["TEST_LEASE_SECONDS"]))
    for job_id in ("rotation_reminders", "rotation_escalations"):
        job = registry._JOBS[job_id]
        registry._JOBS[job_id] = registry.Job(
            job.id, lambda _settings: 0.1, job.run, job.misfire_grace_seconds
        )
    from bot.cli.main import main as keybot

    sys.argv = ["keybot", "clock"]
    keybot()


if __name__ == "__main__":
    main()
