"""Slack listeners: each translates a click or command into service calls and answers within 3 s."""
