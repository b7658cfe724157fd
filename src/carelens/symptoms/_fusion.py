"""Fusing calibrated distributions from several sources (image, symptoms, clinical facts).

Weighted log-linear pooling: p(c) ∝ Π_s p_s(c)^w_s, with the weights w_s >= 0 fitted on validation
data by log loss. Agreement sharpens the result; disagreement flattens it, which widens the conformal
set computed on the fused distribution, and raises ``symptom_conflict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

from carelens.calibrate import softmax
from carelens.errors import ConfigError, NotFittedError

__all__ = ["LogLinearPooling", "conflict"]


def _logs(probas: Sequence[np.ndarray]) -> np.ndarray:
    if not probas:
        raise ConfigError("fusion needs at least one source")
    shapes = {p.shape for p in probas}
    if len(shapes) != 1:
        raise ConfigError(f"every source must give probabilities over the same classes; got shapes {shapes}")
    return np.log(np.clip(np.stack(probas), 1e-9, 1.0))  # (s, n, k)


class LogLinearPooling:
    def __init__(self, max_weight: float = 5.0) -> None:
        self.max_weight = max_weight

    def fit(self, probas: Sequence[np.ndarray], y: np.ndarray) -> LogLinearPooling:
        logs = _logs(probas)
        y = np.asarray(y, dtype=np.int64)
        rows = np.arange(len(y))

        def nll(w: np.ndarray) -> float:
            p = softmax(np.tensordot(w, logs, axes=1))
            return float(-np.log(np.clip(p[rows, y], 1e-12, None)).mean())

        w0 = np.ones(len(probas))
        res = minimize(nll, w0, method="L-BFGS-B", bounds=[(0.0, self.max_weight)] * len(probas))
        self.weights_ = res.x
        return self

    def combine(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        if not hasattr(self, "weights_"):
            raise NotFittedError("LogLinearPooling is not fitted yet: call fit on validation data first")
        if len(probas) != len(self.weights_):
            raise ConfigError(f"fitted for {len(self.weights_)} sources, got {len(probas)}")
        return softmax(np.tensordot(self.weights_, _logs(probas), axes=1))


def conflict(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Both sources are fairly sure (top probability >= threshold) and name different classes."""
    return (a.argmax(-1) != b.argmax(-1)) & (a.max(-1) >= threshold) & (b.max(-1) >= threshold)  # type: ignore[no-any-return]
