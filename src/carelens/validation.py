"""Checks shared by every fitted object and every array a user or a model hands in.

One "not fitted" check (as scikit-learn's ``check_is_fitted``) and one check each for logits and
features, so every estimator refuses bad input with the same clear message.
"""

from __future__ import annotations

import numpy as np

from carelens.errors import ConfigError, NotFittedError

__all__ = ["check_features", "check_is_fitted", "check_logits"]


def check_is_fitted(estimator: object, attribute: str, how: str = "call fit(...) first") -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has the learned ``attribute`` (ending in ``_``).

    Args:
        estimator: the object to check.
        attribute: a learned attribute that ``fit`` sets.
        how: what the caller must do, appended to the message.
    """
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"{type(estimator).__name__} is not fitted yet: {how}")


def check_logits(logits: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Logits as float64 (n, k>=2); NaN/inf or a wrong shape is a clear error, never a silent answer."""
    a = np.asarray(logits, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ConfigError(f"logits must have shape (n, k>=2), got {a.shape}")
    if n_classes is not None and a.shape[1] != n_classes:
        raise ConfigError(f"logits have {a.shape[1]} classes, expected {n_classes}")
    if not np.isfinite(a).all():
        raise ConfigError(f"logits contain {int((~np.isfinite(a)).sum())} NaN or infinite value(s); "
                          "check the input image and the model export")
    return a


def check_features(features: np.ndarray) -> np.ndarray:
    """Pooled features as float64 (n, d); NaN/inf is an error naming the likely cause."""
    a = np.asarray(features, dtype=np.float64)
    if a.ndim != 2:
        raise ConfigError(f"features must have shape (n, d), got {a.shape}")
    if not np.isfinite(a).all():
        raise ConfigError(f"features contain {int((~np.isfinite(a)).sum())} NaN or infinite value(s); "
                          "the image or the model export is broken")
    return a
