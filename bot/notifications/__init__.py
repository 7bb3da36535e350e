"""Outbox of messages to people (owner DMs, channel posts, manager summaries), delivered apart from runs.

A run only enqueues; delivery retries on its own schedule, so a Slack outage never blocks a revocation,
and the unique dedupe key means a re-run step never sends the same message twice.
"""
