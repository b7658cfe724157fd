"""Clinical facts fused with an image model over the same conditions (age, sex, lesion site ...).

    p(c | image, facts) ∝ p_img(c | image)^w_img · (p_facts(c | facts) / π(c))^w_facts

The facts model is a logistic regression fitted on the training split. Dividing its output by the
training prior π turns it into a likelihood ratio, so the class prior is counted once (the image model
already carries it). The image keeps weight 1 (it is calibrated by its temperature; facts that say
nothing leave it exactly as it was); the facts weight is fitted on the validation split by log loss
(:class:`LogLinearPooling`), which keeps the fused probabilities calibrated, and a conformal threshold
fitted on the fused validation probabilities gives the fused prediction set its coverage guarantee.

When the facts overturn the most likely class of a fairly sure image model, the assessment says so
(``symptom_conflict``) and the prediction set becomes the union of the image's set and the fused one:
disagreement widens, never narrows, what stays plausible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from carelens.calibrate import ConformalClassifier
from carelens.errors import ConfigError, FactsError
from carelens.fusion._pooling import LogLinearPooling, conflict
from carelens.fusion._tabular import TabularModel, is_missing
from carelens.labels import LabelSpec
from carelens.metrics import calibration_report, classification_metrics, coverage_report
from carelens.policy import DecisionPolicy, critical_miss_rate, over_triage_rate, triage_levels
from carelens.validation import check_is_fitted

__all__ = ["FactsFusion", "infer_fact_kinds", "parse_fact_pairs"]

CONFLICT_THRESHOLD = 0.5  # an image finding at least this sure, overturned by the facts, is a conflict


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def infer_fact_kinds(rows: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """(numeric, categorical) fact names: numeric when every present value is a number."""
    names = list(names) if names is not None else sorted({k for r in rows for k in r})
    numeric: list[str] = []
    categorical: list[str] = []
    for n in names:
        present = [r[n] for r in rows if n in r and not is_missing(r[n])]
        if not present:
            raise ConfigError(f"fact {n!r} has no values in the training rows")
        (numeric if all(_number(v) is not None for v in present) else categorical).append(n)
    return numeric, categorical


def parse_fact_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """``["age=54", "sex=male site=back"]`` -> ``{"age": 54.0, "sex": "male", "site": "back"}``."""
    out: dict[str, Any] = {}
    for token in (t for p in pairs for t in p.replace(",", " ").split()):
        name, sep, value = token.partition("=")
        if not sep or not name or not value:
            raise FactsError(f"a fact is written name=value (e.g. age=54 sex=male); got {token!r}")
        num = _number(value)
        out[name.strip()] = num if num is not None else value.strip()
    return out


class FactsFusion:
    """Facts model + pooling weights + fused conformal sets; fit on a run's train and val splits."""

    def __init__(self, numeric: Sequence[str] = (), categorical: Sequence[str] = (), *, C: float = 1.0,
                 conformal: ConformalClassifier | None = None) -> None:
        """``conformal``: the settings of the fused sets (the image model's, unfitted: ``cp.like()``)."""
        if not numeric and not categorical:
            raise ConfigError("facts fusion needs at least one fact")
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.C, self.conformal = C, (conformal or ConformalClassifier()).like()

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, train_rows: Sequence[Mapping[str, Any]], y_train: np.ndarray, val_rows: Sequence[Mapping[str, Any]],
            val_image_proba: np.ndarray, y_val: np.ndarray) -> FactsFusion:
        k = val_image_proba.shape[1]
        y_train = np.asarray(y_train, dtype=np.int64)
        self.model_ = TabularModel(self.numeric, self.categorical, C=self.C).fit(train_rows, y_train, k)
        counts = np.bincount(y_train, minlength=k).astype(np.float64)
        self.prior_ = (counts + 1.0) / (counts.sum() + k)  # Laplace: a class absent from train is not infinite
        self.ranges_: dict[str, tuple[float, float]] = {}
        for c in self.numeric:
            vals = [float(r[c]) for r in train_rows if not is_missing(r.get(c))]
            lo, hi = min(vals), max(vals)
            pad = max((hi - lo) / 2, 1.0)
            self.ranges_[c] = (max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad)
        sources = [val_image_proba, self.likelihood(val_rows)]
        self.pooling_ = LogLinearPooling(anchor=0).fit(sources, y_val)
        fused = self.pooling_.combine(sources)
        self.conformal_ = self.conformal.like().fit(fused, y_val)
        return self

    def _fitted(self) -> None:
        check_is_fitted(self, "model_", "call fit (carelens calibrate does) first")

    # -- the facts a user may give -----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return self.numeric + self.categorical

    def schema(self) -> dict[str, dict[str, Any]]:
        """What each fact may be: numbers with their accepted range, categories with their values."""
        self._fitted()
        out: dict[str, dict[str, Any]] = {}
        for c in self.numeric:
            out[c] = {"type": "number", "min": self.ranges_[c][0], "max": self.ranges_[c][1]}
        for c in self.categorical:
            out[c] = {"type": "category", "values": self.model_.encoder_.levels_[c]}
        return out

    def check(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Validated facts (numbers as floats, categories as stripped strings); unknown names, values out of
        range and unseen categories are errors that say what is accepted. Missing facts are allowed."""
        self._fitted()
        unknown = sorted(set(facts) - set(self.names))
        if unknown:
            raise FactsError(f"unknown fact(s) {', '.join(unknown)}; this model uses: {', '.join(self.names)}")
        out: dict[str, Any] = {}
        for name, v in facts.items():
            if is_missing(v):
                continue
            if name in self.ranges_:
                x, (lo, hi) = _number(v), self.ranges_[name]
                if x is None:
                    raise FactsError(f"fact {name!r} must be a number, got {v!r}")
                if not lo <= x <= hi:
                    raise FactsError(f"fact {name}={x:g} is outside the range this model accepts ({lo:g} to {hi:g})")
                out[name] = x
            else:
                levels = self.model_.encoder_.levels_[name]
                s = str(v).strip()
                match = next((lv for lv in levels if lv.lower() == s.lower()), None)
                if match is None:
                    raise FactsError(f"fact {name}={s!r} is not a value this model knows; use one of: {', '.join(levels)}")
                out[name] = match
        return out

    # -- fusing ------------------------------------------------------------------------------------
    def facts_proba(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """p(class | facts) from the facts alone (with the training prior)."""
        self._fitted()
        return self.model_.predict_proba(rows)

    def likelihood(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """p(class | facts) / prior, normalised: what the facts add beyond the class frequencies."""
        r = self.facts_proba(rows) / self.prior_
        return r / r.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def fuse(self, image_proba: np.ndarray, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fused probabilities (n, k), prediction-set mask (n, k), conflict (n,)) for image probabilities
        and one facts dict per row."""
        self._fitted()
        image_proba = np.asarray(image_proba, dtype=np.float64)
        fused = self.pooling_.combine([image_proba, self.likelihood(rows)])
        disagree = conflict(image_proba, fused, CONFLICT_THRESHOLD)
        mask = self.conformal_.predict_set(fused)
        return fused, mask, disagree

    def widen(self, fused_mask: np.ndarray, image_mask: np.ndarray, disagree: np.ndarray) -> np.ndarray:
        """On disagreement the plausible set is the union of both; otherwise the fused set."""
        return np.where(disagree[:, None], fused_mask | image_mask, fused_mask)

    def measure(self, image_proba: np.ndarray, image_mask: np.ndarray, rows: Sequence[Mapping[str, Any]], y: np.ndarray,
                class_ids: Sequence[str], *, spec: LabelSpec | None = None,
                in_distribution: np.ndarray | None = None, policy: DecisionPolicy | None = None) -> dict[str, Any]:
        """Image alone (``*_image``) and image + facts on the same labelled cases: the figures calibrate and
        evaluate report (with ``spec``, also the critical-miss and over-triage rates of each decision)."""
        fused, mask, disagree = self.fuse(image_proba, rows)
        mask = self.widen(mask, image_mask, disagree)
        out: dict[str, Any] = {"facts": self.names, "weights": {"image": float(self.pooling_.weights_[0]),
                                                                "facts": float(self.pooling_.weights_[1])}}
        for suffix, p, m in (("_image", image_proba, image_mask), ("", fused, mask)):
            cm = classification_metrics(y, p, class_ids, policy.finding_weights if policy is not None else None)
            cal, cov = calibration_report(p, y), coverage_report(m, y, class_ids)
            out.update({f"{k}{suffix}": cm.get(k) for k in ("balanced_accuracy", "accuracy", "macro_auc")})
            out.update({f"{k}{suffix}": cal[k] for k in ("ece", "nll")})
            out.update({f"{k}{suffix}": cov[k] for k in ("coverage", "mean_set_size", "min_class_coverage")})
            out[f"per_class_recall{suffix}"] = cm["per_class_recall"]
        out["conflict_rate"] = float(disagree.mean())
        if spec is not None:
            ind = np.ones(len(y), bool) if in_distribution is None else np.asarray(in_distribution, bool)
            for suffix, levels in (("_image", triage_levels(image_proba, image_mask, ind, spec, policy=policy)),
                                   ("", triage_levels(image_proba, image_mask, ind, spec, policy=policy,
                                                      fused=(fused, mask, disagree)))):
                out[f"critical_miss_rate{suffix}"] = critical_miss_rate(levels, y, spec)
                out[f"over_triage_rate{suffix}"] = over_triage_rate(levels, y, spec)
        return out

    # -- storage (plain JSON, inside bundle.json) -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._fitted()
        return {"model": self.model_.to_dict(), "prior": self.prior_.tolist(),
                "ranges": {k: list(v) for k, v in self.ranges_.items()}, "weights": self.pooling_.weights_.tolist(),
                "conformal": self.conformal_.to_dict(), "C": self.C}  # "weights": the pooling's, as format 2 wrote them

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FactsFusion:
        model = TabularModel.from_dict(d["model"])
        conf = ConformalClassifier.from_dict(d["conformal"])
        f = cls(model.numeric, model.categorical, C=float(d.get("C", 1.0)), conformal=conf)
        f.model_, f.prior_, f.conformal_ = model, np.asarray(d["prior"], float), conf
        f.ranges_ = {k: (float(v[0]), float(v[1])) for k, v in d["ranges"].items()}
        f.pooling_ = LogLinearPooling.from_dict({"weights": d["weights"], "anchor": 0})
        return f
