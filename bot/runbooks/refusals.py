"""Why keybot will not start or change a run right now, in words for the person who asked."""

from __future__ import annotations


class RunRefused(Exception):
    """The request is not allowed right now; the message says why and what to do instead."""


class KeyBusy(RunRefused):
    """Another run holds the key's lock."""

    def __init__(self, key_name: str, run_id: str, holder: str) -> None:
        super().__init__(f"{key_name} is already being handled by run {run_id} (started by {holder})")
        self.key_name, self.run_id, self.holder = key_name, run_id, holder
