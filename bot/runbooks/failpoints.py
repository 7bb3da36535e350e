"""Failpoints: `KEYBOT_FAILPOINTS=after:mint,effect:openai.delete_key` kills the process with SIGKILL there.

This is how the crash tests stop a real `keybot revoke` at exact step boundaries (the same technique as
etcd's and TiKV's failpoints). Unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "KEYBOT_FAILPOINTS"


def armed(point: str) -> bool:
    configured = os.environ.get(ENV)
    return configured is not None and point in {p.strip() for p in configured.split(",")}


def hit(point: str) -> None:
    if armed(point):
        os.kill(os.getpid(), signal.SIGKILL)
