"""Probabilities from scores, and the log loss that judges them (one implementation each)."""

from __future__ import annotations

import numpy as np

__all__ = ["nll", "softmax"]


def softmax(logits: np.ndarray, temperature: float = 1.0, dtype: type[np.floating] = np.float64) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (n, k), computed stably in ``dtype``.

    float64 by default; the trainer's model selection passes float32, the network's own precision (its
    validation scores, and so its early stopping, are defined in it).
    """
    z = np.asarray(logits, dtype=dtype) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (log loss); probabilities clipped at 1e-12."""
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())
