"""The Slack surface: pure Block Kit renderings, typed action ids and Slack's limits in one place.

Nothing under ``bot.slack.blocks`` does I/O: handlers fetch domain objects, call a builder, send the
result.
"""
