"""TEST HOOK ONLY (never imported by keybot): a real `keybot clock` process whose alert jobs live on
accelerated time.

Started by tests/test_alerts_real_clock.py as `python tests/alerts_clock_hook.py`. Before running the real
CLI it changes three things in this process: the alerts jobs read a fake clock (`TEST_FAKE_START` + real
seconds since `TEST_FAKE_EPOCH` x `TEST_FAKE_SPEED`), and detection, escalation and outbox delivery run
every 0.1 s, so an escalation chain of minutes plays out in seconds; the test can also jump ahead.
Everything else is the shipped code.
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
FAST_JOBS = ("detect_anomalies", "alert_escalations", "deliver_notifications")


JUMPS = Path(os.environ["TEST_FAKE_JUMP_FILE"])


def fake_now() -> datetime:
    """The accelerated clock, plus any jump (seconds) the test wrote into TEST_FAKE_JUMP_FILE."""
    jump = float(JUMPS.read_text() or 0) if JUMPS.exists() else 0.0
    return START + timedelta(seconds=(time.time() - EPOCH) * SPEED + jump)


def main() -> None:
    import bot.alerts.jobs as alert_jobs
    from bot.scheduling import jobs as registry

    alert_jobs.utcnow = fake_now  # type: ignore[attr-defined]
    registry.registered()
    for job_id in FAST_JOBS:
        job = registry._JOBS[job_id]
        registry._JOBS[job_id] = registry.Job(
            job.id, lambda _settings: 0.1, job.run, job.misfire_grace_seconds
        )
    from bot.cli.main import main as keybot

    sys.argv = ["keybot", "clock"]
    keybot()


if __name__ == "__main__":
    main()
