"""Anomaly alerts: the episode lifecycle, paging and the escalation chain."""
