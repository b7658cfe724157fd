"""API keys: stored hashed; a key's id (first 12 hex of its hash) goes into the audit log."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KeyRing", "Principal"]


@dataclass(frozen=True)
class Principal:
    key_id: str | None
    admin: bool


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """No keys configured: open service (everyone is admin). Otherwise a valid key is required."""

    def __init__(self, keys: str = "", keys_file: Path | None = None) -> None:
        entries = [k.strip() for k in keys.split(",") if k.strip()]
        if keys_file is not None and keys_file.is_file():
            entries += [ln.strip() for ln in keys_file.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        self._hashes: dict[str, bool] = {}
        for e in entries:
            admin = e.startswith("admin:")
            self._hashes[_hash(e.removeprefix("admin:"))] = admin
        # plain keys are not kept in memory beyond this point

    @property
    def enabled(self) -> bool:
        return bool(self._hashes)

    def check(self, key: str | None) -> Principal | None:
        if not self.enabled:
            return Principal(None, True)
        if not key:
            return None
        h = _hash(key)
        for stored, admin in self._hashes.items():
            if hmac.compare_digest(stored, h):
                return Principal(h[:12], admin)
        return None
