"""Where the `/revoke-key` ack time goes: `keybot serve`'s app in this process under an open-loop load,
with yappi (wall clock, every thread) and a timer on Bolt's listener pool.

Not in the default benchmark list: `python -m bench.capacity_profile` (needs `pip install yappi`, which is
not a keybot dependency). Environment: BENCH_PROFILE_RATE (250), BENCH_PROFILE_SECONDS (5).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.capacity import FINGERPRINT_KEY, SIGNING_SECRET, USER, open_loop, seed, slack_standin
from bench.common import percentile
from bench.replicas import REPO

RATE = int(os.environ.get("BENCH_PROFILE_RATE", "250"))
SECONDS = float(os.environ.get("BENCH_PROFILE_SECONDS", "5"))
YAPPI = os.environ.get("BENCH_PROFILE_YAPPI", "1") == "1"
"""BENCH_PROFILE_YAPPI=0 times the listener pool only (yappi slows every call several-fold)."""


def main() -> None:
    import yappi
    from waitress.server import create_server

    from bot.config import Settings
    from bot.log import configure_logging
    from bot.runtime import Runtime
    from bot.slack.app import slack_app_from_runtime
    from bot.slack.serve import MAX_BODY, KeybotWSGI

    configure_logging("auto", "WARNING", sys.stderr)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    with slack_standin() as (slack_url, token, _), tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'keybot.db'}"
        seed(url, Path(tmp) / "state")
        settings = Settings(
            _env_file=None, database_url=url, slack_bot_token=token, slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack_url, fingerprint_key=FINGERPRINT_KEY, state_dir=Path(tmp) / "state",
            runbooks_dir=REPO / "runbooks", revokers=USER,
        )  # fmt: skip
        runtime = Runtime(settings)
        app, ctx = slack_app_from_runtime(runtime)
        queued: list[float] = []
        executor = app.listener_runner.listener_executor
        submit = executor.submit

        def timed_submit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            enqueued = time.perf_counter()

            def wrapped() -> Any:
                queued.append((time.perf_counter() - enqueued) * 1000)
                return fn(*args, **kwargs)

            return submit(wrapped)

        executor.submit = timed_submit  # type: ignore[method-assign]
        server = create_server(
            KeybotWSGI(app, runtime.database), host="127.0.0.1", port=0, threads=16,
            max_request_body_size=MAX_BODY,
        )  # fmt: skip
        port = int(server.effective_port)  # type: ignore[union-attr]
        threading.Thread(target=server.run, daemon=True).start()
        asyncio.run(open_loop(port, 20, 1.0, f"{slack_url}/hooks/unused"))
        time.sleep(1.0)
        queued.clear()
        if YAPPI:
            yappi.set_clock_type(os.environ.get("BENCH_PROFILE_CLOCK", "wall"))
            yappi.start()
        step = asyncio.run(open_loop(port, RATE, SECONDS, f"{slack_url}/hooks/unused"))
        yappi.stop()
        print(f"# {RATE} req/s for {SECONDS:.0f} s: ack p50 {percentile(step.latencies, 50):.0f} ms, "
              f"p99 {percentile(step.latencies, 99):.0f} ms, errors {dict(step.errors)}")  # fmt: skip
        print(f"# wait in Bolt's listener pool before ack() runs: p50 {percentile(queued, 50):.1f} ms, "
              f"p99 {percentile(queued, 99):.1f} ms, max workers {executor._max_workers}")  # type: ignore[attr-defined]  # fmt: skip
        stats = yappi.get_func_stats()
        stats.sort("ttot", "desc")
        wanted = ("thread_runner", "listener", "views_open", "open_view", "api.py", "signature", "dedupe",
                  "commands.py", "context.py", "wsgi", "app.py", "task.py", "sleep", "session")  # fmt: skip
        shown = 0
        for stat in stats:
            if any(w in stat.full_name for w in wanted) and shown < 40:
                print(
                    f"{stat.ttot:9.3f}s tot {stat.tsub:8.3f}s own {stat.ncall:8d}x  {stat.full_name[-110:]}"
                )
                shown += 1
        time.sleep(3.0)  # the forms still being filled in need the stand-in
        server.close()
        ctx.worker.shutdown()
        runtime.database.dispose()


if __name__ == "__main__":
    main()
