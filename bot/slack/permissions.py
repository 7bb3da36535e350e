"""What Slack adds to the domain's authorization policy: who is clicking, and whether they are in the
revokers user group. The decisions themselves are made by bot/access/policy.py, inside the service
functions; the checks here only let a handler refuse early (before opening a form) with the same words.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from threading import Lock

from bot.access.policy import Actor, Decision, NotAllowed, Policy, Subject
from bot.log import get_logger
from bot.registry.models import Key, OwnerRole
from bot.slack.api import SlackAPI, SlackError

log = get_logger(__name__)
GROUP_CACHE_SECONDS = 300


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    why: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def key_subject(key: Key) -> Subject:
    return Subject(
        key.name,
        key.environment,
        tuple(key.owner_ids(OwnerRole.OWNER)),
        tuple(key.owner_ids(OwnerRole.BACKUP)),
    )


class Permissions:
    """Turns a Slack user id into an `Actor` (with the revokers group membership, cached for 5 minutes)."""

    def __init__(self, policy: Policy, api: SlackAPI | None) -> None:
        self.policy = policy
        self.api = api
        self._group_members: tuple[float, set[str]] = (0.0, set())
        self._lock = Lock()

    def actor(self, user: str) -> Actor:
        return Actor(user, in_revoker_group=self._in_group(user))

    def _in_group(self, user: str) -> bool:
        group = self.policy.roster.revoker_group
        if not group or self.api is None:
            return False
        with self._lock:
            fetched_at, members = self._group_members
            if time.monotonic() - fetched_at > GROUP_CACHE_SECONDS:
                try:
                    members = set(self.api.usergroup_members(group))
                    self._group_members = (time.monotonic(), members)
                except SlackError as error:
                    log.warning("cannot read the revokers user group", code=error.code)
        return user in members

    def may(self, decision: Decision, user: str, key: Key) -> Verdict:
        try:
            self.policy.check(decision, self.actor(user), key_subject(key))
        except NotAllowed as refused:
            return Verdict(False, str(refused))
        return Verdict(True)

    def can_revoke(self, user: str, key: Key) -> Verdict:
        return self.may(Decision.START, user, key)

    def can_rotate(self, user: str, key: Key) -> Verdict:
        return self.may(Decision.ROTATE, user, key)
