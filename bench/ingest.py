"""Benchmark: ingest (filled in by issue 12)."""

from __future__ import annotations


def run() -> None:
    print("ingest: not measured yet")
