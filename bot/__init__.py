"""keybot: revoke, replace, audit and notify when an API key leaks."""

__version__ = "0.1.0"
