"""`keybot serve` hides its start-up heap from the garbage collector before taking requests: full
collections rescanning it were the ack latency's p99 (docs/reliability.md)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import waitress

from bot.slack import serve as serve_module


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_serve_freezes_the_start_up_heap_before_serving(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def fake_serve(app: Any, **options: Any) -> None:
        seen.append(gc.get_freeze_count())

    monkeypatch.setattr(waitress, "serve", fake_serve)
    before = gc.get_freeze_count()
    serve_module.serve(object(), "127.0.0.1", 0)  # type: ignore[arg-type]
    assert before == 0 and len(seen) == 1 and seen[0] > 1000


def test_garbage_made_before_the_freeze_is_collected_not_frozen(unfrozen: None) -> None:
    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    del a, b
    serve_module.freeze_startup_heap()
    assert alive() is None  # a cycle frozen instead of collected would live as long as the process
