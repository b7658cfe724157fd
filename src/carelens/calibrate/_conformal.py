"""Split conformal prediction sets (LAC and APS scores), marginal or class-conditional (Mondrian).

Given calibrated probabilities on held-out labelled data, a threshold per class is chosen so that the
true class is in the set with probability >= 1 - alpha (marginally, or for each class). Where a class
has fewer than (1 - alpha) / alpha calibration examples, its own quantile cannot carry the guarantee:
the marginal threshold is used instead and the class is listed in ``fallback_classes_``.

``pooled`` classes share one threshold, the quantile of their scores together (one Mondrian category
instead of one each): the guarantee then holds for a case of that group on average, not for each class
in it. Pooling the classes a triage may miss least (the non-critical ones) keeps every critical class's
own guarantee and gives smaller sets: a rare benign class no longer needs a threshold low enough to
cover each of its few examples (``carelens calibrate --pool-noncritical``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from carelens.errors import ConfigError
from carelens.validation import check_is_fitted

__all__ = ["ConformalClassifier", "ConformalScore", "conformal_quantile", "nonconformity"]

ConformalScore = Literal["lac", "aps"]


def nonconformity(proba: np.ndarray, score: ConformalScore) -> np.ndarray:
    """Score of every (example, class): low = conforming. Shape (n, k).

    LAC: 1 - p_k. APS: total probability of the classes ranked at or above k.
    """
    p = np.asarray(proba, dtype=np.float64)
    if score == "lac":
        return 1.0 - p
    order = np.argsort(-p, axis=1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=1)
    cum = np.cumsum(sorted_p, axis=1)
    out = np.empty_like(p)
    np.put_along_axis(out, order, cum, axis=1)
    return out


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ceil((n + 1)(1 - alpha)) / n empirical quantile; +inf when n is too small for it."""
    n = len(scores)
    level = math.ceil((n + 1) * (1 - alpha)) / n if n else math.inf
    if level > 1:
        return math.inf
    return float(np.quantile(scores, level, method="higher"))


class ConformalClassifier:
    """Prediction sets with coverage 1 - alpha.

    Args:
        alpha: miscoverage (0.1 gives 90% coverage).
        score: "lac" (smallest sets, coverage close to the target) or "aps" (adaptive; larger sets on
            hard inputs). APS is used without randomisation so that one input always gets one set:
            still valid, but conservative (coverage above the target, most visibly with 2 classes).
        class_conditional: one threshold per class (Mondrian), so rare classes are covered too.
        pooled: with ``class_conditional``, classes that share one threshold (their scores pooled), each
            other class keeping its own.
    """

    def __init__(self, alpha: float = 0.1, score: ConformalScore = "lac", class_conditional: bool = True,
                 pooled: Sequence[int] = ()) -> None:
        self.alpha = alpha
        self.score = score
        self.class_conditional = class_conditional
        self.pooled = tuple(sorted({int(c) for c in pooled}))

    def like(self, alpha: float | None = None) -> ConformalClassifier:
        """An unfitted classifier with these settings (at ``alpha`` when given)."""
        return ConformalClassifier(self.alpha if alpha is None else alpha, self.score, self.class_conditional,
                                   self.pooled)

    def fit(self, proba: np.ndarray, y: np.ndarray) -> ConformalClassifier:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.score not in ("lac", "aps"):
            raise ConfigError(f"score must be 'lac' or 'aps', got {self.score!r}")
        p = np.asarray(proba, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        k = p.shape[1]
        s = nonconformity(p, self.score)[np.arange(len(y)), y]
        marginal = conformal_quantile(s, self.alpha)
        need = math.ceil((1 - self.alpha) / self.alpha)
        if any(c < 0 or c >= k for c in self.pooled):
            raise ConfigError(f"pooled classes must be indices in 0..{k - 1}, got {list(self.pooled)}")
        thresholds = np.full(k, marginal)
        fallback: list[int] = []
        counts = np.bincount(y, minlength=k)
        if self.class_conditional:  # one category per class, the pooled classes making one together
            groups = [[c] for c in range(k) if c not in self.pooled] + ([list(self.pooled)] if self.pooled else [])
            for group in groups:
                if counts[group].sum() < need:
                    fallback.extend(group)
                    continue
                thresholds[group] = conformal_quantile(s[np.isin(y, group)], self.alpha)
            fallback.sort()
        self.marginal_threshold_ = marginal
        self.thresholds_ = thresholds
        self.fallback_classes_ = fallback
        self.class_counts_ = counts
        self.min_per_class_ = need
        return self

    def cross_fitted_sets(self, proba: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
        """The sets of these same labelled examples, none decided by thresholds fitted on itself: a seeded half
        fitted (at this level, score and conditioning) decides the other half, and the reverse. For choosing among
        decision rules on the data that also calibrates; needs no fitted state."""
        order = np.random.default_rng(seed).permutation(len(y))
        halves = (order[: len(y) // 2], order[len(y) // 2 :])
        mask = np.zeros_like(proba, dtype=bool)
        for fit, held in (halves, halves[::-1]):
            cp = self.like().fit(proba[fit], y[fit])
            mask[held] = cp.predict_set(proba[held])
        return mask

    def _check(self) -> None:
        check_is_fitted(self, "thresholds_", "call fit(proba, y) on calibration data")

    def predict_set(self, proba: np.ndarray) -> np.ndarray:
        """Boolean mask (n, k) of the classes in each set; the top class is always included."""
        self._check()
        p = np.asarray(proba, dtype=np.float64)
        mask = nonconformity(p, self.score) <= self.thresholds_[None, :]
        mask[np.arange(len(p)), p.argmax(1)] = True  # never an empty set
        return mask

    def to_dict(self) -> dict[str, Any]:
        self._check()
        return {
            "alpha": self.alpha, "score": self.score, "class_conditional": self.class_conditional,
            **({"pooled": list(self.pooled)} if self.pooled else {}),
            "thresholds": [float(t) for t in self.thresholds_], "marginal_threshold": float(self.marginal_threshold_),
            "fallback_classes": list(self.fallback_classes_), "min_per_class": self.min_per_class_,
            "class_counts": [int(c) for c in self.class_counts_],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConformalClassifier:
        c = cls(d["alpha"], d["score"], d["class_conditional"], d.get("pooled") or ())
        c.thresholds_ = np.asarray(d["thresholds"], dtype=np.float64)
        c.marginal_threshold_ = float(d["marginal_threshold"])
        c.fallback_classes_ = list(d["fallback_classes"])
        c.min_per_class_ = int(d["min_per_class"])
        c.class_counts_ = np.asarray(d["class_counts"])
        return c
