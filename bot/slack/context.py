"""Everything a Slack handler needs, and the shared flows (open the revoke modal, reply privately)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.db.base import utcnow
from bot.detection.service import revoke_target
from bot.log import get_logger
from bot.providers.base import KeyRef, ProviderError
from bot.registry.models import Key
from bot.registry.service import lookup
from bot.runbooks.models import Run
from bot.runbooks.overview import overview
from bot.runtime import Runtime
from bot.slack import ids
from bot.slack.api import OpenedView, SlackAPI, SlackError
from bot.slack.blocks.home import app_home
from bot.slack.blocks.revoke_modal import (
    DRILL_TITLE,
    error_modal,
    loading_modal,
    pick_key_modal,
    revoke_modal,
    search_modal,
)
from bot.slack.oauth import ContextExecutor
from bot.slack.permissions import Permissions
from bot.slack.progress import ProgressPublisher
from bot.slack.reminders import home_due, rotation_views
from bot.slack.traffic import key_traffic, open_alert_pages
from bot.slack.worker import RunWorker

log = get_logger(__name__)


def _id(value: object) -> str:
    """``value["id"]`` when ``value`` is an object with a string id (Slack's user/channel shapes)."""
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else ""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


DRILL_FLAG = "--drill"
TRAFFIC_DEADLINE_SECONDS = 2.0
# The key card must not wait on a slow provider: traffic is fetched with a deadline, off the handler thread.
_TRAFFIC_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="keybot-traffic")
FOLLOW_UP_THREADS = 32
"""Follow-up work after an ack (filling the form in, answers through response_url) runs here, not in
Bolt's listener pool, so a burst of commands never delays an ack behind modal building. Each task spends
most of its time waiting on Slack (views.update), so the pool is sized for waiting: with 4 threads and
Slack's ~100 ms per call, forms took 5-10 s at 100 commands/s. More threads than needed hurt the acks
instead: under overload they all compete for the GIL (docs/reliability.md)."""
_FOLLOW_UP = ContextExecutor(max_workers=FOLLOW_UP_THREADS, thread_name_prefix="keybot-follow-up")
TRIGGERED_THREADS = 32
"""Opening a modal must happen within 3 s of the trigger id, so it has its own pool: it never queues behind
form filling, and the command's listener (which acks) does not wait on Slack."""
_TRIGGERED = ContextExecutor(max_workers=TRIGGERED_THREADS, thread_name_prefix="keybot-trigger")
_BUILDING = threading.BoundedSemaphore(2)
"""Forms are built at most two at a time. Building one is CPU (the lookup, the rendering, ~1 ms), and each
thread building at once competes with the threads answering acks for the GIL: under overload a form waits
a little longer behind "Loading…" instead of acks running late (at 200 commands/s on one process, ack p99
went from ~450-1000 ms to ~100 ms; docs/reliability.md)."""
MAX_COMMAND_TEXT = 2000


@dataclass
class SlackContext:
    runtime: Runtime
    api: SlackAPI
    permissions: Permissions
    publisher: ProgressPublisher
    worker: RunWorker
    _pending: set[Future[None]] = field(default_factory=set, init=False, repr=False)

    def later(self, work: Callable[..., object], *args: Any) -> None:
        """Run `work` after the handler returned its ack; failures are logged, never raised into Bolt."""
        self._submit(_FOLLOW_UP, work, *args)

    def while_triggered(self, work: Callable[..., object], *args: Any) -> None:
        """Like `later`, for work that must use a trigger id before it expires (opening a modal)."""
        self._submit(_TRIGGERED, work, *args)

    def _submit(self, pool: ContextExecutor, work: Callable[..., object], *args: Any) -> None:
        def guarded() -> None:
            try:
                work(*args)
            except Exception:
                log.exception("follow-up work failed", work=getattr(work, "__name__", "?"))

        future = pool.submit(guarded)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait for this context's follow-up work (the pool is shared): a stopping server finishes what it
        acknowledged instead of leaving it to run against whatever comes next."""
        wait(list(self._pending), timeout=timeout)

    def tell(self, body: dict[str, Any], text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """A private answer to whoever clicked or typed, somewhere they will see it: the response_url when
        Slack gave one, else an ephemeral message in the channel, else (App Home clicks carry neither) the
        Home tab re-published with the answer on top, else a DM."""
        url = body.get("response_url")
        user = _id(body.get("user")) or _text(body.get("user_id"))
        channel = _id(body.get("channel")) or _text(body.get("channel_id"))
        view = body.get("view")
        on_home = isinstance(view, dict) and view.get("type") == "home"
        try:
            if isinstance(url, str) and url:
                self.api.respond(url, text, blocks)
            elif channel and user:
                self.api.post_ephemeral(channel, user, text, blocks)
            elif user and on_home:
                self.publish_home(user, notice=text)
            elif user:
                self.api.post_message(self.api.open_dm(user), text, blocks)
            else:
                log.warning("nobody to answer: the request named no user")
        except SlackError as error:
            log.warning("could not answer the user", code=error.code, why=error.explanation)

    def refuse(self, body: dict[str, Any], why: str, *, action: str) -> None:
        """Tell the person why keybot did not act, and log it: a refusal must never vanish."""
        log.info("request refused", action=action, user=_id(body.get("user")) or body.get("user_id"), why=why)
        self.tell(body, why)

    def publish_home(self, user: str, *, notice: str | None = None) -> None:
        """(Re-)publish a person's App Home tab, with ``notice`` on top when answering a click there."""
        now = utcnow()
        with self.runtime.database.session() as session:
            seen = overview(session, user, now)
            key_ids = [k.id for k in seen.keys]
            rotation = rotation_views(self.runtime.database, key_ids, now)
            due = home_due(seen.keys, seen.due, rotation)
            view = app_home(
                user,
                seen.keys,
                due,
                seen.runs,
                seen.incidents,
                now,
                notice=notice,
                rotation=rotation,
                traffic=key_traffic(self.runtime.database, key_ids, now),
                alerts=open_alert_pages(self.runtime.database, key_ids),
            )
        self.api.publish_home(user, view)

    def open_leak_revoke_flow(
        self, body: dict[str, Any], user: str, incident_id: int, fingerprint: str
    ) -> None:
        """Revoke… on an unregistered leaked secret: "Loading…" now, then the revoke form for the key the
        provider found (registered as unowned), or a modal saying exactly what to do by hand."""
        try:
            opened = self.api.open_view(str(body.get("trigger_id") or ""), loading_modal())
        except SlackError as error:
            self.later(self.tell, body, f"keybot could not open the form: {error.explanation}")
            return
        self.later(self._fill_leak_revoke_view, body, user, incident_id, fingerprint, opened)

    def _fill_leak_revoke_view(
        self, body: dict[str, Any], user: str, incident_id: int, fingerprint: str, opened: OpenedView
    ) -> None:
        def build() -> dict[str, Any]:
            rt = self.runtime
            target = revoke_target(
                rt.database,
                rt.toolkit.providers,
                incident_id,
                fingerprint,
                policy=rt.policy,
                actor=self.permissions.actor(user),
            )
            if target.key_id is not None:
                return self.revoke_view_for(user, f"#{target.key_id}")
            log.info("leaked secret not revoked through keybot", incident=incident_id, user=user)
            return error_modal("Not allowed" if target.refused else "Revoke it by hand", target.message)

        self._fill(body, opened, build)

    def traffic(self, key: Key) -> str | None:
        """The last hour of traffic for the key card, when the provider can say; never blocks the flow."""
        provider = self.runtime.toolkit.providers.get(key.provider)
        if provider is None or not key.provider_key_id:
            return None
        now = utcnow()
        ref = KeyRef(key.provider_key_id, key.project, key.redacted, key.name)
        pending = _TRAFFIC_POOL.submit(provider.usage, ref, now - timedelta(hours=1), now)
        try:
            buckets = pending.result(timeout=TRAFFIC_DEADLINE_SECONDS)
        except (ProviderError, TimeoutError, Exception):
            return "last hour of traffic: unavailable"
        requests = sum(b.requests for b in buckets)
        tokens = sum(b.input_tokens + b.output_tokens for b in buckets)
        return f"last hour: {requests} requests, {tokens} tokens"

    def revoke_view_for(self, user: str, text: str) -> dict[str, Any]:
        """The modal that answers `/revoke-key <text>`: the form, a choice, a search, or a refusal."""
        drill = DRILL_FLAG in text.split()
        query = " ".join(w for w in text.split() if w != DRILL_FLAG)[:MAX_COMMAND_TEXT]
        extra = {"drill": "1"} if drill else {}
        if not query:
            return search_modal(
                [],
                "Which key leaked? Its name, id, redacted value, or the secret itself.",
                ids.ActionRef(kind="view", id="search", extra=extra),
            )
        rt = self.runtime
        with rt.database.session() as session:
            result = lookup(session, query, rt.fingerprinter)
            if result.unique is not None:
                key = result.unique
                allowed = self.permissions.can_revoke(user, key)
                if not allowed:
                    return error_modal("Not allowed", allowed.why)
                ref = ids.ActionRef(kind="key", id=str(key.id), extra=extra)
                return revoke_modal(key, utcnow(), self.traffic(key), ref)
            if result.ambiguous:
                return pick_key_modal(
                    result.matches[:100], ids.ActionRef(kind="view", id="pick", extra=extra)
                )
            message = (
                "That secret is not in the registry. It is still leaked: revoke it at the provider, and "
                "register the key so keybot can help next time."
                if result.query_was_secret
                else "No key matches what you typed."
            )
            return search_modal(
                result.suggestions, message, ids.ActionRef(kind="view", id="search", extra=extra)
            )

    def open_revoke_flow(self, body: dict[str, Any], user: str, text: str) -> None:
        """Open "Loading…" at once (trigger ids die after 3 s; see `while_triggered`), then fill it in."""
        trigger_id = body.get("trigger_id", "")
        try:
            opened = self.api.open_view(
                trigger_id, loading_modal(DRILL_TITLE) if DRILL_FLAG in text.split() else loading_modal()
            )
        except SlackError as error:
            self.later(self.tell, body, f"keybot could not open the form: {error.explanation}")
            return
        self.later(self._fill_revoke_view, body, user, text, opened)

    def _fill_revoke_view(self, body: dict[str, Any], user: str, text: str, opened: OpenedView) -> None:
        self._fill(body, opened, lambda: self.revoke_view_for(user, text))

    def _fill(self, body: dict[str, Any], opened: OpenedView, build: Callable[[], dict[str, Any]]) -> None:
        """Replace the "Loading…" modal with what `build` makes; a failure becomes a modal saying so."""
        try:
            with _BUILDING:
                view = build()
        except Exception:
            log.exception("revoke form failed")
            view = error_modal("Something went wrong", "keybot hit an internal error; nothing was changed.")
        try:
            self.api.update_view(opened.id, view, hash=opened.hash)
        except SlackError as error:
            self.tell(body, f"keybot could not show the form: {error.explanation}")

    def refresh_incident(self, incident_id: int) -> None:
        """After an incident changed state: its header and the latest run's progress message."""
        with self.runtime.database.session() as session:
            run_id = session.scalars(
                select(Run.id).where(Run.incident_id == incident_id).order_by(Run.created_at.desc()).limit(1)
            ).first()
        if run_id is not None:
            self.publisher.publish_header(run_id)
            self.publisher.publish(run_id, force=True)

    def start_in_background(self, run_id: str) -> None:
        self.publisher.publish(run_id, force=True)
        self.worker.submit(run_id)
