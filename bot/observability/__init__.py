"""Metrics, readiness and log context for operators (see docs/operations.md)."""
