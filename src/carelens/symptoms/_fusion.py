"""An image model and a symptom model over the same conditions, fused by log-linear pooling.

    p(c | image, symptoms) ∝ p_img(c | image) · (p_sym(c | symptoms) / π_sym(c))^w

``p_sym / π_sym`` (the symptom model's output over its training prior) is the likelihood ratio of the
report, p(symptoms | c) / p(symptoms): the class prior is counted once (the calibrated image model already
carries it). An image class the symptom model does not know gets ratio 1 (the report says nothing about it).
The image keeps weight 1 (calibrated by its temperature); ``w`` is fitted on validation cases that have both
a photo and a report (:class:`~carelens.fusion.LogLinearPooling`, by log loss), so how much agreement
raises confidence is learned, not fixed; a conformal threshold fitted on the fused validation probabilities
gives the fused prediction set its coverage. The fitted fusion is stored in the symptom bundle, per image
model (its name and version), and used only with that model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from carelens.calibrate import ConformalClassifier
from carelens.errors import ConfigError
from carelens.fusion import LogLinearPooling, conflict
from carelens.labels import LabelSpec
from carelens.metrics import calibration_report, classification_metrics, coverage_report
from carelens.policy import DecisionPolicy, ModelRef, critical_miss_rate, over_triage_rate, triage_levels
from carelens.validation import check_is_fitted

__all__ = ["ImageSymptomFusion"]

CONFLICT_THRESHOLD = 0.5  # an image finding at least this sure, overturned by the symptoms, is a conflict


class ImageSymptomFusion:
    """Fitted on paired validation cases; maps the symptom model's classes onto the image model's."""

    def __init__(self, image_classes: Sequence[str], symptom_classes: Sequence[str], symptom_prior: np.ndarray, *,
                 image_model: ModelRef, conformal: ConformalClassifier | None = None) -> None:
        """``conformal``: the settings of the fused sets (the image model's, unfitted: ``cp.like()``)."""
        shared = [c for c in image_classes if c in symptom_classes]
        if not shared:
            raise ConfigError(f"the image model's classes ({', '.join(image_classes)}) and the symptom model's share no "
                              "condition id; such sources are combined at the triage level, not fused")
        prior = np.asarray(symptom_prior, np.float64)
        if prior.shape != (len(symptom_classes),) or (prior <= 0).any():
            raise ConfigError(f"the symptom prior needs {len(symptom_classes)} positive values, got {prior}")
        self.image_classes, self.symptom_classes = list(image_classes), list(symptom_classes)
        self.prior = prior / prior.sum()
        self.image_model = image_model
        self.conformal = (conformal or ConformalClassifier()).like()
        self._cols = np.asarray([self.symptom_classes.index(c) if c in symptom_classes else -1 for c in image_classes])

    @property
    def shared(self) -> list[str]:
        return [c for c, j in zip(self.image_classes, self._cols, strict=True) if j >= 0]

    def likelihood(self, symptom_proba: np.ndarray, reported: np.ndarray | None = None) -> np.ndarray:
        """(n, image classes) likelihood ratios of the reports, normalised; a row with nothing ``reported``
        (or a class the symptom model lacks) is neutral."""
        sp = np.atleast_2d(np.asarray(symptom_proba, np.float64))
        ratio = sp / self.prior
        out = np.where(self._cols >= 0, ratio[:, np.maximum(self._cols, 0)], 1.0)
        if reported is not None:
            out[~np.asarray(reported, bool)] = 1.0
        return out / out.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def fit(self, image_proba: np.ndarray, symptom_proba: np.ndarray, y: np.ndarray,
            reported: np.ndarray | None = None) -> ImageSymptomFusion:
        """``y``: indices into the image model's classes; ``reported``: which cases have a report."""
        sources = [np.asarray(image_proba, np.float64), self.likelihood(symptom_proba, reported)]
        self.pooling_ = LogLinearPooling(anchor=0).fit(sources, y)
        self.conformal_ = self.conformal.like().fit(self.pooling_.combine(sources), np.asarray(y, np.int64))
        return self

    @property
    def weight(self) -> float:
        """The symptoms' fitted weight (the image's is 1)."""
        check_is_fitted(self, "pooling_", "fit it on paired validation cases (carelens symptoms fuse)")
        return float(self.pooling_.weights_[1])

    def fuse(self, image_proba: np.ndarray, symptom_proba: np.ndarray,
             reported: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fused probabilities (n, k), fused prediction-set mask (n, k), conflict (n,))."""
        check_is_fitted(self, "pooling_", "fit it on paired validation cases (carelens symptoms fuse)")
        ip = np.atleast_2d(np.asarray(image_proba, np.float64))
        fused = self.pooling_.combine([ip, self.likelihood(symptom_proba, reported)])
        return fused, self.conformal_.predict_set(fused), conflict(ip, fused, CONFLICT_THRESHOLD)

    def measure(self, image_proba: np.ndarray, image_mask: np.ndarray, symptom_proba: np.ndarray, y: np.ndarray,
                spec: LabelSpec, reported: np.ndarray | None = None,
                in_distribution: np.ndarray | None = None, policy: DecisionPolicy | None = None) -> dict[str, Any]:
        """Image alone, symptoms alone (their most likely class among the image classes) and fused, on the
        same labelled cases; triage figures with the image's floor kept (fused triage is never less urgent
        than the image's own)."""
        fused, mask, disagree = self.fuse(image_proba, symptom_proba, reported)
        mask = np.where(disagree[:, None], mask | image_mask, mask)  # disagreement widens, never narrows
        sp = np.atleast_2d(np.asarray(symptom_proba, np.float64))  # the symptom model alone, on the image classes
        sym_post = np.where(self._cols >= 0, sp[:, np.maximum(self._cols, 0)], 0.0) + 1e-12
        sym_post /= sym_post.sum(1, keepdims=True)
        ids = self.image_classes
        out: dict[str, Any] = {"shared_conditions": self.shared, "weight_symptoms": self.weight, "cases": len(y)}
        for suffix, p in (("_image", image_proba), ("_symptoms", sym_post), ("_fused", fused)):
            cm, cal = classification_metrics(y, p, ids), calibration_report(p, y)
            out.update({f"{k}{suffix}": cm.get(k) for k in ("balanced_accuracy", "accuracy", "macro_auc")})
            out[f"per_class_recall{suffix}"] = cm["per_class_recall"]
            out.update({f"{k}{suffix}": cal[k] for k in ("ece", "nll")})
        for suffix, m in (("_image", image_mask), ("_fused", mask)):
            cov = coverage_report(m, y, ids)
            out.update({f"{k}{suffix}": cov[k] for k in ("coverage", "mean_set_size")})
        out["conflict_rate"] = float(disagree.mean())
        ind = np.ones(len(y), bool) if in_distribution is None else np.asarray(in_distribution, bool)
        image_levels = triage_levels(image_proba, image_mask, ind, spec, policy=policy)
        fused_levels = triage_levels(image_proba, image_mask, ind, spec, policy=policy, fused=(fused, mask, disagree))
        unfloored = triage_levels(fused, mask, ind, spec, policy=policy)  # the fused decision alone: what the floor costs
        for suffix, levels in (("_image", image_levels), ("_fused", fused_levels), ("_fused_no_floor", unfloored)):
            out[f"critical_miss_rate{suffix}"] = critical_miss_rate(levels, y, spec)
            out[f"over_triage_rate{suffix}"] = over_triage_rate(levels, y, spec)
        return out

    # -- storage (plain JSON, inside symptoms.json) --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        check_is_fitted(self, "pooling_", "fit it on paired validation cases (carelens symptoms fuse)")
        return {"image_model": self.image_model.model_dump(), "image_classes": self.image_classes,
                "symptom_classes": self.symptom_classes, "prior": self.prior.tolist(),
                "pooling": self.pooling_.to_dict(), "conformal": self.conformal_.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageSymptomFusion:
        conf = ConformalClassifier.from_dict(d["conformal"])
        f = cls(d["image_classes"], d["symptom_classes"], np.asarray(d["prior"], np.float64),
                image_model=ModelRef.model_validate(d["image_model"]), conformal=conf)
        f.pooling_, f.conformal_ = LogLinearPooling.from_dict(d["pooling"]), conf
        return f
