"""Multi-label measures: per-condition precision, recall, F1 and AUC, micro/macro F1, subset accuracy,
Hamming loss; severity accuracy, weighted F1, MAE and quadratic weighted kappa on the conditions present;
the false-negative rate of a set of kept conditions (what conformal risk control bounds)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["fnr", "multilabel_metrics", "severity_metrics"]


def _sk() -> Any:
    import sklearn.metrics as skm  # imported when a figure is computed: serving never pays for it

    return skm


def fnr(kept: np.ndarray, presence: np.ndarray) -> float:
    """Mean over images with at least one condition of the share of their conditions not kept (the loss that
    conformal risk control bounds in expectation); images with none count as 0 (nothing to miss)."""
    y = np.asarray(presence).astype(bool)
    k = np.asarray(kept).astype(bool)
    n_true = y.sum(1)
    missed = (y & ~k).sum(1)
    per_image = np.where(n_true > 0, missed / np.maximum(n_true, 1), 0.0)
    return float(per_image.mean()) if len(per_image) else float("nan")


def severity_metrics(true: np.ndarray, proba: Sequence[np.ndarray | None], presence: np.ndarray,
                     levels: Sequence[Sequence[str]], class_ids: Sequence[str]) -> dict[str, Any]:
    """Severity on the conditions truly present with a known grade: predicted = most likely level.

    Pooled over graded conditions (level indices, mildest = 0) and per condition.
    """
    skm = _sk()
    pooled_t: list[int] = []
    pooled_p: list[int] = []
    per: dict[str, Any] = {}
    for k, pk in enumerate(proba):
        if pk is None:
            continue
        rows = (np.asarray(presence)[:, k] == 1) & (np.asarray(true)[:, k] >= 0)
        if not rows.any():
            continue
        t = np.asarray(true)[rows, k]
        p = pk[rows].argmax(1)
        pooled_t += t.tolist()
        pooled_p += p.tolist()
        per[class_ids[k]] = _sev(skm, t, p, len(levels[k])) | {"levels": list(levels[k])}
    if not pooled_t:
        return {"n": 0}
    n_levels = max(len(lv) for lv in levels)
    return _sev(skm, np.asarray(pooled_t), np.asarray(pooled_p), n_levels) | {"per_condition": per}


def _sev(skm: Any, t: np.ndarray, p: np.ndarray, n_levels: int) -> dict[str, Any]:
    labels = list(range(n_levels))
    same = len(set(t.tolist()) | set(p.tolist())) > 1
    return {
        "n": len(t),
        "accuracy": float((t == p).mean()),
        "weighted_f1": float(skm.f1_score(t, p, labels=labels, average="weighted", zero_division=0)),
        "mae": float(np.abs(t - p).mean()),
        "qwk": float(skm.cohen_kappa_score(t, p, labels=labels, weights="quadratic")) if same else float("nan"),
    }


def multilabel_metrics(presence: np.ndarray, proba: np.ndarray, class_ids: Sequence[str], *,
                       thresholds: np.ndarray | float = 0.5) -> dict[str, Any]:
    """Condition-level measures of probabilities ``proba`` (n, K) against 0/1 ``presence`` (n, K), deciding
    "present" at ``thresholds`` (one per condition, or one for all)."""
    skm = _sk()
    y = np.asarray(presence).astype(int)
    p = np.asarray(proba, dtype=np.float64)
    pred = (p >= np.asarray(thresholds)).astype(int)
    per: dict[str, Any] = {}
    aucs = []
    for k, cid in enumerate(class_ids):
        yk, pk = y[:, k], pred[:, k]
        auc = float(skm.roc_auc_score(yk, p[:, k])) if 0 < yk.sum() < len(yk) else float("nan")
        aucs.append(auc)
        per[cid] = {"precision": float(skm.precision_score(yk, pk, zero_division=0)),
                    "recall": float(skm.recall_score(yk, pk, zero_division=0)),
                    "f1": float(skm.f1_score(yk, pk, zero_division=0)), "auc": auc, "support": int(yk.sum())}
    eps = 1e-7
    bce = -(y * np.log(np.clip(p, eps, 1)) + (1 - y) * np.log(np.clip(1 - p, eps, 1))).mean()
    valid = [a for a in aucs if not np.isnan(a)]
    return {
        "n": len(y),
        "macro_f1": float(skm.f1_score(y, pred, average="macro", zero_division=0)),
        "micro_f1": float(skm.f1_score(y, pred, average="micro", zero_division=0)),
        "macro_auc": float(np.mean(valid)) if valid else float("nan"),
        "per_label_auc": dict(zip(class_ids, aucs, strict=True)),
        "subset_accuracy": float((pred == y).all(1).mean()),
        "hamming_loss": float((pred != y).mean()),
        "neg_log_loss": -float(bce),
        "per_label": per,
    }
