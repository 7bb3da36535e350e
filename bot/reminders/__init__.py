"""Rotation reminders: which keys are due, one message per team channel per local day, snoozes, escalation.

The domain computes and records; Slack (bot/slack/handlers/reminders.py) and the CLI (`keybot reminders`)
only render what it returns (bot/reminders/types.py) and turn clicks into its service calls.
"""
