"""Benchmark: detector (filled in by issue 12)."""

from __future__ import annotations


def run() -> None:
    print("detector: not measured yet")
