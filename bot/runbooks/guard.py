"""Nothing leaves the process before the record that led to it is durable.

The engine records a step's start (and the previous step's end) without writing it; the write happens at
the step's first call to a provider or to Vault, read or change, through these wrappers. A step that makes
no outside call at all (queueing notifications) costs no write of its own: it goes out with the next one.
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


def guarded(toolkit: Toolkit, flush: Callable[[], object]) -> Toolkit:
    providers = {name: cast(KeyProvider, FlushFirst(p, flush)) for name, p in toolkit.providers.items()}
    store = cast(SecretStore, FlushFirst(toolkit.store, flush)) if toolkit.store is not None else None
    return Toolkit(providers, store, toolkit.fingerprinter)
