"""Replacement secrets in HashiCorp Vault / OpenBao KV v2, through hvac.

A replacement is a new KV v2 version written with check-and-set, so a concurrent writer is detected
rather than overwritten. Per-version bookkeeping (state, run id, key id) lives in the secret's
``custom_metadata``, which is only a cache of re-derivable facts: each version's data carries
``keybot_run``/``key_id`` and KV's own version metadata says what is destroyed or deleted. Error
messages are built here, never copied from a request, so they cannot carry a secret value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import hvac
from hvac import exceptions as hx
from hvac import utils as hvac_utils
from pydantic import SecretStr

from bot.providers.base import ProviderError, ProviderErrorKind, StoredVersion
from bot.secrets import redact

__all__ = ["MAX_CUSTOM_KEYS", "POLICY_FILE", "VaultStore"]

POLICY_FILE = "runbooks/vault-policy.hcl"
MAX_CUSTOM_KEYS = 64  # Vault and OpenBao reject a custom_metadata map with more entries
PENDING, CURRENT, PREVIOUS, LEAKED = "pending", "current", "previous", "leaked"
DESTROYED, DELETED, EXTERNAL, UNRECORDED = "destroyed", "deleted", "external", "unrecorded"
_DROPPABLE = frozenset({DESTROYED, DELETED, EXTERNAL, PREVIOUS})
_VERSION_KEY = re.compile(r"^v(\d+)_")
_METADATA_ATTEMPTS = 5
_T = TypeVar("_T")
_Labels = tuple[str | None, str | None]  # (keybot_run, key_id) as found in a version's data
_PERMANENT = ProviderErrorKind.PERMANENT
_TRANSIENT = ProviderErrorKind.TRANSIENT
_NOT_FOUND = ProviderErrorKind.NOT_FOUND
_CAPS = {"data": '"create", "update", "read"', "metadata": '"read", "update"', "destroy": '"update"'}
_ERRORS: tuple[tuple[type[Exception], ProviderErrorKind, int, str], ...] = (
    (hx.VaultDown, _TRANSIENT, 503, "Vault is sealed or unavailable (HTTP 503)"),
    (hx.RateLimitExceeded, _TRANSIENT, 429, "Vault is rate-limiting keybot (HTTP 429)"),
    (hx.InternalServerError, _TRANSIENT, 500, "Vault internal error (HTTP 500)"),
    (hx.BadGateway, _TRANSIENT, 502, "bad gateway in front of Vault (HTTP 502)"),
    (hx.InvalidPath, _PERMANENT, 404, "no secrets engine is mounted there (HTTP 404)"),
    (hx.InvalidRequest, _PERMANENT, 400, "Vault rejected the request (HTTP 400)"),
    (hx.VaultNotInitialized, _PERMANENT, 501, "Vault is not initialised (HTTP 501)"),
)


def _fail(kind: ProviderErrorKind, message: str, status: int | None = None) -> ProviderError:
    return ProviderError(kind, message, status=status)


@dataclass(frozen=True)
class _Loc:
    mount: str
    path: str

    def __str__(self) -> str:
        return f"{self.mount}/{self.path}"


@dataclass(frozen=True)
class _Meta:
    """One read of ``<mount>/metadata/<path>``."""

    latest: int
    cas_version: int | None  # OpenBao's metadata check-and-set counter; None on HashiCorp Vault
    custom: dict[str, str]
    known: tuple[int, ...]
    destroyed: frozenset[int]
    deleted: frozenset[int]

    def recorded(self, n: int, field: str) -> str | None:
        return self.custom.get(f"v{n}_{field}")

    def state(self, n: int) -> str:
        """KV's own destroyed/deleted flags win over the (possibly stale) recorded state."""
        if n in self.destroyed or n in self.deleted:
            return DESTROYED if n in self.destroyed else DELETED
        rec = self.recorded(n, "state")
        return UNRECORDED if rec is None or rec in (DESTROYED, DELETED) else rec

    def current(self) -> int | None:
        return _int(self.custom.get("current_version"))


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _is_past(stamp: object) -> bool:
    if not isinstance(stamp, str) or not stamp:
        return False
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= datetime.now(UTC)
    except ValueError:
        return True


def _parse_meta(data: dict[str, Any]) -> _Meta:
    versions = cast(dict[str, dict[str, Any]], data.get("versions") or {})
    known = tuple(sorted(int(n) for n in versions))
    return _Meta(
        latest=int(data.get("current_version") or 0),
        cas_version=_int(data["current_metadata_version"]) if "current_metadata_version" in data else None,
        custom={str(k): str(v) for k, v in (data.get("custom_metadata") or {}).items()},
        known=known,
        destroyed=frozenset(n for n in known if versions[str(n)].get("destroyed")),
        deleted=frozenset(n for n in known if _is_past(versions[str(n)].get("deletion_time"))),
    )


def _server_errors(exc: hx.VaultError) -> str:
    return "; ".join(str(e) for e in (exc.errors or []) if e).strip()


def _no_route(exc: hx.VaultError) -> bool:
    return "no handler for route" in _server_errors(exc)


def _positive(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(_PERMANENT, f"invalid version {version!r}: KV versions start at 1")
    return version


class VaultStore:
    """The runbook engine's SecretStore on KV v2; paths are ``<mount>/<path>``: ``secret/payments/openai``."""

    def __init__(
        self,
        client: hvac.Client,
        *,
        mount: str | None = "secret",
        relogin: Callable[[hvac.Client], object] | None = None,
    ) -> None:
        """`mount` confines the store to one KV mount (None: any); `relogin` renews an AppRole token."""
        self._client = client
        self._mount = mount
        self._relogin = relogin

    @classmethod
    def from_settings(
        cls,
        addr: str,
        token: str | SecretStr | None = None,
        role_id: str | None = None,
        secret_id: str | SecretStr | None = None,
        mount: str | None = "secret",
        *,
        approle_mount: str = "approle",
        timeout: float = 10.0,
    ) -> VaultStore:
        """VAULT_TOKEN, or an AppRole login (preferred when both role and secret id are given)."""
        token, secret_id = (
            v.get_secret_value() if isinstance(v, SecretStr) else v for v in (token, secret_id)
        )
        client = hvac.Client(url=addr, token=token, timeout=timeout)
        if not (role_id and secret_id):
            if not token:
                raise _fail(
                    _PERMANENT, "no Vault credentials: set VAULT_TOKEN, or VAULT_ROLE_ID + VAULT_SECRET_ID"
                )
            return cls(client, mount=mount)

        def login(c: hvac.Client) -> object:
            return c.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point=approle_mount)

        store = cls(client, mount=mount, relogin=login)
        store._login()
        return store

    # ---- SecretStore -------------------------------------------------------------------------
    def versions(self, path: str) -> list[StoredVersion]:
        loc = self._loc(path)
        meta = self._meta(loc)
        return [] if meta is None else [self._stored(loc, meta, n) for n in meta.known]

    def find_run_version(self, path: str, run_id: str) -> StoredVersion | None:
        """From custom metadata; a version the metadata never recorded (crash between the data write and
        the metadata write) is recognised by the ``keybot_run`` label in its data."""
        loc = self._loc(path)
        meta = self._meta(loc)
        return None if meta is None else self._find(loc, meta, run_id)[0]

    def write_pending(
        self, path: str, secret: SecretStr, *, key_id: str, run_id: str, owner: str | None = None
    ) -> StoredVersion:
        """One new version per run: an earlier attempt's version is returned instead of writing again."""
        loc = self._loc(path)
        for _ in range(2):
            meta = self._meta(loc)
            found, labels = self._find(loc, meta, run_id) if meta else (None, {})
            if found is not None:
                self._record(loc, labels, owner)
                return found
            written = self._write(loc, secret, key_id=key_id, run_id=run_id, cas=meta.latest if meta else 0)
            if written is not None:
                self._record(loc, {**labels, written: (run_id, key_id)}, owner)
                return StoredVersion(str(loc), written, key_id, run_id, PENDING)
        raise _fail(
            _PERMANENT,
            f"another writer created versions of {loc} while keybot wrote (check-and-set failed twice); "
            "find out who else writes this secret before re-running the step",
        )

    def read(self, path: str, version: int) -> SecretStr:
        loc = self._loc(path)
        value = self._read_data(loc, _positive(version), "read version").get("api_key")
        if not isinstance(value, str) or not value:
            raise _fail(_PERMANENT, f"version {version} of {loc} has no api_key field")
        return SecretStr(value)

    def promote(self, path: str, version: int) -> None:
        """`version` becomes current; the old current becomes previous (a leaked one stays leaked)."""
        loc = self._loc(path)
        meta = self._existing(loc, _positive(version))
        if version not in meta.known or meta.state(version) in (DESTROYED, DELETED, LEAKED):
            why = meta.state(version) if version in meta.known else "no longer kept"
            raise _fail(_PERMANENT, f"cannot promote version {version} of {loc}: it is {why}")

        def change(m: _Meta) -> dict[str, str]:
            custom = dict(m.custom)
            for n in m.known:
                if n != version and custom.get(f"v{n}_state") == CURRENT:
                    custom[f"v{n}_state"] = PREVIOUS
            return {**custom, f"v{version}_state": CURRENT, "current_version": str(version)}

        self._update_custom(loc, change)

    def destroy(self, path: str, version: int) -> None:
        """Permanent. Refuses the current version: consumers still read it; promote another one first."""
        self._remove(path, version, "destroy", DESTROYED)

    def soft_delete(self, path: str, version: int) -> None:
        """KV v2 delete: reversible with undelete. Refuses the current version, like destroy."""
        self._remove(path, version, "delete", DELETED)

    def mark_leaked(self, path: str, version: int) -> None:
        """Remember which version the cleanup step must destroy once revocation is verified."""
        loc = self._loc(path)
        meta = self._existing(loc, _positive(version))
        if meta.state(version) not in (DESTROYED, LEAKED):
            self._set_state(loc, version, LEAKED)

    def revoke_leases(self, prefix: str) -> None:
        """Revoke every lease (dynamic secret or token) issued under `prefix`; needs sudo."""
        prefix = prefix.strip().strip("/")
        if not prefix:
            raise _fail(_PERMANENT, "refusing to revoke leases under an empty prefix (that is every lease)")
        where = f"sys/leases/revoke-prefix/{prefix}"
        sys = self._client.sys
        self._call("revoke leases", where, f'"update", "sudo" on {where}', lambda: sys.revoke_prefix(prefix))

    def health(self) -> bool:
        """Reachable, initialised, unsealed, and our token valid (an AppRole token is renewed if needed)."""
        sys, token = self._client.sys, self._client.auth.token
        try:
            status = self._call(
                "health check", "sys/health", "nothing", lambda: sys.read_health_status(method="GET")
            )
            if not isinstance(status, dict) or status.get("sealed") or not status.get("initialized"):
                return False
            self._call("token check", "auth/token/lookup-self", '"read" on it', token.lookup_self)
        except ProviderError:
            return False
        return True

    # ---- calls and errors --------------------------------------------------------------------
    def _loc(self, path: str) -> _Loc:
        parts = path.strip().strip("/").split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            raise _fail(
                _PERMANENT, f"invalid Vault path {path!r}: expected <mount>/<path>, e.g. secret/team/app"
            )
        if self._mount is not None and parts[0] != self._mount:
            raise _fail(_PERMANENT, f"Vault path {path!r} is outside the {self._mount}/ mount keybot manages")
        if len(parts) > 2 and parts[1] in ("data", "metadata"):
            raise _fail(_PERMANENT, f"Vault path {path!r} looks like an API path: drop /{parts[1]}/")
        return _Loc(parts[0], "/".join(parts[1:]))

    def _login(self) -> None:
        relogin, client = self._relogin, self._client
        assert relogin is not None
        self._call(
            "AppRole login", "auth login", "valid role_id/secret_id", lambda: relogin(client), echo=False
        )

    def _kv(self, op: str, loc: _Loc, kind: str, method: str, **kwargs: Any) -> Any:
        """One ``client.secrets.kv.v2`` call on `loc`."""
        fn = getattr(self._client.secrets.kv.v2, method)
        needs = f"{_CAPS.get(kind, _CAPS['destroy'])} on {loc.mount}/{kind}/*"
        return self._call(op, loc, needs, lambda: fn(path=loc.path, mount_point=loc.mount, **kwargs))

    def _call(self, op: str, where: _Loc | str, needs: str, fn: Callable[[], _T], *, echo: bool = True) -> _T:
        """Run one hvac call, renewing an AppRole token once on 401/403, and map failures to ProviderError."""
        try:
            return fn()
        except (hx.Forbidden, hx.Unauthorized) as exc:
            if self._relogin is None or op == "AppRole login":
                raise self._error(exc, op, where, needs, echo) from None
        except (hx.VaultError, OSError) as exc:
            raise self._error(exc, op, where, needs, echo) from None
        self._login()
        try:
            return fn()
        except (hx.VaultError, OSError) as exc:
            raise self._error(exc, op, where, needs, echo) from None

    def _error(self, exc: Exception, op: str, where: _Loc | str, needs: str, echo: bool) -> ProviderError:
        """Our own words; server text only (redacted) for calls that sent no secret."""
        if isinstance(exc, OSError):
            return _fail(_TRANSIENT, f"Vault at {self._client.url} unreachable or timed out during {op}")
        assert isinstance(exc, hx.VaultError)
        at = f"{op} on {where}"
        if isinstance(exc, hx.Forbidden | hx.Unauthorized):
            status = 403 if isinstance(exc, hx.Forbidden) else 401
            return _fail(
                _PERMANENT,
                f"Vault denied {at} (HTTP {status}): the token is missing, expired or revoked, or its policy "
                f"lacks {needs}. Give keybot's token (VAULT_TOKEN, or the AppRole's token_policies) the "
                f"policy in {POLICY_FILE}",
                status,
            )
        if isinstance(exc, hx.InvalidPath) and not _no_route(exc):
            return _fail(_NOT_FOUND, f"not found: {at}", 404)
        reason = redact(_server_errors(exc))[:300] if echo else ""
        detail = f": {reason}" if reason else ""
        for cls, kind, status, text in _ERRORS:
            if isinstance(exc, cls):
                return _fail(kind, f"{text} during {at}{detail}", status)
        return _fail(_TRANSIENT, f"Vault failed {at} ({type(exc).__name__}){detail}")

    # ---- metadata and data -------------------------------------------------------------------
    def _meta(self, loc: _Loc) -> _Meta | None:
        try:
            raw = self._kv("read metadata", loc, "metadata", "read_secret_metadata")
        except ProviderError as exc:
            if exc.kind is _NOT_FOUND:
                return None
            raise
        return _parse_meta(cast(dict[str, Any], raw["data"]))

    def _existing(self, loc: _Loc, version: int) -> _Meta:
        meta = self._meta(loc)
        if meta is None or version > meta.latest:
            raise _fail(_NOT_FOUND, f"no version {version} of {loc}", 404)
        return meta

    def _stored(self, loc: _Loc, meta: _Meta, n: int, labels: _Labels | None = None) -> StoredVersion:
        run, key_id = labels or (meta.recorded(n, "run"), meta.recorded(n, "key_id"))
        state = meta.state(n)
        if labels is not None and state == UNRECORDED:
            state = PENDING if run else EXTERNAL
        return StoredVersion(str(loc), n, key_id, run, state)

    def _find(self, loc: _Loc, meta: _Meta, run_id: str) -> tuple[StoredVersion | None, dict[int, _Labels]]:
        """This run's version, plus the labels read from the data of versions never recorded."""
        for n in reversed(meta.known):
            if meta.recorded(n, "run") == run_id:
                return self._stored(loc, meta, n), {}
        labels: dict[int, _Labels] = {}
        for n in reversed(meta.known):
            if meta.state(n) == UNRECORDED and meta.recorded(n, "state") is None:
                values = self._read_data(loc, n, "read version labels", missing_ok=True)
                run, key_id = (values.get(k) for k in ("keybot_run", "key_id"))
                labels[n] = (str(run) if run else None, str(key_id) if key_id else None)
                if run == run_id:
                    return self._stored(loc, meta, n, labels[n]), labels
        return None, labels

    def _read_data(self, loc: _Loc, version: int, op: str, *, missing_ok: bool = False) -> dict[str, Any]:
        try:
            raw = self._kv(
                op, loc, "data", "read_secret_version", version=version, raise_on_deleted_version=True
            )
        except ProviderError as exc:
            if exc.kind is not _NOT_FOUND:
                raise
            if missing_ok:
                return {}
            meta = self._existing(loc, version)
            why = meta.state(version) if version in meta.known else "no longer kept"
            raise _fail(_NOT_FOUND, f"version {version} of {loc} has no data: {why}", 404) from None
        values = cast(dict[str, Any], raw["data"]).get("data")
        return cast(dict[str, Any], values) if isinstance(values, dict) else {}

    def _write(self, loc: _Loc, secret: SecretStr, *, key_id: str, run_id: str, cas: int) -> int | None:
        """The new version number, or None when check-and-set lost against another writer."""
        minted_at = datetime.now(UTC).isoformat(timespec="seconds")
        data = {
            "api_key": secret.get_secret_value(),
            "key_id": key_id,
            "keybot_run": run_id,
            "minted_at": minted_at,
        }
        kv, needs = self._client.secrets.kv.v2, f"{_CAPS['data']} on {loc.mount}/data/*"

        def put() -> int | None:
            try:
                resp = kv.create_or_update_secret(path=loc.path, secret=data, cas=cas, mount_point=loc.mount)
            except hx.InvalidRequest as exc:
                if "check-and-set parameter did not match" in _server_errors(exc):
                    return None
                raise
            return int(cast(dict[str, Any], resp)["data"]["version"])

        return self._call("write new version", loc, needs, put, echo=False)

    def _remove(self, path: str, version: int, kind: str, state: str) -> None:
        loc = self._loc(path)
        meta = self._existing(loc, _positive(version))
        if meta.state(version) == CURRENT:
            raise _fail(_PERMANENT, f"refusing to {kind} version {version} of {loc}: it is current")
        if version not in meta.known or (version in meta.destroyed and state == DELETED):
            return
        if version not in meta.destroyed:
            self._kv(f"{kind} version", loc, kind, f"{kind}_secret_versions", versions=[version])
        self._set_state(loc, version, state)

    def _record(self, loc: _Loc, labels: dict[int, _Labels], owner: str | None) -> None:
        def change(m: _Meta) -> dict[str, str]:
            custom = dict(m.custom)
            for n, (run, key_id) in labels.items():
                if m.recorded(n, "state") is None and n in m.known:
                    custom[f"v{n}_state"] = PENDING if run else EXTERNAL
                    custom.update({f"v{n}_run": run} if run else {})
                    custom.update({f"v{n}_key_id": key_id} if run and key_id else {})
            return {**custom, "owner": owner} if owner else custom

        self._update_custom(loc, change)

    def _set_state(self, loc: _Loc, version: int, state: str) -> None:
        self._update_custom(loc, lambda m: {**m.custom, f"v{version}_state": state})

    def _update_custom(self, loc: _Loc, change: Callable[[_Meta], dict[str, str]]) -> None:
        """Read-modify-write (a POST replaces the whole map), guarded by OpenBao's ``metadata_cas``; HashiCorp
        Vault has no metadata CAS, so there the last writer wins. Not hvac's update_metadata: it always
        sends delete_version_after=0s, silently resetting that setting."""
        url = hvac_utils.format_url("/v1/{mount}/metadata/{path}", mount=loc.mount, path=loc.path)
        needs = f"{_CAPS['metadata']} on {loc.mount}/metadata/*"
        for _ in range(_METADATA_ATTEMPTS):
            meta = self._meta(loc)
            if meta is None:
                raise _fail(_NOT_FOUND, f"no secret at {loc}", 404)
            custom = _finish(change(meta), meta)
            if custom == meta.custom:
                return
            body: dict[str, Any] = {"custom_metadata": custom}
            if meta.cas_version is not None:
                body["metadata_cas"] = meta.cas_version

            def post(body: dict[str, Any] = body) -> bool:
                try:
                    self._client.adapter.post(url=url, json=body)
                except hx.InvalidRequest as exc:
                    if "metadata check-and-set" in _server_errors(exc):
                        return False
                    raise
                return True

            if self._call("update custom metadata", loc, needs, post):
                return
        raise _fail(_TRANSIENT, f"custom metadata of {loc} kept changing under concurrent writers")


def _finish(custom: dict[str, str], meta: _Meta) -> dict[str, str]:
    """Drop entries of versions KV no longer keeps, recompute the summary keys, stay under the key limit."""
    kept = {k: v for k, v in custom.items() if not (m := _VERSION_KEY.match(k)) or int(m[1]) in meta.known}
    view = dataclasses.replace(meta, custom=kept)
    current = view.current()
    states = {view.state(n) for n in meta.known}
    summary = {
        "managed_by": "keybot",
        "state": next((s for s in (LEAKED, PENDING) if s in states), CURRENT if current else ""),
        "key_id": (view.recorded(current, "key_id") or "") if current else "",
    }
    kept = {k: v for k, v in kept.items() if k not in summary} | {k: v for k, v in summary.items() if v}
    for n in meta.known:
        if len(kept) > MAX_CUSTOM_KEYS and n != current and view.state(n) in _DROPPABLE:
            kept = {k: v for k, v in kept.items() if not k.startswith(f"v{n}_")}
    if len(kept) > MAX_CUSTOM_KEYS:
        raise _fail(_PERMANENT, f"more versions than custom_metadata can track ({MAX_CUSTOM_KEYS} keys)")
    return kept
