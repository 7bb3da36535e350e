"""Ids every log line carries while a request is handled or a run executes (structlog contextvars).

A request id comes from the caller's ``X-Request-Id`` when it looks like an id (so a load balancer's or
gateway's id follows the request through), else a new one; anything longer or stranger is replaced, so a
header can never inject text into the logs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

REQUEST_ID_HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def request_id(offered: str | None) -> str:
    """The caller's id when sane, else a fresh one."""
    if offered and _SANE.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


@contextmanager
def bound(**values: str) -> Iterator[None]:
    """Bind ids for the block's duration (threads and the block's callees see them; nothing leaks after)."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
