"""When a run's record is written: before every outside change, and before a read once it is a second old.

The engine records a step's start (and the previous step's end) without writing it. `StepContext.effect`
writes everything recorded before any outside *change* (and aborts stop there). Outside *reads* (finding
the key, usage, Vault versions) change nothing, so redoing them after a crash is harmless; before one,
these wrappers write the record only when it has waited `STALE_SECONDS`, which keeps progress displays
(they re-read the run after each write) at most about a second behind without a write per step.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, cast

from bot.providers.base import KeyProvider, SecretStore
from bot.runbooks.context import Toolkit

Beat = Callable[[], AbstractContextManager[object]]
"""Entered around every outside call: keeps the run's lease alive while the call takes long."""


class FlushFirst:
    """A provider or secret store whose every method first calls `flush`, and runs under `beat`."""

    def __init__(self, inner: object, flush: Callable[[], object], beat: Beat | None = None) -> None:
        self._inner, self._flush, self._beat = inner, flush, beat

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def flushed(*args: Any, **kwargs: Any) -> Any:
            self._flush()
            if self._beat is None:
                return attr(*args, **kwargs)
            with self._beat():
                return attr(*args, **kwargs)

        return flushed


STALE_SECONDS = 1.0


def guarded(toolkit: Toolkit, flush: Callable[[], object], beat: Beat | None = None) -> Toolkit:
    providers = {name: cast(KeyProvider, FlushFirst(p, flush, beat)) for name, p in toolkit.providers.items()}
    store = cast(SecretStore, FlushFirst(toolkit.store, flush, beat)) if toolkit.store is not None else None
    return Toolkit(providers, store, toolkit.fingerprinter)
