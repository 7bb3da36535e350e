"""The shell adapter: ``keybot run`` without Slack credentials chats with the real Bolt app in a
terminal. :class:`LocalSlack` emulates Slack's Web API in-process; :class:`ShellChat` turns typed lines into
signed Slack requests and prints what the app sends as text."""

from bot.shell.adapter import MAX_LINE, ShellChat, commands_from_manifest
from bot.shell.emulator import Change, Listener, LocalSlack

__all__ = ["MAX_LINE", "Change", "Listener", "LocalSlack", "ShellChat", "commands_from_manifest"]
