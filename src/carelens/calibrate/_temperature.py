"""Temperature scaling (Guo et al. 2017) and its per-class extensions, each fitted on validation logits by NLL:

- ``temperature``: one scalar T, softmax(z / T); never moves the argmax.
- ``class_scale``: a scale per class as well, softmax(c(z) / T * s) (c: each row minus its mean, so that a
  constant added to a row changes nothing, as for softmax; the scales' mean 1), for a model over-confident
  in some classes and under-confident in others. It holds no class biases, so it carries no class balance of the
  validation split into deployment.
- ``temperature_bias``: a bias per class, softmax(z / T + b) (b of the first class 0): for two classes Platt
  scaling; it corrects a model systematically too sure or too unsure of one class, and it also learns the
  validation split's class balance (a prior correction).
- ``vector``: a scale and a bias per class (vector scaling, Guo et al. 2017), softmax(c(z) / T * s + b).

Scales and biases are shrunk towards the plain temperature by a small L2 penalty. :func:`choose_scaler` picks by
cross-fitted NLL on validation, among the prior-free scalers (the default) or among all four.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from carelens.errors import ConfigError
from carelens.metrics import nll, softmax
from carelens.validation import check_is_fitted, check_logits

__all__ = ["SCALERS", "ScalerChoice", "TemperatureScaler", "choose_scaler"]

SCALERS = ("temperature", "class_scale", "temperature_bias", "vector")  # simplest first
PRIOR_FREE = ("temperature", "class_scale")  # no class biases: nothing of the validation class balance is learnt
ScalerChoice = Literal["temperature", "prior_free", "auto"]
CLASS_L2 = 0.01  # the penalty on (scale - 1) and on the biases, per class (chosen on HAM10000 validation, 5-fold)


def _centred(z: np.ndarray) -> np.ndarray:
    """Each row minus its mean. Softmax ignores a constant added to a row, but per-class scales would not: centred
    first, they read the same from logits and from log-probabilities (an imported model's log-softmax output)."""
    return np.asarray(z - z.mean(axis=1, keepdims=True))


class TemperatureScaler:
    """Divides logits by a fitted temperature; never changes the argmax, so accuracy is unchanged. With ``scale``,
    also multiplies each class's logit by a fitted scale; with ``bias``, adds a fitted offset per class (either can
    move the argmax; a bias is a prior correction). The four combinations are :data:`SCALERS`."""

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0), bias: bool = False, scale: bool = False) -> None:
        self.bounds = bounds
        self.bias = bias
        self.scale = scale

    @classmethod
    def named(cls, name: str) -> TemperatureScaler:
        """An unfitted scaler of one of :data:`SCALERS`."""
        if name not in SCALERS:
            raise ConfigError(f"unknown scaler {name!r}; one of {', '.join(SCALERS)}")
        return cls(bias=name in ("temperature_bias", "vector"), scale=name in ("class_scale", "vector"))

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        z = check_logits(logits)
        y = np.asarray(y, dtype=np.int64)
        if np.ptp(z, axis=1).max() == 0:
            raise ConfigError("every logit row is constant (all classes scored equally): the model outputs carry "
                              "no information to calibrate; check the run or the export")
        if len(np.unique(y)) < 2:
            raise ConfigError("temperature scaling needs validation labels from at least two classes")
        self.bias_: np.ndarray | None = None  # per-class offsets after the temperature, when fitted with them
        self.scale_: np.ndarray | None = None  # per-class multipliers after the temperature, when fitted with them
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
        if self.scale:
            self._fit_scales(_centred(z), y)
        return self

    def _fit_scales(self, z: np.ndarray, y: np.ndarray) -> None:
        """softmax(z * a + b) (b = 0 without ``bias``), from a = 1/T and the biases just fitted, by NLL +
        CLASS_L2 / k * (|a / mean(a) - 1|^2 + |b|^2) with its gradient; kept as T = 1 / mean(a), scales a * T (mean
        1), biases with the first at 0."""
        from scipy.optimize import minimize

        n, k = z.shape
        rows = np.arange(n)

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            a, b = theta[:k], theta[k:]
            s = z * a + b
            s = s - s.max(axis=1, keepdims=True)
            logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
            p = np.exp(logp)
            g = p
            g[rows, y] -= 1.0
            g /= n
            m = a.mean()
            r = a / m - 1.0  # the scales' spread around their mean: the temperature itself is not penalised
            pen = CLASS_L2 / k
            value = -logp[rows, y].mean() + pen * (float(r @ r) + float(b @ b))
            ga = (g * z).sum(axis=0) + pen * 2.0 * (r / m - float(r @ a) / (k * m * m))
            gb = g.sum(axis=0) + pen * 2.0 * b
            return value, np.r_[ga, gb]

        start = np.r_[np.full(k, 1.0 / self.temperature_), self.bias_ if self.bias_ is not None else np.zeros(k)]
        fixed_b = [(-10.0, 10.0) if self.bias else (0.0, 0.0)] * k  # without biases they stay at 0
        fit = minimize(loss, start, jac=True, method="L-BFGS-B",
                       bounds=[(1.0 / self.bounds[1], 1.0 / self.bounds[0])] * k + fixed_b)
        a, b = fit.x[:k], fit.x[k:]
        self.temperature_ = float(1.0 / a.mean())
        self.scale_ = a * self.temperature_
        self.bias_ = b - b[0] if self.bias else None

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
        if self.scale_ is not None:
            z = _centred(z) * self.scale_
        return z if self.bias_ is None else z + self.bias_

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        self._check()
        if self.bias_ is None and self.scale_ is None:
            return softmax(check_logits(logits), self.temperature_)
        return softmax(self.transform(logits))

    # -- persistence (plain JSON) ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"temperature": T}``, and ``"bias"`` and ``"scale"`` (per class) when fitted with them."""
        self._check()
        return ({"temperature": self.temperature_} | ({} if self.bias_ is None else {"bias": self.bias_.tolist()})
                | ({} if self.scale_ is None else {"scale": self.scale_.tolist()}))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TemperatureScaler:
        bias, scale = d.get("bias"), d.get("scale")
        ts = cls(bias=bias is not None, scale=scale is not None)
        ts.temperature_ = float(d["temperature"])
        ts.bias_ = None if bias is None else np.asarray(bias, dtype=np.float64)
        ts.scale_ = None if scale is None else np.asarray(scale, dtype=np.float64)
        ts.separable_ = False  # a stored temperature was fitted (or set) as it is
        return ts


def choose_scaler(logits: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0,
                  among: ScalerChoice = "prior_free") -> tuple[TemperatureScaler, dict[str, Any]]:
    """Of :data:`SCALERS` (``among``: ``prior_free``, the temperature alone or with class scales; ``auto``, all
    four; ``temperature``, that alone), the one with the lowest NLL on held-out validation folds (fitted on the
    others: cross-fitted, so extra parameters must earn their place), refitted on all of validation; and the
    report of each. The simpler wins ties; the temperature alone wins whenever a class has fewer than ``folds``
    validation examples.

    ``prior_free`` is the default because class biases learn the validation split's class balance: on
    PneumoniaMNIST, whose test split has another balance, vector scaling (chosen there by cross-fitted NLL among
    all four) gave test ECE 0.034 against 0.014 for the prior-free choice, while on HAM10000 class scales gave 0.016
    against 0.036 for the temperature alone (``bench/calibration.py``)."""
    from sklearn.model_selection import StratifiedKFold  # training side only: the serving path stays without sklearn

    z, yy = check_logits(logits), np.asarray(y, dtype=np.int64)
    names = {"temperature": ("temperature",), "prior_free": PRIOR_FREE, "auto": SCALERS}.get(among)
    if names is None:
        raise ConfigError(f"the scaler choice must be temperature, prior_free or auto, got {among!r}")
    counts = np.bincount(yy, minlength=z.shape[1])
    report: dict[str, Any] = {"among": among, "cv_folds": folds}
    if len(names) == 1 or counts.min() < folds:
        why = {} if len(names) == 1 else {"why": "a class has fewer validation examples than folds"}
        return TemperatureScaler().fit(z, yy), report | {"chosen": "temperature"} | why
    scores: dict[str, list[float]] = {name: [] for name in names}
    for fit_idx, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(z, yy):
        for name in names:
            fitted = TemperatureScaler.named(name).fit(z[fit_idx], yy[fit_idx])
            scores[name].append(nll(fitted.predict_proba(z[held]), yy[held]))
    cv = {k: float(np.mean(v)) for k, v in scores.items()}
    chosen = min(names, key=lambda name: (cv[name], SCALERS.index(name)))
    report |= {"chosen": chosen, "cv_nll": cv}
    return TemperatureScaler.named(chosen).fit(z, yy), report
