"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits by NLL; optionally with a
bias per class (softmax(z / T + b), b of the first class fixed at 0): for two classes this is Platt scaling, which
also corrects a model whose probabilities are systematically too high or too low for one class, something a
temperature alone cannot do. :func:`choose_scaler` picks between the two by cross-fitted NLL on validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from carelens.errors import ConfigError
from carelens.metrics import nll, softmax
from carelens.validation import check_is_fitted, check_logits

__all__ = ["TemperatureScaler", "choose_scaler"]


class TemperatureScaler:
    """Divides logits by a fitted temperature; never changes the argmax, so accuracy is unchanged. With ``bias``,
    adds a fitted offset per class as well, which can move the argmax (a prior correction)."""

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0), bias: bool = False) -> None:
        self.bounds = bounds
        self.bias = bias

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        z = check_logits(logits)
        y = np.asarray(y, dtype=np.int64)
        if np.ptp(z, axis=1).max() == 0:
            raise ConfigError("every logit row is constant (all classes scored equally): the model outputs carry "
                              "no information to calibrate; check the run or the export")
        if len(np.unique(y)) < 2:
            raise ConfigError("temperature scaling needs validation labels from at least two classes")
        self.bias_: np.ndarray | None = None  # per-class offsets after the temperature, when fitted with them
        self.n_val_ = len(y)
        # Every example already ranked first: the NLL then falls without end as T -> 0, so these labels fix no
        # temperature, and fitting one would sharpen the model as far as the bound allows on no evidence (a handful of
        # validation images all right). The model's own scale is kept, and shortfall() says why.
        self.separable_ = bool((z.argmax(axis=1) == y).all())
        if self.separable_:
            self.temperature_ = 1.0
            return self
        from scipy.optimize import minimize, minimize_scalar  # fitting only: serving stays without scipy.optimize

        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        res = minimize_scalar(lambda log_t: nll(softmax(z, float(np.exp(log_t))), y), bounds=(lo, hi),
                              method="bounded", options={"xatol": 1e-5})
        self.temperature_ = float(np.exp(res.x))
        if self.bias:
            def loss(theta: np.ndarray) -> float:
                return nll(softmax(z / np.exp(theta[0]) + np.r_[0.0, theta[1:]]), y)

            fit = minimize(loss, np.r_[np.log(self.temperature_), np.zeros(z.shape[1] - 1)], method="L-BFGS-B",
                           bounds=[(lo, hi)] + [(-10.0, 10.0)] * (z.shape[1] - 1))
            self.temperature_ = float(np.exp(fit.x[0]))
            self.bias_ = np.r_[0.0, fit.x[1:]]
        return self

    def _check(self) -> None:
        check_is_fitted(self, "temperature_", "call fit(logits, y) on validation data first")

    def shortfall(self) -> str | None:
        """Why the fitted scaler is the identity although validation data were given (every validation example was
        already ranked first, so no temperature is determined), or None."""
        self._check()
        if not self.separable_:
            return None
        return (f"all {self.n_val_} validation examples are already ranked first, so they determine no temperature: "
                "it stays 1 (the model's own confidence, not sharpened on no evidence); more validation data, with "
                "some errors in it, lets calibration fit one")

    def transform(self, logits: np.ndarray) -> np.ndarray:
        self._check()
        z = check_logits(logits) / self.temperature_  # (n, k)
        return z if self.bias_ is None else z + self.bias_

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        self._check()
        if self.bias_ is None:
            return softmax(check_logits(logits), self.temperature_)
        return softmax(self.transform(logits))

    # -- persistence (plain JSON) ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"temperature": T}``, and ``"bias"`` (per class) when fitted with one."""
        self._check()
        return {"temperature": self.temperature_} | ({} if self.bias_ is None else {"bias": self.bias_.tolist()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TemperatureScaler:
        bias = d.get("bias")
        ts = cls(bias=bias is not None)
        ts.temperature_ = float(d["temperature"])
        ts.bias_ = None if bias is None else np.asarray(bias, dtype=np.float64)
        ts.separable_ = False  # a stored temperature was fitted (or set) as it is
        return ts


def choose_scaler(logits: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[TemperatureScaler, dict[str, Any]]:
    """The temperature alone, or with class biases: whichever has the lower NLL on held-out validation folds
    (fitted on the others: cross-fitted, so the extra parameters must earn their place), refitted on all of
    validation; and the report of both. The temperature alone wins ties and whenever a class has fewer than
    ``folds`` validation examples."""
    from sklearn.model_selection import StratifiedKFold  # training side only: the serving path stays without sklearn

    z, yy = check_logits(logits), np.asarray(y, dtype=np.int64)
    counts = np.bincount(yy, minlength=z.shape[1])
    report: dict[str, Any] = {"cv_folds": folds}
    if counts.min() < folds:
        report |= {"chosen": "temperature", "why": "a class has fewer validation examples than folds"}
        return TemperatureScaler().fit(z, yy), report
    scores: dict[str, list[float]] = {"temperature": [], "temperature_bias": []}
    for fit_idx, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(z, yy):
        for name, bias in (("temperature", False), ("temperature_bias", True)):
            ts = TemperatureScaler(bias=bias).fit(z[fit_idx], yy[fit_idx])
            scores[name].append(nll(ts.predict_proba(z[held]), yy[held]))
    cv = {k: float(np.mean(v)) for k, v in scores.items()}
    chosen = "temperature_bias" if cv["temperature_bias"] < cv["temperature"] else "temperature"
    report |= {"chosen": chosen, "cv_nll": cv}
    return TemperatureScaler(bias=chosen == "temperature_bias").fit(z, yy), report
