"""What Slack adds to the domain's authorization policy: who is clicking, and whether they are in the
revokers user group. The decisions themselves are made by bot/access/policy.py, inside the service
functions; the checks here only let a handler refuse early (before opening a form) with the same words.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
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
        self._group_members: dict[str, tuple[float, set[str]]] = {}
        self._lock = Lock()

    def actor(self, user: str, groups: Iterable[str] = ()) -> Actor:
        """`groups`: other user groups whose membership matters here (a team's on-call group)."""
        group = self.policy.roster.revoker_group
        member_of = frozenset(g for g in groups if g and self._in_group(user, g))
        in_revokers = group is not None and bool(group) and self._in_group(user, group)
        return Actor(user, in_revoker_group=in_revokers, groups=member_of)

    def _in_group(self, user: str, group: str) -> bool:
        if self.api is None:
            return False
        with self._lock:
            fetched_at, members = self._group_members.get(group, (0.0, set()))
            if time.monotonic() - fetched_at > GROUP_CACHE_SECONDS:
                try:
                    members = set(self.api.usergroup_members(group))
                    self._group_members[group] = (time.monotonic(), members)
                except SlackError as error:
                    log.warning("cannot read a user group", group=group[:40], code=error.code)
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
