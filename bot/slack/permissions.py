"""Who may revoke and approve. Every refusal says why and what to do instead."""

from __future__ import annotations

import time
from dataclasses import dataclass
from threading import Lock

from bot.config import Settings
from bot.log import get_logger
from bot.registry.models import Key, OwnerRole
from bot.slack.api import SlackAPI, SlackError

log = get_logger(__name__)
GROUP_CACHE_SECONDS = 300


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str = ""

    def __bool__(self) -> bool:
        return self.allowed


class Permissions:
    """Admins, the revokers list or user group, and owners/backups for their own keys may revoke.

    With no revokers list and no group configured, anyone in the workspace may revoke: revoking a leaked
    key is the safe action, and production keys still need a second person's approval.
    """

    def __init__(self, settings: Settings, api: SlackAPI | None) -> None:
        self.admins = set(settings.user_list("admins"))
        self.revokers = set(settings.user_list("revokers"))
        self.group = settings.revoker_group
        self.api = api
        self._group_members: tuple[float, set[str]] = (0.0, set())
        self._lock = Lock()

    @property
    def open_to_all(self) -> bool:
        return not self.revokers and not self.group

    def _in_group(self, user: str) -> bool:
        if not self.group or self.api is None:
            return False
        with self._lock:
            fetched_at, members = self._group_members
            if time.monotonic() - fetched_at > GROUP_CACHE_SECONDS:
                try:
                    members = set(self.api.usergroup_members(self.group))
                    self._group_members = (time.monotonic(), members)
                except SlackError as error:
                    log.warning("cannot read the revokers user group", code=error.code)
        return user in members

    def _revoker(self, user: str, key: Key) -> bool:
        owners = set(key.owner_ids(OwnerRole.OWNER)) | set(key.owner_ids(OwnerRole.BACKUP))
        return user in self.admins or user in owners or user in self.revokers or self._in_group(user)

    def can_revoke(self, user: str, key: Key) -> Decision:
        if self.open_to_all or self._revoker(user, key):
            return Decision(True)
        group = f" or the <!subteam^{self.group}> group" if self.group else ""
        return Decision(
            False,
            f"Only the key's owners, keybot admins and the revokers list{group} may revoke {key.name}. "
            f"Ask an owner ({', '.join(f'<@{o}>' for o in key.owner_ids()) or 'none recorded'}) or the "
            "security on-call; the key stays exactly as it is.",
        )

    def can_approve(self, user: str, key: Key, initiator: str) -> Decision:
        if user == initiator:
            return Decision(
                False, "Two-person rule: you started this run, so a second on-call must approve it."
            )
        if self.open_to_all or self._revoker(user, key):
            return Decision(True)
        return Decision(False, "Only owners, admins and revokers may approve; ask the security on-call.")
