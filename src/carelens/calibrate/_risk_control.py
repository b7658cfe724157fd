"""Multi-label calibration: per-condition temperature, per-condition decision thresholds, and conformal risk
control of the false-negative rate (Angelopoulos, Bates, Fisch, Lei, Schuster: "Conformal Risk Control", 2022).

Risk control keeps every condition whose calibrated probability is at least ``threshold_``, the largest
threshold whose validation false-negative rate satisfies ``(n * FNR + 1) / (n + 1) <= alpha``. For new images
exchangeable with the validation images, the expected share of present conditions that are not kept is then
at most ``alpha`` (the loss is bounded by 1 and does not increase as the threshold falls).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from carelens.errors import ConfigError
from carelens.metrics import fnr
from carelens.tasks import sigmoid
from carelens.validation import check_is_fitted, check_logits

__all__ = ["MultilabelCalibrator", "risk_control_threshold"]


def _bce(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def risk_control_threshold(proba: np.ndarray, presence: np.ndarray, alpha: float) -> float:
    """The largest threshold t with (n * FNR(t) + 1) / (n + 1) <= alpha on these calibration images, where
    FNR(t) is the mean per-image share of present conditions with probability below t (0 keeps everything)."""
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(presence).astype(bool)
    n = len(p)
    candidates = np.unique(np.concatenate([p[y], [0.0]]))[::-1]  # high to low: FNR falls as t falls
    for t in candidates:
        if (n * fnr(p >= t, y) + 1) / (n + 1) <= alpha:
            return float(t)
    return 0.0


def _f1_threshold(p: np.ndarray, y: np.ndarray, recall_floor: float | None) -> float:
    """The threshold maximising F1 on validation; with ``recall_floor``, the highest one meeting that recall."""
    pos = int(y.sum())
    if pos == 0:
        return 1.0
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ps) + 1)
    f1 = 2 * tp / (k + pos)
    last = np.r_[ps[1:] != ps[:-1], True]  # a threshold can only sit at the end of a run of equal scores
    if recall_floor is not None:
        ok = np.flatnonzero(last & (tp / pos >= recall_floor))
        if len(ok):
            return float(ps[ok[0]])
    best = int(np.flatnonzero(last)[np.argmax(f1[last])])
    return float(ps[best])


class MultilabelCalibrator:
    """Fitted on validation condition logits ``(n, K)`` and presence ``(n, K)``.

    Args:
        alpha: the false-negative rate conformal risk control bounds (in expectation).
        recall_floor: per condition index, a recall its decision threshold must meet (urgent conditions);
            the others maximise F1.
    """

    def __init__(self, alpha: float = 0.1, recall_floor: Mapping[int, float] | None = None,
                 bounds: tuple[float, float] = (0.05, 20.0)) -> None:
        if not 0 < alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha = alpha
        self.recall_floor = dict(recall_floor or {})
        self.bounds = bounds

    def fit(self, logits: np.ndarray, presence: np.ndarray) -> MultilabelCalibrator:
        z = check_logits(logits)
        y = np.asarray(presence, dtype=np.float64)
        if y.shape != z.shape:
            raise ConfigError(f"presence {y.shape} must match the condition logits {z.shape}")
        from scipy.optimize import minimize_scalar  # fitting only: the serving path stays without scipy.optimize

        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        temps = []
        for k in range(z.shape[1]):
            if 0 < y[:, k].sum() < len(y):
                res = minimize_scalar(lambda lt, k=k: _bce(sigmoid(z[:, k] / np.exp(lt)), y[:, k]), bounds=(lo, hi),
                                      method="bounded", options={"xatol": 1e-5})
                temps.append(float(np.exp(res.x)))
            else:
                temps.append(1.0)  # no positives (or no negatives) in validation: nothing to fit
        self.temperatures_ = np.asarray(temps)
        p = self.predict_proba(z)
        self.thresholds_ = np.asarray([_f1_threshold(p[:, k], y[:, k], self.recall_floor.get(k))
                                       for k in range(z.shape[1])])
        self.threshold_ = risk_control_threshold(p, y, self.alpha)
        self.n_ = len(z)
        self.val_fnr_ = fnr(self.kept(p), y)
        return self

    def _check(self) -> None:
        check_is_fitted(self, "threshold_", "call fit(logits, presence) on validation data first")

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "temperatures_", "call fit(logits, presence) on validation data first")
        return sigmoid(check_logits(logits) / self.temperatures_)

    def present(self, proba: np.ndarray) -> np.ndarray:
        self._check()
        return np.asarray(proba) >= self.thresholds_

    def kept(self, proba: np.ndarray) -> np.ndarray:
        self._check()
        return np.asarray(proba) >= self.threshold_

    # -- persistence (plain JSON) ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._check()
        return {"alpha": self.alpha, "temperatures": self.temperatures_.tolist(),
                "thresholds": self.thresholds_.tolist(), "risk_threshold": self.threshold_, "n": self.n_,
                "val_fnr": self.val_fnr_, "recall_floor": {str(k): v for k, v in self.recall_floor.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MultilabelCalibrator:
        c = cls(float(d["alpha"]), {int(k): float(v) for k, v in (d.get("recall_floor") or {}).items()})
        c.temperatures_ = np.asarray(d["temperatures"], dtype=np.float64)
        c.thresholds_ = np.asarray(d["thresholds"], dtype=np.float64)
        c.threshold_ = float(d["risk_threshold"])
        c.n_ = int(d["n"])
        c.val_fnr_ = float(d["val_fnr"])
        return c
