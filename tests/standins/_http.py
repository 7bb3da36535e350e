"""The stand-ins' HTTP server is the sandbox's own (:mod:`bot.sandbox.loopback`): one implementation."""

from bot.sandbox.loopback import BackgroundServer, HttpRequest, Reply

__all__ = ["BackgroundServer", "HttpRequest", "Reply"]
