"""Keyed fingerprints: HMAC-SHA256 of the secret, so a pasted secret can be matched without storing it.

The HMAC key comes from KEYBOT_FINGERPRINT_KEY or is generated once into the state directory (mode 0600).
A check value derived from the key is stored in the database, so a changed key is caught loudly instead of
silently making every fingerprint lookup miss.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from sqlalchemy.orm import Session

from bot.registry.models import Setting

KEY_FILE_NAME = "fingerprint.key"
CHECK_SETTING = "fingerprint_key_check"


class FingerprintKeyMismatch(Exception):
    """The configured fingerprint key is not the one the registry's fingerprints were made with."""


class Fingerprinter:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("fingerprint key must be at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Fingerprinter(<key hidden>)"

    def fingerprint(self, secret: str) -> str:
        return hmac.digest(self._key, secret.strip().encode(), "sha256").hex()

    @property
    def check_value(self) -> str:
        return hmac.new(self._key, b"keybot fingerprint key check", hashlib.sha256).hexdigest()[:16]

    def verify_against(self, session: Session) -> None:
        """Record the key's check value on first use; refuse a different key afterwards."""
        stored = session.get(Setting, CHECK_SETTING)
        if stored is None:
            session.add(Setting(name=CHECK_SETTING, value=self.check_value))
            session.flush()
        elif not hmac.compare_digest(stored.value, self.check_value):
            raise FingerprintKeyMismatch(
                "KEYBOT_FINGERPRINT_KEY differs from the key this registry's fingerprints were made with; "
                "restore the original key (or re-import the registry with the secrets)"
                " before looking up secrets"
            )


def load_or_create_key(configured: str | None, state_dir: Path) -> bytes:
    """Use the configured key, else the one in the state directory, else generate and save one."""
    if configured:
        return configured.encode()
    path = state_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text().strip().encode()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    generated = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another keybot process generated it first
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as handle:
        handle.write(generated + "\n")
    return generated.encode()
