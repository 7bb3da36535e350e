"""The authorization policy: every human decision on a key, run or incident is checked here.

Service functions call `check` themselves, inside the transaction that applies the decision, so Slack, the
shell and the CLI cannot forget it. Surfaces only say *who* is asking (an `Actor`, with the group
membership Slack knows about); the `Roster` says who is admin or revoker. Every refusal names who may do it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.runbooks.refusals import RunRefused

SAFETY_ACTIONS = frozenset({"revoke_old", "verify_revoked", "cleanup"})
"""Steps whose skipping or hand-marking removes a guarantee the run exists to give."""


class Decision(enum.StrEnum):
    START = "start"
    APPROVE = "approve"
    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"
    MARK_DONE = "mark_done"
    ROTATE = "rotate"
    RESOLVE = "resolve"
    FALSE_ALARM = "false_alarm"
    RESTORE = "restore"
    CONFIRM_REDEPLOY = "confirm_redeploy"  # a consumer's contact says their service reads the new key
    STOP_WAITING = "stop_waiting"  # after the deadline: revoke now, or wait longer
    SNOOZE = "snooze"  # hide a key from rotation reminders for a while
    MARK_ROTATED = "mark_rotated"  # a rotation done outside keybot
    SEND_REMINDERS = "send_reminders"  # post a team's rotation reminder now (admins)
    ACK_ALERT = "ack_alert"  # an anomaly alert: someone is looking
    ALERT_EXPECTED = "alert_expected"  # an anomaly alert: "that was me", a false positive
    RESOLVE_ALERT = "resolve_alert"  # an anomaly alert: over
    REGENERATE_POSTMORTEM = "regenerate_postmortem"  # redraw an incident's postmortem draft
    ADD_NOTE = "add_note"  # a note on an incident's timeline (what the postmortem draft is redrawn from)


ALERT_DECISIONS = frozenset({Decision.ACK_ALERT, Decision.ALERT_EXPECTED, Decision.RESOLVE_ALERT})


VERBS = {
    Decision.START: "revoke",
    Decision.APPROVE: "approve a step of a run on",
    Decision.RETRY: "retry a step of a run on",
    Decision.SKIP: "skip a step of a run on",
    Decision.ABORT: "abort a run on",
    Decision.MARK_DONE: "mark a step done on a run on",
    Decision.ROTATE: "rotate",
    Decision.RESOLVE: "resolve an incident on",
    Decision.FALSE_ALARM: "call a false alarm on",
    Decision.RESTORE: "restore",
    Decision.CONFIRM_REDEPLOY: "confirm a redeploy for",
    Decision.STOP_WAITING: "end or extend the wait for consumers of",
    Decision.SNOOZE: "snooze the rotation reminders of",
    Decision.MARK_ROTATED: "mark as rotated",
    Decision.SEND_REMINDERS: "send now",
    Decision.ACK_ALERT: "acknowledge the alert on",
    Decision.ALERT_EXPECTED: "mark as expected the alert on",
    Decision.RESOLVE_ALERT: "resolve the alert on",
    Decision.REGENERATE_POSTMORTEM: "regenerate the postmortem draft of the incident on",
    Decision.ADD_NOTE: "add a note to the incident on",
}


class Role(enum.StrEnum):
    ADMIN = "admin"
    REVOKER = "revoker"
    OWNER = "owner"
    BACKUP = "backup"
    STARTER = "starter"
    CONTACT = "contact"  # a consumer's contact
    ONCALL = "oncall"  # in the key's team's on-call user group (anomaly alerts)
    APPROVER = "approver"  # approved a step of a run on the incident


class NotAllowed(RunRefused):
    """The person may not make this decision; the message names who may."""


@dataclass(frozen=True)
class Actor:
    """Who is asking. `id` is a Slack user id or `cli:<os user>@<host>`.

    `in_revoker_group` is what Slack said about the revokers user group; `break_glass` is an admin's
    recorded override of the two-person rule (CLI only, with a reason); `groups` are the Slack user group
    ids Slack said the person is in (the on-call group of the key's team counts for alerts).
    """

    id: str
    in_revoker_group: bool = False
    break_glass: str | None = None
    groups: frozenset[str] = frozenset()

    @property
    def is_cli(self) -> bool:
        return self.id.startswith("cli:")


@dataclass(frozen=True)
class Roster:
    """Who is admin and who is a revoker, from settings (Slack user ids or CLI identities)."""

    admins: frozenset[str] = frozenset()
    revokers: frozenset[str] = frozenset()
    revoker_group: str | None = None

    @property
    def revokers_configured(self) -> bool:
        return bool(self.revokers or self.revoker_group)


@dataclass(frozen=True)
class Subject:
    """What the decision is about: the key (owners, environment), and the run and step when there is one."""

    key_name: str
    environment: str
    owners: tuple[str, ...] = ()
    backups: tuple[str, ...] = ()
    starter: str | None = None
    step_action: str | None = None
    step_title: str | None = None
    contacts: tuple[str, ...] = ()
    oncall_group: str | None = None
    approvers: tuple[str, ...] = ()

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def safety_step(self) -> bool:
        return self.step_action in SAFETY_ACTIONS


@dataclass(frozen=True)
class Policy:
    roster: Roster = field(default_factory=Roster)

    def roles(self, actor: Actor, subject: Subject) -> set[Role]:
        roles: set[Role] = set()
        if actor.id in self.roster.admins:
            roles.add(Role.ADMIN)
        if actor.id in self.roster.revokers or (self.roster.revoker_group and actor.in_revoker_group):
            roles.add(Role.REVOKER)
        if actor.id in subject.owners:
            roles.add(Role.OWNER)
        if actor.id in subject.backups:
            roles.add(Role.BACKUP)
        if subject.starter is not None and actor.id == subject.starter:
            roles.add(Role.STARTER)
        if actor.id in subject.contacts:
            roles.add(Role.CONTACT)
        if subject.oncall_group is not None and subject.oncall_group in actor.groups:
            roles.add(Role.ONCALL)
        if actor.id in subject.approvers:
            roles.add(Role.APPROVER)
        return roles

    def allowed_roles(self, decision: Decision, subject: Subject) -> frozenset[Role]:
        """The roles that may make `decision` on `subject` (before the two-person rule)."""
        staff = frozenset({Role.ADMIN, Role.REVOKER, Role.OWNER, Role.BACKUP})
        if decision is Decision.SEND_REMINDERS:
            return frozenset({Role.ADMIN})
        if decision in ALERT_DECISIONS:
            return staff | {Role.ONCALL}
        if decision in (Decision.SKIP, Decision.MARK_DONE) and subject.safety_step:
            return frozenset({Role.ADMIN, Role.OWNER})
        if decision in (Decision.REGENERATE_POSTMORTEM, Decision.ADD_NOTE):
            return staff | {Role.STARTER, Role.APPROVER}
        if decision is Decision.CONFIRM_REDEPLOY:
            return staff | {Role.STARTER, Role.CONTACT}
        if decision in (
            Decision.RETRY,
            Decision.SKIP,
            Decision.MARK_DONE,
            Decision.ABORT,
            Decision.STOP_WAITING,
        ):
            return staff | {Role.STARTER}
        return staff

    def check(self, decision: Decision, actor: Actor, subject: Subject) -> set[Role]:
        """The actor's roles when `decision` is allowed; raises `NotAllowed` naming who may, otherwise."""
        roles = self.roles(actor, subject)
        if decision is Decision.START and not self.roster.revokers_configured:
            return roles  # nobody configured: anyone may report a leak; production still needs approval
        if decision is Decision.APPROVE and Role.STARTER in roles:
            if actor.break_glass and Role.ADMIN in roles:
                return roles
            raise NotAllowed(
                "Two-person rule: you started this run, so someone else must approve it: "
                + self.who(decision, subject, exclude=actor.id)
                + "."
            )
        if roles & self.allowed_roles(decision, subject):
            return roles
        raise NotAllowed(
            f"You may not {VERBS[decision]} {subject.key_name}"
            + (f" ({subject.step_title}, a safety step)" if self._safety(decision, subject) else "")
            + f". Who may: {self.who(decision, subject, exclude=None)}. Nothing was changed."
        )

    @staticmethod
    def _safety(decision: Decision, subject: Subject) -> bool:
        return decision in (Decision.SKIP, Decision.MARK_DONE) and subject.safety_step

    def who(self, decision: Decision, subject: Subject, exclude: str | None) -> str:
        """Names of the people who may make the decision, for a refusal."""
        allowed = self.allowed_roles(decision, subject)
        parts: list[str] = []

        def people(label: str, ids: Iterable[str]) -> None:
            names = [_name(i) for i in ids if i != exclude]
            if names:
                parts.append(f"{label} {', '.join(names[:5])}")

        if Role.OWNER in allowed:
            people("the key's owners", subject.owners)
        if Role.BACKUP in allowed:
            people("its backups", subject.backups)
        if Role.ADMIN in allowed:
            people("keybot admins", sorted(self.roster.admins))
        if Role.REVOKER in allowed:
            people("the revokers list", sorted(self.roster.revokers))
            if self.roster.revoker_group:
                parts.append(f"the <!subteam^{self.roster.revoker_group}> group")
        if Role.ONCALL in allowed and subject.oncall_group:
            parts.append(f"the on-call group <!subteam^{subject.oncall_group}>")
        if Role.CONTACT in allowed:
            people("the consumers' contacts", subject.contacts)
        if Role.APPROVER in allowed:
            people("the approvers", subject.approvers)
        if Role.STARTER in allowed and subject.starter and subject.starter != exclude:
            parts.append(f"the run's starter {_name(subject.starter)}")
        return "; ".join(parts) or "nobody is configured (set KEYBOT_ADMINS, or record owners for the key)"


def _name(identity: str) -> str:
    return identity if identity.startswith("cli:") else f"<@{identity}>"
