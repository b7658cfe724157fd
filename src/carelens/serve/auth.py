"""API keys: stored hashed; a key's id (first 12 hex of its hash) goes into the audit log."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from carelens.errors import ConfigError

__all__ = ["OPEN_KEY_ID", "KeyRing", "Principal", "RateLimiter"]


@dataclass(frozen=True)
class Principal:
    key_id: str
    admin: bool


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


OPEN_KEY_ID = "open"  # the key id of every request to a service run without keys (--allow-open)


def _read_keys_file(path: Path) -> list[str]:
    """Fail closed: a keys file that is configured must exist, be readable and hold at least one key."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"CARELENS_API_KEYS_FILE {path} cannot be read ({exc.strerror or exc}); fix the path or "
                          "unset it. The service does not start open because a keys file is missing.") from None
    keys = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not keys:
        raise ConfigError(f"CARELENS_API_KEYS_FILE {path} holds no key (one per line; 'admin:KEY' for the admin "
                          "scope). The service does not start open because a keys file is empty.")
    return keys


class KeyRing:
    """No keys configured: open service (everyone is admin, key id ``open``). Otherwise a valid key is required.

    Raises:
        ConfigError: a configured keys file is missing, unreadable or empty (fail closed).
    """

    def __init__(self, keys: str = "", keys_file: Path | None = None) -> None:
        entries = [k.strip() for k in keys.split(",") if k.strip()]
        if keys_file is not None:
            entries += _read_keys_file(keys_file)
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
            return Principal(OPEN_KEY_ID, True)
        if not key:
            return None
        h = _hash(key)
        for stored, admin in self._hashes.items():
            if hmac.compare_digest(stored, h):
                return Principal(h[:12], admin)
        return None


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, then ``rate`` per second. Thread-safe."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0.0 when the request may go ahead, else the seconds until a token is free (for Retry-After)."""
        if self.rate <= 0:
            return 0.0
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), t))
            tokens = min(float(self.burst), tokens + (t - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, t)
                return 0.0
            self._buckets[key] = (tokens, t)
            return (1.0 - tokens) / self.rate
