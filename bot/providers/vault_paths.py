"""Where a replacement secret lives in KV v2: ``<mount>/<path>`` as the registry spells it, checked.

Split out of :mod:`bot.providers.vault` to keep each file short. Rejects what would make keybot read or
write somewhere unintended: traversal segments, another mount than the one it manages, or a raw API path
(``secret/data/...``) where the logical path was meant.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.providers.base import ProviderErrorKind
from bot.providers.vault_errors import fail

__all__ = ["Loc", "parse_path", "positive"]

_PERMANENT = ProviderErrorKind.PERMANENT


@dataclass(frozen=True)
class Loc:
    mount: str
    path: str

    def __str__(self) -> str:
        return f"{self.mount}/{self.path}"


def parse_path(path: str, mount: str | None) -> Loc:
    """`path` split into its KV mount and the path inside it; `mount` (None: any) confines the mount."""
    parts = path.strip().strip("/").split("/")
    if len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
        raise fail(_PERMANENT, f"invalid Vault path {path!r}: expected <mount>/<path>, e.g. secret/team/app")
    if mount is not None and parts[0] != mount:
        raise fail(_PERMANENT, f"Vault path {path!r} is outside the {mount}/ mount keybot manages")
    if len(parts) > 2 and parts[1] in ("data", "metadata"):
        raise fail(_PERMANENT, f"Vault path {path!r} looks like an API path: drop /{parts[1]}/")
    return Loc(parts[0], "/".join(parts[1:]))


def positive(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail(_PERMANENT, f"invalid version {version!r}: KV versions start at 1")
    return version
