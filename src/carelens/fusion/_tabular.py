"""Fitted models for symptoms and clinical facts, stored as plain numbers (JSON), never as pickles.

Both are multinomial logistic regressions: the symptom comparison (``bench/symptoms.py``) found it best
by validation log loss against a random forest and gradient boosting, and a linear model loads in any
future version with numpy alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from carelens.errors import ConfigError
from carelens.metrics import softmax
from carelens.validation import check_is_fitted

__all__ = ["FactsEncoder", "LinearModel", "TabularModel", "is_missing"]


class LinearModel:
    """Multinomial logistic regression on a numeric matrix (scikit-learn to fit, numpy to predict)."""

    def __init__(self, C: float = 1.0, max_iter: int = 3000, class_weight: str | None = None) -> None:
        self.C = C
        self.max_iter = max_iter
        self.class_weight = class_weight

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int | None = None,
            sample_weight: np.ndarray | None = None) -> LinearModel:
        from sklearn.linear_model import LogisticRegression

        k = n_classes or int(y.max()) + 1
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=self.class_weight)
        lr.fit(X, y, sample_weight=sample_weight)
        coef = np.zeros((k, X.shape[1]))
        bias = np.full(k, -30.0)  # classes absent from training get ~0 probability
        classes = lr.classes_.astype(int)
        if len(classes) == 2:  # sklearn stores one row for binary problems
            coef[classes[1]], bias[classes[1]] = lr.coef_[0], lr.intercept_[0]
            coef[classes[0]], bias[classes[0]] = 0.0, 0.0
        else:
            coef[classes], bias[classes] = lr.coef_, lr.intercept_
        self.coef_, self.intercept_ = coef, bias
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_  # type: ignore[no-any-return]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self.decision_function(X))

    def to_dict(self) -> dict[str, Any]:
        return {"coef": self.coef_.tolist(), "intercept": self.intercept_.tolist(), "C": self.C}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LinearModel:
        m = cls(C=float(d.get("C", 1.0)))
        m.coef_, m.intercept_ = np.asarray(d["coef"], float), np.asarray(d["intercept"], float)
        return m


def is_missing(v: Any) -> bool:
    """None, NaN, an empty string or '?' (the UCI tables' marker) is a missing value."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.strip() in ("", "?"))


class FactsEncoder:
    """Clinical facts (dicts) -> numbers. Numeric: median-imputed, standardised, plus a missing flag.
    Categorical: one-hot of the values seen in training, plus 'missing'. Missing is never dropped silently:
    it becomes an explicit feature."""

    def __init__(self, numeric: Sequence[str] = (), categorical: Sequence[str] = ()) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)

    def fit(self, rows: Sequence[Mapping[str, Any]]) -> FactsEncoder:
        unknown = [c for c in self.numeric + self.categorical if not any(c in r for r in rows)]
        if unknown:
            raise ConfigError(f"facts {unknown} never appear in the training rows")
        self.stats_: dict[str, tuple[float, float]] = {}
        for c in self.numeric:
            vals = np.asarray([float(r[c]) for r in rows if not is_missing(r.get(c))])
            med = float(np.median(vals)) if len(vals) else 0.0
            sd = float(vals.std()) if len(vals) > 1 and vals.std() > 0 else 1.0
            self.stats_[c] = (med, sd)
        self.levels_: dict[str, list[str]] = {
            c: sorted({str(r[c]).strip() for r in rows if not is_missing(r.get(c))}) for c in self.categorical
        }
        return self

    @property
    def names(self) -> list[str]:
        out = [f"{c}" for c in self.numeric] + [f"{c}_missing" for c in self.numeric]
        for c in self.categorical:
            out += [f"{c}={v}" for v in self.levels_[c]] + [f"{c}=missing"]
        return out

    def transform(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        check_is_fitted(self, "stats_")
        out = np.zeros((len(rows), len(self.names)))
        for i, r in enumerate(rows):
            col = 0
            for c in self.numeric:
                med, sd = self.stats_[c]
                v = r.get(c)
                miss = is_missing(v)
                try:
                    x = med if miss else float(v)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise ConfigError(f"fact {c!r} must be a number, got {v!r}") from None
                out[i, col] = (x - med) / sd
                out[i, col + len(self.numeric)] = float(miss)
                col += 1
            col = 2 * len(self.numeric)
            for c in self.categorical:
                levels = self.levels_[c]
                v = r.get(c)
                if is_missing(v) or str(v).strip() not in levels:
                    out[i, col + len(levels)] = 1.0  # missing or never seen: explicit, not dropped
                else:
                    out[i, col + levels.index(str(v).strip())] = 1.0
                col += len(levels) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical, "stats": self.stats_, "levels": self.levels_}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FactsEncoder:
        e = cls(d["numeric"], d["categorical"])
        e.stats_ = {k: (float(v[0]), float(v[1])) for k, v in d["stats"].items()}
        e.levels_ = {k: list(v) for k, v in d["levels"].items()}
        return e


class TabularModel:
    """Facts (dicts) -> class probabilities: :class:`FactsEncoder` + :class:`LinearModel`."""

    def __init__(self, numeric: Sequence[str] = (), categorical: Sequence[str] = (), C: float = 1.0,
                 class_weight: str | None = None) -> None:
        self.numeric, self.categorical, self.C, self.class_weight = list(numeric), list(categorical), C, class_weight

    def fit(self, rows: Sequence[Mapping[str, Any]], y: np.ndarray, n_classes: int | None = None) -> TabularModel:
        self.encoder_ = FactsEncoder(self.numeric, self.categorical).fit(rows)
        self.model_ = LinearModel(self.C, class_weight=self.class_weight).fit(self.encoder_.transform(rows), y, n_classes)
        return self

    def predict_proba(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self.encoder_.transform(rows))

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder_.to_dict(), "model": self.model_.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TabularModel:
        enc = FactsEncoder.from_dict(d["encoder"])
        m = cls(enc.numeric, enc.categorical)
        m.encoder_, m.model_ = enc, LinearModel.from_dict(d["model"])
        return m
