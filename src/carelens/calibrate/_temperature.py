"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits by NLL."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from carelens.calibrate._scores import check_logits, softmax
from carelens.errors import ConfigError, NotFittedError

__all__ = ["TemperatureScaler"]


class TemperatureScaler:
    """Divides logits by a fitted temperature; never changes the argmax, so accuracy is unchanged."""

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0)) -> None:
        self.bounds = bounds

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        z = check_logits(logits)
        y = np.asarray(y, dtype=np.int64)
        if np.ptp(z, axis=1).max() == 0:
            raise ConfigError("every logit row is constant (all classes scored equally): the model outputs carry "
                              "no information to calibrate; check the run or the export")
        if len(np.unique(y)) < 2:
            raise ValueError("temperature scaling needs validation labels from at least two classes")

        def nll(log_t: float) -> float:
            p = softmax(z, float(np.exp(log_t)))
            return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-5})
        self.temperature_ = float(np.exp(res.x))
        return self

    def _check(self) -> None:
        if not hasattr(self, "temperature_"):
            raise NotFittedError("TemperatureScaler is not fitted yet: call fit(logits, y) on validation data first")

    def transform(self, logits: np.ndarray) -> np.ndarray:
        self._check()
        return check_logits(logits) / self.temperature_  # (n, k); argmax unchanged

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        self._check()
        return softmax(check_logits(logits), self.temperature_)
