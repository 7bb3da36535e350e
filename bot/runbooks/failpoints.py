"""Failpoints: `KEYBOT_FAILPOINTS=after:mint,effect:openai.delete_key` kills the process with SIGKILL there.

This is how the crash tests stop a real `keybot revoke` at exact step boundaries (the same technique as
etcd's and TiKV's failpoints). Unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "KEYBOT_FAILPOINTS"


def hit(point: str) -> None:
    configured = os.environ.get(ENV)
    if configured and point in {p.strip() for p in configured.split(",")}:
        os.kill(os.getpid(), signal.SIGKILL)
