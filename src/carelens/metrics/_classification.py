"""Classification metrics used by every stage: balanced accuracy and per-class recall first."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["balanced_accuracy", "classification_metrics", "decisions", "macro_auc", "rate_upper_bound"]


def _sk() -> Any:
    """scikit-learn's metrics, imported when a figure is computed, not when carelens is: the serving process
    imports this package (the facts fusion reports with it) and stays ~50 MB lighter (measured: 318 -> 269 MB
    peak RSS serving the 224 px bundle)."""
    import sklearn.metrics

    return sklearn.metrics


def rate_upper_bound(events: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound of a rate seen as ``events`` of ``n``: what a small
    count still allows (0 misses among 30 cases bounds the miss rate at 0.095, not 0); NaN without cases."""
    if not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n, got {events} of {n}")
    if n == 0:
        return float("nan")
    if events == n:
        return 1.0
    from scipy.stats import beta  # when a figure is computed: serving stays without scipy.stats (as _sk)

    return float(beta.ppf(confidence, events + 1, n - events))


def macro_auc(y: np.ndarray, proba: np.ndarray) -> tuple[float, list[float]]:
    """One-vs-rest AUC per class and their mean; NaN (with a warning) where a class is absent."""
    k = proba.shape[1]
    per: list[float] = []
    for c in range(k):
        pos = y == c
        if pos.all() or not pos.any():
            per.append(float("nan"))
            continue
        per.append(float(_sk().roc_auc_score(pos, proba[:, c])))
    valid = [a for a in per if not np.isnan(a)]
    if len(valid) < len(per):
        warnings.warn("AUROC undefined for classes absent from (or alone in) this split; they are NaN.", stacklevel=2)
    if k == 2:
        return (per[1] if not np.isnan(per[1]) else float("nan")), per
    return (float(np.mean(valid)) if valid else float("nan")), per


def decisions(proba: np.ndarray, weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """The class each row is called: the most probable, or with finding ``weights`` (one per class, chosen at
    calibration: :func:`carelens.calibrate.choose_finding_weights`) the highest probability x weight."""
    p = np.asarray(proba, dtype=np.float64)
    return np.asarray((p if weights is None else p * np.asarray(weights, dtype=np.float64)).argmax(-1))


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """The mean recall over the classes present in ``y`` (numpy only: cheap enough to call in a search)."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    support = np.bincount(y, minlength=k)
    hits = np.bincount(y[pred == y], minlength=k)
    present = support > 0
    return float((hits[present] / support[present]).mean()) if present.any() else float("nan")


def classification_metrics(y: Sequence[int] | np.ndarray, proba: np.ndarray, class_ids: Sequence[str],
                           weights: Sequence[float] | np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall/F1/support, macro and weighted F1,
    one-vs-rest macro AUC, confusion matrix and worst classes. Binary tasks add MedMNIST's ACC
    (threshold 0.5 on the second class) and AUC so results compare with its tables.

    ``weights``: the model's finding weights, when it ships them: each row is then called as the model calls it
    (:func:`decisions`); the AUCs, which rank each class's own probability, do not change.
    """
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    k = len(class_ids)
    if proba.ndim != 2 or proba.shape != (len(y), k):
        raise ValueError(f"proba must have shape ({len(y)}, {k}), got {proba.shape}")
    pred = decisions(proba, weights)
    labels = list(range(k))
    sk = _sk()
    prec, rec, f1, sup = sk.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    present = sup > 0
    auc, per_auc = macro_auc(y, proba)
    cm = sk.confusion_matrix(y, pred, labels=labels)
    per_class = {
        cid: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(sup[i]),
              "auc": per_auc[i]}
        for i, cid in enumerate(class_ids)
    }
    order = sorted((i for i in labels if present[i]), key=lambda i: (rec[i], f1[i]))
    out: dict[str, Any] = {
        "n": len(y),
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(rec[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "weighted_f1": float(np.average(f1, weights=sup)) if sup.sum() else float("nan"),
        "macro_auc": auc,
        "per_class": per_class,
        "per_class_recall": {cid: float(rec[i]) for i, cid in enumerate(class_ids)},
        "confusion_matrix": cm.tolist(),
        "worst_classes": [class_ids[i] for i in order[:3]],
        "majority_baseline_accuracy": float(sup.max() / sup.sum()) if sup.sum() else float("nan"),
    }
    if k == 2:
        out["medmnist_acc"] = float(((proba[:, 1] >= 0.5).astype(int) == y).mean())
    return out
