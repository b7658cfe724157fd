"""A bundle folder of any kind, loaded and checked as its kind loads (one dispatch for whoever needs no other)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from carelens.bundle._load import Bundle, load_bundle
from carelens.bundle._signal import SignalBundle, is_signal
from carelens.bundle._tabular import TabularBundle, is_tabular

__all__ = ["load_any"]


def load_any(path: str | Path, *, threads: int | None = None,
             trusted_keys: dict[str, Ed25519PublicKey] | None = None) -> Bundle | TabularBundle | SignalBundle:
    """An image, clinical (tabular) or ECG (signal) bundle: integrity, self-test and, with ``trusted_keys``, its
    signature checked as that kind's loader checks them."""
    if is_signal(path):
        return SignalBundle.load(path, threads=threads, trusted_keys=trusted_keys)
    if is_tabular(path):
        return TabularBundle.load(path, trusted_keys=trusted_keys)
    return load_bundle(path, threads=threads, trusted_keys=trusted_keys)
