"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits by NLL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from carelens.errors import ConfigError
from carelens.metrics import nll, softmax
from carelens.validation import check_is_fitted, check_logits

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
            raise ConfigError("temperature scaling needs validation labels from at least two classes")
        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        res = minimize_scalar(lambda log_t: nll(softmax(z, float(np.exp(log_t))), y), bounds=(lo, hi),
                              method="bounded", options={"xatol": 1e-5})
        self.temperature_ = float(np.exp(res.x))
        return self

    def _check(self) -> None:
        check_is_fitted(self, "temperature_", "call fit(logits, y) on validation data first")

    def transform(self, logits: np.ndarray) -> np.ndarray:
        self._check()
        return check_logits(logits) / self.temperature_  # (n, k); argmax unchanged

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        self._check()
        return softmax(check_logits(logits), self.temperature_)

    # -- persistence (plain JSON) ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._check()
        return {"temperature": self.temperature_}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TemperatureScaler:
        ts = cls()
        ts.temperature_ = float(d["temperature"])
        return ts
