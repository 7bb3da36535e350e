"""When a run's record is written: before every outside change, and before a read once it is a second old.

The engine records a step's start (and the previous step's end) without writing it. `StepContext.effect`
writes everything recorded before any outside *change* (and aborts stop there). Outside *reads* (finding
the key, usage, Vault versions) change nothing, so redoing them after a crash is harmless; before one,
these wrappers write the record only when it has waited `STALE_SECONDS`, which keeps progress displays
(they re-read the run after each write) at most about a second behind without a write per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from bot.providers.base import KeyProvider, SecretStore
from bot.runbooks.context import Toolkit


class FlushFirst:
    """A provider or secret store whose every method first calls `flush`."""

    def __init__(self, inner: object, flush: Callable[[], object]) -> None:
        self._inner, self._flush = inner, flush

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def flushed(*args: Any, **kwargs: Any) -> Any:
            self._flush()
            return attr(*args, **kwargs)

        return flushed


STALE_SECONDS = 1.0


def guarded(toolkit: Toolkit, flush: Callable[[], object]) -> Toolkit:
    providers = {name: cast(KeyProvider, FlushFirst(p, flush)) for name, p in toolkit.providers.items()}
    store = cast(SecretStore, FlushFirst(toolkit.store, flush)) if toolkit.store is not None else None
    return Toolkit(providers, store, toolkit.fingerprinter)
