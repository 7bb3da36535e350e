"""Replacement secrets in HashiCorp Vault / OpenBao KV v2, through hvac.

A replacement is a new KV v2 version written with check-and-set, so a concurrent writer is detected
rather than overwritten. Per-version bookkeeping (state, run id, key id) lives in the secret's
``custom_metadata`` (:mod:`bot.providers.vault_metadata`), only a cache of re-derivable facts. Failures
become ProviderErrors in :mod:`bot.providers.vault_errors`, whose messages never carry a secret value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import hvac
from hvac import exceptions as hx
from hvac import utils as hvac_utils
from pydantic import SecretStr

from bot.providers.base import ProviderError, ProviderErrorKind, StoredVersion
from bot.providers.vault_errors import (
    POLICY_FILE,
    capabilities,
    fail,
    guarded_call,
    provider_error,
    server_errors,
)
from bot.providers.vault_metadata import (
    CURRENT,
    DELETED,
    DESTROYED,
    LEAKED,
    MAX_CUSTOM_KEYS,
    PENDING,
    UNRECORDED,
    Labels,
    Meta,
    finish,
    labelled,
    parse_meta,
    promoted,
)
from bot.providers.vault_paths import Loc, parse_path, positive
from bot.providers.vault_session import pin_environment

__all__ = ["MAX_CUSTOM_KEYS", "POLICY_FILE", "VaultStore"]

_METADATA_ATTEMPTS = 5
_T = TypeVar("_T")
_PERMANENT = ProviderErrorKind.PERMANENT
_TRANSIENT = ProviderErrorKind.TRANSIENT
_NOT_FOUND = ProviderErrorKind.NOT_FOUND


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
        pin_environment(client)
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
                raise fail(
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
        return [] if meta is None else [meta.stored(str(loc), n) for n in meta.known]

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
        raise fail(
            _PERMANENT,
            f"another writer created versions of {loc} while keybot wrote (check-and-set failed twice); "
            "find out who else writes this secret before re-running the step",
        )

    def read(self, path: str, version: int) -> SecretStr:
        loc = self._loc(path)
        value = self._read_data(loc, positive(version), "read version").get("api_key")
        if not isinstance(value, str) or not value:
            raise fail(_PERMANENT, f"version {version} of {loc} has no api_key field")
        return SecretStr(value)

    def promote(self, path: str, version: int) -> None:
        """`version` becomes current; the old current becomes previous (a leaked one stays leaked)."""
        loc = self._loc(path)
        meta = self._existing(loc, positive(version))
        if version not in meta.known or meta.state(version) in (DESTROYED, DELETED, LEAKED):
            why = meta.state(version) if version in meta.known else "no longer kept"
            raise fail(_PERMANENT, f"cannot promote version {version} of {loc}: it is {why}")
        self._update_custom(loc, lambda m: promoted(m, version))

    def destroy(self, path: str, version: int) -> None:
        """Permanent. Refuses the current version: consumers still read it; promote another one first."""
        self._remove(path, version, "destroy", DESTROYED)

    def soft_delete(self, path: str, version: int) -> None:
        """KV v2 delete: reversible with undelete. Refuses the current version, like destroy."""
        self._remove(path, version, "delete", DELETED)

    def mark_leaked(self, path: str, version: int) -> None:
        """Remember which version the cleanup step must destroy once revocation is verified."""
        loc = self._loc(path)
        meta = self._existing(loc, positive(version))
        if meta.state(version) not in (DESTROYED, LEAKED):
            self._set_state(loc, version, LEAKED)

    def revoke_leases(self, prefix: str) -> None:
        """Revoke every lease (dynamic secret or token) issued under `prefix`; needs sudo."""
        prefix = prefix.strip().strip("/")
        if not prefix:
            raise fail(_PERMANENT, "refusing to revoke leases under an empty prefix (that is every lease)")
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
    def _loc(self, path: str) -> Loc:
        return parse_path(path, self._mount)

    def _login(self) -> None:
        relogin, client = self._relogin, self._client
        assert relogin is not None
        self._call(
            "AppRole login", "auth login", "valid role_id/secret_id", lambda: relogin(client), echo=False
        )

    def _kv(self, op: str, loc: Loc, kind: str, method: str, **kwargs: Any) -> Any:
        """One ``client.secrets.kv.v2`` call on `loc`."""
        fn = getattr(self._client.secrets.kv.v2, method)
        needs = capabilities(loc.mount, kind)
        return self._call(op, loc, needs, lambda: fn(path=loc.path, mount_point=loc.mount, **kwargs))

    def _call(self, op: str, where: Loc | str, needs: str, fn: Callable[[], _T], *, echo: bool = True) -> _T:
        """Run one hvac call, renewing an AppRole token once on 401/403, and map failures to ProviderError."""

        def translate(exc: Exception) -> ProviderError:
            return provider_error(exc, addr=self._client.url, op=op, where=str(where), needs=needs, echo=echo)

        renew = self._login if self._relogin is not None and op != "AppRole login" else None
        return guarded_call(fn, translate, renew)

    # ---- metadata and data -------------------------------------------------------------------
    def _meta(self, loc: Loc) -> Meta | None:
        try:
            raw = self._kv("read metadata", loc, "metadata", "read_secret_metadata")
        except ProviderError as exc:
            if exc.kind is _NOT_FOUND:
                return None
            raise
        return parse_meta(cast(dict[str, Any], raw["data"]))

    def _existing(self, loc: Loc, version: int) -> Meta:
        meta = self._meta(loc)
        if meta is None or version > meta.latest:
            raise fail(_NOT_FOUND, f"no version {version} of {loc}", 404)
        return meta

    def _find(self, loc: Loc, meta: Meta, run_id: str) -> tuple[StoredVersion | None, dict[int, Labels]]:
        """This run's version, plus the labels read from the data of versions never recorded."""
        for n in reversed(meta.known):
            if meta.recorded(n, "run") == run_id:
                return meta.stored(str(loc), n), {}
        labels: dict[int, Labels] = {}
        for n in reversed(meta.known):
            if meta.state(n) == UNRECORDED and meta.recorded(n, "state") is None:
                values = self._read_data(loc, n, "read version labels", missing_ok=True)
                run, key_id = (values.get(k) for k in ("keybot_run", "key_id"))
                labels[n] = (str(run) if run else None, str(key_id) if key_id else None)
                if run == run_id:
                    return meta.stored(str(loc), n, labels[n]), labels
        return None, labels

    def _read_data(self, loc: Loc, version: int, op: str, *, missing_ok: bool = False) -> dict[str, Any]:
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
            raise fail(_NOT_FOUND, f"version {version} of {loc} has no data: {why}", 404) from None
        values = cast(dict[str, Any], raw["data"]).get("data")
        return cast(dict[str, Any], values) if isinstance(values, dict) else {}

    def _write(self, loc: Loc, secret: SecretStr, *, key_id: str, run_id: str, cas: int) -> int | None:
        """The new version number, or None when check-and-set lost against another writer."""
        minted_at = datetime.now(UTC).isoformat(timespec="seconds")
        data = {
            "api_key": secret.get_secret_value(),
            "key_id": key_id,
            "keybot_run": run_id,
            "minted_at": minted_at,
        }
        kv, needs = self._client.secrets.kv.v2, capabilities(loc.mount, "data")

        def put() -> int | None:
            try:
                resp = kv.create_or_update_secret(path=loc.path, secret=data, cas=cas, mount_point=loc.mount)
            except hx.InvalidRequest as exc:
                if "check-and-set parameter did not match" in server_errors(exc):
                    return None
                raise
            return int(cast(dict[str, Any], resp)["data"]["version"])

        return self._call("write new version", loc, needs, put, echo=False)

    def _remove(self, path: str, version: int, kind: str, state: str) -> None:
        loc = self._loc(path)
        meta = self._existing(loc, positive(version))
        if meta.state(version) == CURRENT:
            raise fail(_PERMANENT, f"refusing to {kind} version {version} of {loc}: it is current")
        if version not in meta.known or (version in meta.destroyed and state == DELETED):
            return
        if version not in meta.destroyed:
            self._kv(f"{kind} version", loc, kind, f"{kind}_secret_versions", versions=[version])
        self._set_state(loc, version, state)

    def _record(self, loc: Loc, labels: dict[int, Labels], owner: str | None) -> None:
        self._update_custom(loc, lambda m: labelled(m, labels, owner))

    def _set_state(self, loc: Loc, version: int, state: str) -> None:
        self._update_custom(loc, lambda m: {**m.custom, f"v{version}_state": state})

    def _update_custom(self, loc: Loc, change: Callable[[Meta], dict[str, str]]) -> None:
        """Read-modify-write (a POST replaces the whole map), guarded by OpenBao's ``metadata_cas``; HashiCorp
        Vault has no metadata CAS, so there the last writer wins. Not hvac's update_metadata: it always
        sends delete_version_after=0s, silently resetting that setting."""
        url = hvac_utils.format_url("/v1/{mount}/metadata/{path}", mount=loc.mount, path=loc.path)
        needs = capabilities(loc.mount, "metadata")
        for _ in range(_METADATA_ATTEMPTS):
            meta = self._meta(loc)
            if meta is None:
                raise fail(_NOT_FOUND, f"no secret at {loc}", 404)
            custom = finish(change(meta), meta)
            if custom == meta.custom:
                return
            body: dict[str, Any] = {"custom_metadata": custom}
            if meta.cas_version is not None:
                body["metadata_cas"] = meta.cas_version

            def post(body: dict[str, Any] = body) -> bool:
                try:
                    self._client.adapter.post(url=url, json=body)
                except hx.InvalidRequest as exc:
                    if "metadata check-and-set" in server_errors(exc):
                        return False
                    raise
                return True

            if self._call("update custom metadata", loc, needs, post):
                return
        raise fail(_TRANSIENT, f"custom metadata of {loc} kept changing under concurrent writers")
